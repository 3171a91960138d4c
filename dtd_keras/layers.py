"""Per-layer relevance: how values go forward and relevance goes back through one call.

Four behaviours cover the layers of a ReLU network; each layer class maps to one of
them in a type → behaviour table (:data:`LAYER_RELEVANCE`):

- :class:`Linear` (Dense, Conv1D/2D/3D): the layer's linear map ``f(x; W) + b`` is
  handed to the layer's rule (:mod:`dtd_keras.rules`), which never needs to know the
  layer type.
- :class:`Reindex` (Flatten, Reshape, winner-take-all max pooling): relevance moves
  like the gradient, ``R_in = ∇ₓ(op(x) · R)``: exact re-indexing, and for max pooling
  all of a window's relevance to its maximum (ties: to the one input TensorFlow's
  max-pool gradient picks, the first maximum in the window).
- :class:`ProportionalPool` (max pooling with ``max_pool="proportional"``): relevance
  split in proportion to the inputs of each window (the z-rule on the window sums).
- :class:`Identity` and :class:`Rectifier` (Dropout & co., ReLU): relevance passes
  unchanged; a ReLU makes its output's domain ℝ₊.

Custom layers join with :func:`register_layer`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from .domains import POSITIVE, REAL, Box, Domain
from .errors import UnsupportedLayerError
from .graph import Call, Graph
from .rules import Rule, Z, propagate

__all__ = ["LAYER_RELEVANCE", "LayerRelevance", "register_layer", "relevance_for"]

Tensor = Any
HEAD_ACTIVATIONS = ("softmax", "sigmoid")


def activation_name(fn: Any) -> str | None:
    """The name of a Keras activation function (``None`` for no activation)."""
    if fn is None:
        return "linear"
    return getattr(fn, "__name__", None)


class LayerRelevance:
    """Base behaviour: forward through the Keras op, relevance unchanged.

    Subclasses override :meth:`relevance` and, where the op changes the domain,
    :meth:`domains`. ``needs_rule`` marks layers that take a :class:`~dtd_keras.rules.Rule`;
    ``keeps_input_space`` marks layers whose output is still "the input" for the
    purpose of an analyzer's ``input_rule`` (reshapes, pooling, dropout).
    """

    needs_rule = False
    keeps_input_space = False

    def __init__(self, call: Call, graph: Graph, **options: Any) -> None:
        self.call = call
        self.layer = call.operation
        self.graph = graph
        self.options = options

    def forward(self, inputs: Sequence[Tensor]) -> list[Tensor]:
        """Run the op on concrete inputs (inference mode)."""
        node = self.call.node
        local = {id(t): v for t, v in zip(node.input_tensors, inputs)}
        args, kwargs = node.arguments.fill_in(local)
        if getattr(self.layer, "_call_has_training_arg", False):
            kwargs = {**kwargs, "training": False}
        return list(keras.tree.flatten(self.layer(*args, **kwargs)))

    def domains(self, domains: Sequence[Domain]) -> list[Domain]:
        """Output domains from input domains (default: ℝ)."""
        return [REAL for _ in self.call.outputs]

    def relevance(self, inputs: Sequence[Tensor], outputs: Sequence[Tensor],
                  relevances: Sequence[Tensor], rule: Rule | None = None) -> list[Tensor]:
        """Relevance of each input from the relevance of each output."""
        return list(relevances)


class Identity(LayerRelevance):
    """Inference-time identities (Dropout, noise, linear activation): nothing changes."""

    keeps_input_space = True

    def forward(self, inputs: Sequence[Tensor]) -> list[Tensor]:
        return list(inputs)

    def domains(self, domains: Sequence[Domain]) -> list[Domain]:
        return list(domains)


class Rectifier(LayerRelevance):
    """ReLU: relevance passes unchanged; the output lies in ℝ₊."""

    def domains(self, domains: Sequence[Domain]) -> list[Domain]:
        return [POSITIVE]


class Reindex(LayerRelevance):
    """Ops that move values around (reshape, flatten, max-pool winner): ``R_in = ∇(op·R)``."""

    keeps_input_space = True

    def relevance(self, inputs, outputs, relevances, rule=None):
        inputs = [tf.identity(x) for x in inputs]
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            out = self.forward(inputs)
        grads = tape.gradient(out, inputs, output_gradients=list(relevances))
        return [tf.zeros_like(x) if g is None else g for x, g in zip(inputs, grads)]

    def domains(self, domains: Sequence[Domain]) -> list[Domain]:
        (domain,) = domains
        if not isinstance(domain, Box):
            return [domain]
        shape = self.graph.shapes.get(self.call.inputs[0], (None,))[1:]
        if any(d is None for d in shape):
            if domain.low.ndim == 0 and domain.high.ndim == 0:
                return [domain]
            return [REAL]
        low, high = (self.forward([tf.constant(np.broadcast_to(b, (1, *shape)))])[0][0]
                     for b in (domain.low, domain.high))
        return [Box(np.asarray(low), np.asarray(high))]


class ProportionalPool(Reindex):
    """Max pooling, relevance split in proportion to each window's inputs."""

    def relevance(self, inputs, outputs, relevances, rule=None):
        layer = self.layer

        def window_mean(a, kernel, bias):
            return keras.ops.average_pool(a, layer.pool_size, layer.strides, layer.padding,
                                          layer.data_format)

        return [propagate(Z(), window_mean, None, None, inputs[0], relevances[0])]


