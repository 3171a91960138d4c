"""Colour relevance: the diverging colormaps and ``heatmap``.

The built-in maps ``"bwr"`` (blue - white - red) and ``"cold_hot"`` (cyan - blue - black -
red - yellow) are coloured with numpy alone, pixel for pixel as matplotlib's
``LinearSegmentedColormap`` with a 257-entry table colours them; ``cmap()`` (the
matplotlib object) and any other matplotlib colormap need matplotlib
(``pip install 'dtd-keras[viz]'``). No colormap is registered with matplotlib.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .maps import _scale, _to_maps

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.colors import Colormap

__all__ = ["cmap", "heatmap"]

_MPL_MISSING = "dtd_keras.image needs matplotlib for this: pip install 'dtd-keras[viz]'"

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
_LUT_CACHE: dict[str, np.ndarray] = {}


def _require_matplotlib() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError(_MPL_MISSING) from exc
    return matplotlib


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(np.asarray(x, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)


def _builtin_key(name: Any) -> str | None:
    """``"bwr"``, ``"cold_hot_r"``, … for the built-in maps' names, else None."""
    if not isinstance(name, str):
        return None
    key = name.lower().replace("-", "_")
    base = key[:-2] if key.endswith("_r") else key
    return key if base in _BUILTIN_COLORS else None


def _builtin_lut(key: str) -> np.ndarray:
    """The (257, 3) lookup table of a built-in map, computed as matplotlib's
    ``LinearSegmentedColormap.from_list(…, N=257)`` (and ``.reversed()``) compute it."""
    lut = _LUT_CACHE.get(key)
    if lut is not None:
        return lut
    reverse = key.endswith("_r")
    stops = _BUILTIN_COLORS[key[:-2] if reverse else key]
    n = _LUT_SIZE
    channels = []
    for c in range(3):
        points = [(x, rgb[c], rgb[c]) for x, rgb in stops]
        if reverse:
            points = [(1.0 - x, y1, y0) for x, y0, y1 in reversed(points)]
        data = np.array(points, dtype=float)
        x = data[:, 0] * (n - 1)
        y0, y1 = data[:, 1], data[:, 2]
        xind = (n - 1) * np.linspace(0, 1, n)
        ind = np.searchsorted(x, xind)[1:-1]
        distance = (xind[1:-1] - x[ind - 1]) / (x[ind] - x[ind - 1])
        channels.append(np.clip(np.concatenate(
            [[y1[0]], distance * (y0[ind] - y1[ind - 1]) + y1[ind - 1], [y0[-1]]]), 0.0, 1.0))
    lut = np.stack(channels, axis=-1)
    _LUT_CACHE[key] = lut
    return lut


def _colorize(values: np.ndarray, name: str | Colormap) -> np.ndarray:
    """Colour values in [-1, 1] with a colormap name or object; float RGB in [0, 1].

    The built-in maps need numpy only; others are looked up in matplotlib."""
    key = _builtin_key(name)
    if key is None:
        _require_matplotlib()
        return _apply_cmap(values, cmap(name))
    n = _LUT_SIZE
    t = (np.clip(np.asarray(values, dtype=np.float64), -1.0, 1.0) + 1.0) / 2.0
    index = np.minimum((t * n).astype(int), n - 1)  # as matplotlib indexes its table
    return _builtin_lut(key)[index]


def _apply_cmap(values: np.ndarray, cm: Colormap) -> np.ndarray:
    """Colour values in [-1, 1] (0 at the centre of ``cm``); float RGB in [0, 1]."""
    from matplotlib.colors import LinearSegmentedColormap

    if isinstance(cm, LinearSegmentedColormap) and cm.N % 2 == 0:
        # An even lookup table has no entry exactly at 0.5; resample so 0 maps
        # onto the true centre colour.
        cm = cm.resampled(cm.N + 1)
    t = (np.clip(values, -1.0, 1.0) + 1.0) / 2.0
    return np.asarray(cm(t))[..., :3]


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
        ``uint8`` RGB, ``(H, W, 3)`` or ``(N, H, W, 3)`` for a batch. The built-in
        colormaps need numpy only; other colormaps need matplotlib.
    """
    if _builtin_key(cmap) is None:
        _cmap(cmap)  # an unknown name fails before any work
    maps, batched = _to_maps(R, axis, reduce)
    scaled = _scale(maps, normalize, percentile, per_sample and batched)
    return _to_uint8(_colorize(scaled, cmap))


