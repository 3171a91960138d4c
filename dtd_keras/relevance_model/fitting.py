"""Fitting one relevance model: the held-out split, seeded batches, training, the R²s."""

from __future__ import annotations

import math
import warnings
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ..errors import NumericalError
from .layer import MinMaxRelevance, r_squared, r_squared_of_totals, rms

__all__ = ["MIN_HELD_OUT", "MIN_TRAINING", "FitScores", "check_counts", "score", "split",
           "train"]

MIN_HELD_OUT = 2   # R² needs variance over held-out samples
MIN_TRAINING = 2


class FitScores(dict):
    r"""What :meth:`MinMaxDTD.fit` returns: ``{layer: R²}`` over held-out samples and the
    layer's neurons (a plain dict of floats, as before), and in :attr:`totals`
    ``{layer: R²}`` of the per-sample totals :math:`\sum_k R_k` against
    :math:`\sum_k \hat R_k` (what a heatmap sums to)."""

    def __init__(self, neurons: dict[str, float], totals: dict[str, float]) -> None:
        super().__init__(neurons)
        self.totals = dict(totals)

    def __repr__(self) -> str:
        return f"FitScores(neurons={dict(self)!r}, totals={self.totals!r})"


def needed_samples(validation_split: float) -> int:
    """The fewest samples whose ``validation_split`` share holds out and leaves enough."""
    n = max(MIN_HELD_OUT + MIN_TRAINING, int((MIN_HELD_OUT - 0.5) / validation_split),
            int((MIN_TRAINING - 0.5) / (1.0 - validation_split)))
    while True:
        held = int(round(n * validation_split))
        if held >= MIN_HELD_OUT and n - held >= MIN_TRAINING:
            return n
        n += 1


def check_counts(training: int, held_out: int, how: str, hint: str = "") -> None:
    """Refuse fewer than :data:`MIN_TRAINING` training or :data:`MIN_HELD_OUT` held-out
    samples (``how``: where they came from; ``hint``: what to do)."""
    if training < MIN_TRAINING or held_out < MIN_HELD_OUT:
        raise ValueError(
            f"MinMaxDTD.fit needs at least {MIN_TRAINING} training and {MIN_HELD_OUT} "
            f"held-out samples (R² is undefined on fewer); {how} gives {training} training "
            f"and {held_out} held-out{hint}")


def split(n: int, validation_split: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted ``(training, held-out)`` indices: a seeded random ``validation_split`` share
    of ``n`` samples held out."""
    held = int(round(n * validation_split))
    if held < MIN_HELD_OUT or n - held < MIN_TRAINING:
        check_counts(n - held, held, f"validation_split={validation_split:g} of {n} samples",
                     f": give at least {needed_samples(validation_split)} samples, or "
                     "validation_data")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[held:]), np.sort(order[:held])


def _batches(arrays: tuple[np.ndarray, ...], epochs: int, batch_size: int, seed: int
             ) -> tuple[tf.data.Dataset, int]:
    """``((x, context), R)`` batches for all epochs, reshuffled each epoch from ``seed``
    (numpy's generator: independent of TensorFlow's and Python's global random state)."""
    n = len(arrays[0])
    rng = np.random.default_rng(seed)
    order = np.stack([rng.permutation(n) for _ in range(epochs)]).astype(np.int64)
    tensors = tuple(tf.constant(a) for a in arrays)

    def epoch(indices: tf.Tensor) -> tf.data.Dataset:
        return tf.data.Dataset.from_tensor_slices(indices).batch(batch_size)

    def gather(indices: tf.Tensor) -> tuple:
        x, context, relevance = (tf.gather(t, indices) for t in tensors)
        return (x, context), relevance

    dataset = tf.data.Dataset.from_tensor_slices(order).flat_map(epoch).map(gather)
    return dataset.prefetch(2), math.ceil(n / batch_size)


def train(model: MinMaxRelevance, data: tuple[np.ndarray, ...], held: tuple[np.ndarray, ...],
          *, epochs: int, batch_size: int, learning_rate: float, verbose: Any, seed: int
          ) -> dict[str, list[float]]:
    """Fit ``model`` to ``data = (x, context, R)`` from fresh weights drawn from ``seed``,
    by Adam on the mean squared error, on inputs, context and targets divided by their
    root mean square (folded back into the weights afterwards, exactly); ``held`` is the
    validation data. Deterministic given ``seed``. Returns the Keras history."""
    xs, cs, rs = data
    hx, hc, hr = held
    sx, sc, sr = (rms(a) for a in (xs, cs, rs))
    model.reset(seed)
    x_in, c_in = keras.Input(xs.shape[1:]), keras.Input(cs.shape[1:])
    trainer = keras.Model([x_in, c_in], model([x_in, c_in]))
    trainer.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse")
    batches, steps = _batches((xs / sx, cs / sc, rs / sr), epochs, batch_size, seed)
    history = trainer.fit(batches, steps_per_epoch=steps, epochs=epochs, verbose=verbose,
                          shuffle=False, validation_data=([hx / sx, hc / sc], hr / sr))
    model.rescale(sx, sc, sr)
    return {k: [float(v) for v in vals] for k, vals in history.history.items()}


def score(name: str, true: np.ndarray, predicted: np.ndarray) -> tuple[float, float]:
    """Held-out ``(R² over neurons, R² of per-sample totals)`` at layer ``name``.

    Where the true relevance (or its totals) does not vary over the held-out samples, R²
    is undefined: reported as scikit-learn does (1.0 for an exact fit, else 0.0), with a
    warning. A prediction that is not finite (weights diverged) is refused."""
    if not np.all(np.isfinite(predicted)):
        raise NumericalError(
            f"the fitted relevance model of layer '{name}' predicts NaN or infinite "
            "relevance on the held-out data (training diverged): fit again with a smaller "
            "learning_rate")
    values = []
    for what, function in (("relevance", r_squared),
                           ("per-sample total relevance", r_squared_of_totals)):
        value = function(true, predicted)
        if math.isnan(value):
            value = function(true, predicted, force_finite=True)
            error = float(np.sqrt(np.mean((np.asarray(true, np.float64) - predicted) ** 2)))
            warnings.warn(
                f"MinMaxDTD.fit: the held-out true {what} at layer '{name}' does not vary "
                f"over its {len(true)} samples, so its R² is undefined; reported as "
                f"{value:g} (scikit-learn's convention: 1 for an exact fit, else 0). The "
                f"root mean square error of R̂ is {error:.3g}", UserWarning, stacklevel=3)
        values.append(value)
    return values[0], values[1]
