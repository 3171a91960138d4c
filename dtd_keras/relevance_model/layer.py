"""The relevance model of one layer (a Keras layer) and the R² of its fit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from .arguments import integer

__all__ = ["MinMaxRelevance", "NotFittedError", "r_squared", "r_squared_of_totals"]

Tensor = Any


class NotFittedError(RuntimeError):
    """A :class:`MinMaxDTD` was asked for relevance before its relevance models were fitted."""


def r_squared(true: np.ndarray, predicted: np.ndarray, force_finite: bool = False) -> float:
    r"""Coefficient of determination over samples (axis 0) and neurons (the other axes).

    :math:`R^2 = 1 - \sum_{n,k} (R_{nk} - \hat R_{nk})^2 / \sum_{n,k} (R_{nk} - \bar R_k)^2`
    with :math:`\bar R_k` the mean over samples of neuron :math:`k` (scikit-learn's
    ``r2_score(..., multioutput="variance_weighted")``). When the true relevance does not
    vary (fewer than two samples, or all alike) :math:`R^2` is undefined: NaN, or with
    ``force_finite`` scikit-learn's convention, 1.0 for an exact prediction and 0.0
    otherwise.
    """
    t = np.asarray(true, dtype=np.float64).reshape(len(true), -1)
    p = np.asarray(predicted, dtype=np.float64).reshape(len(predicted), -1)
    if t.shape != p.shape:
        raise ValueError(f"true relevance has shape {t.shape}, predicted {p.shape}")
    total = np.sum((t - t.mean(axis=0)) ** 2) if len(t) else 0.0
    error = np.sum((t - p) ** 2)
    if total == 0:
        if not force_finite:
            return float("nan")
        return 1.0 if error == 0 else 0.0
    return float(1.0 - error / total)


def r_squared_of_totals(true: np.ndarray, predicted: np.ndarray,
                        force_finite: bool = False) -> float:
    r""":func:`r_squared` of the per-sample totals :math:`\sum_k R_{nk}` against
    :math:`\sum_k \hat R_{nk}`: how well the relevance model gets the relevance a
    sample's heatmap sums to (a high per-neuron :math:`R^2` can hide a total that is
    systematically too small)."""
    t = np.asarray(true, dtype=np.float64)
    p = np.asarray(predicted, dtype=np.float64)
    if t.shape != p.shape:
        raise ValueError(f"true relevance has shape {t.shape}, predicted {p.shape}")
    return r_squared(t.reshape(len(t), -1).sum(1, keepdims=True),
                     p.reshape(len(p), -1).sum(1, keepdims=True), force_finite)


class MinMaxRelevance(keras.layers.Layer):
    r"""The min-max relevance model of one Dense or Conv layer.

    Equations: :mod:`dtd_keras.relevance_model`.

    Called on ``[x, context]`` (``x`` the layer's input, ``context`` the flattened
    relevance of the layer above) it returns :math:`\hat R`, shaped like the layer's
    output. ``kind`` is ``"dense"`` or ``"conv"``; ``conv`` holds the convolution's
    ``strides``, ``padding`` and ``dilation_rate``; ``output_shape`` is the layer's
    output shape per sample. Every detection neuron :math:`j` (for a convolution: every
    position and detection channel) has its own inhibition weights :math:`v'_{\cdot j}`
    and :math:`d_j`.
    """

    def __init__(self, kind: str, units: int, input_shape: Sequence[int], context_size: int,
                 output_shape: Sequence[int] | None = None, pool_size: int = 4,
                 kernel_size: Sequence[int] | None = None, conv: dict | None = None,
                 seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if kind not in ("dense", "conv"):
            raise ValueError(f"kind must be 'dense' or 'conv', got {kind!r}")
        pool_size = integer(pool_size, "pool_size")
        self.kind = kind
        self.units = int(units)
        self.pool_size = int(pool_size)
        self.sample_shape = tuple(int(d) for d in input_shape)
        self.out_shape = (self.units,) if output_shape is None else tuple(
            int(d) for d in output_shape)
        if self.out_shape[-1] != self.units:
            raise ValueError(f"output_shape {self.out_shape} must end in units={self.units}")
        self.context_size = int(context_size)
        self.kernel_size = None if kernel_size is None else tuple(int(k) for k in kernel_size)
        self.conv = dict(conv or {})
        self.seed = seed
        self.detectors = self.units * self.pool_size
        positions = int(np.prod(self.out_shape[:-1], dtype=np.int64))
        if kind == "dense":
            shape = (self.sample_shape[-1], self.detectors)
        else:
            shape = (*self.kernel_size, self.sample_shape[-1], self.detectors)
        # zeros here, then reset(seed): an unseeded default initializer would draw its
        # seed from Python's global random state
        self.kernel = self.add_weight(name="kernel", shape=shape, initializer="zeros")
        self.context_kernel = self.add_weight(
            name="context_kernel", shape=(self.context_size, positions * self.detectors),
            initializer="zeros")
        self.context_bias = self.add_weight(name="context_bias",
                                            shape=(positions * self.detectors,),
                                            initializer="zeros")
        self.reset(seed)
        self.built = True

    def reset(self, seed: int | None = None) -> None:
        """Draw fresh initial weights: Glorot-uniform kernels, zero ``d`` (seeded)."""
        for i, variable in enumerate((self.kernel, self.context_kernel)):
            init = keras.initializers.GlorotUniform(seed=None if seed is None else seed + i)
            variable.assign(init(variable.shape))
        self.context_bias.assign(keras.ops.zeros(self.context_bias.shape))

    def rescale(self, x: float, context: float, relevance: float) -> None:
        """Fold input scales into the weights: the model of ``(x/sx, c/sc) -> R/sR`` becomes
        the model of ``(x, c) -> R`` (exact: ``max``/``min`` with 0 are positively
        homogeneous)."""
        self.kernel.assign(self.kernel * (relevance / x))
        self.context_kernel.assign(self.context_kernel * (relevance / context))
        self.context_bias.assign(self.context_bias * relevance)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(kind=self.kind, units=self.units, input_shape=list(self.sample_shape),
                      context_size=self.context_size, output_shape=list(self.out_shape),
                      pool_size=self.pool_size,
                      kernel_size=None if self.kernel_size is None else list(self.kernel_size),
                      conv=self.conv, seed=self.seed)
        return config

    def linear(self, x: Tensor, kernel: Tensor, bias: Tensor | None = None) -> Tensor:
        r""":math:`\sum_i x_i v_{ij}` with any kernel (the map the rule decomposes)."""
        if self.kind == "dense":
            z = keras.ops.matmul(x, kernel)
        else:
            z = keras.ops.conv(x, kernel, strides=self.conv["strides"],
                               padding=self.conv["padding"],
                               dilation_rate=self.conv["dilation_rate"],
                               data_format="channels_last")
        return z if bias is None else z + bias

    def inhibition(self, context: Tensor) -> Tensor:
        r"""Inhibition :math:`a_j = \min(0, \sum_l R_l v'_{lj} + d_j)`, never positive.

        Shape ``(batch, *output_shape[:-1], detectors)``.
        """
        a = keras.ops.matmul(context, self.context_kernel) + self.context_bias
        a = keras.ops.reshape(a, (-1, *self.out_shape[:-1], self.detectors))
        return keras.ops.minimum(a, 0.0)

    def detect(self, x: Tensor, context: Tensor) -> Tensor:
        r"""Detection neurons :math:`y_j = \max(0, \sum_i x_i v_{ij} + a_j)`."""
        return keras.ops.relu(self.linear(x, self.kernel) + self.inhibition(context))

    def pool(self, y: Tensor) -> Tensor:
        r"""Sum pooling :math:`\hat R_k = \sum_{j \in \mathrm{pool}(k)} y_j`
        (detection channels ``k·m … k·m + m − 1`` form pool ``k``)."""
        grouped = keras.ops.reshape(y, (-1, *self.out_shape, self.pool_size))
        return keras.ops.sum(grouped, axis=-1)

    def call(self, inputs: Sequence[Tensor]) -> Tensor:
        x, context = inputs
        return self.pool(self.detect(x, context))


def rms(a: np.ndarray) -> float:
    """Root mean square, 1 for an all-zero array (nothing to scale)."""
    value = float(np.sqrt(np.mean(np.square(a, dtype=np.float64)))) if a.size else 0.0
    return value if value > 0 else 1.0
