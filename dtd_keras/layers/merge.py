"""Merging branches: Add (also ``a + b`` in functional code) and gating Multiply.

Add
    ``R_k = c_k / (Σ_k' c_k') · R``: each branch gets relevance in proportion to its
    contribution ``c_k`` (the z-rule over branches, broadcasting handled by the
    gradient trick). The analyzer's ``add`` option picks ``c``: ``"proportional"``
    (LRP's default) uses ``c_k = x_k``; ``"positive"`` (DTD's default) uses
    ``c_k = x_k⁺``, the z⁺-rule over branches, so a residual branch with a negative
    value gets no (negative) relevance that a z⁺ layer below could not pass on: DTD
    stays positive and conservative through residual blocks. Conservative either way:
    where the contributions cancel (``|Σ c| ≤ 1e-6 · Σ |x|``) the split uses
    ``|x_k| / Σ |x_k'|`` instead, so it stays finite. Constants added in functional
    code (``x + 1.0``) act like a bias and absorb their share.
Multiply (gating, e.g. squeeze-and-excitation)
    All relevance goes to the signal branch, none to the gate. Under the attention
    analyzers (``attn_lrp``, ``cp_lrp``) a product of two signals that cannot be told
    apart (a gated MLP: ``x·W₁ ⊙ silu(x·W₂)``) gets AttnLRP's uniform rule, half each.
    The signal is the input with the output's full shape; the gate is the broadcast one
    (or, if both are full, a mask cast from integers, else the one produced by a
    sigmoid). ``x * constant`` passes relevance unchanged (an elementwise rescaling).
    Concatenate is a :class:`~.base.Reindex`.
Average (``keras.layers.Average``)
    Like Add: ``R_k = c_k / (Σ_k' c_k') · R`` with the same ``add`` option (the factor
    ``1/n`` of the mean cancels between each branch's term ``x_k/n`` and their sum).
Subtract (``keras.layers.Subtract``, ``a - b`` in functional code)
    The sum of the terms ``a`` and ``−b``: ``R_a = c(a) / (c(a) + c(−b)) · R`` and
    ``R_b = c(−b) / (c(a) + c(−b)) · R``, ``c`` as for Add, applied to the *terms*:
    under ``add="positive"`` a term counts where it pushes the output up (``a⁺`` and
    ``(−b)⁺ = max(−b, 0)``, i.e. where ``b`` is negative), so ``b > 0`` gets no
    relevance. ``b`` receives the relevance of its term ``−b`` (not its negation).
    A constant operand (``x - 1.0``, ``1.0 - x``) absorbs its share, like a bias.
Maximum and Minimum (layers, and ``keras.ops.maximum``/``minimum``)
    Winner-take-all, like max pooling: each output value's relevance goes entirely to
    the branch holding the selected value, ``R_k = 1[x_k selected] · R`` (the
    gradient); on ties to the branch TensorFlow's gradient picks (the first of the
    tied inputs, in the layer's order). With a constant operand (``maximum(x, 0)``)
    relevance reaches ``x`` only where ``x`` is selected (``x ≥ 0``: a ReLU).
``keras.ops.average`` is a weighted mean along an axis of one tensor, not a merge of
branches: it has no rule here.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from ..engine.domains import POSITIVE, REAL
from ..engine.graph import Call, Graph
from ..engine.propagation import safe_divide
from ..errors import UnsupportedLayerError
from ..rules.attention import BILINEAR_EPSILON, bilinear_relevance
from .activations import activation_name
from .base import LayerRelevance, Reindex

__all__ = ["Difference", "Gate", "Sum", "Winner"]

CANCELLATION = 1e-6


class Sum(LayerRelevance):
    """Add / ``a + b`` / Average: relevance in proportion to each branch's contribution."""

    def signs(self) -> list[float]:
        """The sign of each input's term in the sum (all +1 for Add)."""
        return [1.0 for _ in self.call.inputs]

    def domains(self, domains):
        positive = all(d is POSITIVE for d in domains) and all(s > 0 for s in self.signs())
        return [POSITIVE if positive else REAL]

    def relevance(self, inputs, outputs, relevances, rule=None):
        positive = self.options.get("add", "proportional") == "positive"
        signs = self.signs()
        terms = [x if s > 0 else -x for x, s in zip(inputs, signs)]
        if len(inputs) > 1 and _same_shapes(inputs):
            return _split(terms, relevances[0], positive)
        # broadcasting or a constant operand: the gradient trick reduces the shares.
        # forward(s_k · t_k) = Σ t_k (+ constant); ∂/∂t_k = 1, summed over broadcasts
        signed = [tf.nn.relu(t) for t in terms] if positive else [tf.identity(t) for t in terms]
        magnitude = [tf.abs(t) for t in terms]

        def total_of(values):
            return self.forward([v if s > 0 else -v for v, s in zip(values, signs)])[0]

        with tf.GradientTape(persistent=True) as tape:
            tape.watch(signed + magnitude)
            total = total_of(signed)
            total_abs = total_of(magnitude)
        cancel = tf.abs(total) <= CANCELLATION * total_abs
        zero = tf.zeros_like(relevances[0])
        s_signed = tf.where(cancel, zero, safe_divide(relevances[0], total))
        s_abs = tf.where(cancel, safe_divide(relevances[0], total_abs), zero)
        g_signed = tape.gradient(total, signed, output_gradients=s_signed)
        g_abs = tape.gradient(total_abs, magnitude, output_gradients=s_abs)
        del tape
        return [x * g + m * h for x, m, g, h in zip(signed, magnitude, g_signed, g_abs)]


