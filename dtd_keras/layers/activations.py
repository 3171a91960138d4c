"""Activations and elementwise maps: relevance passes through them unchanged.

A ReLU is exact for DTD (its output domain is ℝ₊). Other activations (relu6,
LeakyReLU, PReLU, swish/silu, gelu, keras-hub's ``gelu_approximate``, sigmoid, tanh, …,
as layers, fused into Dense/Conv/EinsumDense, or as ``keras.ops`` calls) also pass
relevance unchanged, but DTD's assumptions do not hold there, so the analyzer warns once
listing them. Under the attention analyzers (option ``attention`` set: AttnLRP, CP-LRP)
this *is* the rule, AttnLRP's identity rule for elementwise non-linearities
(Achtibat et al. 2024, section 3), and nothing is warned.
Preprocessing layers (Rescaling, Normalization) are elementwise affine maps: relevance
of each output value is the relevance of its input value, and a box domain declared in
raw input space is mapped through them, so zᴮ sees the bounds the first layer sees.
"""

from __future__ import annotations

from typing import Any

from ..engine.domains import POSITIVE, REAL, Domain
from ..engine.graph import Call, Graph
from .base import Identity, LayerRelevance, map_domains, refusal

__all__ = ["ActivationPass", "Elementwise", "activation_name", "activation_relevance"]

HEAD_ACTIVATIONS = ("softmax", "sigmoid")
"""Stripped when they produce the explained output: we explain the logit below."""

NONNEGATIVE = ("relu", "relu6", "thresholded_relu", "sigmoid", "hard_sigmoid", "softplus",
               "sparse_plus", "sparse_sigmoid", "squareplus")
PASS_THROUGH = ("relu6", "leaky_relu", "silu", "swish", "gelu", "gelu_approximate", "sigmoid",
                "hard_sigmoid", "hard_silu", "hard_swish", "elu", "selu", "celu", "softplus",
                "tanh", "hard_tanh", "tanh_shrink", "mish", "log_sigmoid", "sparse_plus",
                "sparse_sigmoid", "squareplus")
"""Elementwise activations through which relevance passes unchanged (``gelu_approximate``
is keras-hub's name for ``gelu(x, approximate=True)``, e.g. in BERT's feed-forward)."""


def activation_name(fn: Any) -> str | None:
    """The name of a Keras activation function (``"linear"`` for none)."""
    if fn is None:
        return "linear"
    return getattr(fn, "__name__", None)


class ActivationPass(LayerRelevance):
    """An activation: relevance unchanged; output domain ℝ₊ for non-negative ones."""

    def __init__(self, call: Call, graph: Graph, name: str = "relu", **options: Any) -> None:
        super().__init__(call, graph, **options)
        self.name = name
        self.plain_relu = name == "relu"  # output = max(input, 0), recomputable
        if name != "relu" and not options.get("attention"):
            self.warning = f"{call.name} ({name})"

    def domains(self, domains):
        return [POSITIVE if self.name in NONNEGATIVE else REAL]


def check_activation(call: Call, name: str | None, allowed: tuple[str, ...] = ()) -> None:
    """Raise :class:`UnsupportedLayerError` for an activation with no pass-through rule."""
    if name in ("relu", "linear", *PASS_THROUGH, *allowed):
        return
    raise refusal(
        f"layer {call.description} applies activation {name!r}, which has no relevance rule",
        f"Supported activations: relu, linear, {', '.join(PASS_THROUGH)}; softmax/sigmoid on "
        "the explained output. Register one with dk.register_layer")


def activation_relevance(call: Call, graph: Graph, **options: Any) -> LayerRelevance:
    """``Activation(...)`` layers."""
    name = activation_name(call.operation.activation)
    check_activation(call, name)
    if name == "linear":
        return Identity(call, graph, **options)
    return ActivationPass(call, graph, name=name, **options)


def relu_relevance(call: Call, graph: Graph, **options: Any) -> LayerRelevance:
    """``ReLU(max_value, negative_slope, threshold)``: plain ReLU or a relu6/leaky variant."""
    layer = call.operation
    if float(layer.negative_slope) != 0:
        name = "leaky_relu"
    elif layer.max_value is not None:
        name = "relu6"
    elif float(layer.threshold) != 0:
        name = "thresholded_relu"
    else:
        name = "relu"
    return ActivationPass(call, graph, name=name, **options)


def leaky_relu_relevance(call: Call, graph: Graph, **options: Any) -> LayerRelevance:
    return ActivationPass(call, graph, name="leaky_relu", **options)


class Elementwise(LayerRelevance):
    """Elementwise monotone maps (Rescaling, Normalization): relevance unchanged, box
    bounds mapped through the layer."""

    keeps_input_space = True

    def domains(self, domains: list[Domain]) -> list[Domain]:
        return map_domains(self, domains) if domains[0] is not POSITIVE else [REAL]
