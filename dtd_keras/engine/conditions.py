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
A channel listed twice is computed twice (two equal copies). Conditioning on a unit of
the output layer other than the explained neuron gives an all-zero map: that unit holds
none of the explained neuron's relevance. A Flatten or Reshape output that merges
positions and channels into one axis has no channels and is refused
(:func:`merged_channels`); a Dense layer's units are channels.

Channel-sparse step: below the mask, copy k's relevance is zero outside channel ``c_k``,
so where the conditioned output is a Dense or Conv layer's (ungrouped; also through
activation layers that pass relevance unchanged), that layer's rule runs on channel
``c_k`` alone for copy k (:func:`propagate_channels`): the rule's denominators for the K
kernel columns ``c_1…c_K`` once on the untiled input, and per copy the backward pass of
one kernel column (1/C of the dense backward pass for C channels). Every built-in rule
takes it (their weight and bias maps are elementwise, so they commute with picking
columns); other layers and rule classes keep the dense path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from .layer_relevance import layer_keys, supports_layers, takes

__all__ = ["ChannelMasks", "channel_axis", "channel_masks", "condition_channels",
           "explain_conditioned", "merged_channels", "propagate_channels", "sparse_axis",
           "sparse_relevance"]

SPARSE = True  # False: every step below the mask runs the dense path (tests compare)
STATS = {"sparse_steps": 0}  # channel-sparse steps built (counted when traced)

DATA_FORMATS = ("channels_first", "channels_last")
RESHAPES = ("Flatten", "Reshape", "Ravel")
"""Classes (layers and ``keras.ops``) that can merge positions and channels into one axis."""


def _source(graph: Any, key: int) -> Any:
    """The call computing ``key``, or through shape-preserving one-input calls
    (activations) the nearest one above it that changes the shape (None: a model input)."""
    current = key
    while (call := graph.producer(current)) is not None:
        if len(call.inputs) != 1 or len(call.outputs) != 1 or (
                graph.shapes[call.inputs[0]] != graph.shapes[current]):
            return call
        current = call.inputs[0]
    return None


