"""Layer class → relevance behaviour, and the extension point for custom layers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
from keras.src.ops import nn as keras_nn
from keras.src.ops import numpy as keras_numpy

from ..engine.graph import Call, Graph
from ..integrations import load_integrations
from . import attention, embedding, normalization, sequence
from .activations import (
    PASS_THROUGH,
    ActivationPass,
    Elementwise,
    activation_relevance,
    leaky_relu_relevance,
    relu_relevance,
)
from .base import Identity, LayerRelevance, NoRelevance, Reindex, refusal
from .linear import (
    AffineBatchNorm,
    AveragePool,
    ConvLinear,
    ConvTransposeLinear,
    DenseLinear,
    DepthwiseLinear,
    SeparableLinear,
)
from .merge import Gate, Sum
from .pooling import max_pool_relevance

__all__ = ["LAYER_RELEVANCE", "expands", "position", "register_layer", "relevance_for"]

Factory = Callable[..., LayerRelevance]


def _upsampling(call: Call, graph: Graph, **options: Any) -> LayerRelevance:
    interpolation = getattr(call.operation, "interpolation", "nearest")
    if interpolation != "nearest":
        raise refusal(
            f"layer {call.description} interpolates ({interpolation!r}); only nearest "
            "up-sampling (an exact copy of values) has a relevance rule")
    return Reindex(call, graph, **options)


def _softmax(call: Call, graph: Graph, **options: Any) -> LayerRelevance:
    raise refusal(
        f"layer {call.description} ({'softmax inside the network'}) has no relevance rule "
        "under this analyzer; a softmax on the explained output is stripped (the logit is "
        "explained)")


def _named(*names: str) -> list[type]:
    return [getattr(keras.layers, n) for n in names if hasattr(keras.layers, n)]


LAYER_RELEVANCE: dict[type, Factory] = {}
"""Layer class → relevance behaviour. Exact classes only: a subclass may change ``call``."""

for _cls in _named("Dense"):
    LAYER_RELEVANCE[_cls] = DenseLinear
for _cls in _named("Conv1D", "Conv2D", "Conv3D"):
    LAYER_RELEVANCE[_cls] = ConvLinear
for _cls in _named("DepthwiseConv1D", "DepthwiseConv2D"):
    LAYER_RELEVANCE[_cls] = DepthwiseLinear
for _cls in _named("SeparableConv1D", "SeparableConv2D"):
    LAYER_RELEVANCE[_cls] = SeparableLinear
for _cls in _named("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"):
    LAYER_RELEVANCE[_cls] = ConvTransposeLinear
for _cls in _named("AveragePooling1D", "AveragePooling2D", "AveragePooling3D",
                   "GlobalAveragePooling1D", "GlobalAveragePooling2D",
                   "GlobalAveragePooling3D"):
    LAYER_RELEVANCE[_cls] = AveragePool
for _cls in _named("MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "GlobalMaxPooling1D",
                   "GlobalMaxPooling2D", "GlobalMaxPooling3D"):
    LAYER_RELEVANCE[_cls] = max_pool_relevance
for _cls in _named("Flatten", "Reshape", "Permute", "RepeatVector", "Concatenate",
                   "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D",
                   "Cropping1D", "Cropping2D", "Cropping3D"):
    LAYER_RELEVANCE[_cls] = Reindex
for _cls in _named("UpSampling1D", "UpSampling2D", "UpSampling3D"):
    LAYER_RELEVANCE[_cls] = _upsampling
for _cls in _named("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
                   "GaussianDropout", "GaussianNoise", "AlphaDropout",
                   "ActivityRegularization", "Identity"):
    LAYER_RELEVANCE[_cls] = Identity
for _cls in _named("Rescaling", "Normalization"):
    LAYER_RELEVANCE[_cls] = Elementwise
LAYER_RELEVANCE.update({
    keras.layers.BatchNormalization: AffineBatchNorm,
    keras.layers.Softmax: _softmax,
    keras.layers.ReLU: relu_relevance,
    keras.layers.LeakyReLU: leaky_relu_relevance,
    keras.layers.Activation: activation_relevance,
    keras.layers.Add: Sum,
    keras_numpy.Add: Sum,
    keras.layers.Multiply: Gate,
    keras_numpy.Multiply: Gate,
})


for _module in (attention, normalization, embedding, sequence):
    LAYER_RELEVANCE.update(_module.LAYERS)


def _ops_class(name: str) -> type | None:
    """The class of ``keras.ops.<name>(x)``'s node (``relu6`` → ``Relu6``), if any."""
    camel = "".join(part.capitalize() for part in name.split("_"))
    return getattr(keras_nn, camel, None) or getattr(keras_numpy, camel, None)


