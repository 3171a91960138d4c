"""Sequence layers and the ``keras.ops`` operations that only move or select values.

TimeDistributed(layer)
    The inner layer's own behaviour on the batch and time axes folded into one:
    ``[batch, time, …] → [batch·time, …]``, the inner behaviour's forward and relevance
    pass, and back. Whatever the inner layer is under an analyzer it stays inside the
    wrapper: ``TimeDistributed(Dense)`` takes a rule (the one a Dense at that place
    would get: DTD's by domain, LRP's ``rule``/``input_rule``/``layer_rules`` by the
    wrapper's name), a ``TimeDistributed(MaxPooling1D)`` is a winner-take-all, and so
    on. A box domain reaching it must have the same bounds at every time step (the
    inner rule sees one step at a time).
Value-moving ``keras.ops`` (as :class:`~.base.Reindex`: ``R_in = ∇ₓ(op(x) · R)``)
    ``transpose``, ``reshape``, ``expand_dims``, ``squeeze``, ``moveaxis``,
    ``swapaxes``, ``ravel``, ``flip``, ``roll``, slicing ``x[…]`` (``GetItem``, e.g.
    ``x[:, 0]`` taking a class token; ``slice``), ``take``/``take_along_axis`` on a
    float array, ``split``/``array_split``/``unstack``, ``stack``/``concatenate``/
    ``hstack``/``vstack``, ``repeat``/``tile``/``broadcast_to``. Relevance moves with
    the values: re-indexing is exact, a copied value gets the sum of its copies'
    relevance, a value nobody selects gets none. Integer operands (indices) get none.
``cast`` between float types
    Relevance passes unchanged; the analyzer keeps computing in float32 (as for
    mixed precision). A cast of integers or booleans to float (a mask) starts a branch
    that carries no relevance back.
``negative`` (``-x``)
    Relevance passes unchanged: the one-input z-rule, ``(−x)/(−x) · R``.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras.src.ops import core as keras_core
from keras.src.ops import numpy as keras_numpy

from ..engine.domains import POSITIVE, REAL, Box, Domain
from ..engine.graph import Call, Graph, walk
from .base import (
    LayerRelevance,
    NoRelevance,
    Reindex,
    gradient_relevance,
    map_domains,
    refusal,
)
from .merge import MERGES

__all__ = ["LAYERS", "Cast", "Move", "TimeDistributed"]

Tensor = Any


class Move(Reindex):
    """An op that only moves, copies or selects values: ``R_in = ∇ₓ(op(x) · R)`` for
    its float inputs; integer inputs (indices) get no relevance."""

    def relevance(self, inputs, outputs, relevances, rule=None):
        floats = [i for i, k in enumerate(self.call.inputs) if self.graph.is_float(k)]

        def run(values):
            full = list(inputs)
            for i, v in zip(floats, values):
                full[i] = v
            return self.forward(full)

        moved = gradient_relevance(run, [inputs[i] for i in floats], relevances)
        result: list[Tensor | None] = [None for _ in inputs]
        for i, r in zip(floats, moved):
            result[i] = r
        return result

    def domains(self, domains):
        if len(domains) != len(self.call.inputs) or not all(
                self.graph.is_float(k) for k in self.call.inputs):
            floats = [d for d, k in zip(domains, self.call.inputs) if self.graph.is_float(k)]
            positive = floats and all(d is POSITIVE for d in floats)
            return [POSITIVE if positive else REAL for _ in self.call.outputs]
        return map_domains(self, domains)


class Cast(Move):
    """``keras.ops.cast``: float → float passes values (kept in float32) and relevance
    unchanged; a cast of integers/booleans to float starts a branch with no relevance."""

    def __init__(self, call: Call, graph: Graph, **options: Any) -> None:
        super().__init__(call, graph, **options)
        self.from_float = bool(call.inputs) and graph.is_float(call.inputs[0])

    def forward(self, inputs):
        if self.from_float:
            return [tf.cast(inputs[0], tf.float32)]
        return [tf.cast(super().forward(inputs)[0], tf.float32)]

    def relevance(self, inputs, outputs, relevances, rule=None):
        return [relevances[0] if self.from_float else None]

    def relevance_many(self, inputs, outputs, relevances, rule, copies):
        return self.relevance(inputs, outputs, relevances, rule)

    def domains(self, domains):
        return list(domains[:1]) if self.from_float else [REAL]


class TimeDistributed(LayerRelevance):
    """``TimeDistributed(layer)``: the inner layer's behaviour on ``[batch·time, …]``.

    The rule-taking attributes (``needs_rule``, ``fixed_rule``, ``dtd_rule``,
    ``mixes_inputs``, ``warning``, ``adapt_rule``, ``domains``) are the inner
    behaviour's, so the analyzer chooses the rule the inner layer would get."""

    def __init__(self, call: Call, graph: Graph, **options: Any) -> None:
        super().__init__(call, graph, **options)
        from .registry import LAYER_RELEVANCE, relevance_for

        inner_layer = call.operation.layer
        shape = graph.shapes[call.inputs[0]]
        self.steps = shape[1]
        if self.steps is None:
            raise refusal(f"layer {call.description} reads a sequence of unknown length "
                          f"(input shape {shape}); give the model a fixed sequence length")
        domain = self._inner_domain(options.get("domain", REAL), shape)
        fresh = keras.Input(batch_shape=(None, *shape[2:]),
                            dtype=graph.dtypes.get(call.inputs[0], "float32"))
        model = keras.Model(fresh, inner_layer(fresh), name=f"{inner_layer.name}_steps")
        inner_graph = walk(model)
        if len(inner_graph.calls) != 1:
            raise refusal(f"layer {call.description} wraps "
                          f"'{inner_layer.name}' ({type(inner_layer).__name__}), a composite "
                          "layer; TimeDistributed has a relevance rule for one layer inside")
        inner_call = inner_graph.calls[0]
        inner_call.name = f"{call.name}/{inner_layer.name}"
        if type(inner_layer) not in LAYER_RELEVANCE:
            raise refusal(
                f"layer {call.description} wraps '{inner_layer.name}' "
                f"({type(inner_layer).__name__}), which has no relevance rule",
                "Register one with dk.register_layer(LayerClass, relevance); see README, "
                "'Custom layers'")
        self.inner = relevance_for(inner_call, inner_graph, 0, **{**options, "domain": domain})
        for name in ("needs_rule", "fixed_rule", "dtd_rule", "keeps_input_space",
                     "warning", "mixes_inputs"):
            setattr(self, name, getattr(self.inner, name))

    def _inner_domain(self, domain: Domain, shape: tuple) -> Domain:
        """The domain one time step sees: a box with the same bounds at every step."""
        if not isinstance(domain, Box):
            return domain
        rank = len(shape) - 1
        low, high = domain.low, domain.high
        if max(low.ndim, high.ndim) < rank:
            return domain
        full = (self.steps, *shape[2:])
        low, high = np.broadcast_to(low, full), np.broadcast_to(high, full)
        if not (np.all(low == low[:1]) and np.all(high == high[:1])):
            raise refusal(f"layer {self.call.description} reads a box domain whose bounds "
                          "differ between time steps; its inner layer sees one step at a "
                          "time, so declare the same bounds for every step")
        return Box(low[0], high[0])

    def adapt_rule(self, rule):
        return self.inner.adapt_rule(rule)

    def _fold(self, x: Tensor) -> Tensor:
        return tf.reshape(x, tf.concat([[-1], tf.shape(x)[2:]], 0))

    def _unfold(self, x: Tensor) -> Tensor:
        return tf.reshape(x, tf.concat([[-1, self.steps], tf.shape(x)[1:]], 0))

    def forward(self, inputs):
        return self.forward_keeping(inputs)[0]

    def forward_keeping(self, inputs):
        outputs, kept = self.inner.forward_keeping([self._fold(x) for x in inputs])
        return [self._unfold(y) for y in outputs], kept

    def domains(self, domains):
        inner = [self._inner_domain(d, self.graph.shapes[k])
                 for d, k in zip(domains, self.call.inputs)]
        result = []
        for domain, key in zip(self.inner.domains(inner), self.call.outputs):
            if isinstance(domain, Box):  # the same bounds at every step
                shape = (self.steps, *self.graph.shapes[key][2:])
                domain = Box(np.broadcast_to(domain.low, shape),
                             np.broadcast_to(domain.high, shape))
            result.append(domain)
        return result

    def _folded(self, inputs, outputs, relevances):
        return ([self._fold(x) for x in inputs], [self._fold(y) for y in outputs],
                [self._fold(r) for r in relevances])

    def _fold_rule(self, rule):
        low = getattr(rule, "low", None)
        if low is None or type(rule).__name__ != "ZBox":
            return rule
        rank = len(self.graph.shapes[self.call.inputs[0]]) - 1
        if max(np.ndim(rule.low), np.ndim(rule.high)) < rank:
            return rule
        box = self._inner_domain(Box(rule.low, rule.high), self.graph.shapes[self.call.inputs[0]])
        return type(rule)(box.low, box.high)

    def relevance(self, inputs, outputs, relevances, rule=None, **kept):
        lower = self.inner.relevance(*self._folded(inputs, outputs, relevances),
                                     self._fold_rule(rule), **kept)
        return [None if r is None else self._unfold(r) for r in lower]

    def relevance_many(self, inputs, outputs, relevances, rule, copies, **kept):
        # copy-major [K·batch, time, …] folds to copy-major [K·batch·time, …]
        lower = self.inner.relevance_many(*self._folded(inputs, outputs, relevances),
                                          self._fold_rule(rule), copies, **kept)
        return [None if r is None else self._unfold(r) for r in lower]


