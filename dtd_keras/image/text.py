"""Text heatmaps: tokens coloured by their relevance, as HTML or a PNG picture.

Each token's background is its relevance through the diverging colormap of
:func:`~dtd_keras.image.heatmap` (``"bwr"``: red positive, blue negative, white 0), scaled
symmetrically by ``max |R|`` of its sequence (or of all sequences with
``per_sample=False``), so 0 stays the centre colour and signs are kept.
``text_html`` needs numpy only; ``text_figure`` and ``save_text_png`` need matplotlib.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from .colors import _builtin_key, _colorize, _require_matplotlib, _to_uint8
from .colors import cmap as _cmap
from .maps import _normalize

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.colors import Colormap
    from matplotlib.figure import Figure

__all__ = ["TextColors", "save_text_html", "save_text_png", "text_colors", "text_figure",
           "text_html"]


def _token_rows(tokens: Any) -> tuple[list[list[str]], bool]:
    """``tokens`` as rows of strings; ``batched`` when a sequence of sequences."""
    if isinstance(tokens, str):
        raise ValueError("tokens must be a sequence of token strings (e.g. text.split()), "
                         "not one string")
    rows = list(tokens)
    batched = bool(rows) and all(
        isinstance(r, (list, tuple, np.ndarray)) for r in rows)
    rows = [list(r) for r in rows] if batched else [rows]
    for i, row in enumerate(rows):
        if not row:
            raise ValueError(f"sequence {i} holds no tokens")
        bad = [t for t in row if not isinstance(t, (str, np.str_))]
        if bad:
            raise ValueError(f"tokens must be strings; sequence {i} holds {bad[0]!r} "
                             f"({type(bad[0]).__name__})")
    return [[str(t) for t in row] for row in rows], batched


class TextColors(NamedTuple):
    """Tokens with their relevance and colours, one entry per text."""

    tokens: list[list[str]]
    """The tokens of each text."""
    values: list[np.ndarray]
    """Each token's relevance (float64, features summed)."""
    colors: list[np.ndarray]
    """Each token's ``uint8`` RGB colour, ``(T_i, 3)``."""
    scales: np.ndarray
    """Per text, the ``max |R|`` that maps onto the ends of the colormap."""


def _pad_rows(rows: Sequence[Any]) -> np.ndarray:
    """Per-text relevance of different lengths as one zero-padded array."""
    arrays = [np.asarray(r, dtype=np.float64) for r in rows]
    if len({a.shape[1:] for a in arrays}) != 1 or any(a.ndim == 0 for a in arrays):
        raise ValueError("relevance per text must be arrays of the same rank, got shapes "
                         f"{[a.shape for a in arrays]}")
    out = np.zeros((len(arrays), max(len(a) for a in arrays)) + arrays[0].shape[1:])
    for i, a in enumerate(arrays):
        out[i, :len(a)] = a
    return out


def text_colors(tokens: Any, relevance: Any, *, cmap: str | Colormap = "bwr",
                per_sample: bool = True) -> TextColors:
    """The tokens, their relevance, their colours and each text's scale ``max |R|``.

    Parameters
    ----------
    tokens : sequence of str, or sequence of sequences of str
        One text's tokens, or several texts' (lengths may differ).
    relevance : array_like
        ``(T,)`` for one text, ``(N, T)`` for several (``T`` the longest; entries past
        a shorter text's end are ignored) or a list of one array per text, or any of
        these with a trailing feature axis (``[batch, seq, dim]``), summed (signed).
    cmap : str or Colormap, default "bwr"
        As in :func:`heatmap`.
    per_sample : bool, default True
        Scale each text by its own ``max |R|`` (True) or all texts by the common one.

    Returns
    -------
    TextColors
        ``tokens``, ``values``, ``colors`` (one entry per text) and ``scales``.

    Raises
    ------
    ValueError
        Non-string tokens, relevance of a shape that does not fit the tokens, or
        non-finite relevance.
    """
    if _builtin_key(cmap) is None:
        _cmap(cmap)  # an unknown name fails before any work
    rows, batched = _token_rows(tokens)
    if batched and isinstance(relevance, (list, tuple)) and len(relevance) == len(rows):
        relevance = _pad_rows(relevance)
    R = np.asarray(relevance)
    if R.dtype == object or not np.issubdtype(R.dtype, np.number) or \
            np.iscomplexobj(R):
        raise ValueError(f"relevance must be a real numeric array, got dtype {R.dtype}")
    R = R.astype(np.float64)
    lengths = [len(r) for r in rows]
    if not batched and R.ndim in (2, 3) and R.shape[0] == 1 and R.shape[1] == lengths[0] \
            and lengths[0] != 1:
        R = R[0]  # a batch of one text, e.g. an explanation's relevance
    want = 2 if batched else 1
    if R.ndim == want + 1:
        R = R.sum(axis=-1)
    if not batched:
        R = R[None] if R.ndim == 1 else R
    if R.ndim != 2 or R.shape[0] != len(rows) or R.shape[1] < max(lengths):
        what = f"({len(rows)}, >= {max(lengths)})" if batched else f"({lengths[0]},)"
        raise ValueError(f"relevance of shape {np.shape(relevance)} does not fit "
                         f"{len(rows)} text(s) of {lengths} tokens: expected {what}, "
                         "optionally with a trailing feature axis")
    if not batched and R.shape[1] != lengths[0]:
        raise ValueError(f"relevance has {R.shape[1]} values for {lengths[0]} tokens")
    R = np.where(np.arange(R.shape[1])[None] < np.array(lengths)[:, None], R, 0.0)
    if not np.all(np.isfinite(R)):
        raise ValueError(f"relevance contains {np.count_nonzero(~np.isfinite(R))} NaN or "
                         "infinite values")
    scales = np.abs(R).max(axis=1) if per_sample else np.full(len(rows), np.abs(R).max())
    scaled = _normalize(R, per_sample=per_sample)
    colours = _to_uint8(_colorize(scaled, cmap))
    return TextColors(rows, [R[i, :n] for i, n in enumerate(lengths)],
                      [colours[i, :n] for i, n in enumerate(lengths)], scales)


