"""Similarity of two relevance maps: Spearman rank correlation and SSIM (numpy only)."""

from __future__ import annotations

import numpy as np

__all__ = ["rank", "spearman", "ssim"]


def rank(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n of a 1-D array, ties sharing their average rank."""
    values = np.asarray(values, dtype=np.float64).ravel()
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    starts = np.r_[True, sorted_values[1:] != sorted_values[:-1]]
    group = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    last = np.r_[first[1:], len(values)] - 1
    ranks = np.empty(len(values))
    ranks[order] = (first[group] + last[group]) / 2.0 + 1.0
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two maps (flattened): Pearson correlation of ranks.

    A constant map has no ranks to correlate: the result is 1 if both maps are equal,
    else 0 (documented choice; the textbook value is undefined).
    """
    ra, rb = rank(a), rank(b)
    if ra.shape != rb.shape:
        raise ValueError(f"maps differ in size: {np.size(a)} and {np.size(b)}")
    da, db = ra - ra.mean(), rb - rb.mean()
    norm = np.sqrt((da * da).sum() * (db * db).sum())
    if norm == 0:
        return 1.0 if np.array_equal(np.ravel(a), np.ravel(b)) else 0.0
    return float((da * db).sum() / norm)


def _box_mean(x: np.ndarray, window: tuple[int, ...]) -> np.ndarray:
    """Mean over every full window position ('valid'), axis by axis with cumulative sums."""
    for axis, w in enumerate(window):
        c = np.cumsum(np.moveaxis(x, axis, 0), axis=0)
        c = np.concatenate([np.zeros_like(c[:1]), c], axis=0)
        x = np.moveaxis((c[w:] - c[:-w]) / w, 0, axis)
    return x


def ssim(a: np.ndarray, b: np.ndarray, window: int = 7, data_range: float = 1.0) -> float:
    r"""Mean structural similarity (Wang et al. 2004) of two maps of the same shape.

    Local means, variances and covariance over a uniform ``window`` (per axis, at most
    the axis length; scikit-image's default window), :math:`C_1 = (0.01 L)^2`,
    :math:`C_2 = (0.03 L)^2` with ``L = data_range``; the mean over all full windows.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"maps differ in shape: {a.shape} and {b.shape}")
    win = tuple(min(window, s) for s in a.shape)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    ma, mb = _box_mean(a, win), _box_mean(b, win)
    n = float(np.prod(win))
    correction = n / (n - 1) if n > 1 else 1.0  # sample (co)variances, as scikit-image
    va = (_box_mean(a * a, win) - ma * ma) * correction
    vb = (_box_mean(b * b, win) - mb * mb) * correction
    cov = (_box_mean(a * b, win) - ma * mb) * correction
    s = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2))
    return float(s.mean())