def merged_channels(graph: Any, key: int) -> str | None:
    """Why the last axis of tensor ``key`` holds no channels, or None: it comes from a
    Flatten or Reshape (layer or ``keras.ops`` operation) that merges the positions and
    channels of its input into one axis (its size differs from the input's channel count;
    a Reshape that keeps the channel axis whole, or a Flatten of one position, is fine).
    A Dense layer's units are channels (concepts)."""
    call = _source(graph, key)
    if call is None or type(call.operation).__name__ not in RESHAPES:
        return None
    before = call.inputs[0]
    shape = graph.shapes[before]
    if len(shape) < 3:
        return None
    count = shape[1 + channel_axis(graph, before)]
    if count is not None and count == graph.shapes[key][-1]:
        return None
    above = graph.producer(before)
    named = f"the layer before it ({above.name!r}: its channels)" if above else \
        "the layer before it (its channels)"
    subject = ("it" if call.outputs[0] == key
               else f"its output comes from {call.description}, which")
    return (f"{subject} merges the positions and "
            f"channels of its input (shape {shape}) into one axis: a unit there is one "
            f"position × channel, not a concept. Use {named}, or a Dense layer after it "
            "(its units are concepts)")


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
    integer outputs, a length unknown until run time, a Flatten/Reshape output that
    merges positions and channels) or bad channel indices (none, negative, beyond the
    channel count; a repeated channel is accepted and computed once per listing); a
    TypeError for a non-mapping."""
    if not isinstance(condition, Mapping):
        raise TypeError(f"condition must be a dict {{layer name: [channels]}}, got "
                        f"{condition!r}")
    if len(condition) != 1:
        raise ValueError(f"condition must name exactly one layer, got {len(condition)} "
                         f"({list(condition)}); explain each layer's concepts in its own call")
    (name, channels), = condition.items()
    if not takes(analyzer, "condition"):
        raise ValueError(f"{type(analyzer).__name__} computes no conditional heatmaps; use "
                         "a rule-based analyzer (DTD, LRP) for condition=")
    (name,), (key,) = layer_keys(analyzer, [name], "condition=")  # known, one float output
    call = analyzer.behaviour(name).call
    shape = analyzer.graph.shapes[key]
    merged = merged_channels(analyzer.graph, key)
    if merged:
        raise ValueError(f"condition= cannot condition on the channels of layer "
                         f"{call.description}: {merged}")
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


class ChannelMasks(dict):
    """``{key: mask}`` that also names the ``channels`` (``[K]``) and their ``axis`` (in
    the batched tensor) for the channel-sparse step."""

    channels: tf.Tensor
    axis: int


def channel_masks(values: dict, key: int, channels: tf.Tensor, axis: int = -1
                  ) -> tuple[tf.Tensor, ChannelMasks]:
    """The copy count K and ``{key: mask}`` (a :class:`ChannelMasks`): for
    ``[K·batch, …]`` relevance stacked copy-major, copy k's mask is the one-hot vector of
    ``channels[k]`` on the channel axis (``axis``, counted without the batch axis; -1: the
    last)."""
    value = values[key]
    rank = len(value.shape)
    axis = axis % (rank - 1) + 1  # in the batched tensor
    copies = tf.shape(channels)[0]
    onehot = tf.one_hot(channels, tf.shape(value)[axis], dtype=value.dtype)  # [K, C]
    mask = tf.repeat(onehot, tf.shape(value)[0], axis=0)  # [K·batch, C], copy-major
    ones = [1] * (rank - 1)
    ones[axis - 1] = -1
    mask = tf.reshape(mask, tf.concat([tf.shape(mask)[:1], tf.constant(ones, tf.int32)], 0))
    masks = ChannelMasks({key: mask})
    masks.channels, masks.axis = channels, axis
    return copies, masks


def passes_channels(step: Any) -> bool:
    """Whether ``step`` hands its relevance down unchanged (an activation layer), so
    copy k's stays zero outside channel ``c_k``."""
    from ..layers.activations import ActivationPass
    from ..layers.base import Identity

    call = step.call
    return (type(step) in (ActivationPass, Identity) and len(call.inputs) == 1
            and len(call.outputs) == 1)


def sparse_axis(step: Any, rule: Any, masks: Any) -> int | None:
    """The channel axis (in the batched output) on which ``step`` can read channel-sparse
    relevance (:func:`propagate_channels`), or None (dense path): a Dense or ungrouped
    Conv layer whose output channels are its kernel's last axis and the masked axis,
    under a built-in rule (elementwise weight and bias maps)."""
    from ..layers.linear import ConvLinear, DenseLinear
    from ..rules.linear import Rule

    channels = getattr(masks, "channels", None)
    if (not SPARSE or channels is None or type(step) not in (DenseLinear, ConvLinear)
            or not isinstance(rule, Rule) or type(rule).__module__ != Rule.__module__
            or getattr(step.layer, "groups", 1) != 1 or len(step.call.inputs) != 1
            or len(step.call.outputs) != 1):
        return None
    rank = len(step.graph.shapes[step.call.outputs[0]])
    first = type(step) is ConvLinear and step.layer.data_format == "channels_first"
    axis = 1 if first else rank - 1
    return axis if axis == masks.axis else None


def sparse_relevance(step: Any, rule: Any, inputs: list, upper: list, masks: Any,
                     axis: int, kept: Any = None) -> list:
    """``step.relevance_many`` for channel-sparse relevance (see :func:`sparse_axis`)."""
    STATS["sparse_steps"] += 1
    kernel, bias = step.weights()
    return [propagate_channels(rule, step.apply, kernel, bias, inputs[0], upper[0],
                               step.options.get("domain"), masks.channels, axis,
                               preactivation=kept, stack=step.stack_axes())]


