"""The data a relevance model is fitted to and checked on: ``(x, R, context)`` at each
modelled layer, collected in batches through the analyzer's own backward pass, and the
relevance model's :math:`\\hat R` on such data.

x (the values the layer reads) and R (the relevance at its output) come from the
analyzer's layer hook (``explain``'s ``layers=``, ``layer_inputs=True``); the context is
what the :class:`~dtd_keras.relevance_model.steps.ContextRecorder` above the layer noted
on the way down."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ..errors import NumericalError
from .layer import MinMaxRelevance

__all__ = ["Collector", "predict"]

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]


class Collector:
    """Collects ``(x, R, context)`` at every modelled layer of ``owner`` (a
    :class:`~dtd_keras.MinMaxDTD`): one traced pass per set of active (already fitted)
    layers, run batch by batch."""

    def __init__(self, owner: Any) -> None:
        self.owner = owner
        self._function = tf.function(self._graph, autograph=False)
        self._concrete: dict[tuple[str, ...], Any] = {}

    def _graph(self, inputs: tuple, neuron: tf.Tensor, active: tuple[str, ...]):
        """(x, R, context) at each chosen layer: the backward pass through the relevance
        models of the ``active`` layers, training-free DTD everywhere else. x and R come
        from the layer hook in the same pass; the context is what the
        :class:`ContextRecorder` above noted on the way down."""
        owner = self.owner
        owner._mode, owner._active = "collect", frozenset(active)
        try:
            out, _, _ = owner._relevance_graph(inputs, neuron, layers=tuple(owner.layers),
                                               layer_inputs=True)
            context = dict(owner._trace_context)
        finally:
            owner._mode, owner._active = "model", frozenset()
        # the outputs: the maps and shares, each layer's output relevance, what it hands
        # down to its one input, then that input's value
        below, count = len(out) - 3 * len(owner.layers), len(owner.layers)
        maps, relevance, values = out[:below], out[below:below + count], out[below + 2 * count:]
        # an overflowing denominator makes the maps NaN (the check is deferred to the end
        # of the pass), not the values read on the way: report it with them
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(m)) for m in maps])
        return tuple((values[i], relevance[i], context[name])
                     for i, name in enumerate(owner.layers)), finite

    def arrays(self, arrays: list[np.ndarray], chosen: np.ndarray, batch_size: int,
               active: tuple[str, ...] = ()) -> dict[str, Arrays]:
        """``{layer: (x, R, context)}`` for the inputs ``arrays`` and one explained neuron
        per sample (``chosen``), ``batch_size`` samples per pass, through the relevance
        models of the ``active`` layers. Refuses relevance that is not finite."""
        if active not in self._concrete:
            self._concrete[active] = self._function.get_concrete_function(
                self.owner.input_specs, tf.TensorSpec((None,), tf.int32), active)
        collect = self._concrete[active]
        n = arrays[0].shape[0]
        parts: list[tuple] = []
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            out, finite = collect(
                tuple(tf.constant(a[start:stop]) for a in arrays),
                tf.constant(chosen[start:stop]), active)
            if not bool(finite):
                raise NumericalError(
                    f"the training-free relevance of samples {start}–{stop - 1} is not "
                    "finite (a rule's denominators overflow float32, or the weights hold "
                    "NaN); cannot fit a relevance model to it")
            parts.append(tuple(tuple(t.numpy() for t in layer) for layer in out))
        result = {}
        for i, name in enumerate(self.owner.layers):
            x, r, c = (np.concatenate([p[i][j] for p in parts]) for j in range(3))
            if not (np.all(np.isfinite(r)) and np.all(np.isfinite(c))):
                raise ValueError(f"the training-free relevance at layer '{name}' has NaN or "
                                 "infinite values; cannot fit a relevance model to it")
            result[name] = (x, r, c)
        return result


def predict(model: MinMaxRelevance, x: np.ndarray, context: np.ndarray,
            batch_size: int = 256) -> np.ndarray:
    r"""The relevance model's :math:`\hat R` for collected ``x`` and ``context``, in
    batches of ``batch_size``."""
    return np.concatenate([
        keras.ops.convert_to_numpy(model([x[i:i + batch_size], context[i:i + batch_size]]))
        for i in range(0, len(x), batch_size)]) if len(x) else np.zeros((0,))
