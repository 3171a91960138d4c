"""Attention: ``keras.ops.dot_product_attention``, softmax inside the network, and
``einsum``/``matmul`` operations, with the rules of :mod:`dtd_keras.rules.attention`.

The rules follow the analyzer's ``attention`` option: ``"attn_lrp"`` (and None, so
:class:`~dtd_keras.LRP` and :class:`~dtd_keras.DTD` explain transformers too) or
``"cp_lrp"``.

DotProductAttention (the op ``MultiHeadAttention`` calls when it has no explicit mask
or dropout; layout ``[batch, seq, heads, dim]``)
    Decomposed as the backend computes it: scores ``q·kᵀ·scale (+ bias)``, masked
    (``mask``, ``is_causal``) to a large negative number, ``A = softmax(scores)`` over
    the keys, ``out = A·v`` (grouped-query heads repeated). AttnLRP: uniform rule on
    ``A·v``, softmax rule, uniform rule on ``q·kᵀ``; masked scores get exactly zero and
    the score bias absorbs its share. CP-LRP: all of ``A·v``'s relevance to ``v``
    (LRP-ε), none to ``q`` and ``k``.
Softmax (the ``Softmax`` layer, with its ``mask``, and ``keras.ops.softmax``)
    AttnLRP's softmax rule over the softmax axes; masked inputs get exactly zero. A
    softmax producing the explained output is stripped instead (the logit is explained).
MultiHeadAttention
    Seen inside (its query/key/value/output ``EinsumDense`` projections and the ops
    above). With ``use_causal_mask=True`` the causal mask is computed from the layer's
    inputs as one operation and passed as ``attention_mask`` (Keras would build it from
    the projected queries, whose sequence length is unknown when seen inside); the
    layer then computes exactly what it computes in the model.
Einsum and Matmul
    Of two variable tensors: bilinear. AttnLRP: the uniform rule (each factor half).
    CP-LRP: where one factor comes from a softmax (through dropout, casts or moves), it
    is held constant and the other gets everything; otherwise the uniform rule. With one
    constant operand (a weight, e.g. an expanded ``EinsumDense``): a linear layer whose
    rule the analyzer chooses (LRP-ε under the attention analyzers).
"""

from __future__ import annotations

import inspect
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras.src.ops import core as keras_core
from keras.src.ops import nn as keras_nn
from keras.src.ops import numpy as keras_numpy

from ..engine.domains import POSITIVE
from ..engine.graph import SYMBOLIC_CALLS, Call, ComputedMask, Graph
from ..rules.attention import (
    ATTENTION_MODES,
    BILINEAR_EPSILON,
    bilinear_relevance,
    constant_left_relevance,
    softmax_relevance,
)
from .base import LayerRelevance, refusal
from .linear import Linear

__all__ = ["LAYERS", "Bilinear", "ConstantProduct", "DotProductAttentionRelevance",
           "SoftmaxRelevance", "product_relevance"]

Tensor = Any


class _Slot:
    """Marks where the ``index``-th input tensor sits in a call's arguments."""

    def __init__(self, index: int) -> None:
        self.index = index


def _slots(call: Call) -> tuple[tuple, dict]:
    """The call's arguments with each input tensor replaced by a :class:`_Slot` (the
    first occurrence's index, where one tensor is passed several times)."""
    tensors = list(call.node.input_tensors)
    marks = {}
    for i, t in enumerate(tensors):
        marks.setdefault(id(t), _Slot(i))
    return call.node.arguments.fill_in(marks)


def _mode(step: LayerRelevance) -> str:
    mode = step.options.get("attention")
    if mode not in ATTENTION_MODES:
        raise ValueError(f"attention must be one of {ATTENTION_MODES}, got {mode!r}")
    return mode or "attn_lrp"


def _epsilon(step: LayerRelevance) -> float:
    return float(step.options.get("attention_epsilon", BILINEAR_EPSILON))


def _float(value: Any) -> Tensor:
    return tf.cast(tf.convert_to_tensor(value), tf.float32)


