"""Turn relevance maps into pictures people can read.

Relevance maps ``R`` are numpy arrays shaped like the model input:

* one sample: ``(H, W)``, ``(H, W, C)`` or, with ``axis=0``, ``(C, H, W)``;
* a batch: ``(N, H, W, C)`` or, with ``axis=1``, ``(N, C, H, W)``;
* a batch of already reduced 2-D maps ``(N, H, W)``: pass ``axis=None``.

The pipeline is ``reduce_channels`` (one 2-D map per sample) -> ``normalize``
(symmetric scaling into ``[-1, 1]``, 0 stays 0) -> a diverging colormap
(``heatmap``), optionally blended over the input image (``overlay``) and laid
out in a figure (``grid``) or written to disk (``save_png``).

This module needs only numpy; matplotlib (``pip install 'dtd-keras[viz]'``) is
imported lazily by the functions that draw.  It never uses pyplot, never
registers colormaps and never touches ``rcParams``, so it works headless and
leaves no global matplotlib state behind.

The colormaps ``BWR`` (blue - white - red) and ``COLD_HOT`` (cyan - blue -
black - red - yellow) are module attributes built on first access; they are
left out of ``__all__`` so that ``from dtd_keras.image import *`` works without
matplotlib.
"""

from __future__ import annotations

import math
import operator
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.colors import Colormap
    from matplotlib.figure import Figure

__all__ = [
    "reduce_channels",
    "normalize",
    "cmap",
    "heatmap",
    "to_rgb",
    "overlay",
    "grid",
    "save_png",
]

REDUCE_METHODS: tuple[str, ...] = ("sum", "abs_sum", "max_abs", "norm")
NORMALIZE_MODES: tuple[str, ...] = ("max_abs", "percentile")

_MPL_MISSING = "dtd_keras.image needs matplotlib: pip install 'dtd-keras[viz]'"

# Odd lookup-table size: the middle entry sits exactly at 0.5, so a relevance
# of exactly 0 gets exactly the centre colour (pure white / pure black).
_LUT_SIZE = 257

_BUILTIN_COLORS: dict[str, list[tuple[float, tuple[float, float, float]]]] = {
    "bwr": [
        (0.0, (0.0, 0.0, 1.0)),  # -1: blue
        (0.5, (1.0, 1.0, 1.0)),  #  0: white
        (1.0, (1.0, 0.0, 0.0)),  # +1: red
    ],
    "cold_hot": [
        (0.0, (0.0, 1.0, 1.0)),  # -1: cyan
        (0.25, (0.0, 0.0, 1.0)),  # -0.5: blue
        (0.5, (0.0, 0.0, 0.0)),  #  0: black
        (0.75, (1.0, 0.0, 0.0)),  # +0.5: red
        (1.0, (1.0, 1.0, 0.0)),  # +1: yellow
    ],
}
_BUILTIN_ATTRS = {"BWR": "bwr", "COLD_HOT": "cold_hot"}
_CMAP_CACHE: dict[str, Colormap] = {}


# --------------------------------------------------------------------------- helpers


def _require_matplotlib() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError(_MPL_MISSING) from exc
    return matplotlib


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


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.asarray(x, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)


def _apply_cmap(values: np.ndarray, cm: Colormap) -> np.ndarray:
    """Colour values in [-1, 1] (0 at the centre of ``cm``); float RGB in [0, 1]."""
    from matplotlib.colors import LinearSegmentedColormap

    if isinstance(cm, LinearSegmentedColormap) and cm.N % 2 == 0:
        # An even lookup table has no entry exactly at 0.5; resample so 0 maps
        # onto the true centre colour.
        cm = cm.resampled(cm.N + 1)
    t = (np.clip(values, -1.0, 1.0) + 1.0) / 2.0
    return np.asarray(cm(t))[..., :3]


def _scale(maps: np.ndarray, mode: str | None, percentile: float, per_sample: bool) -> np.ndarray:
    if mode is None:
        if not np.all(np.isfinite(maps)):
            raise ValueError("R contains NaN or infinite values")
        return np.clip(maps, -1.0, 1.0)
    return _normalize(maps, mode=mode, percentile=percentile, per_sample=per_sample)


