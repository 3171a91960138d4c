"""Relevance arrays -> one 2-D map per sample, scaled symmetrically into [-1, 1].

Shapes: one sample ``(H, W)``, ``(H, W, C)`` or, with ``axis=0``, ``(C, H, W)``; a batch
``(N, H, W, C)`` or, with ``axis=1``, ``(N, C, H, W)``; a batch of 2-D maps ``(N, H, W)``
with ``axis=None``. Needs numpy only.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

__all__ = ["NORMALIZE_MODES", "REDUCE_METHODS", "normalize", "reduce_channels"]

REDUCE_METHODS: tuple[str, ...] = ("sum", "abs_sum", "max_abs", "norm")
NORMALIZE_MODES: tuple[str, ...] = ("max_abs", "percentile")


def _as_float(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise ValueError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{name} must be real-valued, got dtype {arr.dtype}")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    return arr


def _check_axis(axis: Any, ndim: int, shape: tuple[int, ...], name: str = "R") -> int:
    try:
        ax = operator.index(axis)
    except TypeError:
        raise ValueError(f"axis must be an int or None, got {axis!r}") from None
    if not -ndim <= ax < ndim:
        raise ValueError(
            f"axis {ax} is out of range for {name} with {ndim} dimensions (shape {shape})"
        )
    ax %= ndim
    if ndim == 4 and ax == 0:
        raise ValueError(
            f"axis 0 is the batch axis of the 4-D {name} (shape {shape}); "
            "use axis=-1 for (N, H, W, C) or axis=1 for (N, C, H, W)"
        )
    return ax


def _shape_error(R: np.ndarray, name: str = "R") -> ValueError:
    return ValueError(
        f"{name} must have 2 dims (H, W), 3 dims (H, W, C) / (C, H, W) / with axis=None "
        f"(N, H, W), or 4 dims (N, H, W, C) / (N, C, H, W); got {R.ndim} dims "
        f"(shape {R.shape})"
    )


def _to_maps(R: Any, axis: int | None, method: str | None) -> tuple[np.ndarray, bool]:
    """Reduce ``R`` to 2-D map(s); return ``(maps, batched)``."""
    R = _as_float(R, "R")
    batched = R.ndim == 4 or (R.ndim == 3 and axis is None)
    if method is None:
        if R.ndim == 2 or (R.ndim == 3 and axis is None):
            return R, batched
        raise ValueError(
            f"reduce=None needs R already reduced to (H, W) maps (or (N, H, W) with "
            f"axis=None); got shape {R.shape}"
        )
    return reduce_channels(R, axis=axis, method=method), batched


def _scale(maps: np.ndarray, mode: str | None, percentile: float, per_sample: bool) -> np.ndarray:
    if mode is None:
        if not np.all(np.isfinite(maps)):
            raise ValueError("R contains NaN or infinite values")
        return np.clip(maps, -1.0, 1.0)
    return _normalize(maps, mode=mode, percentile=percentile, per_sample=per_sample)


def reduce_channels(R: Any, axis: int | None = -1, method: str = "sum") -> np.ndarray:
    """Collapse the channel axis of relevance ``R`` into one 2-D map per sample.

    Parameters
    ----------
    R : array_like
        ``(H, W)`` (already a map; ``axis`` is ignored), ``(H, W, C)`` /
        ``(C, H, W)`` (one sample, channel axis ``axis``), ``(N, H, W, C)`` /
        ``(N, C, H, W)`` (batch; ``axis`` may not be 0), or ``(N, H, W)`` with
        ``axis=None`` (a batch of maps without a channel axis).
    axis : int or None, default -1
        The channel axis. ``-1`` for channels-last, ``0`` for a single
        channels-first sample, ``1`` for a channels-first batch.
    method : {"sum", "abs_sum", "max_abs", "norm"}, default "sum"
        ``"sum"``: signed sum over channels (conserves total relevance);
        ``"abs_sum"``: sum of ``|R|``; ``"max_abs"``: maximum of ``|R|``;
        ``"norm"``: L2 norm over channels. Only ``"sum"`` keeps signs.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` for one sample, ``(N, H, W)`` for a batch (floating dtype).

    Raises
    ------
    ValueError
        Unknown ``method``, an out-of-range ``axis`` or an unsupported number of
        dimensions.
    """
    if method not in REDUCE_METHODS:
        raise ValueError(
            f"unknown reduce method {method!r}; expected one of {', '.join(REDUCE_METHODS)}"
        )
    R = _as_float(R, "R")
    if R.ndim == 2 or (R.ndim == 3 and axis is None):
        ax = R.ndim
        R = R[..., None]  # single channel
    elif R.ndim in (3, 4):
        if axis is None:
            raise ValueError(
                f"axis=None means 'no channel axis' and needs R with 2 or 3 dims; "
                f"got shape {R.shape}"
            )
        ax = _check_axis(axis, R.ndim, R.shape)
    else:
        raise _shape_error(R)

    if method == "sum":
        return R.sum(axis=ax)
    if method == "abs_sum":
        return np.abs(R).sum(axis=ax)
    if method == "max_abs":
        return np.abs(R).max(axis=ax)
    return np.sqrt(np.square(R).sum(axis=ax))


def normalize(
    R: Any,
    mode: str = "max_abs",
    percentile: float = 99.5,
    *,
    per_sample: bool = False,
) -> np.ndarray:
    """Scale relevance symmetrically into ``[-1, 1]``, keeping 0 at 0 and signs intact.

    Parameters
    ----------
    R : array_like
        Relevance of any shape.
    mode : {"max_abs", "percentile"}, default "max_abs"
        ``"max_abs"`` divides by ``max |R|`` (the largest magnitude becomes
        exactly ±1). ``"percentile"`` divides by the ``percentile``-th
        percentile of ``|R|`` and clips to ``[-1, 1]``, so a few extreme pixels
        do not wash out the rest; if that percentile is 0 (very sparse maps) it
        falls back to ``max |R|``.
    percentile : float, default 99.5
        Used by ``mode="percentile"``; must lie in ``(0, 100]``.
    per_sample : bool, default False
        If True the leading axis of ``R`` is a batch axis and every ``R[i]`` is
        scaled by its own statistic. If False one scale is used for the whole
        array (useful to compare samples on a common scale).

    Returns
    -------
    numpy.ndarray
        Same shape as ``R``; floating dtype. An all-zero map (or sample) stays
        all zero -- never NaN.

    Raises
    ------
    ValueError
        Unknown ``mode``, ``percentile`` outside ``(0, 100]``, non-finite
        values in ``R``, or ``per_sample=True`` on a 0-d array.
    """
    if mode not in NORMALIZE_MODES:
        raise ValueError(
            f"unknown normalize mode {mode!r}; expected one of {', '.join(NORMALIZE_MODES)}"
        )
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    R = _as_float(R, "R")
    if per_sample and R.ndim == 0:
        raise ValueError("per_sample=True needs R with a leading batch axis; got a scalar")
    if R.size == 0:
        return R.copy()
    if not np.all(np.isfinite(R)):
        raise ValueError("R contains NaN or infinite values")

    n = R.shape[0] if per_sample else 1
    mag = np.abs(R).reshape(n, -1)
    peak = mag.max(axis=1)
    if mode == "max_abs":
        scale = peak
    else:
        scale = np.percentile(mag, percentile, axis=1).astype(R.dtype)
        scale = np.where(scale > 0, scale, peak)
    scale = np.where(scale > 0, scale, 1).astype(R.dtype)  # all-zero stays zero
    bshape = (n,) + (1,) * (R.ndim - 1) if per_sample else ()
    out = R / scale.reshape(bshape)
    return np.clip(out, -1.0, 1.0, out=out)


_normalize = normalize


