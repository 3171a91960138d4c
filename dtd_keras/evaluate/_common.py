"""Shared helpers of the metrics: calling explainers, the model's logit, plotting."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ..engine.domains import REAL
from ..engine.inputs import check_inputs
from ..engine.neurons import parse_neurons
from ..explanation import Explanation

__all__ = ["LogitFunction", "as_batch", "explain_with", "figure", "positive_int"]


def positive_int(value: Any, name: str) -> int:
    """``value`` as an int >= 1 (a Python or numpy integer, not a bool); a ValueError
    naming ``name`` otherwise (a float such as 2.5 is refused, not truncated)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _checked_against(against: Any, x: Any, name: str) -> np.ndarray:
    """``x`` checked as ``explain`` checks it (:func:`dtd_keras.engine.inputs.check_inputs`:
    count, dtype, shape against the model, finiteness, declared domain)."""
    if hasattr(against, "check_inputs"):  # an analyzer, MinMaxDTD or RandomBaseline
        arrays = against.check_inputs(x)
    else:
        from ..engine.graph import walk

        model = against if isinstance(against, keras.Model) else against.model
        graph = walk(model)
        arrays = check_inputs(graph, [REAL] * len(graph.inputs), x)
    if len(arrays) != 1:
        raise ValueError(f"the metrics take single-input models; this model has "
                         f"{len(arrays)} inputs")
    return arrays[0]


def as_batch(x: Any, name: str = "x", *, against: Any = None,
             empty: bool = False) -> np.ndarray:
    """``x`` as a finite float32 array with a batch axis; a clear error otherwise.

    ``against``: a Keras model, analyzer, :class:`~dtd_keras.MinMaxDTD` or baseline to
    check ``x`` against before TensorFlow sees it, as ``explain`` does (shape against the
    model's input, declared domain); a callable explainer without a model is not
    checked. ``empty``: accept zero samples (else an error naming ``name``).
    """
    if isinstance(x, (list, tuple)):
        raise ValueError(f"{name}: the metrics take single-input models; got a list of "
                         f"{len(x)} arrays")
    if against is not None and (isinstance(against, keras.Model)
                                or hasattr(against, "check_inputs")
                                or isinstance(getattr(against, "model", None), keras.Model)):
        array = _checked_against(against, x, name)
    else:
        array = np.asarray(x.numpy() if isinstance(x, tf.Tensor) else x, dtype=np.float32)
    if array.ndim < 2:
        raise ValueError(f"{name} needs a batch axis and at least one feature axis; got "
                         f"shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains {np.count_nonzero(~np.isfinite(array))} NaN or "
                         "infinite values")
    if len(array) == 0 and not empty:
        raise ValueError(f"{name} holds no samples (shape {array.shape}); the metrics need "
                         "at least one")
    return array


def explain_with(explainer: Any, x: np.ndarray, neuron: Any = None) -> Explanation:
    """Relevance of ``x`` from anything that explains: an analyzer or baseline with
    ``explain(x, neuron)``, one with ``analyze(x, neuron)``, or a callable
    ``f(x, neuron) -> relevance``. Explained logits are NaN where the explainer gives none.
    """
    if hasattr(explainer, "explain"):
        explanation = explainer.explain(x, neuron)
    elif hasattr(explainer, "analyze") or callable(explainer):
        call = explainer.analyze if hasattr(explainer, "analyze") else explainer
        relevance = np.asarray(call(x, neuron), dtype=np.float32)
        chosen = np.full(len(x), -1) if neuron is None else np.broadcast_to(
            np.asarray(neuron), (len(x),))
        explanation = Explanation(relevance, np.asarray(chosen), np.full(len(x), np.nan))
    else:
        raise TypeError(f"cannot explain with {explainer!r}: give an analyzer (dk.DTD, "
                        "dk.create_analyzer(...), dk.MinMaxDTD), a baseline, or a callable "
                        "f(x, neuron) -> relevance")
    relevance = explanation.relevance
    if isinstance(relevance, list):
        raise ValueError("the metrics take single-input models; the explainer returned "
                         f"{len(relevance)} maps")
    if relevance.shape != x.shape:
        raise ValueError(f"the explainer returned relevance of shape {relevance.shape} for "
                         f"inputs of shape {x.shape}")
    return explanation


class LogitFunction:
    """The explained logit of ``model`` (pre-softmax, as every analyzer explains it),
    compiled once with a free batch axis: ``fn(x, neuron)`` with ``neuron = -1`` for the
    top logit; returns ``(chosen neuron, logit)`` as numpy arrays."""

    def __init__(self, model: keras.Model, batch_size: int = 256) -> None:
        from ..presets import Gradient

        positive_int(batch_size, "batch_size")
        with warnings.catch_warnings():  # only the forward pass is used: no rule warnings
            warnings.simplefilter("ignore")
            if not isinstance(model, keras.Model):  # an analyzer or baseline: its model
                model = getattr(model, "model", model)
            self._analyzer = Gradient(model)
        if len(self._analyzer.graph.inputs) != 1:
            raise ValueError("the metrics take single-input models; this model has "
                             f"{len(self._analyzer.graph.inputs)} inputs")
        self.batch_size = batch_size
        spec = self._analyzer.input_specs[0]
        self._fn = tf.function(self._forward, autograph=False).get_concrete_function(
            spec, tf.TensorSpec((None,), tf.int32))

    def _forward(self, x: tf.Tensor, neuron: tf.Tensor):
        chosen, logit = self._analyzer.select_logits((x,), neuron)
        return chosen, logit

    @property
    def output_size(self) -> int | None:
        """Neurons in the explained output."""
        return self._analyzer.output_size

    def check_inputs(self, x: Any) -> list[np.ndarray]:
        """``x`` checked against the model as ``explain`` checks it (shape, finiteness),
        before TensorFlow sees it: one float32 array per model input."""
        return self._analyzer.check_inputs(x)

    def __call__(self, x: np.ndarray, neuron: Any = None) -> tuple[np.ndarray, np.ndarray]:
        # checked on every call: a tensor of the wrong rank aborts the process in TF
        x = self.check_inputs(x)[0]
        n = len(x)
        chosen = parse_neurons(neuron, n, self._analyzer.output_size)
        picked, logits = [], []
        for start in range(0, n, self.batch_size):
            p, v = self._fn(tf.constant(x[start:start + self.batch_size]),
                            tf.constant(chosen[start:start + self.batch_size]))
            picked.append(p.numpy())
            logits.append(v.numpy())
        if not picked:
            return np.zeros(0, np.int32), np.zeros(0, np.float32)
        return np.concatenate(picked), np.concatenate(logits)


def figure(width: float, height: float) -> Any:
    """A standalone matplotlib Figure (no pyplot state); a clear error without matplotlib."""
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError("plot() needs matplotlib: pip install 'dtd-keras[viz]'") from error
    return Figure(figsize=(width, height), layout="constrained")


def reduce_maps(maps: np.ndarray, channels: bool) -> np.ndarray:
    """``(N, ...)`` maps flattened per sample, channels summed first if ``channels``."""
    maps = np.asarray(maps, dtype=np.float64)
    if channels:
        maps = maps.sum(axis=-1)
    return maps.reshape(len(maps), -1)


Factory = Callable[[keras.Model], Any]
