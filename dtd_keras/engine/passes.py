"""The passes an analyzer compiles: forward call by call, the top relevance of the chosen
neurons, and relevance call by call back to the inputs.

Several neurons per sample (``neurons`` of shape ``[batch, K]``) share one forward pass
and every neuron-independent term (the rules' denominators depend only on the layer
inputs): the backward pass carries ``K`` relevance sets stacked along the batch axis,
copy-major (``[K·batch, …]``), and each linear layer divides the stacked relevance by its
denominators computed once (:func:`dtd_keras.rules.propagate`'s ``copies``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from .conditions import passes_channels, sparse_axis, sparse_relevance
from .propagation import deferred_overflow_check, overflowed, tile

__all__ = ["backward", "forward_values", "output_count", "select", "top_relevance"]

Tensor = Any
Steps = Sequence[tuple[Any, Any]]  # (LayerRelevance, Rule | None) in graph order


def _kept(step: Any) -> tuple[str, int]:
    return ("kept", id(step))


def forward_values(steps: Steps, input_keys: Sequence[int], inputs: Sequence[Tensor]) -> dict:
    """Every tensor's value, call by call (eager or traced); also, under ``("kept",
    id(step))``, what a step keeps for its relevance pass (a linear layer's
    pre-activation, where its rule needs it)."""
    values: dict[Any, Tensor] = dict(zip(input_keys, inputs))
    preactivations: set[int] = set()  # keys whose value is a kept pre-activation
    for step, rule in steps:
        outputs, kept = step.forward_keeping([values[k] for k in step.call.inputs])
        values.update(zip(step.call.outputs, outputs))
        if kept is not None and getattr(rule, "needs_preactivation", False):
            values[_kept(step)] = kept
            if getattr(step, "activation", None) == "relu" and len(outputs) == 1:
                values[_relu_of(step.call.outputs[0])] = kept
            elif outputs[0] is kept:
                preactivations.add(step.call.outputs[0])
        elif (getattr(step, "plain_relu", False) and len(step.call.inputs) == 1
              and step.call.inputs[0] in preactivations):  # a ReLU layer after it: only
            # the pre-activation stays alive; its ReLU is recomputed late (see _late)
            values[_relu_of(step.call.outputs[0])] = values[step.call.inputs[0]]
    return values


def _relu_of(key: int) -> tuple[str, int]:
    return ("relu of", key)


def _late(values: dict, key: int, after: Sequence[Tensor]) -> Tensor:
    """The value of ``key`` for the relevance pass, available only once the upper
    relevance ``after`` exists. Otherwise TensorFlow runs whatever a step's relevance
    computes from forward values alone (an Add's |x|, a rule's modified inputs, ε's
    stabilised pre-activation, γ's sign test) during
    the forward pass, and keeps it until the backward pass reaches the step. A ReLU
    output is recomputed from the kept pre-activation, so that only the pre-activation
    (which ε needs anyway) stays alive between the passes, not both."""
    with tf.control_dependencies(list(after)):
        if _relu_of(key) not in values:
            return tf.identity(values[key])
        return tf.nn.relu(values[_relu_of(key)])


def output_count(logits: Tensor, size: int | None) -> Tensor:
    """Neurons per sample in the explained output (static when known; batch 0 safe)."""
    if size is not None:
        return tf.constant(size, tf.int32)
    return tf.reduce_prod(tf.shape(logits)[1:])


def select(logits: Tensor, neuron: Tensor, count: Tensor) -> tuple[Tensor, Tensor]:
    """The chosen neurons (``-1``: the top logit) and their logits, for ``neuron`` of shape
    ``[batch]`` or ``[batch, K]``. An index beyond the output (possible where its size is
    known only at run time) gives a NaN logit, never a silent 0 (XLA's gather clamps)."""
    flat = tf.reshape(logits, [tf.shape(logits)[0], count])
    best = tf.argmax(flat, axis=-1, output_type=tf.int32)
    if len(neuron.shape) == 2:
        best = best[:, None]
    chosen = tf.where(neuron < 0, best, neuron)
    in_range = chosen < count
    picked = tf.gather(flat, tf.where(in_range, chosen, 0), batch_dims=1)
    return chosen, tf.where(in_range, picked, np.nan)


def top_relevance(logits: Tensor, chosen: Tensor, explained: Tensor, count: Tensor) -> Tensor:
    """The explained logit at each chosen neuron, zero elsewhere, shaped like ``logits``;
    for ``chosen`` of shape ``[batch, K]``, the ``K`` sets stacked copy-major."""
    top = tf.one_hot(chosen, count, dtype=logits.dtype) * explained[..., None]
    if len(chosen.shape) == 2:  # [batch, K, count] -> [K·batch, count]
        top = tf.reshape(tf.transpose(top, [1, 0, 2]), [-1, count])
    return tf.reshape(top, tf.concat([[-1], tf.shape(logits)[1:]], 0))


def backward(steps: Steps, values: dict, explained_key: int, top: Tensor,
             input_keys: Sequence[int], copies: Tensor | None = None,
             inspect: Callable | None = None, shares: dict | None = None,
             captured: dict | None = None, masks: dict | None = None,
             handed: dict | None = None) -> tuple[Tensor, ...]:
    """Relevance of every model input, from ``top`` at the explained tensor.

    ``handed``: if given, its keys (call names) receive a list, one per input of that
    call, of the relevance the call hands down to that input (zeros where it gives none,
    or where no relevance reaches the call), before other readers of the input add
    theirs. Like ``captured``, not set to NaN on an overflow.

    ``masks``: if given, tensor key -> a factor that multiplies the relevance of that
    call output once all its consumers have contributed, before the call (and its
    capture) reads it (conditional heatmaps: one channel per copy). Then ``top`` holds
    ONE relevance set: the ``copies`` sets are equal above the masked call, so the pass
    carries one until it reaches that call, and there tiles every relevance pending
    (and any share or capture already taken) ``copies`` times.

    ``captured``: if given, its keys (tensor keys of call outputs) receive the relevance
    each of those tensors holds when the pass reaches the call computing it (the sum
    over all its consumers; zeros where no relevance reaches it), at no extra cost. They
    are not set to NaN on an overflow: the input maps are, and a caller checks those.

    ``shares``: if given, filled with the share of every embedding that reports one
    apart from the input maps (``step.reports_share`` and not ``step.is_token``: position
    and segment embeddings), keyed by ``step.share_name``.

    ``copies``: ``top`` stacks that many relevance sets (see the module docstring).
    ``inspect(step, rule, lower)``, if given, sees each call's input relevance. Without
    it, the divisions' overflow tests are deferred
    (:func:`~dtd_keras.engine.propagation.deferred_overflow_check`): every map is NaN if any
    denominator overflowed, and :func:`dtd_keras.engine.diagnose.diagnose` (which inspects) then
    finds the layer."""
    if inspect is None:
        with deferred_overflow_check() as flags:
            maps = _backward(steps, values, explained_key, top, input_keys, copies, None,
                             shares, captured, masks, handed)
        bad = overflowed(flags)
        if shares:
            shares.update((k, tf.where(bad, tf.constant(np.nan, m.dtype), m))
                          for k, m in shares.items())
        return tuple(tf.where(bad, tf.constant(np.nan, m.dtype), m) for m in maps)
    return _backward(steps, values, explained_key, top, input_keys, copies, inspect, shares,
                     captured, masks, handed)


def _backward(steps: Steps, values: dict, explained_key: int, top: Tensor,
              input_keys: Sequence[int], copies: Tensor | None,
              inspect: Callable | None, shares: dict | None = None,
              captured: dict | None = None, masks: dict | None = None,
              handed: dict | None = None) -> tuple[Tensor, ...]:
    def zeros(key: int) -> Tensor:  # float32 also for integer tensors (token ids)
        value = values[key]
        zero = tf.zeros_like(value) if value.dtype.is_floating else tf.zeros(
            tf.shape(value), tf.float32)
        return zero if copies is None else tile(zero, copies)

    relevance = {explained_key: top}
    late, copies = (copies, None) if masks else (None, copies)  # tiled at the masked call
    sparse: set = set()  # keys whose copy k holds channel c_k alone (conditions.py)
    for step, rule in reversed(steps):
        call = step.call
        if late is not None and any(k in masks for k in call.outputs):
            _fan_out(late, relevance, captured, shares)
            copies, late = late, None
        upper = [relevance.pop(k, None) for k in call.outputs]
        reported = (shares is not None and getattr(step, "reports_share", False)
                    and not step.is_token)
        if all(r is None for r in upper) and not reported:
            if handed is not None and call.name in handed:
                handed[call.name] = [zeros(k) for k in call.inputs]
            continue
        upper = [zeros(k) if r is None else r for k, r in zip(call.outputs, upper)]
        if masks:
            upper = [r * masks[k] if k in masks else r for k, r in zip(call.outputs, upper)]
            sparse.update(k for k in call.outputs if k in masks)
        reads_sparse = len(call.outputs) == 1 and call.outputs[0] in sparse
        if captured is not None:
            captured.update((k, r) for k, r in zip(call.outputs, upper) if k in captured)
        if reported:  # an embedding's share, apart from the input maps
            shares[step.share_name] = step.share(upper)
        inputs = [_late(values, k, upper) for k in call.inputs]
        outputs = [_late(values, k, upper) for k in call.outputs]
        extra = {} if _kept(step) not in values else {"kept": _late(values, _kept(step), upper)}
        axis = sparse_axis(step, rule, masks) if reads_sparse else None
        if axis is not None:  # channel c_k alone for copy k
            lower = sparse_relevance(step, rule, inputs, upper, masks, axis, **extra)
        elif copies is None:
            lower = step.relevance(inputs, outputs, upper, rule, **extra)
        else:
            lower = step.relevance_many(inputs, outputs, upper, rule, copies, **extra)
        if inspect is not None:
            inspect(step, rule, lower)
        if handed is not None and call.name in handed:
            handed[call.name] = [zeros(k) if r is None else r for k, r in zip(call.inputs, lower)]
        for key, r in zip(call.inputs, lower):
            if r is None:  # no relevance for this input (an integer branch)
                continue
            if key in relevance:  # a sum: sparse only if every part is (kept simple)
                sparse.discard(key)
            elif reads_sparse and passes_channels(step):
                sparse.add(key)
            relevance[key] = r if key not in relevance else relevance[key] + r
    if late is not None:  # no relevance reached the masked call
        _fan_out(late, relevance, captured, shares)
        copies = late
    if captured is not None:  # no relevance reached these outputs
        captured.update([(k, zeros(k)) for k, r in captured.items() if r is None])
    return tuple(relevance.get(k, zeros(k)) for k in input_keys)


def _fan_out(copies: Tensor, *held: dict | None) -> None:
    """Tile every tensor in the dicts ``held`` ``copies`` times (copy-major), in place."""
    for found in held:
        if found:
            found.update((k, tile(r, copies)) for k, r in found.items() if r is not None)


def unstack(maps: Sequence[Tensor], copies: Tensor) -> tuple[Tensor, ...]:
    """``[K·batch, …]`` copy-major maps as ``[batch, K, …]``."""
    out = []
    for m in maps:
        rank = len(m.shape)
        shape = tf.concat([tf.reshape(copies, [1]), [-1], tf.shape(m)[1:]], 0)
        out.append(tf.transpose(tf.reshape(m, shape), [1, 0, *range(2, rank + 1)]))
    return tuple(out)
