"""Relevance at hidden layers' outputs (``Analyzer.explain(x, layers=[...])``).

The backward pass (:func:`dtd_keras.engine.passes.backward`) holds every call's output
relevance on its way down; the layers asked for are captured there, in the same compiled
pass. This module checks the names asked for and shapes the empty results.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

__all__ = ["concrete_with_layers", "empty_layer_maps", "layer_keys", "supports_layers"]


def supports_layers(analyzer: Any) -> bool:
    """Whether ``analyzer``'s backward pass can capture hidden layers' relevance (its
    ``_relevance_graph`` takes ``layers``; the gradient presets' does not)."""
    return "layers" in inspect.signature(analyzer._relevance_graph).parameters


def layer_keys(analyzer: Any, layers: str | Sequence[str] | None
               ) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The names asked for (each once, in order) and the tensor key of each one's output.

    Names are the calls' names as :attr:`~dtd_keras.analyzers.Analyzer.rules` spells
    them (``"inner/dense"`` inside a nested model, ``"dense[1]"`` for a layer's second
    call). A ValueError for an unknown name (listing the known ones), a call with several
    outputs, or an integer/boolean output (no relevance); a TypeError for a non-string.
    """
    if layers is None:
        return (), ()
    if isinstance(layers, str):
        layers = [layers]
    if not isinstance(layers, Sequence) or not all(isinstance(n, str) for n in layers):
        raise TypeError(f"layers must be a layer name or a list of layer names, got {layers!r}")
    names = tuple(dict.fromkeys(layers))
    if not names:
        return (), ()
    if not supports_layers(analyzer):
        raise ValueError(f"{type(analyzer).__name__} computes no relevance at hidden layers "
                         "(it is not a layer-by-layer relevance pass); use a rule-based "
                         "analyzer (DTD, LRP) for layers=")
    calls = {step.call.name: step.call for step, _ in analyzer._steps}
    unknown = [n for n in names if n not in calls]
    if unknown:
        raise ValueError(f"layers={unknown} name no layer the analyzer explains; the known "
                         f"layers are {list(calls)}")
    graph = analyzer.graph
    keys = []
    for name in names:
        call = calls[name]
        shape = graph.shapes[call.outputs[0]]
        if len(call.outputs) != 1:
            raise ValueError(f"layer {call.description} has {len(call.outputs)} outputs; "
                             "layers= reads layers with one output (ask for the layer that "
                             "reads the output you mean)")
        if not graph.is_float(call.outputs[0]):
            raise ValueError(f"layer {call.description} outputs {graph.dtypes[call.outputs[0]]} "
                             f"values of shape {shape}, which carry no relevance")
        keys.append(call.outputs[0])
    return names, tuple(keys)


def empty_layer_maps(analyzer: Any, keys: Sequence[int], axes: tuple[int, ...]
                     ) -> list[np.ndarray]:
    """Zero-size float32 results for ``keys`` (``axes``: batch, and K neurons if any);
    a length unknown until run time counts 0."""
    return [np.zeros((*axes, *(0 if d is None else d for d in analyzer.graph.shapes[k][1:])),
                     np.float32) for k in keys]


def concrete_with_layers(analyzer: Any, names: tuple[str, ...], many: bool) -> Any:
    """The analyzer's compiled pass that also returns the output relevance of the layers
    ``names`` (after the maps and shares), for ``neuron`` of shape ``[batch]`` or, with
    ``many``, ``[batch, K]``: traced once per distinct ``(names, many)`` and cached on the
    analyzer. A separate ``tf.function``, so that the plain one keeps its ``(inputs,
    neuron)`` signature (export, distribution)."""
    cache = analyzer.__dict__.setdefault("_layer_concrete", {})
    if (names, many) not in cache:
        def traced(inputs: tuple, neuron: tf.Tensor):
            analyzer.trace_count += 1
            return analyzer._relevance_graph(inputs, neuron, layers=names)

        function = tf.function(traced, jit_compile=getattr(analyzer, "_jit_compile", False),
                               autograph=False)
        neuron = tf.TensorSpec((None, None) if many else (None,), tf.int32, name="neuron")
        cache[names, many] = function.get_concrete_function(analyzer.input_specs, neuron)
    return cache[names, many]