def _ink(rgb: np.ndarray) -> str:
    """Black or white text, whichever reads better on ``rgb`` (relative luminance)."""
    luminance = float(np.dot(np.asarray(rgb, float) / 255.0, [0.2126, 0.7152, 0.0722]))
    return "#000000" if luminance > 0.4 else "#ffffff"


def _hex(rgb: np.ndarray) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(int(c) for c in rgb))


def text_html(tokens: Any, relevance: Any, *, cmap: str | Colormap = "bwr",
              per_sample: bool = True, labels: Sequence[str] | None = None,
              title: str | None = None, sep: str = " ") -> str:
    """A self-contained HTML page with the tokens coloured by relevance.

    Each token is a ``<span>`` whose background is its colour and whose tooltip gives
    its relevance; tokens, labels and the title are HTML-escaped. ``labels`` (one per
    text) are written before each text, ``sep`` between tokens (``""`` for subword
    pieces). Other arguments: :func:`text_colors`. Needs numpy only for the built-in
    colormaps.
    """
    rows, values, colours, scales = text_colors(tokens, relevance, cmap=cmap,
                                                per_sample=per_sample)
    if labels is not None and len(labels) != len(rows):
        raise ValueError(f"labels has {len(labels)} entries for {len(rows)} text(s)")
    parts = ["<!DOCTYPE html>", '<html><head><meta charset="utf-8">',
             f"<title>{html.escape(title or 'relevance')}</title>",
             "<style>body{font-family:sans-serif;line-height:2}"
             "span.t{padding:2px 3px;border-radius:3px;white-space:pre}</style>",
             "</head><body>"]
    if title:
        parts.append(f"<h3>{html.escape(title)}</h3>")
    for i, (row, rgb) in enumerate(zip(rows, colours)):
        spans = [f'<span class="t" style="background-color:{_hex(c)};color:{_ink(c)}" '
                 f'title="R = {values[i][j]:.4g}">{html.escape(tok)}</span>'
                 for j, (tok, c) in enumerate(zip(row, rgb))]
        label = f"<b>{html.escape(str(labels[i]))}</b> " if labels is not None else ""
        parts.append(f'<p>{label}{html.escape(sep).join(spans)} '
                     f'<small>(max |R| = {scales[i]:.3g})</small></p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def save_text_html(tokens: Any, relevance: Any, path: str | os.PathLike[str],
                   **options: Any) -> Path:
    """Write :func:`text_html` to ``path`` (UTF-8), creating parent folders."""
    path = Path(path)
    page = text_html(tokens, relevance, **options)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


def text_figure(tokens: Any, relevance: Any, *, cmap: str | Colormap = "bwr",
                per_sample: bool = True, labels: Sequence[str] | None = None,
                width: float = 8.0, fontsize: float = 12.0, dpi: float = 100) -> Figure:
    """A matplotlib Figure with the tokens coloured by relevance, wrapped to ``width``
    inches (one block per text, ``labels`` above each). Tokens are drawn literally
    (no mathtext). Needs matplotlib; no pyplot state is touched."""
    _require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.font_manager import FontProperties

    rows, _, colours, _ = text_colors(tokens, relevance, cmap=cmap, per_sample=per_sample)
    if labels is not None and len(labels) != len(rows):
        raise ValueError(f"labels has {len(labels)} entries for {len(rows)} text(s)")
    fig = Figure(figsize=(width, 1.0), dpi=dpi)
    renderer = FigureCanvasAgg(fig).get_renderer()
    prop = FontProperties(size=fontsize)
    pixels = fontsize * dpi / 72  # the font size in pixels
    pad, gap = 0.25 * pixels, 0.3 * pixels
    line = 1.9 * pixels
    limit = width * dpi - 2 * pad
    placed = []  # (x, line number, text, colour or None)
    y = 0
    for i, (row, rgb) in enumerate(zip(rows, colours)):
        if labels is not None:
            placed.append((pad, y, str(labels[i]), None))
            y += 1
        x = pad
        for tok, c in zip(row, rgb):
            w = renderer.get_text_width_height_descent(tok or " ", prop, ismath=False)[0]
            if x > pad and x + w + 2 * pad > limit:
                x, y = pad, y + 1
            placed.append((x + pad, y, tok, c))
            x += w + 2 * pad + gap
        y += 1.5 if i < len(rows) - 1 else 1
    height = (y + 0.5) * line
    fig.set_size_inches(width, height / dpi)
    for x, ln, tok, c in placed:
        yy = 1 - (ln + 0.75) * line / height
        if c is None:
            fig.text(x / (width * dpi), yy, tok, fontproperties=prop, weight="bold",
                     va="center", parse_math=False)
            continue
        fig.text(x / (width * dpi), yy, tok, fontproperties=prop, va="center",
                 color=_ink(c), parse_math=False,
                 bbox={"facecolor": _hex(c), "edgecolor": "none", "pad": 0.25,
                       "boxstyle": "square"})
    return fig


def save_text_png(tokens: Any, relevance: Any, path: str | os.PathLike[str],
                  **options: Any) -> Path:
    """Write :func:`text_figure` to ``path`` as a PNG, creating parent folders."""
    path = Path(path)
    fig = text_figure(tokens, relevance, **options)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=fig.dpi)
    return path
