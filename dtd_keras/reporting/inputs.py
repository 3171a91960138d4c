"""The inputs behind a store, for the input thumbnails: a results store keeps the relevance,
not the data, so the report reads the data again when it is given.

``data`` is what :func:`~dtd_keras.analyze_dataset` read: a numpy array (or ``(x, y)``, or
a tuple of arrays for a multi-input model: the first input is drawn), or a folder of
images (read as the store's run read it, with the pixel range its identity records).
A folder store's identity keeps a hash of its file names, not the folder's path, so the
folder has to be given again; it is checked against that hash.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Inputs", "open_inputs"]


class Inputs:
    """Samples ``start … stop − 1`` of the data as float32, the first model input's."""

    signature: dict
    """What the data is (for the report's manifest: other data → other thumbnails)."""

    def read(self, start: int, stop: int) -> np.ndarray:
        raise NotImplementedError


class _Arrays(Inputs):
    def __init__(self, array: Any) -> None:
        self.array = array
        head = np.ascontiguousarray(np.asarray(array[:16], dtype=np.float32))
        self.signature = {"kind": "arrays", "shape": [int(n) for n in array.shape],
                          "head": hashlib.sha256(head.tobytes()).hexdigest()}

    def read(self, start: int, stop: int) -> np.ndarray:
        return np.asarray(self.array[start:stop], dtype=np.float32)


class _Folder(Inputs):
    def __init__(self, folder: Path, shape: tuple, pixel_range: Any) -> None:
        from ..datasets.sources import image_files

        self.files = image_files(folder)
        self.shape = shape
        self.pixel_range = None if pixel_range is None else tuple(pixel_range)
        names = "\n".join(p.relative_to(folder).as_posix() for p in self.files)
        self.digest = hashlib.sha256(names.encode()).hexdigest()
        self.signature = {"kind": "folder", "path": str(folder.resolve()),
                          "files": self.digest}

    def read(self, start: int, stop: int) -> np.ndarray:
        from ..reading import read_inputs

        batch, _ = read_inputs([str(f) for f in self.files[start:stop]], self.shape,
                               self.pixel_range)
        return np.asarray(batch, dtype=np.float32)


def open_inputs(data: Any, results: Any) -> Inputs | None:
    """The inputs of ``results``' store from ``data`` (None when ``data`` is None);
    ``ValueError`` when they cannot be the store's data (another sample count, sample
    shape, or for a folder other files)."""
    if data is None:
        return None
    layout = results.layout
    described = (results.metadata.get("identity") or {}).get("data") or {}
    shape = tuple(layout.inputs[0])
    if isinstance(data, (str, os.PathLike)):
        folder = Path(data)
        if not folder.is_dir():
            raise ValueError(f"data: {folder} is not a folder of images" if folder.exists()
                             else f"data: no such folder: {folder}")
        inputs = _Folder(folder, shape, described.get("pixel_range"))
        count = len(inputs.files)
        if described.get("kind") == "folder" and described.get("files") != inputs.digest:
            raise ValueError(f"data: the images under {folder} are not the ones the store "
                             f"{results.path} explained (another list of file names)")
    else:
        array = data
        if isinstance(data, (tuple, list)):
            array = data[0]
            if isinstance(array, (tuple, list)):  # ((x1, x2), y): several inputs
                array = array[0]
        if not hasattr(array, "shape"):
            array = np.asarray(array)
        inputs = _Arrays(array)
        count = int(array.shape[0]) if len(array.shape) else 0
        if tuple(array.shape[1:]) != shape:
            raise ValueError(f"data: samples of shape {tuple(array.shape[1:])}, but the store "
                             f"{results.path} holds explanations of samples shaped {shape}")
    if count != layout.count:
        raise ValueError(f"data: {count} samples, but the store {results.path} explained "
                         f"{layout.count}; give the data it was written from")
    return inputs