def propagate_channels(rule: Any, forward: Any, kernel: tf.Tensor, bias: tf.Tensor | None,
                       x: tf.Tensor, relevance: tf.Tensor, domain: Any, channels: tf.Tensor,
                       axis: int, *, preactivation: tf.Tensor | None = None,
                       stack: tuple[int, int] | None = None) -> tf.Tensor:
    """:func:`~dtd_keras.engine.propagation.propagate` with ``K = len(channels)`` copies
    (copy-major ``[K·batch, …]`` ``relevance`` for the batch ``x``) where copy k's
    relevance is zero outside channel ``channels[k]`` of ``axis`` (in the batched output).
    The kernel's last axis holds the output channels; the groups' forward passes run on
    the K picked columns (``[batch, …, K]``), and copy k's backward pass on column k
    alone. Equal to the dense pass (the other channels pass no relevance)."""
    from .division import safe_divide
    from .propagation import _SIDES, sum_over_groups
    from .terms import group_terms

    count = int(channels.shape[0])
    rank = len(relevance.shape)
    kernel = tf.gather(kernel, channels, axis=-1)
    bias = None if bias is None else tf.gather(bias, channels, axis=-1)
    perm = [axis, *(i for i in range(rank) if i != axis)]

    def per_copy(z: tf.Tensor) -> tf.Tensor:  # [batch, …, K on axis] -> [K·batch, …]
        z = tf.transpose(z, perm)
        return tf.reshape(z, tf.concat([[-1], tf.shape(z)[2:]], 0))

    picked = tf.reduce_sum(relevance, axis=axis)  # copy k: channel c_k (the rest is 0)
    if preactivation is not None:
        preactivation = tf.gather(preactivation, channels, axis=axis)
    reuse = preactivation is not None and rule.plain
    plain = {True: preactivation, False: None}

    def side(where: str) -> tf.Tensor:
        with_bias, test = _SIDES[where]
        if plain[with_bias] is None:
            with tf.control_dependencies([relevance]):
                plain[with_bias] = forward(x, kernel, bias if with_bias else None)
        return test(per_copy(plain[with_bias]))

    def contribute(group: Any, upper: tf.Tensor) -> tf.Tensor:
        if reuse:
            z = preactivation
        else:
            _, z = group_terms(group, forward, kernel, bias, x, upper, stack=stack)
        s = safe_divide(upper, rule.stabilize(per_copy(z)), group.nonnegative)
        return _column_gradients(group, forward, kernel, x, s, count, axis, stack)

    return sum_over_groups(rule, domain, picked, side, contribute)


def _column_gradients(group: Any, forward: Any, kernel: tf.Tensor, x: tf.Tensor,
                      s: tf.Tensor, count: int, axis: int,
                      stack: tuple[int, int] | None) -> tf.Tensor:
    """``Σ_t a_t ⊙ ∇_{a_t}(f(a_t; ρ_t(W)[…, k]) · s_k)`` for each copy k, stacked
    copy-major: one backward pass per copy through kernel column k (``f`` is linear, so
    the gradient runs on stand-in zeros)."""
    from .terms import group_terms, summed_forward

    inputs, _ = group_terms(group, lambda a, k, b: a, kernel, None, x, s)
    weights = [term.weight(kernel) for term in group.terms]
    slopes = tf.split(s, count)
    sources, outputs = [], []
    with tf.GradientTape() as tape:
        for k in range(count):
            zeros = [tf.zeros_like(a) for a in inputs]
            tape.watch(zeros)
            outputs.append(summed_forward(group, forward, zeros,
                                          [w[..., k:k + 1] for w in weights],
                                          [None] * len(zeros), stack))
            sources.extend(zeros)
    grads = tape.gradient(outputs, sources,
                          output_gradients=[tf.expand_dims(g, axis) for g in slopes])
    n = len(inputs)
    return tf.concat([tf.add_n([a * g for a, g in zip(inputs, grads[k * n:(k + 1) * n])
                                if g is not None]) for k in range(count)], 0)


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
    from .layer_relevance import empty_layer_maps, join_neurons

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
    return parts[0] if len(parts) == 1 else join_neurons(parts)