class Linear(LayerRelevance):
    """A layer computing ``activation(f(x; W) + b)``; its rule does the relevance."""

    needs_rule = True

    def __init__(self, call: Call, graph: Graph, **options: Any) -> None:
        super().__init__(call, graph, **options)
        self.head = bool(options.get("head", False))
        name = activation_name(getattr(self.layer, "activation", None))
        allowed = ("relu", "linear") + (HEAD_ACTIVATIONS if self.head else ())
        if name not in allowed:
            raise UnsupportedLayerError(
                f"layer {call.description} has activation {name!r}; DTD/LRP here support "
                f"relu or linear activations (softmax/sigmoid only on the explained output). "
                "Split it into a linear layer and an activation layer, or register a rule "
                "with dk.register_layer"
            )
        if getattr(self.layer, "quantization_mode", None):
            raise UnsupportedLayerError(
                f"layer {call.description} is quantized ({self.layer.quantization_mode}); "
                "explain the float model"
            )
        self.rectified = name == "relu"

    def linear(self, a: Tensor, kernel: Tensor, bias: Tensor | None) -> Tensor:
        """``f(a; kernel) + bias``: the layer's linear map with any weights."""
        raise NotImplementedError

    def weights(self) -> tuple[Tensor, Tensor | None]:
        """The live (kernel, bias) variables."""
        bias = self.layer.bias if getattr(self.layer, "use_bias", True) else None
        return self.layer.kernel, bias

    def forward(self, inputs):
        kernel, bias = self.weights()
        z = self.linear(inputs[0], kernel, bias)
        if self.rectified:
            return [tf.nn.relu(z)]
        return [z]  # linear, or the head whose softmax/sigmoid is stripped

    def domains(self, domains):
        return [POSITIVE if self.rectified else REAL]

    def relevance(self, inputs, outputs, relevances, rule=None):
        kernel, bias = self.weights()
        domain = self.options.get("domain")
        return [propagate(rule, self.linear, kernel, bias, inputs[0], relevances[0], domain)]


class DenseLinear(Linear):
    """Dense: ``a @ W + b`` over the last axis."""

    def linear(self, a, kernel, bias):
        z = keras.ops.matmul(a, kernel)
        return z if bias is None else z + bias


class ConvLinear(Linear):
    """Conv1D/2D/3D, any strides, padding (incl. causal), dilation, groups, data format."""

    def linear(self, a, kernel, bias):
        layer = self.layer
        if layer.padding == "causal":
            a = keras.ops.pad(a, layer._compute_causal_padding())
            z = keras.ops.conv(a, kernel, strides=list(layer.strides), padding="valid",
                               dilation_rate=layer.dilation_rate, data_format=layer.data_format)
        else:
            z = layer.convolution_op(a, kernel)
        if bias is None:
            return z
        if layer.data_format == "channels_last":
            shape = (1,) * (layer.rank + 1) + (-1,)
        else:
            shape = (1, -1) + (1,) * layer.rank
        return z + keras.ops.reshape(bias, shape)


