"""Turn relevance maps into pictures people can read.

Relevance maps ``R`` are numpy arrays shaped like the model input:

* one sample: ``(H, W)``, ``(H, W, C)`` or, with ``axis=0``, ``(C, H, W)``;
* a batch: ``(N, H, W, C)`` or, with ``axis=1``, ``(N, C, H, W)``;
* a batch of already reduced 2-D maps ``(N, H, W)``: pass ``axis=None``.

The pipeline is ``reduce_channels`` (one 2-D map per sample) -> ``normalize``
(symmetric scaling into ``[-1, 1]``, 0 stays 0) -> a diverging colormap
(``heatmap``), optionally blended over the input image (``overlay``) and laid
out in a figure (``grid``; input images enter it as ``Picture``) or written to
disk (``save_png``).

Modules, one job each: :mod:`.maps` (reduce, normalize), :mod:`.colors`
(colormaps, ``heatmap``), :mod:`.pictures` (input images: ``to_rgb``,
``overlay``, ``Picture``), :mod:`.figures` (``grid``, ``save_png``) and
:mod:`.png` (the PNG writer) and :mod:`.text` (tokens coloured by relevance:
``text_html``/``save_text_html``, ``text_figure``/``save_text_png``).

Everything but ``grid``, ``text_figure``, ``save_text_png``, ``cmap`` (the matplotlib
object), saving a figure and colormaps other than the built-in ``"bwr"`` and
``"cold_hot"`` needs numpy only; those import matplotlib (``pip install
'dtd-keras[viz]'``) when called. Nothing here uses pyplot, registers colormaps or
touches ``rcParams``, so it works headless and leaves no global matplotlib state behind.

The colormaps ``BWR`` (blue - white - red) and ``COLD_HOT`` (cyan - blue -
black - red - yellow) are module attributes built on first access; they are
left out of ``__all__`` so that ``from dtd_keras.image import *`` works without
matplotlib.
"""

from __future__ import annotations

from typing import Any

from .colors import _BUILTIN_ATTRS, cmap, heatmap
from .figures import grid, save_png
from .maps import NORMALIZE_MODES, REDUCE_METHODS, normalize, reduce_channels
from .pictures import Picture, overlay, to_rgb
from .text import TextColors, save_text_html, save_text_png, text_colors, text_figure, text_html

__all__ = [
    "Picture",
    "reduce_channels",
    "normalize",
    "cmap",
    "heatmap",
    "to_rgb",
    "overlay",
    "grid",
    "save_png",
    "TextColors",
    "text_colors",
    "text_html",
    "save_text_html",
    "text_figure",
    "save_text_png",
    "NORMALIZE_MODES",
    "REDUCE_METHODS",
]


def __getattr__(attr: str) -> Any:  # PEP 562: build BWR / COLD_HOT on first access
    if attr in _BUILTIN_ATTRS:
        return cmap(_BUILTIN_ATTRS[attr])
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_BUILTIN_ATTRS))