class Difference(Sum):
    """Subtract / ``a - b``: the Add rule on the terms ``a`` and ``−b``."""

    def signs(self):
        node = self.call.node
        args = list(node.arguments.args)
        if len(args) == 1 and isinstance(args[0], (list, tuple)):  # the layer: [a, b]
            args = list(args[0])
        ids = [id(a) for a in args]
        signs = []
        for tensor in node.input_tensors:
            position = ids.index(id(tensor)) if id(tensor) in ids else 0
            signs.append(1.0 if position == 0 else -1.0)
        return signs


class Winner(Reindex):
    """Maximum / Minimum: all relevance to the selected branch (the gradient's choice)."""


def _same_shapes(tensors: list) -> bool:
    shapes = [tuple(t.shape[1:]) for t in tensors]
    return None not in shapes[0] and all(shape == shapes[0] for shape in shapes)


def _split(inputs: list, relevance: Any, positive: bool) -> list:
    """The Add rule for same-shaped branches, elementwise: ``R_k = c_k · R / Σ c``, or
    ``|x_k| · R / Σ |x|`` where ``Σ c`` cancels, with one division for all branches."""
    contributions = [tf.nn.relu(x) for x in inputs] if positive else list(inputs)
    magnitudes = [tf.abs(x) for x in inputs]
    total, total_abs = tf.add_n(contributions), tf.add_n(magnitudes)
    cancel = (total if positive else tf.abs(total)) <= CANCELLATION * total_abs
    share = safe_divide(relevance, tf.where(cancel, total_abs, total), nonnegative=positive)
    return [tf.where(cancel, m, c) * share for c, m in zip(contributions, magnitudes)]


def _from_integers(graph: Graph, key: int) -> bool:
    """Whether ``key`` is integers or booleans cast to float (a padding mask)."""
    producer = graph.producer(key)
    return (producer is not None and type(producer.operation).__name__ == "Cast"
            and bool(producer.inputs) and not graph.is_float(producer.inputs[0]))


def _from_sigmoid(graph: Graph, key: int) -> bool:
    producer = graph.producer(key)
    if producer is None:
        return False
    name = activation_name(getattr(producer.operation, "activation", None))
    return name in ("sigmoid", "hard_sigmoid")


class Gate(LayerRelevance):
    """Multiply used as a gate: all relevance to the signal, none to the gate."""

    def __init__(self, call: Call, graph: Graph, **options: Any) -> None:
        super().__init__(call, graph, **options)
        if len(call.inputs) == 1:  # x * constant: an elementwise rescaling
            self.signal = 0
            return
        if len(call.inputs) != 2:
            raise UnsupportedLayerError(
                f"layer {call.description} multiplies {len(call.inputs)} tensors; only a "
                "signal times a gate (2 inputs) has a relevance rule")
        out = graph.shapes.get(call.outputs[0])
        full = [graph.shapes.get(k) == out for k in call.inputs]
        sizes = [np.prod([d or 1 for d in graph.shapes.get(k, ())[1:]]) for k in call.inputs]
        if full[0] != full[1]:
            self.signal = 0 if full[0] else 1
        elif sizes[0] != sizes[1]:
            self.signal = int(np.argmax(sizes))
        elif _from_integers(graph, call.inputs[0]) != _from_integers(graph, call.inputs[1]):
            self.signal = 0 if _from_integers(graph, call.inputs[1]) else 1
        elif _from_sigmoid(graph, call.inputs[0]) != _from_sigmoid(graph, call.inputs[1]):
            self.signal = 1 if _from_sigmoid(graph, call.inputs[0]) else 0
        elif options.get("attention") in ("attn_lrp", "cp_lrp"):
            self.signal = None  # a product of two signals (a gated MLP): the uniform rule
        else:
            raise UnsupportedLayerError(
                f"layer {call.description}: cannot tell the signal from the gate (both "
                "inputs have the output's shape and neither comes from a sigmoid); the "
                "attention analyzers (dk.create_analyzer('attn_lrp', model)) split such a "
                "product of two signals half and half (AttnLRP's uniform rule)")

    def domains(self, domains):
        if len(domains) == 1 and domains[0] is POSITIVE:  # x * constant: ℝ₊ if constant ≥ 0
            shape = self.graph.shapes.get(self.call.inputs[0], (None,))[1:]
            if any(d is None for d in shape):
                return [REAL]
            scale = self.forward([tf.ones((1, *shape))])[0]
            return [POSITIVE if float(tf.reduce_min(scale)) >= 0 else REAL]
        return [POSITIVE if all(d is POSITIVE for d in domains) else REAL]

    def relevance(self, inputs, outputs, relevances, rule=None):
        if self.signal is None:  # two signals: R_a = ½ a ⊙ ∇_a(a·b · R/ẑ), R_b alike
            return list(bilinear_relevance(tf.multiply, inputs[0], inputs[1], relevances[0],
                                           self.options.get("attention_epsilon", BILINEAR_EPSILON),
                                           outputs[0]))
        result = [tf.zeros_like(x) for x in inputs]
        result[self.signal] = relevances[0]
        return result


def _merges() -> dict[type, Any]:
    import keras
    from keras.src.ops import numpy as keras_numpy

    table: dict[type, Any] = {}
    for owner, names in ((keras.layers, ("Maximum", "Minimum")),
                         (keras_numpy, ("Maximum", "Minimum"))):
        table.update({getattr(owner, n): Winner for n in names if hasattr(owner, n)})
    table.update({cls: Difference for cls in (getattr(keras.layers, "Subtract", None),
                                              getattr(keras_numpy, "Subtract", None)) if cls})
    if hasattr(keras.layers, "Average"):
        table[keras.layers.Average] = Sum
    return table


MERGES: dict[type, Any] = _merges()
"""The merges registered through :mod:`.sequence`'s table (Add and Multiply are in the
registry's own)."""
