"""Input images for display: ``to_rgb``, ``overlay`` and ``Picture`` (an input image as a
``grid`` panel)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .colors import _builtin_key, _colorize, _to_uint8
from .colors import cmap as _cmap
from .maps import _as_float, _check_axis, _scale, _shape_error, _to_maps

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.colors import Colormap

__all__ = ["Picture", "overlay", "to_rgb"]


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
    if _builtin_key(cmap) is None:
        _cmap(cmap)  # an unknown name fails before any work
    img, img_batched = _image_float(image, axis, value_range)
    maps, r_batched = _to_maps(R, axis, reduce)
    if img.shape[:-1] != maps.shape or img_batched != r_batched:
        raise ValueError(
            f"image (shape {np.shape(image)}) and R (shape {np.shape(R)}) do not match: "
            f"image gives {img.shape[:-1]} pixels, R gives {maps.shape}"
        )
    scaled = _scale(maps, normalize, percentile, per_sample and r_batched)
    heat = _colorize(scaled, cmap)
    if grayscale:
        lum = img @ np.array([0.299, 0.587, 0.114])
        img = np.repeat(lum[..., None], 3, axis=-1)
    a = alpha * np.abs(scaled)[..., None] if alpha_by_relevance else alpha
    return _to_uint8((1.0 - a) * img + a * heat)




class Picture:
    """An input image as a :func:`grid` panel: drawn as an image (grey or RGB), not as
    relevance.

    ``grid`` draws ``uint8`` arrays as they are and every other array as relevance
    (a diverging colormap), so a float input such as a digit in [0, 1] needs saying
    what it is: ``grid([[Picture(x[i], value_range=(0, 1)), R[i]] for i in …])``.

    Parameters
    ----------
    image : array_like
        One image: ``(H, W)`` grey, or ``(H, W, C)`` / with ``axis=0`` ``(C, H, W)``
        with 1, 3 or 4 channels (alpha is dropped); any numeric range.
    value_range : (float, float), optional
        The pixel range, mapped onto black … white (e.g. ``(0, 1)`` or ``(0, 255)``).
        By default the image is stretched by its own min / max.
    axis : int, default -1
        The channel axis of ``image``.

    Attributes
    ----------
    rgb : numpy.ndarray
        The picture as ``uint8`` ``(H, W, 3)`` (see :func:`to_rgb`), computed at
        construction, so a bad image fails here.

    Raises
    ------
    ValueError
        A batch instead of one image, a channel count other than 1, 3 or 4, NaN or
        infinite pixels, or a ``value_range`` whose high does not exceed its low.
    """

    __slots__ = ("rgb",)

    def __init__(self, image: Any, value_range: tuple[float, float] | None = None,
                 axis: int = -1) -> None:
        shape = np.shape(image)
        if len(shape) == 4:
            raise ValueError(f"Picture takes one image, got a batch of shape {shape}; "
                             "give one Picture per sample, e.g. Picture(x[i])")
        self.rgb: np.ndarray = to_rgb(image, axis=axis, value_range=value_range)

    def __repr__(self) -> str:
        return f"Picture({self.rgb.shape[0]}x{self.rgb.shape[1]} RGB)"