class DotProductAttentionRelevance(LayerRelevance):
    """``keras.ops.dot_product_attention(query, key, value, bias, mask, scale)``."""

    PARAMETERS = ("query", "key", "value", "bias", "mask", "scale")

    def absorbs(self, rule: Any) -> bool:
        """AttnLRP: the softmax rule's Taylor bias absorbs (CP-LRP: nothing, up to ε)."""
        return _mode(self) != "cp_lrp"

    def __init__(self, call: Call, graph: Graph, **options: Any) -> None:
        super().__init__(call, graph, **options)
        self.mode = _mode(self)
        self._signature = inspect.signature(self.layer.call)
        args, kwargs = _slots(call)
        bound = self._signature.bind(*args, **kwargs)
        self.slots = {name: bound.arguments.get(name) for name in self.PARAMETERS}
        if getattr(self.layer, "flash_attention", None):
            raise refusal(f"operation {call.description} uses flash attention",
                          "Explain the model with flash_attention=False (the TensorFlow "
                          "backend has none)")

    def _values(self, inputs) -> dict[str, Any]:
        args, kwargs = self.call.arguments(inputs)
        bound = self._signature.bind(*args, **kwargs)
        return {name: bound.arguments.get(name) for name in self.PARAMETERS}

    def parts(self, inputs) -> dict[str, Any]:
        """The decomposition: ``scores(q, k)``, ``mix(A, v)``, the boolean ``keep`` mask
        (None: nothing masked) and the float32 ``query``, ``key``, ``value``."""
        v = self._values(inputs)
        q, k, val = (_float(v[n]) for n in ("query", "key", "value"))
        bias = None if v["bias"] is None else _float(v["bias"])
        heads, kv_heads = q.shape[2], k.shape[2]
        groups = heads // kv_heads if heads and kv_heads and heads > kv_heads else 1
        scale = v["scale"]
        if scale is None:
            scale = 1.0 / np.sqrt(float(k.shape[-1]))
        scale = tf.cast(scale, tf.float32)

        def repeat(t: Tensor) -> Tensor:
            return t if groups == 1 else tf.repeat(t, groups, axis=2)

        def scores(query: Tensor, key: Tensor) -> Tensor:
            logits = tf.einsum("BTNH,BSNH->BNTS", query, repeat(key)) * scale
            return logits if bias is None else logits + bias

        def mix(probs: Tensor, value: Tensor) -> Tensor:
            return tf.einsum("BNTS,BSNH->BTNH", probs, repeat(value))

        keep = None
        if v["mask"] is not None:
            keep = tf.cast(tf.convert_to_tensor(v["mask"]), tf.bool)
        if getattr(self.layer, "is_causal", False):
            t, s = tf.shape(q)[1], tf.shape(k)[1]
            causal = tf.linalg.band_part(tf.ones((t, s), tf.bool), -1, 0)[None, None]
            keep = causal if keep is None else tf.logical_and(keep, causal)
        return {"scores": scores, "mix": mix, "keep": keep, "query": q, "key": k,
                "value": val}

    def relevance(self, inputs, outputs, relevances, rule=None):
        p = self.parts(inputs)
        upper = tf.cast(relevances[0], tf.float32)
        q, k, v, keep = p["query"], p["key"], p["value"], p["keep"]
        logits = p["scores"](q, k)
        padded = logits if keep is None else tf.where(keep, logits, -0.7 * 3.38953e38)
        probs = tf.nn.softmax(padded, axis=-1)
        eps = _epsilon(self)
        out = tf.cast(outputs[0], tf.float32)  # A·v as the forward pass computed it
        if self.mode == "cp_lrp":
            found = {"value": constant_left_relevance(p["mix"], probs, v, upper, eps, out)}
        else:
            r_probs, r_v = bilinear_relevance(p["mix"], probs, v, upper, eps, out)
            r_logits = softmax_relevance(padded, probs, r_probs, -1, keep)
            r_q, r_k = bilinear_relevance(p["scores"], q, k, r_logits, eps, logits)
            found = {"query": r_q, "key": r_k, "value": r_v}
        return self._to_inputs(found, inputs)

    def _to_inputs(self, found: dict[str, Tensor], inputs) -> list[Tensor | None]:
        """Each parameter's relevance at its input tensor (summed where one tensor is
        passed as several); None for the bias and mask (they absorb / carry none)."""
        result: list[Tensor | None] = [None for _ in inputs]
        for name, r in found.items():
            slot = self.slots.get(name)
            if not isinstance(slot, _Slot):
                continue  # a constant operand
            r = tf.cast(r, inputs[slot.index].dtype)
            result[slot.index] = r if result[slot.index] is None else result[slot.index] + r
        return result


