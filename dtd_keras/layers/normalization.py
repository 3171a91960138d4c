r"""LayerNormalization and RMSNormalization: AttnLRP's identity rule for norms.

A normalisation layer computes, per sample and over its ``axis``,

.. math::

    y = (x - \mu(x)) \cdot \frac{γ}{σ(x)} + β, \qquad σ(x) = \sqrt{v(x) + ε}

with ``v`` the variance (``LayerNormalization``), the variance with no centring
(``LayerNormalization(rms_scaling=True)``: ``y = x · γ/σ``) or the mean square
(``RMSNormalization``, ``keras.ops.rms_normalization``: ``y = x · γ/σ``). AttnLRP
(Achtibat et al. 2024, section 3; CP-LRP, Ali et al. 2022, does the same) holds the scale
``1/σ(x)`` constant: it is computed from the input and gets no gradient, while the
centring ``x − μ(x)`` keeps its gradient. The map is then linear in ``x``, with the
kernel ``(δ_ij − 1/n) γ_j/σ`` (``δ_ij γ_j/σ`` without centring) and the bias β, and
relevance crosses it with the ε-rule, ε = 1e-6 (LRP-0 within 1e-3):

.. math::

    R_i = x_i \sum_j \frac{(δ_{ij} - \tfrac1n)\, γ_j / σ}{y_j ± ε} R_j,

evaluated by :func:`~dtd_keras.engine.propagation.propagate` (the gradient trick) on the
linear map with ``σ`` frozen. β absorbs its share ``β_j / y_j`` of each ``R_j``
(:meth:`FrozenScaleNorm.absorbs`); with β = 0 the layer conserves.

DTD uses the same rule: the seed's deep Taylor decomposition covers ReLU layers, not
normalisation, and the identity rule is the first-order Taylor expansion of the layer
with its scale held constant; β keeps its share there too (the analyzer then reports
the layer in ``absorbed_by``). A ``layer_rules`` entry may set another ε, or
:class:`~dtd_keras.rules.Z` (β left out: conservative); other rules are refused, since
their weight maps (``w⁺``, ``w²``, …) would see only ``γ``, not the centred map.

The ``keras.ops`` operations (``LayerNorm``, ``RMSNorm``) get the same rule where the
analyzer sees them (inside a composite layer), with ``γ``/``β`` read from the call's
arguments. A norm whose ``γ``/``β`` are computed by the model (tensors, not weights), or
that normalises over the batch axis, is refused.

``EinsumDense`` (:class:`~dtd_keras.layers.linear.EinsumDenseLinear`, every linear rule)
is registered here with the other layers of transformer blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import tensorflow as tf
from keras.src.ops import nn as keras_nn

from ..engine.graph import Call, Graph
from ..engine.propagation import propagate, tile
from ..rules import Epsilon, Rule, Z
from .base import LayerRelevance, refusal
from .linear import EinsumDenseLinear

__all__ = ["LAYERS", "NORM_RULE", "FrozenScaleNorm", "NormSpec"]

Tensor = Any

NORM_RULE = Epsilon(1e-6)
"""The rule of every normalisation layer, under every analyzer (``layer_rules`` may set
another :class:`~dtd_keras.rules.Epsilon` or :class:`~dtd_keras.rules.Z`)."""

STATISTICS = ("variance", "centred_variance", "mean_square")
"""How σ² is computed: Keras' moments (LayerNormalization), ``var`` with no centring
of the output (``rms_scaling=True``), ``mean(x²)`` (RMSNormalization)."""


@dataclass(frozen=True)
class NormSpec:
    """One normalisation call: ``y = (center ? x − μ : x) · γ / √(stat(x) + ε) + β``.

    ``axes``: the normalised axes (non-negative); ``gamma``/``beta``: live variables or
    None; ``reshape``: whether γ/β are reshaped to broadcast over ``axes`` (Keras'
    LayerNormalization does; RMSNormalization multiplies by its scale as it is).
    """

    axes: tuple[int, ...]
    center: bool
    statistic: str
    epsilon: float
    gamma: Any = None
    beta: Any = None
    reshape: bool = True


def _axes(axis: Any, rank: int, call: Call) -> tuple[int, ...]:
    listed = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    axes = sorted({int(a) % rank for a in listed})
    if not axes or any(not -rank <= int(a) < rank for a in listed):
        raise refusal(f"layer {call.description} normalises over axis {axis!r}, which a "
                      f"rank-{rank} input does not have")
    if 0 in axes:
        raise refusal(
            f"layer {call.description} normalises over the batch axis (axis={axis!r}, input "
            f"rank {rank}), so each sample's output depends on the others; explain a model "
            "that normalises per sample")
    return tuple(axes)


class FrozenScaleNorm(LayerRelevance):
    """A normalisation call with its scale held constant: the ε-rule on the linear map
    ``(x − μ(x)) · γ/σ + β`` (see the module docstring). Subclasses say how to read the
    call (:meth:`spec`)."""

    needs_rule = True
    fixed_rule: Rule | None = NORM_RULE
    dtd_rule: Rule | None = NORM_RULE
    mixes_inputs = True

    def __init__(self, call: Call, graph: Graph, **options: Any) -> None:
        super().__init__(call, graph, **options)
        if len(call.inputs) != 1:
            raise refusal(
                f"layer {call.description} takes its scale or offset as a tensor computed by "
                f"the model ({len(call.inputs)} tensor inputs), not as weights; only the "
                "normalised input can receive relevance")
        self.rank = len(graph.shapes[call.inputs[0]])
        self.norm = self.spec()
        if self.norm.statistic not in STATISTICS:
            raise ValueError(f"statistic must be one of {STATISTICS}, got "
                             f"{self.norm.statistic!r}")

    def spec(self) -> NormSpec:
        """What this call computes (read from the layer or the operation's arguments)."""
        raise NotImplementedError

    # -- the rule ------------------------------------------------------------------
    def check_rule(self, rule: Rule | None) -> None:
        if rule is None or isinstance(rule, (Epsilon, Z)):
            return
        raise refusal(
            f"layer {self.call.description} got rule {rule!r}; a normalisation layer takes "
            "the identity rule as the ε-rule (dk.rules.Epsilon) or, β left out, dk.rules.Z: "
            "other rules' weight maps would see only γ, not the centred map",
            "Remove its entry from layer_rules, or give it dk.rules.Epsilon(...)")

    def absorbs(self, rule: Rule | None) -> bool:
        if isinstance(rule, Z):
            return False
        return self.norm.beta is not None or getattr(rule, "epsilon", 0) > 0

    # -- the map -------------------------------------------------------------------
    def _broadcast(self, v: Any) -> Tensor | None:
        if v is None:
            return None
        v = tf.cast(tf.convert_to_tensor(v), tf.float32)
        if not self.norm.reshape:
            return v
        shape = [1] * self.rank
        for axis, size in zip(self.norm.axes, v.shape):
            shape[axis] = size
        return tf.reshape(v, shape)

    def inverse_scale(self, x: Tensor) -> Tensor:
        """``1/σ(x)`` per sample (kept dims), as Keras computes it, with no gradient."""
        axes = list(self.norm.axes)
        if self.norm.statistic == "variance":
            _, v = keras.ops.moments(x, axes=axes, keepdims=True)
        elif self.norm.statistic == "centred_variance":
            v = keras.ops.var(x, axis=axes, keepdims=True)
        else:
            v = keras.ops.mean(keras.ops.square(x), axis=axes, keepdims=True)
        return tf.stop_gradient(tf.math.rsqrt(v + self.norm.epsilon))

    def frozen_map(self, x: Tensor):
        """The linear map ``f(a, γ, β) = (a − μ(a)) · γ/σ(x) + β`` with ``σ`` from ``x``
        (tiled where ``a`` stacks several copies of the batch)."""
        scale = self.inverse_scale(x)
        axes = list(self.norm.axes)

        def linear(a: Tensor, kernel: Tensor, bias: Tensor | None) -> Tensor:
            s = scale
            if a.shape[0] is None or a.shape[0] != scale.shape[0]:
                s = tile(scale, tf.shape(a)[0] // tf.shape(scale)[0])
            if self.norm.center:
                a = a - tf.reduce_mean(a, axis=axes, keepdims=True)
            z = a * s * kernel
            return z if bias is None else z + bias

        return linear

    def forward_keeping(self, inputs):
        outputs = [tf.cast(y, tf.float32) for y in self.forward(inputs)]
        return outputs, outputs[0]  # the output is the pre-activation: ε's denominator

    def relevance(self, inputs, outputs, relevances, rule=None, kept=None):
        return self.relevance_many(inputs, outputs, relevances, rule, None, kept)

    def relevance_many(self, inputs, outputs, relevances, rule, copies, kept=None):
        x = tf.cast(inputs[0], tf.float32)
        gamma = self._broadcast(self.norm.gamma)
        kernel = tf.constant(1.0) if gamma is None else gamma
        bias = self._broadcast(self.norm.beta) if self.norm.center else None
        return [propagate(rule if rule is not None else NORM_RULE, self.frozen_map(x),
                          kernel, bias, x, relevances[0], copies=copies,
                          preactivation=kept)]


class LayerNormRelevance(FrozenScaleNorm):
    """``keras.layers.LayerNormalization`` (any axis, center/scale on or off,
    ``rms_scaling``)."""

    def spec(self):
        layer = self.layer
        rms = bool(getattr(layer, "rms_scaling", False))
        return NormSpec(_axes(layer.axis, self.rank, self.call), center=not rms,
                        statistic="centred_variance" if rms else "variance",
                        epsilon=float(layer.epsilon), gamma=layer.gamma,
                        beta=None if rms else layer.beta)


class RMSNormRelevance(FrozenScaleNorm):
    """``keras.layers.RMSNormalization``: ``y = x · scale / √(mean(x²) + ε)``."""

    def spec(self):
        layer = self.layer
        return NormSpec(_axes(layer.axis, self.rank, self.call), center=False,
                        statistic="mean_square", epsilon=float(layer.epsilon),
                        gamma=layer.scale, reshape=False)


def _argument(call: Call, index: int, name: str) -> Any:
    """Argument ``name`` (or the ``index``-th positional one) of an operation's call."""
    arguments = call.node.arguments
    if name in arguments.kwargs:
        return arguments.kwargs[name]
    return arguments.args[index] if len(arguments.args) > index else None


def _epsilon(op: Any) -> float:
    return float(keras.config.epsilon() if op.epsilon is None else op.epsilon)


class LayerNormOpRelevance(FrozenScaleNorm):
    """``keras.ops.layer_normalization(x, gamma, beta, axis, epsilon)``."""

    def spec(self):
        op = self.layer
        rms = bool(op.rms_scaling)
        return NormSpec(_axes(op.axis, self.rank, self.call), center=not rms,
                        statistic="centred_variance" if rms else "variance",
                        epsilon=_epsilon(op), gamma=_argument(self.call, 1, "gamma"),
                        beta=None if rms else _argument(self.call, 2, "beta"))


class RMSNormOpRelevance(FrozenScaleNorm):
    """``keras.ops.rms_normalization(x, scale, axis, epsilon)``."""

    def spec(self):
        op = self.layer
        return NormSpec(_axes(op.axis, self.rank, self.call), center=False,
                        statistic="mean_square", epsilon=_epsilon(op),
                        gamma=_argument(self.call, 1, "scale"), reshape=False)


LAYERS: dict[type, Any] = {
    keras.layers.LayerNormalization: LayerNormRelevance,
    keras.layers.EinsumDense: EinsumDenseLinear,
    keras_nn.LayerNorm: LayerNormOpRelevance,
}
"""Layer/operation class → relevance behaviour, merged into the registry's table."""
if hasattr(keras.layers, "RMSNormalization"):
    LAYERS[keras.layers.RMSNormalization] = RMSNormRelevance
if hasattr(keras_nn, "RMSNorm"):
    LAYERS[keras_nn.RMSNorm] = RMSNormOpRelevance