Factory = Callable[..., LayerRelevance]


def _relu_layer(call: Call, graph: Graph, **options: Any) -> LayerRelevance:
    layer = call.operation
    plain = (layer.max_value is None and float(layer.negative_slope) == 0.0
             and float(layer.threshold) == 0.0)
    if not plain:
        raise UnsupportedLayerError(
            f"layer {call.description} is not a plain ReLU (max_value={layer.max_value}, "
            f"negative_slope={layer.negative_slope}, threshold={layer.threshold}); "
            "register a rule with dk.register_layer"
        )
    return Rectifier(call, graph, **options)


def _activation_layer(call: Call, graph: Graph, **options: Any) -> LayerRelevance:
    name = activation_name(call.operation.activation)
    if name == "relu":
        return Rectifier(call, graph, **options)
    if name == "linear":
        return Identity(call, graph, **options)
    raise UnsupportedLayerError(
        f"layer {call.description} applies activation {name!r}; only relu and linear "
        "(and softmax/sigmoid on the explained output) are supported. Register a rule "
        "with dk.register_layer"
    )


def _max_pool(call: Call, graph: Graph, **options: Any) -> LayerRelevance:
    mode = options.get("max_pool", "winner")
    return (ProportionalPool if mode == "proportional" else Reindex)(call, graph, **options)


L = keras.layers
LAYER_RELEVANCE: dict[type, Factory] = {
    L.Dense: DenseLinear,
    L.Conv1D: ConvLinear,
    L.Conv2D: ConvLinear,
    L.Conv3D: ConvLinear,
    L.ReLU: _relu_layer,
    L.Activation: _activation_layer,
    L.Flatten: Reindex,
    L.Reshape: Reindex,
    L.MaxPooling1D: _max_pool,
    L.MaxPooling2D: _max_pool,
    L.MaxPooling3D: _max_pool,
    L.Dropout: Identity,
    L.SpatialDropout1D: Identity,
    L.SpatialDropout2D: Identity,
    L.SpatialDropout3D: Identity,
    L.GaussianDropout: Identity,
    L.GaussianNoise: Identity,
    L.AlphaDropout: Identity,
    L.ActivityRegularization: Identity,
    L.Identity: Identity,
}
"""Layer class → relevance behaviour. Exact classes only: a subclass may change ``call``."""


def register_layer(layer_class: type, relevance: Factory) -> None:
    """Teach dtd_keras a layer class.

    ``relevance`` is a :class:`LayerRelevance` subclass (or a factory with its
    signature ``(call, graph, **options)``). Subclass :class:`Linear` and implement
    ``linear(a, kernel, bias)`` for a layer that is linear in its input: every rule then
    works for it. Subclass :class:`Reindex` for a layer that only moves values around.
    """
    if not isinstance(layer_class, type):
        raise TypeError(f"register_layer needs a layer class, got {layer_class!r}")
    if not callable(relevance):
        raise TypeError(f"register_layer needs a LayerRelevance subclass, got {relevance!r}")
    LAYER_RELEVANCE[layer_class] = relevance


def relevance_for(call: Call, graph: Graph, position: int, **options: Any) -> LayerRelevance:
    """The behaviour for ``call``; :class:`UnsupportedLayerError` if there is none."""
    factory = LAYER_RELEVANCE.get(type(call.operation))
    if factory is None:
        parents = [p.name for k in call.inputs if (p := graph.producer(k)) is not None]
        source = f"fed by {', '.join(repr(p) for p in parents)}" if parents else "fed by the input"
        kind = "layer" if isinstance(call.operation, keras.layers.Layer) else "operation"
        raise UnsupportedLayerError(
            f"{kind} {call.description} (call {position} in the graph, {source}) has no "
            "relevance rule. Supported: "
            + ", ".join(sorted({c.__name__ for c in LAYER_RELEVANCE}))
            + ". Register one with dk.register_layer(LayerClass, relevance)"
        )
    return factory(call, graph, **options)