class SoftmaxRelevance(LayerRelevance):
    """A softmax inside the network (the ``Softmax`` layer or ``keras.ops.softmax``):
    AttnLRP's softmax rule over its axes; masked inputs get exactly zero."""

    def absorbs(self, rule: Any) -> bool:
        """The softmax rule's Taylor bias absorbs relevance."""
        return True

    def __init__(self, call: Call, graph: Graph, **options: Any) -> None:
        super().__init__(call, graph, **options)
        axis = getattr(self.layer, "axis", -1)
        if axis is None:
            raise refusal(
                f"operation {call.description} takes the softmax over all axes, batch "
                f"included (axis=None, input shape {graph.shapes.get(call.inputs[0])})",
                "Give the softmax an axis")
        self.axis = list(axis) if isinstance(axis, (tuple, list)) else axis
        args, kwargs = _slots(call)
        self.x_slot = args[0] if args else kwargs.get("inputs", kwargs.get("x"))
        self.mask_slot = kwargs.get("mask", args[1] if len(args) > 1 else None)

    def domains(self, domains):
        return [POSITIVE]

    def relevance(self, inputs, outputs, relevances, rule=None):
        x = inputs[self.x_slot.index]
        keep = self._keep(inputs, x)
        result: list[Tensor | None] = [None for _ in inputs]
        result[self.x_slot.index] = softmax_relevance(x, outputs[0], relevances[0],
                                                      self.axis, keep)
        return result

    def _keep(self, inputs, x: Tensor) -> Tensor | None:
        mask = self.mask_slot
        if mask is None:
            return None
        mask = inputs[mask.index] if isinstance(mask, _Slot) else tf.convert_to_tensor(mask)
        if mask.dtype != tf.bool:  # as the Softmax layer reads a numeric mask
            mask = tf.greater(tf.cast(mask, tf.float32), 0.5)
        return tf.broadcast_to(mask, tf.shape(x))


def _from_softmax(graph: Graph, key: int, depth: int = 8) -> bool:
    """Whether tensor ``key`` is a softmax's output, maybe through dropout, casts and
    ops that only move values (transpose, reshape, …)."""
    for _ in range(depth):
        producer = graph.producer(key)
        if producer is None:
            return False
        op = producer.operation
        if isinstance(op, (keras.layers.Softmax, keras_nn.Softmax)) or (
                getattr(getattr(op, "activation", None), "__name__", "") == "softmax"):
            return True
        floats = [k for k in producer.inputs if graph.is_float(k)]
        if not isinstance(op, _MOVES) or len(floats) != 1:
            return False
        key = floats[0]
    return False


_MOVES = tuple(c for c in (
    keras.layers.Dropout, keras.layers.Reshape, keras.layers.Permute,
    *(getattr(keras_numpy, n, None) for n in ("Transpose", "Reshape", "ExpandDims",
                                             "Squeeze", "Moveaxis", "Swapaxes")),
    getattr(keras_core, "Cast", None)) if c is not None)


def _operands(call: Call) -> list[Any]:
    """An ``einsum``/``matmul`` call's operands, each input tensor replaced by its
    position among the call's inputs (a :class:`_Slot`), constants as they are."""
    args, kwargs = call.node.arguments.args, call.node.arguments.kwargs
    if kwargs:
        raise refusal(f"operation {call.description} is called with keyword arguments "
                      f"{sorted(kwargs)}; only positional operands have a relevance rule")
    count = iter(range(len(args)))
    return [_Slot(next(count)) if isinstance(a, keras.KerasTensor) else a for a in args]


def _substitute(operands: list[Any], values: dict[int, Tensor]) -> list[Any]:
    return [values[o.index] if isinstance(o, _Slot) else o for o in operands]


