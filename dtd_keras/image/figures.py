"""Lay panels out in a matplotlib figure (``grid``) and write PNG files (``save_png``)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .colors import _builtin_key, _require_matplotlib, heatmap
from .colors import cmap as _cmap
from .pictures import Picture
from .png import write_png

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.colors import Colormap
    from matplotlib.figure import Figure

__all__ = ["grid", "save_png"]


def _panel_rgb(
    panel: Any,
    cm: str | Colormap,
    reduce: str | None,
    normalize: str | None,
    axis: int | None,
    percentile: float,
    where: str,
) -> np.ndarray:
    if isinstance(panel, Picture):
        return panel.rgb
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

    Panels are drawn as follows: a :class:`Picture` is an input image (grey or
    RGB, e.g. ``Picture(x[i], value_range=(0, 1))``); ``uint8`` arrays are images
    and shown as they are (``(H, W)`` gray, ``(H, W, 3|4)`` RGB(A) -- e.g. the
    output of :func:`heatmap`, :func:`overlay` or :func:`to_rgb`); every other
    array is a relevance map and rendered with :func:`heatmap` using ``cmap``,
    ``reduce``, ``normalize``, ``axis`` and ``percentile`` (so a float input
    image must be wrapped in :class:`Picture`). ``None`` leaves a slot empty.

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

    if _builtin_key(cmap) is None:
        _cmap(cmap)  # an unknown name fails before any drawing
    cm = cmap

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
        A figure (e.g. from :func:`grid`) is saved with ``savefig`` (this needs
        matplotlib; arrays need numpy only). A :class:`Picture` or a ``uint8``
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
    path = Path(path)
    if hasattr(array_or_figure, "savefig"):  # a matplotlib Figure
        if heatmap_kwargs:
            raise ValueError(f"heatmap options {sorted(heatmap_kwargs)} do not apply to figures")
        path.parent.mkdir(parents=True, exist_ok=True)
        array_or_figure.savefig(path, format="png", dpi=dpi if dpi is not None else "figure")
        return path

    if isinstance(array_or_figure, Picture):
        array_or_figure = array_or_figure.rgb
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
    path.parent.mkdir(parents=True, exist_ok=True)
    write_png(arr, path)
    return path
