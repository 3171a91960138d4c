"""Write 8-bit PNG files with the standard library (zlib), so heatmaps need no imaging
package."""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np

__all__ = ["write_png"]

_COLOR_TYPES = {1: 0, 3: 2, 4: 6}  # channels -> PNG colour type: grey, RGB, RGBA


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def write_png(pixels: np.ndarray, path: str | os.PathLike[str]) -> None:
    """Write ``uint8`` pixels ``(H, W)`` (grey), ``(H, W, 3)`` (RGB) or ``(H, W, 4)`` (RGBA)
    to ``path`` as a PNG file.

    Raises
    ------
    ValueError
        Pixels that are not ``uint8``, of another shape, or empty.
    """
    arr = np.asarray(pixels)
    if arr.dtype != np.uint8:
        raise ValueError(f"PNG pixels must be uint8, got {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in _COLOR_TYPES or 0 in arr.shape[:2]:
        raise ValueError(f"PNG pixels must be a non-empty (H, W), (H, W, 3) or (H, W, 4) "
                         f"array, got shape {np.shape(pixels)}")
    height, width, channels = arr.shape
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOR_TYPES[channels], 0, 0, 0)
    rows = np.concatenate([np.zeros((height, 1), np.uint8),  # filter type 0 per row
                           np.ascontiguousarray(arr).reshape(height, width * channels)],
                          axis=1)
    data = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + _chunk(b"IEND", b""))
    with open(path, "wb") as file:
        file.write(data)