class Bilinear(LayerRelevance):
    """``einsum``/``matmul`` of two variable tensors: AttnLRP's uniform rule (each factor
    half); under CP-LRP a factor produced by a softmax is held constant."""

    def __init__(self, call: Call, graph: Graph, **options: Any) -> None:
        super().__init__(call, graph, **options)
        self.mode = _mode(self)
        self.operands = _operands(call)
        self.softmax_side = next(
            (side for side in (0, 1) if _from_softmax(graph, call.inputs[side])), None)

    def _product(self, a: Tensor, b: Tensor) -> Tensor:
        return self.layer.call(*_substitute(self.operands, {0: a, 1: b}))

    def relevance(self, inputs, outputs, relevances, rule=None):
        a, b = inputs
        eps, z = _epsilon(self), outputs[0]  # z: the product as the forward pass computed it
        if self.mode == "cp_lrp" and self.softmax_side == 0:
            return [None, constant_left_relevance(self._product, a, b, relevances[0], eps, z)]
        if self.mode == "cp_lrp" and self.softmax_side == 1:
            def swapped(x: Tensor, y: Tensor) -> Tensor:
                return self._product(y, x)
            return [constant_left_relevance(swapped, b, a, relevances[0], eps, z), None]
        return list(bilinear_relevance(self._product, a, b, relevances[0], eps, z))


class ConstantProduct(Linear):
    """``einsum``/``matmul`` of one variable tensor with a constant (a weight): a linear
    map whose rule the analyzer chooses (LRP-ε under the attention analyzers)."""

    def __init__(self, call: Call, graph: Graph, **options: Any) -> None:
        super().__init__(call, graph, **options)
        self.operands = _operands(call)
        self.constant = next(o for o in self.operands if not isinstance(o, _Slot))

    def raw_weights(self):
        return _float(self.constant), None

    def linear(self, a, kernel, bias):
        operands = [a if isinstance(o, _Slot) else kernel for o in self.operands]
        z = self.layer.call(*operands)
        return z if bias is None else z + bias


def product_relevance(call: Call, graph: Graph, **options: Any) -> LayerRelevance:
    """The behaviour for an ``einsum``/``matmul`` call: :class:`Bilinear` for two variable
    operands, :class:`ConstantProduct` for one and a constant; a refusal otherwise."""
    operands = _operands(call)
    variable = sum(isinstance(o, _Slot) for o in operands)
    if len(operands) == 2 and variable == 2:
        return Bilinear(call, graph, **options)
    if len(operands) == 2 and variable == 1:
        return ConstantProduct(call, graph, **options)
    shapes = [graph.shapes.get(k) for k in call.inputs]
    raise refusal(
        f"operation {call.description} multiplies {len(operands)} operands (input shapes "
        f"{shapes}); only products of two (one or both variable) have a relevance rule")


LAYERS: dict[type, Any] = {
    keras_nn.DotProductAttention: DotProductAttentionRelevance,
    keras.layers.Softmax: SoftmaxRelevance,
    keras_nn.Softmax: SoftmaxRelevance,
    keras_numpy.Einsum: product_relevance,
    keras_numpy.Matmul: product_relevance,
}
"""Layer/operation class → relevance behaviour, merged into the registry's table."""


def _attention_with_causal_mask(layer: Any, query: Any, value: Any, key: Any = None,
                                attention_mask: Any = None, use_causal_mask: bool = False,
                                **kwargs: Any) -> Any:
    """``MultiHeadAttention.call`` seen inside, its causal mask one recorded operation."""
    if use_causal_mask:
        causal = ComputedMask(layer._compute_causal_mask, name=f"{layer.name}_causal_mask")
        mask = causal(query, value)
        if attention_mask is not None:
            mask = keras.ops.logical_and(keras.ops.cast(attention_mask, "bool"), mask)
        attention_mask = mask
    return layer.call(query, value, key=key, attention_mask=attention_mask,
                      use_causal_mask=False, **kwargs)


SYMBOLIC_CALLS[keras.layers.MultiHeadAttention] = _attention_with_causal_mask