def _image_float(
    image: Any, axis: int | None, value_range: tuple[float, float] | None
) -> tuple[np.ndarray, bool]:
    """Image(s) -> float RGB in [0, 1] with channels last; return ``(rgb, batched)``."""
    img = _as_float(image, "image")
    if img.ndim == 2:
        batched = False
        img = img[..., None]
    elif img.ndim == 3 and axis is None:
        batched = True
        img = img[..., None]
    elif img.ndim in (3, 4):
        batched = img.ndim == 4
        ax = _check_axis(axis, img.ndim, img.shape, "image")
        img = np.moveaxis(img, ax, -1)
    else:
        raise _shape_error(img, "image")
    channels = img.shape[-1]
    if channels not in (1, 3, 4):
        raise ValueError(
            f"image must have 1 (grayscale), 3 (RGB) or 4 (RGBA) channels on axis {axis}; "
            f"got {channels} (shape {np.shape(image)}); for a batch of grayscale "
            "(N, H, W) images pass axis=None"
        )
    if not np.all(np.isfinite(img)):
        raise ValueError("image contains NaN or infinite values")
    img = img[..., :3] if channels == 4 else img
    if channels == 1:
        img = np.repeat(img, 3, axis=-1)

    if value_range is not None:
        lo, hi = (float(v) for v in value_range)
        if not hi > lo:
            raise ValueError(f"value_range must be (low, high) with high > low, got {value_range}")
        return np.clip((img - lo) / (hi - lo), 0.0, 1.0), batched

    # Rescale each sample by its own min / max; a constant image becomes mid-grey.
    samples = img if batched else img[None]
    flat = samples.reshape(samples.shape[0], -1)
    if flat.shape[1] == 0:
        return img.astype(np.float64), batched
    lo = flat.min(axis=1).astype(np.float64)
    span = flat.max(axis=1).astype(np.float64) - lo
    bshape = (-1,) + (1,) * (samples.ndim - 1)
    safe = np.where(span > 0, span, 1.0)
    out = (samples - lo.reshape(bshape)) / safe.reshape(bshape)
    out = np.where((span > 0).reshape(bshape), out, 0.5)
    out = np.clip(out, 0.0, 1.0)
    return (out if batched else out[0]), batched


# --------------------------------------------------------------------------- public API


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


def cmap(name: str | Colormap = "bwr") -> Colormap:
    """Look up a colormap for relevance (0 at the centre of the map).

    Parameters
    ----------
    name : str or matplotlib.colors.Colormap, default "bwr"
        ``"bwr"``: blue (negative) - white (0) - red (positive).
        ``"cold_hot"``: cyan / blue (negative) - black (0) - red / yellow
        (positive). Append ``"_r"`` to reverse either. Any other string is
        looked up among matplotlib's registered colormaps; a ``Colormap`` is
        returned unchanged.

    Returns
    -------
    matplotlib.colors.Colormap
        The built-in maps are ``LinearSegmentedColormap`` objects with an odd
        lookup table (257 entries), so a value of exactly 0 gets exactly the
        centre colour. They are built once and shared (not registered with
        matplotlib).

    Raises
    ------
    ValueError
        Unknown colormap name.
    ImportError
        matplotlib is not installed.
    """
    mpl = _require_matplotlib()
    from matplotlib.colors import Colormap, LinearSegmentedColormap

    if isinstance(name, Colormap):
        return name
    if not isinstance(name, str):
        raise ValueError(f"cmap must be a colormap name or a Colormap, got {name!r}")
    key = name.lower().replace("-", "_")
    reverse = key.endswith("_r") and key[:-2] in _BUILTIN_COLORS
    base = key[:-2] if reverse else key
    if base in _BUILTIN_COLORS:
        cached = _CMAP_CACHE.get(key)
        if cached is None:
            forward = _CMAP_CACHE.get(base)
            if forward is None:
                forward = LinearSegmentedColormap.from_list(
                    f"dtd_{base}", _BUILTIN_COLORS[base], N=_LUT_SIZE
                )
                _CMAP_CACHE[base] = forward
            cached = forward.reversed() if reverse else forward
            _CMAP_CACHE[key] = cached
        return cached
    try:
        return mpl.colormaps[name]
    except KeyError:
        raise ValueError(
            f"unknown colormap {name!r}; use 'bwr', 'cold_hot' or a matplotlib colormap name"
        ) from None


_cmap = cmap


def __getattr__(attr: str) -> Any:  # PEP 562: build BWR / COLD_HOT on first access
    if attr in _BUILTIN_ATTRS:
        return cmap(_BUILTIN_ATTRS[attr])
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_BUILTIN_ATTRS))


