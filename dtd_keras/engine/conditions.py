"""Conditional heatmaps (``Analyzer.explain(x, condition={layer: [channels]})``).

Concept Relevance Propagation (Achtibat et al., *Nature Machine Intelligence* 2023): the
relevance of one explained neuron, conditioned on a channel ("concept") of a hidden layer,
is the input relevance that flows through that channel alone. The backward pass carries
one relevance set down to the conditioned call (above it the channels' sets do not
differ), and there one copy per channel asked for (copy-major, as for several neurons
per sample, sharing the rules' denominators); copy k keeps only channel ``c_k``'s
relevance (the other channels' is set to zero) before the calls below read it. Summed
over all channels, the conditional maps give the unconditioned map. The channel axis is
the output's last, or its first for a ``channels_first`` layer (:func:`channel_axis`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from .layer_relevance import layer_keys, supports_layers

__all__ = ["channel_axis", "channel_masks", "condition_channels", "explain_conditioned"]

DATA_FORMATS = ("channels_first", "channels_last")


def channel_axis(graph: Any, key: int) -> int:
    """The channel axis of tensor ``key``, counted without the batch axis: 0 where the
    layer computing it (or, through shape-preserving one-input calls such as
    activations, the nearest one above it that has a ``data_format``) is
    ``channels_first`` and its output has two or more axes per sample; else the last."""
    rank = len(graph.shapes[key]) - 1
    last = max(rank - 1, 0)
    if rank < 2:
        return last
    current = key
    while (call := graph.producer(current)) is not None:
        layout = getattr(call.operation, "data_format", None)
        if layout in DATA_FORMATS:
            return 0 if layout == "channels_first" else last
        if len(call.inputs) != 1 or len(call.outputs) != 1 or (
                graph.shapes[call.inputs[0]] != graph.shapes[current]):
            return last
        current = call.inputs[0]
    return last


def condition_channels(analyzer: Any, condition: Any
                       ) -> tuple[str, int, np.ndarray, int]:
    """The conditioned layer's name, its output's tensor key, the channels (int32
    ``[K]``) and the channel axis (:func:`channel_axis`: last, or 0 for a
    ``channels_first`` layer; counted without the batch axis) from ``condition``
    (``{name: [c1, c2, …]}``, one layer, names as
    :attr:`~dtd_keras.analyzers.Analyzer.rules` spells them). A ValueError for several
    layers, an unknown name, a layer without a channel axis (several outputs,
    integer outputs, a length unknown until run time) or bad channel indices (none,
    negative, beyond the channel count); a TypeError for a non-mapping."""
    if not isinstance(condition, Mapping):
        raise TypeError(f"condition must be a dict {{layer name: [channels]}}, got "
                        f"{condition!r}")
    if len(condition) != 1:
        raise ValueError(f"condition must name exactly one layer, got {len(condition)} "
                         f"({list(condition)}); explain each layer's concepts in its own call")
    (name, channels), = condition.items()
    if "condition" not in _parameters(analyzer):
        raise ValueError(f"{type(analyzer).__name__} computes no conditional heatmaps; use "
                         "a rule-based analyzer (DTD, LRP) for condition=")
    (name,), (key,) = layer_keys(analyzer, [name])  # known, one float output
    call = next(step.call for step, _ in analyzer._steps if step.call.name == name)
    shape = analyzer.graph.shapes[key]
    axis = channel_axis(analyzer.graph, key) if len(shape) >= 2 else 0
    if len(shape) < 2 or shape[1 + axis] is None:
        raise ValueError(f"layer {call.description} outputs shape {shape}, with no channel "
                         "axis of known size to condition on")
    count = int(shape[1 + axis])
    picked = np.asarray(channels)
    if isinstance(channels, (str, bytes)) or picked.ndim > 1 or (
            picked.size and not np.issubdtype(picked.dtype, np.integer)):
        raise ValueError(f"condition[{name!r}] must be channel indices of layer "
                         f"{call.description} (output shape {shape}), got {channels!r}")
    picked = picked.reshape(-1)
    if picked.size == 0 or np.any(picked < 0) or np.any(picked >= count):
        raise ValueError(f"condition[{name!r}] = {picked.tolist()}: layer {call.description} "
                         f"has {count} channels (output shape {shape}); give one or more "
                         f"indices in 0..{count - 1}")
    return name, key, picked.astype(np.int32), axis


def _parameters(analyzer: Any) -> Sequence[str]:
    import inspect

    return tuple(inspect.signature(analyzer._relevance_graph).parameters)


def channel_masks(values: dict, key: int, channels: tf.Tensor, axis: int = -1
                  ) -> tuple[tf.Tensor, dict]:
    """The copy count K and ``{key: mask}``: for ``[K·batch, …]`` relevance stacked
    copy-major, copy k's mask is the one-hot vector of ``channels[k]`` on the channel
    axis (``axis``, counted without the batch axis; -1: the last)."""
    value = values[key]
    rank = len(value.shape)
    axis = axis % (rank - 1) + 1  # in the batched tensor
    copies = tf.shape(channels)[0]
    onehot = tf.one_hot(channels, tf.shape(value)[axis], dtype=value.dtype)  # [K, C]
    mask = tf.repeat(onehot, tf.shape(value)[0], axis=0)  # [K·batch, C], copy-major
    ones = [1] * (rank - 1)
    ones[axis - 1] = -1
    mask = tf.reshape(mask, tf.concat([tf.shape(mask)[:1], tf.constant(ones, tf.int32)], 0))
    return copies, {key: mask}


def _concrete(analyzer: Any, name: str, key: int, axis: int, count: int,
              names: tuple[str, ...]) -> Any:
    """The compiled pass conditioned on ``count`` channels of ``name`` (channel axis
    ``axis``), traced once per ``(name, count, names)`` and cached on the analyzer; the
    channels are an argument."""
    cache = analyzer.__dict__.setdefault("_condition_concrete", {})
    if (name, count, names) not in cache:
        def traced(inputs: tuple, neuron: tf.Tensor, channels: tf.Tensor):
            analyzer.trace_count += 1
            return analyzer._relevance_graph(inputs, neuron, layers=names,
                                             condition=(key, channels, axis))

        function = tf.function(traced, jit_compile=getattr(analyzer, "_jit_compile", False),
                               autograph=False)
        cache[name, count, names] = function.get_concrete_function(
            analyzer.input_specs, tf.TensorSpec((None,), tf.int32, name="neuron"),
            tf.TensorSpec((count,), tf.int32, name="channels"))
    return cache[name, count, names]


def explain_conditioned(analyzer: Any, x: Any, neuron: Any, condition: Any,
                        layers: Any, neurons_per_pass: int | None) -> Any:
    """:meth:`~dtd_keras.analyzers.Analyzer.explain` with ``condition``: relevance
    ``[batch, K, …]`` for the K channels, ``neuron``/``explained`` ``[batch]``; layer
    relevance (``layers``) ``[batch, K, …]``. ``neurons_per_pass`` caps the channels per
    compiled call."""
    from ..engine.neurons import check_neurons_per_pass, parse_neurons
    from ..engine.tokens import empty_maps
    from ..explanation import Explanation
    from .layer_relevance import empty_layer_maps

    name, key, channels, axis = condition_channels(analyzer, condition)
    names, keys = layer_keys(analyzer, layers)
    if names and not supports_layers(analyzer):
        raise ValueError(f"{type(analyzer).__name__} cannot combine condition= and layers=")
    arrays = analyzer.check_inputs(x)
    batch = arrays[0].shape[0]
    chosen = parse_neurons(neuron, batch, analyzer.output_size)
    if chosen.ndim != 1:
        raise ValueError(f"condition= explains one neuron per sample; got neuron of shape "
                         f"{chosen.shape} (K neurons per sample): explain them one at a time")
    check_neurons_per_pass(neurons_per_pass)
    if batch == 0:
        axes = (0, channels.size)
        relevance, shares = analyzer._maps_and_shares(empty_maps(analyzer, arrays, axes))
        return Explanation(relevance, chosen, np.zeros(chosen.shape, np.float32),
                           absorbed_by=analyzer.absorbed_by, embeddings=shares,
                           layer_relevance=dict(zip(names, empty_layer_maps(
                               analyzer, keys, axes))))
    step = neurons_per_pass or analyzer.neurons_per_pass(batch)
    parts = []
    for i in range(0, channels.size, step):
        part = channels[i:i + step]
        function = _concrete(analyzer, name, key, axis, part.size, names)
        parts.append(analyzer._run(lambda a, c, f=function, p=part: f(a, c, tf.constant(p)),
                                   arrays, chosen, names))
    if len(parts) == 1:
        return parts[0]
    maps = [np.concatenate(m, axis=1) for m in zip(*(p.maps() for p in parts))]
    return Explanation(maps if len(maps) > 1 else maps[0], parts[0].neuron,
                       parts[0].explained, absorbed_by=analyzer.absorbed_by,
                       embeddings={k: np.concatenate([p.embeddings[k] for p in parts], axis=1)
                                   for k in parts[0].embeddings},
                       layer_relevance={k: np.concatenate([p.layer_relevance[k] for p in parts],
                                                          axis=1) for k in names})