# keras.ops.relu(x), keras.ops.tanh(x) & co. in functional code: as their Activation twins
for _act in ("relu", *PASS_THROUGH):
    if (_op := _ops_class(_act)) is not None:
        LAYER_RELEVANCE.setdefault(_op, (
            lambda call, graph, _a=_act, **o: ActivationPass(call, graph, name=_a, **o)))
for _name, _act in (("ELU", "elu"), ("PReLU", "prelu")):
    if hasattr(keras.layers, _name):
        LAYER_RELEVANCE[getattr(keras.layers, _name)] = (
            lambda call, graph, _a=_act, **o: ActivationPass(call, graph, name=_a, **o))


def register_layer(layer_class: type, relevance: Factory) -> None:
    """Teach dtd_keras a layer class.

    ``relevance`` is a :class:`~dtd_keras.layers.LayerRelevance` subclass (or a factory
    with its signature ``(call, graph, **options)``). Subclass
    :class:`~dtd_keras.layers.Linear` and implement ``linear(a, kernel, bias)`` (and
    ``raw_weights()`` if the weights are not ``kernel``/``bias``) for a layer that is
    linear in its input: every rule then works for it. Subclass
    :class:`~dtd_keras.layers.Reindex` for a layer that only moves values around, or
    :class:`~dtd_keras.layers.Identity` for one that passes values through.
    """
    if not isinstance(layer_class, type):
        raise TypeError(f"register_layer needs a layer class, got {layer_class!r}")
    if not callable(relevance):
        raise TypeError(f"register_layer needs a LayerRelevance subclass, got {relevance!r}")
    LAYER_RELEVANCE[layer_class] = relevance


def position(call: Call, graph: Graph, index: int) -> str:
    """Where ``call`` sits: ``"call 3 in the graph, fed by 'dense'"``."""
    parents = [p.name for k in call.inputs if (p := graph.producer(k)) is not None]
    source = f"fed by {', '.join(repr(p) for p in parents)}" if parents else "fed by the input"
    return f"call {index} in the graph, {source}"


def expands(layer: Any) -> bool:
    """Whether the analyzer looks inside ``layer`` (a layer that is not a model) rather
    than treating it as one call: exactly where no behaviour is registered for its class
    (see :func:`dtd_keras.engine.graph.expand_layer`)."""
    load_integrations(LAYER_RELEVANCE)
    return type(layer) not in LAYER_RELEVANCE


def relevance_for(call: Call, graph: Graph, index: int, **options: Any) -> LayerRelevance:
    """The behaviour for ``call`` (the ``index``-th in the graph);
    :class:`UnsupportedLayerError` if there is none. A call whose outputs are all
    integer or boolean (ids, masks, their arithmetic) needs none: :class:`NoRelevance`."""
    if call.outputs and not any(graph.is_float(k) for k in call.outputs):
        return NoRelevance(call, graph, **options)
    load_integrations(LAYER_RELEVANCE)
    factory = LAYER_RELEVANCE.get(type(call.operation))
    if factory is None:
        kind = "layer" if isinstance(call.operation, keras.layers.Layer) else "operation"
        why = f": {call.note}" if call.note else ""
        error = refusal(
            f"{kind} {call.description} ({position(call, graph, index)}) has no relevance "
            f"rule{why}",
            "Supported: " + ", ".join(sorted({c.__name__ for c in LAYER_RELEVANCE}))
            + ". Register one with dk.register_layer(LayerClass, relevance); see README, "
            "'Custom layers'")
        error.located = True
        raise error
    return factory(call, graph, **options)