def heatmap(
    R: Any,
    cmap: str | Colormap = "bwr",
    reduce: str | None = "sum",
    normalize: str | None = "max_abs",
    *,
    axis: int | None = -1,
    percentile: float = 99.5,
    per_sample: bool = True,
) -> np.ndarray:
    """Render relevance as an RGB image.

    Parameters
    ----------
    R : array_like
        Relevance, see :func:`reduce_channels` for the accepted shapes.
    cmap : str or Colormap, default "bwr"
        See :func:`cmap`. Value 0 maps to the centre colour, +1 to the top
        (red for ``"bwr"``) and -1 to the bottom (blue).
    reduce : str or None, default "sum"
        Channel reduction (:func:`reduce_channels`); None if ``R`` is already
        a ``(H, W)`` map (or ``(N, H, W)`` with ``axis=None``).
    normalize : str or None, default "max_abs"
        Mode for :func:`normalize`; None if ``R`` is already in ``[-1, 1]``
        (values outside are clipped).
    axis : int or None, default -1
        Channel axis of ``R``.
    percentile : float, default 99.5
        Used with ``normalize="percentile"``.
    per_sample : bool, default True
        For a batch, normalise each sample by itself (True) or the whole batch
        on one common scale (False).

    Returns
    -------
    numpy.ndarray
        ``uint8`` RGB, ``(H, W, 3)`` or ``(N, H, W, 3)`` for a batch.
    """
    _require_matplotlib()
    cm = _cmap(cmap)
    maps, batched = _to_maps(R, axis, reduce)
    scaled = _scale(maps, normalize, percentile, per_sample and batched)
    return _to_uint8(_apply_cmap(scaled, cm))