def _negative(call: Call, graph: Graph, **options: Any) -> LayerRelevance:
    return LayerRelevance(call, graph, **options)


MOVES = ("Transpose", "Reshape", "ExpandDims", "Squeeze", "Moveaxis", "Swapaxes", "Ravel",
         "Flip", "Roll", "GetItem", "Take", "TakeAlongAxis", "Split", "ArraySplit", "Stack",
         "Concatenate", "Hstack", "Vstack", "Repeat", "Tile", "BroadcastTo", "Where")
CONSTANTS = ("ZerosLike", "OnesLike", "FullLike")
"""Operations whose output depends on their input's shape only: no relevance passes."""

LAYERS: dict[type, Any] = {keras.layers.TimeDistributed: TimeDistributed, **MERGES}
"""Layer/operation class → relevance behaviour, merged into the registry's table
(the merges Maximum, Minimum, Average, Subtract come from :mod:`.merge`)."""
for _name in MOVES:
    if hasattr(keras_numpy, _name):
        LAYERS[getattr(keras_numpy, _name)] = Move
for _name in CONSTANTS:
    if hasattr(keras_numpy, _name):
        LAYERS[getattr(keras_numpy, _name)] = NoRelevance
for _name in ("Slice", "Unstack"):
    if hasattr(keras_core, _name):
        LAYERS[getattr(keras_core, _name)] = Move
if hasattr(keras_core, "Cast"):
    LAYERS[keras_core.Cast] = Cast
if hasattr(keras_numpy, "Negative"):
    LAYERS[keras_numpy.Negative] = _negative
