"""Relevance at hidden layers (``Analyzer.explain(x, layers=[...])``).

The backward pass (:func:`dtd_keras.engine.passes.backward`) holds every call's output
relevance on its way down; the layers asked for are captured there, in the same compiled
pass. With ``layer_inputs=True`` the pass also returns what each of those layers hands
down to each of its inputs (before other readers of an input add theirs) and the values
it reads: a layer-by-layer account of the relevance (which layer changes its sum, by how
much), and what :class:`~dtd_keras.relevance_model.MinMaxDTD` fits to. This module checks
the names asked for and shapes the empty results.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

__all__ = ["concrete_with_layers", "empty_input_maps", "empty_layer_maps", "input_counts",
           "join_neurons", "layer_input_keys", "layer_keys", "split_outputs",
           "supports_layers", "takes", "unknown_layers"]

LISTED = 20
"""Up to this many known layers are listed in an unknown-name error; more are not (a
MobileNetV2 has 155): the error points to ``analyzer.layer_names`` instead."""


def unknown_layers(argument: str, unknown: Sequence[str], known: Sequence[str],
                   where: str = "the analyzer explains", listing: str = "analyzer.layer_names"
                   ) -> str:
    """The message for layer names ``unknown`` given as ``argument`` (``"layers="``,
    ``"condition="``, …) that are not among ``known``: close matches as "did you mean",
    and the known names when there are at most :data:`LISTED`, else where to find them
    (``listing``)."""
    names = ", ".join(repr(n) for n in unknown)
    which = "which is no layer" if len(unknown) == 1 else "which are no layers"
    text = f"{argument} names {names}, {which} {where}"
    guesses = [g for n in unknown for g in difflib.get_close_matches(n, known, n=3)]
    if guesses:
        text += f"; did you mean {' or '.join(repr(g) for g in dict.fromkeys(guesses))}?"
    if not known:
        return text + " (there are none)"
    if len(known) <= LISTED:
        return text + f" (the known layers are {list(known)})"
    return text + f" (see {listing} for all {len(known)} of them)"



def supports_layers(analyzer: Any) -> bool:
    """Whether ``analyzer``'s backward pass can capture hidden layers' relevance (its
    ``_relevance_graph`` takes ``layers``; the gradient presets' does not)."""
    return takes(analyzer, "layers")


def takes(analyzer: Any, parameter: str) -> bool:
    """Whether ``analyzer``'s ``_relevance_graph`` has the argument ``parameter``
    (``"layers"``, ``"condition"``): what its backward pass can do."""
    return parameter in inspect.signature(analyzer._relevance_graph).parameters


def layer_keys(analyzer: Any, layers: str | Sequence[str] | None, argument: str = "layers="
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
    calls = _calls(analyzer)
    unknown = [n for n in names if n not in calls]
    if unknown:
        raise ValueError(unknown_layers(argument, unknown, list(calls)))
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


def _calls(analyzer: Any) -> dict[str, Any]:
    """``{name: call}`` for every call the analyzer explains."""
    return {step.call.name: step.call for step, _ in analyzer._steps}


def input_counts(analyzer: Any, names: Sequence[str]) -> tuple[int, ...]:
    """How many inputs each of the calls ``names`` (known names) reads."""
    calls = _calls(analyzer)
    return tuple(len(calls[name].inputs) for name in names)


def layer_input_keys(analyzer: Any, names: Sequence[str]) -> list[tuple[int, ...]]:
    """The tensor keys of each call's inputs (known names)."""
    calls = _calls(analyzer)
    return [tuple(calls[name].inputs) for name in names]


def empty_input_maps(analyzer: Any, names: Sequence[str], axes: tuple[int, ...]
                     ) -> tuple[dict[str, list[np.ndarray]], dict[str, list[np.ndarray]]]:
    """Zero-size ``layer_input_relevance`` (``axes``: batch, and K neurons if any) and
    ``layer_inputs`` (batch only, each input's own dtype) for the calls ``names``."""
    graph, found, values = analyzer.graph, {}, {}
    for name, keys in zip(names, layer_input_keys(analyzer, names)):
        found[name] = empty_layer_maps(analyzer, keys, axes)
        values[name] = [np.zeros((axes[0], *(0 if d is None else d for d in graph.shapes[k][1:])),
                                 np.float32 if graph.is_float(k) else graph.dtypes[k])
                        for k in keys]
    return found, values


def empty_layer_maps(analyzer: Any, keys: Sequence[int], axes: tuple[int, ...]
                     ) -> list[np.ndarray]:
    """Zero-size float32 results for ``keys`` (``axes``: batch, and K neurons if any);
    a length unknown until run time counts 0."""
    return [np.zeros((*axes, *(0 if d is None else d for d in analyzer.graph.shapes[k][1:])),
                     np.float32) for k in keys]


def concrete_with_layers(analyzer: Any, names: tuple[str, ...], many: bool,
                         inputs: bool = False) -> Any:
    """The analyzer's compiled pass that also returns the output relevance of the layers
    ``names`` (after the maps and shares) and, with ``inputs``, then the relevance each
    hands down to each of its inputs and then the values of those inputs, for ``neuron``
    of shape ``[batch]`` or, with ``many``, ``[batch, K]``: traced once per distinct
    ``(names, many, inputs)`` and cached on the analyzer. A separate ``tf.function``, so
    that the plain one keeps its ``(inputs, neuron)`` signature (export, distribution).

    Under TensorFlow's debugging switch ``tf.config.run_functions_eagerly(True)`` the
    pass runs eagerly instead, untraced (as a ``tf.function`` would): a one-off account
    of a large model then skips compiling a graph with an output per layer."""
    options = {"layer_inputs": True} if inputs else {}
    if tf.config.functions_run_eagerly():
        return lambda values, neuron: analyzer._relevance_graph(values, neuron, layers=names,
                                                                **options)
    cache = analyzer.__dict__.setdefault("_layer_concrete", {})
    if (names, many, inputs) not in cache:

        def traced(values: tuple, neuron: tf.Tensor):
            analyzer.trace_count += 1
            return analyzer._relevance_graph(values, neuron, layers=names, **options)

        function = tf.function(traced, jit_compile=getattr(analyzer, "_jit_compile", False),
                               autograph=False)
        neuron = tf.TensorSpec((None, None) if many else (None,), tf.int32, name="neuron")
        cache[names, many, inputs] = function.get_concrete_function(analyzer.input_specs,
                                                                    neuron)
    return cache[names, many, inputs]


def split_outputs(analyzer: Any, maps: Sequence[Any], names: Sequence[str], inputs: bool
                  ) -> tuple[list[np.ndarray], dict, dict, dict]:
    """A compiled call's outputs (tensors) as numpy: the input maps and shares (float32),
    ``{name: output relevance}``, and with ``inputs`` ``{name: [relevance handed to each
    input]}`` and ``{name: [each input's value]}`` (else empty dicts)."""
    counts = input_counts(analyzer, names) if inputs else ()
    size = sum(counts)
    below = len(maps) - len(names) - 2 * size
    arrays = [m.numpy() for m in maps]
    arrays[:below + len(names) + size] = [
        a.astype(np.float32, copy=False) for a in arrays[:below + len(names) + size]]
    hidden = dict(zip(names, arrays[below:below + len(names)]))
    handed, values, at = {}, {}, below + len(names)
    for name, count in zip(names, counts):
        handed[name] = arrays[at:at + count]
        values[name] = arrays[at + size:at + size + count]
        at += count
    return arrays[:below], hidden, handed, values


def join_neurons(parts: Sequence[Any]) -> Any:
    """One :class:`~dtd_keras.Explanation` from explanations of consecutive chunks of the
    K neurons per sample, or of the K conditioned channels (everything per neuron or
    channel joined along axis 1; ``neuron``/``explained`` too where they have a K axis,
    else, one per sample as for ``condition=``, from the first, as are the layers' input
    values)."""
    from ..explanation import Explanation

    def join(arrays: Any) -> np.ndarray:
        return np.concatenate(list(arrays), axis=1)

    first = parts[0]
    maps = [join(m) for m in zip(*(p.maps() for p in parts))]
    per_sample = np.ndim(first.neuron) < 2
    return Explanation(
        maps if len(maps) > 1 else maps[0],
        first.neuron if per_sample else join(p.neuron for p in parts),
        first.explained if per_sample else join(p.explained for p in parts),
        absorbed_by=first.absorbed_by,
        embeddings={k: join(p.embeddings[k] for p in parts) for k in first.embeddings},
        layer_relevance={k: join(p.layer_relevance[k] for p in parts)
                         for k in first.layer_relevance},
        layer_input_relevance={k: [join(r) for r in zip(*(p.layer_input_relevance[k]
                                                          for p in parts))]
                               for k in first.layer_input_relevance},
        layer_inputs=first.layer_inputs)