def to_rgb(
    image: Any,
    *,
    axis: int | None = -1,
    value_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """Convert an input image (any numeric range) to ``uint8`` RGB for display.

    Parameters
    ----------
    image : array_like
        ``(H, W)`` grayscale, ``(H, W, C)`` / ``(C, H, W)`` with 1, 3 or 4
        channels on ``axis`` (alpha is dropped), a batch ``(N, H, W, C)`` /
        ``(N, C, H, W)``, or ``(N, H, W)`` grayscale with ``axis=None``.
    axis : int or None, default -1
        Channel axis (same convention as the relevance, which mirrors the model
        input).
    value_range : (float, float), optional
        Map ``low -> 0`` and ``high -> 255`` (clipping outside). By default
        each image is stretched by its own min / max; a constant image becomes
        mid-grey.

    Returns
    -------
    numpy.ndarray
        ``uint8`` ``(H, W, 3)`` or ``(N, H, W, 3)``.
    """
    rgb, _ = _image_float(image, axis, value_range)
    return _to_uint8(rgb)


def overlay(
    image: Any,
    R: Any,
    alpha: float = 0.5,
    *,
    cmap: str | Colormap = "bwr",
    reduce: str | None = "sum",
    normalize: str | None = "max_abs",
    axis: int | None = -1,
    percentile: float = 99.5,
    per_sample: bool = True,
    value_range: tuple[float, float] | None = None,
    alpha_by_relevance: bool = False,
    grayscale: bool = False,
) -> np.ndarray:
    """Blend the relevance heatmap over the input image.

    ``out = (1 - a) * image + a * heatmap`` where ``a = alpha`` (or, with
    ``alpha_by_relevance=True``, ``alpha * |normalised R|`` per pixel, so
    pixels without relevance show the plain image).

    Parameters
    ----------
    image : array_like
        Grayscale or RGB(A) input, any numeric range; see :func:`to_rgb`. Its
        spatial shape (and batch size) must match ``R``.
    R : array_like
        Relevance, see :func:`reduce_channels`.
    alpha : float, default 0.5
        Heatmap opacity in ``[0, 1]``.
    cmap, reduce, normalize, axis, percentile, per_sample
        As in :func:`heatmap`; ``axis`` is the channel axis of both ``image``
        and ``R``.
    value_range : (float, float), optional
        Input value range of ``image`` (default: its min / max).
    alpha_by_relevance : bool, default False
        Scale the opacity per pixel by the relevance magnitude.
    grayscale : bool, default False
        Convert the image to grayscale first so the heatmap colours stand out.

    Returns
    -------
    numpy.ndarray
        ``uint8`` RGB ``(H, W, 3)`` or ``(N, H, W, 3)``.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    _require_matplotlib()
    cm = _cmap(cmap)
    img, img_batched = _image_float(image, axis, value_range)
    maps, r_batched = _to_maps(R, axis, reduce)
    if img.shape[:-1] != maps.shape or img_batched != r_batched:
        raise ValueError(
            f"image (shape {np.shape(image)}) and R (shape {np.shape(R)}) do not match: "
            f"image gives {img.shape[:-1]} pixels, R gives {maps.shape}"
        )
    scaled = _scale(maps, normalize, percentile, per_sample and r_batched)
    heat = _apply_cmap(scaled, cm)
    if grayscale:
        lum = img @ np.array([0.299, 0.587, 0.114])
        img = np.repeat(lum[..., None], 3, axis=-1)
    a = alpha * np.abs(scaled)[..., None] if alpha_by_relevance else alpha
    return _to_uint8((1.0 - a) * img + a * heat)


def _panel_rgb(
    panel: Any,
    cm: Colormap,
    reduce: str | None,
    normalize: str | None,
    axis: int | None,
    percentile: float,
    where: str,
) -> np.ndarray:
    arr = np.asarray(panel)
    if arr.dtype == np.uint8:
        if arr.ndim == 2:
            return np.repeat(arr[..., None], 3, axis=-1)
        if arr.ndim == 3 and arr.shape[-1] in (3, 4):
            return arr
        if arr.ndim == 3 and arr.shape[-1] == 1:
            return np.repeat(arr, 3, axis=-1)
        raise ValueError(
            f"{where}: uint8 panels must be (H, W), (H, W, 3) or (H, W, 4) images; "
            f"got shape {arr.shape}"
        )
    rgb = heatmap(
        arr, cmap=cm, reduce=reduce, normalize=normalize, axis=axis, percentile=percentile
    )
    if rgb.ndim != 3:
        raise ValueError(
            f"{where}: shape {arr.shape} is a batch; give one panel per sample, e.g. list(batch)"
        )
    return rgb


def _is_row(x: Any) -> bool:
    return isinstance(x, (list, tuple))


def grid(
    images_or_maps: Any,
    titles: Sequence[Any] | None = None,
    ncols: int | None = None,
    *,
    row_labels: Sequence[str | None] | None = None,
    cmap: str | Colormap = "bwr",
    reduce: str | None = "sum",
    normalize: str | None = "max_abs",
    axis: int | None = -1,
    percentile: float = 99.5,
    panel_size: float = 2.5,
    dpi: float = 100,
    suptitle: str | None = None,
) -> Figure:
    """Lay out images and relevance maps as a grid of panels in a matplotlib Figure.

    Panels are drawn as follows: ``uint8`` arrays are images and shown as they
    are (``(H, W)`` gray, ``(H, W, 3|4)`` RGB(A) -- e.g. the output of
    :func:`heatmap`, :func:`overlay` or :func:`to_rgb`); every other array is a
    relevance map and rendered with :func:`heatmap` using ``cmap``,
    ``reduce``, ``normalize``, ``axis`` and ``percentile``. ``None`` leaves a
    slot empty.

    Parameters
    ----------
    images_or_maps : sequence or numpy.ndarray
        Either a flat sequence of panels (or a 4-D array, i.e. a batch, one
        panel per sample), wrapped into rows of ``ncols``; or a sequence of rows
        (each a list / tuple of panels), e.g. ``[[x0, R0_lrp, R0_dtd], [x1,
        R1_lrp, R1_dtd]]`` for a column of inputs followed by one column per
        method.
    titles : sequence, optional
        Flat input: one title per panel. Rows input: either one title per column
        (drawn above the top panel of each column) or a list of title lists,
        one per panel. ``None`` entries mean no title.
    ncols : int, optional
        Flat input: panels per row (default: all panels in one row, at most 8).
        Rows input: defaults to the longest row.
    row_labels : sequence of str, optional
        One label per row, drawn to the left of the row.
    cmap, reduce, normalize, axis, percentile
        Rendering of relevance panels, see :func:`heatmap`.
    panel_size : float, default 2.5
        Size of each panel in inches.
    dpi : float, default 100
        Figure resolution.
    suptitle : str, optional
        Title of the whole figure.

    Returns
    -------
    matplotlib.figure.Figure
        A standalone figure (not managed by pyplot) with one axes per non-empty
        panel (plus a frameless one where a row label sits on an empty slot).
        Save it with :func:`save_png` or ``fig.savefig``.
    """
    _require_matplotlib()
    from matplotlib.figure import Figure

    cm = _cmap(cmap)

    # ---- layout: a list of rows of panels
    if isinstance(images_or_maps, np.ndarray):
        items = list(images_or_maps) if images_or_maps.ndim == 4 else [images_or_maps]
        nested = False
    else:
        items = list(images_or_maps)
        nested = any(_is_row(x) for x in items)
    if not items:
        raise ValueError("grid needs at least one panel")

    if nested:
        rows = [list(r) if _is_row(r) else [r] for r in items]
        width = max(len(r) for r in rows)
        if ncols is None:
            ncols = width
        elif ncols < width:
            raise ValueError(f"ncols={ncols} is smaller than the longest row ({width} panels)")
    else:
        if ncols is None:
            ncols = min(len(items), 8)
        if ncols < 1:
            raise ValueError(f"ncols must be >= 1, got {ncols}")
        rows = [items[i : i + ncols] for i in range(0, len(items), ncols)]
    nrows = len(rows)

    # ---- titles: one per panel, same structure as rows
    panel_titles: list[list[Any]] = [[None] * len(r) for r in rows]
    if titles is not None:
        titles = list(titles)
        if nested and titles and all(_is_row(t) for t in titles):
            if len(titles) != nrows or any(
                len(t) != len(r) for t, r in zip(titles, rows, strict=True)
            ):
                raise ValueError(
                    "nested titles must match the panels row by row: "
                    f"rows have {[len(r) for r in rows]} panels, titles "
                    f"{[len(t) for t in titles]}"
                )
            panel_titles = [list(t) for t in titles]
        elif nested:
            if len(titles) > ncols:
                raise ValueError(f"got {len(titles)} column titles for {ncols} columns")
            for c, t in enumerate(titles):
                filled = [r for r in range(nrows) if c < len(rows[r]) and rows[r][c] is not None]
                top = filled[0] if filled else None
                if top is not None:
                    panel_titles[top][c] = t
        else:
            if len(titles) != len(items):
                raise ValueError(f"got {len(titles)} titles for {len(items)} panels")
            panel_titles = [titles[i : i + ncols] for i in range(0, len(titles), ncols)]

    if row_labels is not None:
        row_labels = list(row_labels)
        if len(row_labels) != nrows:
            raise ValueError(f"got {len(row_labels)} row labels for {nrows} rows")

    # ---- draw
    fig = Figure(figsize=(panel_size * ncols, panel_size * nrows), dpi=dpi, layout="constrained")
    for r, row in enumerate(rows):
        label = row_labels[r] if row_labels is not None else None
        for c in range(ncols):
            panel = row[c] if c < len(row) else None
            if panel is None and not (c == 0 and label):
                continue
            ax = fig.add_subplot(nrows, ncols, r * ncols + c + 1)
            ax.set_xticks([])
            ax.set_yticks([])
            if panel is None:
                ax.set_frame_on(False)
            else:
                rgb = _panel_rgb(
                    panel, cm, reduce, normalize, axis, percentile, f"panel ({r}, {c})"
                )
                ax.imshow(rgb, interpolation="nearest")
                title = panel_titles[r][c] if c < len(panel_titles[r]) else None
                if title:
                    ax.set_title(str(title))
            if c == 0 and label:
                ax.set_ylabel(str(label))
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def save_png(
    array_or_figure: Any,
    path: str | os.PathLike[str],
    *,
    dpi: float | None = None,
    **heatmap_kwargs: Any,
) -> Path:
    """Write a figure or an image array to a PNG file, creating parent folders.

    Parameters
    ----------
    array_or_figure : matplotlib.figure.Figure or array_like
        A figure (e.g. from :func:`grid`) is saved with ``savefig``. A ``uint8``
        array ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` is
        written pixel for pixel (gray, RGB or RGBA). Any other array is taken
        to be one relevance map and rendered with :func:`heatmap` first.
    path : str or os.PathLike
        Destination; the PNG format is used whatever the suffix.
    dpi : float, optional
        Figures only: resolution (default: the figure's own).
    **heatmap_kwargs
        Passed to :func:`heatmap` for relevance arrays.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    _require_matplotlib()
    from matplotlib.figure import Figure

    path = Path(path)
    if isinstance(array_or_figure, Figure):
        if heatmap_kwargs:
            raise ValueError(f"heatmap options {sorted(heatmap_kwargs)} do not apply to figures")
        path.parent.mkdir(parents=True, exist_ok=True)
        array_or_figure.savefig(path, format="png", dpi=dpi if dpi is not None else "figure")
        return path

    arr = np.asarray(array_or_figure)
    if arr.dtype != np.uint8:
        arr = heatmap(arr, **heatmap_kwargs)
    elif heatmap_kwargs:
        raise ValueError(
            f"heatmap options {sorted(heatmap_kwargs)} only apply to relevance arrays, "
            "not uint8 images"
        )
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (3, 4))):
        raise ValueError(
            f"save_png writes one image: (H, W), (H, W, 3) or (H, W, 4); got shape {arr.shape}"
        )
    if math.prod(arr.shape[:2]) == 0:
        raise ValueError(f"cannot write an empty image (shape {arr.shape})")
    from PIL import Image  # a hard dependency of matplotlib

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(arr)).save(path, format="PNG")
    return path
