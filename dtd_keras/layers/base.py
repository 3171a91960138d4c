"""Base behaviours: how values go forward and relevance goes back through one call.

- :class:`LayerRelevance`: forward through the Keras op; relevance passes unchanged.
- :class:`Identity`: inference-time identities (Dropout & co.).
- :class:`NoRelevance`: calls computing integers or booleans (ids, masks): no relevance.
- :class:`Reindex`: ops that only move, copy or select values (Flatten, Reshape,
  padding, cropping, Permute, RepeatVector, nearest UpSampling, Concatenate, max
  pooling as winner-take-all). Relevance moves like the gradient,
  ``R_in = ∇ₓ(op(x) · R)``: exact re-indexing; copies sum their relevance back; a max
  pool's window gives all its relevance to its maximum (ties: to the one input
  TensorFlow's max-pool gradient picks).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ..engine.domains import POSITIVE, REAL, Box, Domain
from ..engine.graph import Call, Graph
from ..engine.propagation import tile
from ..errors import UnsupportedLayerError
from ..rules import Rule

__all__ = ["Identity", "LayerRelevance", "NoRelevance", "Reindex", "refusal"]

LOW_PRECISION = ("float16", "bfloat16")
"""Compute dtypes of mixed-precision layers; the analyzer computes in float32 instead."""

Tensor = Any


class LayerRelevance:
    """Base behaviour: forward through the Keras op, relevance unchanged.

    ``needs_rule`` marks layers that take a :class:`~dtd_keras.rules.Rule`;
    ``fixed_rule`` is the rule such a layer uses whatever the analyzer (overridable by
    ``layer_rules``) and ``dtd_rule`` the one :class:`~dtd_keras.DTD` uses whatever the
    input domain (both None: the analyzer chooses); ``keeps_input_space`` marks layers
    whose output still counts as "the input" for an analyzer's ``input_rule``;
    ``warning`` is a note the analyzer shows once (e.g. a non-ReLU activation);
    ``mixes_inputs`` marks rule-taking layers whose outputs sum several inputs with
    learned weights (Dense, Conv): where such a layer reads real-valued hidden values,
    :class:`~dtd_keras.DTD` gives it its ``hidden_real_rule`` instead of the
    input-independent w².
    """

    needs_rule = False
    fixed_rule: Rule | None = None
    dtd_rule: Rule | None = None
    keeps_input_space = False
    warning: str | None = None
    mixes_inputs = False

    def __init__(self, call: Call, graph: Graph, **options: Any) -> None:
        self.call = call
        self.layer = call.operation
        self.graph = graph
        self.options = options

    def adapt_rule(self, rule: Rule) -> Rule:
        """The rule this layer uses when an LRP analyzer assigns it ``rule``."""
        return rule

    def check_rule(self, rule: Rule | None) -> None:
        """Raise :class:`UnsupportedLayerError` (see :func:`refusal`) where this layer
        cannot apply ``rule``, the rule the analyzer chose for it (default: any rule)."""

    def absorbs(self, rule: Rule | None) -> bool:
        """Whether relevance is absorbed here under ``rule`` (a bias or ε in the rule's
        denominator, LayerNorm's β, a softmax's Taylor bias), so that the map does not
        sum to the explained logit by design: :class:`~dtd_keras.Explanation` reports
        these calls as ``absorbed_by``. Default: nothing is absorbed."""
        return False

    def forward(self, inputs: Sequence[Tensor]) -> list[Tensor]:
        """Run the op on concrete inputs (inference mode)."""
        args, kwargs = self.call.arguments(inputs)
        if getattr(self.layer, "_call_has_training_arg", False):
            kwargs = {**kwargs, "training": False}
        if getattr(self.layer, "compute_dtype", "float32") in LOW_PRECISION:
            # mixed precision: Keras would cast the inputs down; relevance is float32, so
            # the layer's own computation runs on them as they are (its weights stay float32)
            return list(keras.tree.flatten(self.layer.call(*args, **kwargs)))
        return list(keras.tree.flatten(self.layer(*args, **kwargs)))

    def forward_keeping(self, inputs: Sequence[Tensor]) -> tuple[list[Tensor], Any]:
        """:meth:`forward`, and what the relevance pass may reuse (given back to
        :meth:`relevance` as ``kept``; default: nothing)."""
        return self.forward(inputs), None

    def domains(self, domains: Sequence[Domain]) -> list[Domain]:
        """Output domains from input domains (default: ℝ)."""
        return [REAL for _ in self.call.outputs]

    def relevance(self, inputs: Sequence[Tensor], outputs: Sequence[Tensor],
                  relevances: Sequence[Tensor], rule: Rule | None = None) -> list[Tensor]:
        """Relevance of each input from the relevance of each output."""
        return list(relevances)

    def relevance_many(self, inputs: Sequence[Tensor], outputs: Sequence[Tensor],
                       relevances: Sequence[Tensor], rule: Rule | None,
                       copies: Tensor) -> list[Tensor]:
        """:meth:`relevance` for ``copies`` relevance sets of the same samples, stacked
        along the batch axis (copy-major). Default: tile the values (TensorFlow drops
        the copies where :meth:`relevance` does not read them); a tensor whose first axis
        is not the batch but a broadcast 1 (a causal mask) stays as it is."""
        batch = self.graph.shapes[self.graph.inputs[0]][:1] if self.graph.inputs else (None,)

        def copied(keys: Sequence[int], values: Sequence[Tensor]) -> list[Tensor]:
            return [v if batch != (1,) and self.graph.shapes.get(k, (None,))[:1] == (1,)
                    else tile(v, copies) for k, v in zip(keys, values)]

        return self.relevance(copied(self.call.inputs, inputs),
                              copied(self.call.outputs, outputs), relevances, rule)


def refusal(problem: str, advice: str = "") -> UnsupportedLayerError:
    """The :class:`~dtd_keras.errors.UnsupportedLayerError` for one call: ``problem``
    names the layer and what it lacks, ``advice`` says what to do. An analyzer that
    finds several gaps lists every problem in one error, with each advice once."""
    error = UnsupportedLayerError(f"{problem}. {advice}" if advice else problem)
    error.problem, error.advice = problem, advice
    return error


class Identity(LayerRelevance):
    """Inference-time identities (Dropout, noise, linear activation): nothing changes."""

    keeps_input_space = True

    def forward(self, inputs: Sequence[Tensor]) -> list[Tensor]:
        return list(inputs)

    def domains(self, domains: Sequence[Domain]) -> list[Domain]:
        return list(domains)


class NoRelevance(LayerRelevance):
    """A call computing integers or booleans (position ids, masks, comparisons): it runs
    forward, and no relevance flows through it (``None`` for every input: integer
    branches carry no relevance)."""

    def relevance(self, inputs, outputs, relevances, rule=None):
        return [None for _ in inputs]

    def relevance_many(self, inputs, outputs, relevances, rule, copies):
        return [None for _ in inputs]


def gradient_relevance(forward: Any, inputs: Sequence[Tensor],
                       relevances: Sequence[Tensor]) -> list[Tensor]:
    """``R_in = ∇ₓ(forward(x) · R)`` for every input (zeros where unconnected)."""
    inputs = [tf.identity(x) for x in inputs]
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        out = forward(inputs)
    grads = tape.gradient(out, inputs, output_gradients=list(relevances))
    return [tf.zeros_like(x) if g is None else g for x, g in zip(inputs, grads)]


class Reindex(LayerRelevance):
    """Ops that move values around: ``R_in = ∇(op · R)``; box bounds move with the values."""

    keeps_input_space = True

    def relevance(self, inputs, outputs, relevances, rule=None):
        return gradient_relevance(self.forward, inputs, relevances)

    def domains(self, domains: Sequence[Domain]) -> list[Domain]:
        return map_domains(self, domains)


def map_domains(step: LayerRelevance, domains: Sequence[Domain]) -> list[Domain]:
    """Domains after an op that moves or selects values: ℝ₊ stays ℝ₊, boxes are mapped
    by running the op on their bounds (for elementwise monotone maps, min/max of both)."""
    if all(d is POSITIVE for d in domains):
        return [POSITIVE for _ in step.call.outputs]
    if not all(isinstance(d, Box) for d in domains):
        return [REAL for _ in step.call.outputs]
    shapes = [step.graph.shapes.get(k, (None,))[1:] for k in step.call.inputs]
    if any(d is None for shape in shapes for d in shape):
        return [REAL for _ in step.call.outputs]

    def run(bounds: list[np.ndarray]) -> list[np.ndarray]:
        tensors = [tf.constant(np.broadcast_to(b, (1, *s)).astype(np.float32))
                   for b, s in zip(bounds, shapes)]
        return [np.asarray(t)[0] for t in step.forward(tensors)]

    lows = run([d.low for d in domains])
    highs = run([d.high for d in domains])
    return [Box(np.minimum(lo, hi), np.maximum(lo, hi)) for lo, hi in zip(lows, highs)]
