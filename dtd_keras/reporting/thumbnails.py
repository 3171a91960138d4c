"""Small pictures for the report: heatmap and input thumbnails, per-class mean maps, crops.

Relevance maps are reduced to one 2-D map per sample (channels summed, so the map still
sums to the sample's relevance), resized to fit ``size`` × ``size`` (area average when
shrinking, nearest neighbour when growing), then coloured by :func:`dtd_keras.image.heatmap`
(each map on its own symmetric scale). Inputs go through :func:`dtd_keras.image.to_rgb`
on one value range for the whole report, so that thumbnails compare.

Sample shapes: ``(H, W, C)`` (channels last), ``(H, W)``, ``(D,)`` (drawn as one row);
more axes are summed into the channel axis.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ..image import heatmap, to_rgb
from ..image.png import write_png

_WRITERS = 4

__all__ = ["as_images", "crop_pixels", "fit_size", "heatmap_pixels", "input_pixels",
           "resize", "to_maps", "value_range", "write_pngs"]


def to_maps(relevance: np.ndarray) -> np.ndarray:
    """``(N, *sample)`` relevance → ``(N, H, W)`` float maps (channels and further axes
    summed; a 1-D sample becomes one row); NaN and infinities become 0."""
    values = np.asarray(relevance, dtype=np.float32)
    if values.ndim == 2:
        values = values[:, None, :]
    elif values.ndim > 3:
        values = values.reshape(*values.shape[:3], -1).sum(axis=-1)
    return np.where(np.isfinite(values), values, 0.0).astype(np.float32, copy=False)


def as_images(inputs: np.ndarray) -> np.ndarray:
    """``(N, *sample)`` inputs → ``(N, H, W, C)`` with C in (1, 3): grey or RGB (an alpha
    channel is dropped; other channel counts are averaged into grey)."""
    values = np.asarray(inputs, dtype=np.float32)
    if values.ndim == 2:
        values = values[:, None, :, None]
    elif values.ndim == 3:
        values = values[..., None]
    elif values.ndim > 4:
        values = values.reshape(*values.shape[:3], -1)
    channels = values.shape[-1]
    if channels == 4:
        values = values[..., :3]
    elif channels not in (1, 3):
        values = values.mean(axis=-1, keepdims=True)
    return np.where(np.isfinite(values), values, 0.0)


def fit_size(shape: Sequence[int], size: int) -> tuple[int, int]:
    """``(h, w)``: the 2-D map shape ``shape`` scaled to fit ``size`` × ``size``, aspect
    kept; a row (``H = 1``) gets a quarter of ``size`` as its height."""
    height, width = int(shape[0]), int(shape[1])
    if height == 1:
        return max(1, size // 4), size
    scale = size / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def _axis_resize(values: np.ndarray, axis: int, target: int) -> np.ndarray:
    length = values.shape[axis]
    if target == length:
        return values
    if target > length:  # nearest neighbour
        picks = np.minimum((np.arange(target) + 0.5) * length / target, length - 1)
        return np.take(values, picks.astype(np.int64), axis=axis)
    starts = (np.arange(target) * length) // target  # area average
    sums = np.add.reduceat(values, starts, axis=axis)
    counts = np.diff(np.append(starts, length)).astype(values.dtype)
    shape = [1] * values.ndim
    shape[axis] = target
    return sums / counts.reshape(shape)


def resize(values: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a batch ``(N, H, W[, C])`` to ``(N, height, width[, C])``."""
    return _axis_resize(_axis_resize(values, 1, height), 2, width)


def _shrink_then_enlarge(values: np.ndarray, size: int) -> tuple[np.ndarray, tuple]:
    """Area-average the axes that shrink now; the axes that grow are enlarged after
    colouring (nearest neighbour commutes with the pointwise colouring, and every source
    pixel survives, so the maps' scale is unchanged): 5× fewer pixels to colour for
    28 → 64."""
    height, width = fit_size(values.shape[1:3], size)
    return (resize(values, min(height, values.shape[1]), min(width, values.shape[2])),
            (height, width))


def heatmap_pixels(maps: np.ndarray, size: int) -> np.ndarray:
    """uint8 RGB heatmaps ``(N, h, w, 3)`` of a batch of maps (:func:`to_maps`), each on its
    own scale."""
    small, (height, width) = _shrink_then_enlarge(maps, size)
    pixels = heatmap(small, reduce=None, axis=None, per_sample=True)
    return resize(pixels, height, width)


def input_pixels(inputs: np.ndarray, size: int,
                 value_range: tuple[float, float] | None) -> np.ndarray:
    """uint8 RGB pictures ``(N, h, w, 3)`` of a batch of inputs (``value_range`` maps to
    0…255; None: each image stretched by its own min/max)."""
    small, (height, width) = _shrink_then_enlarge(as_images(inputs), size)
    return resize(to_rgb(small, axis=-1, value_range=value_range), height, width)


def value_range(inputs: np.ndarray) -> tuple[float, float] | None:
    """The finite min and max of ``inputs`` (None when empty or constant)."""
    values = np.asarray(inputs, dtype=np.float64)
    values = values[np.isfinite(values)]
    if not values.size or values.min() == values.max():
        return None
    return float(values.min()), float(values.max())


def write_pngs(pixels: np.ndarray, paths: Sequence[Path], *, atomic: bool = True) -> None:
    """Write ``pixels[i]`` to ``paths[i]``; ``atomic``: through a temporary file that is
    renamed (the gallery's thumbnails are not: the manifest counts a shard only once all
    its files are written, so a killed run's half-written shard is written again)."""
    def write(item: tuple[np.ndarray, Path]) -> None:
        image, path = item
        if not atomic:
            write_png(image, path)
            return
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}"
                                   ".partial")
        write_png(image, temporary)
        os.replace(temporary, path)

    items = list(zip(pixels, paths))
    if len(items) < 32:
        for item in items:
            write(item)
        return
    # a few threads: creating files waits on the disk, zlib releases the GIL
    with ThreadPoolExecutor(_WRITERS) as pool:
        list(pool.map(write, items))


def crop_pixels(crop: Any, size: int,
                values: tuple[float, float] | None = None) -> np.ndarray:
    """uint8 RGB picture of one crop (``H × W × C`` or ``H × W``) on the value range
    ``values`` (None: stretched by its own min/max), resized to fit ``size``."""
    array = np.asarray(crop, dtype=np.float32)
    if array.ndim not in (1, 2, 3) or not array.size:
        raise ValueError(f"a reference-sample crop must be a non-empty H×W×C, H×W or "
                         f"vector, got shape {array.shape}")
    return input_pixels(array[None], size, values or value_range(array))[0]
