"""The inputs behind a store, for the input thumbnails: a results store keeps the relevance,
not the data, so the report reads the data again when it is given.

``data`` is what :func:`~dtd_keras.analyze_dataset` read: a numpy array (or ``(x, y)``, or
a tuple of arrays for a multi-input model: the first input is drawn), or a folder of
images (read as the store's run read it, with the pixel range its identity records).
Without ``data``, the store's ``data_paths`` (where ``analyze_dataset`` read the data: an
image folder, or the file of a memory-mapped ``.npy`` array) are used when they are still
there and still fit (a folder's file names against the hash its identity keeps; an array's
sample count and shape); else the report has no input thumbnails (with a warning when a
recorded path no longer fits).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Inputs", "open_inputs"]


class Inputs:
    """Samples ``start … stop − 1`` of the data as float32, the first model input's."""

    signature: dict
    """What the data is (for the report's manifest: other data → other thumbnails)."""

    def read(self, start: int, stop: int) -> np.ndarray:
        """The samples; ``ValueError`` when one is not finite (the store's samples were:
        analyze_dataset refuses NaN and infinities, so this is other data)."""
        batch = self._read(start, stop)
        bad = ~np.isfinite(batch.reshape(len(batch), -1)).all(axis=1)
        if bad.any():
            raise ValueError(f"data: sample {start + int(np.argmax(bad))} holds NaN or infinite "
                             "values, which the store's samples did not (analyze_dataset "
                             "refuses them); give the data the store was written from")
        return batch

    def _read(self, start: int, stop: int) -> np.ndarray:
        raise NotImplementedError


class _Arrays(Inputs):
    def __init__(self, array: Any) -> None:
        self.array = array
        head = np.ascontiguousarray(np.asarray(array[:16], dtype=np.float32))
        self.signature = {"kind": "arrays", "shape": [int(n) for n in array.shape],
                          "head": hashlib.sha256(head.tobytes()).hexdigest()}

    def _read(self, start: int, stop: int) -> np.ndarray:
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

    def _read(self, start: int, stop: int) -> np.ndarray:
        from ..reading import read_inputs

        batch, _ = read_inputs([str(f) for f in self.files[start:stop]], self.shape,
                               self.pixel_range)
        return np.asarray(batch, dtype=np.float32)


def open_inputs(data: Any, results: Any) -> Inputs | None:
    """The inputs of ``results``' store from ``data`` (None when ``data`` is None);
    ``ValueError`` when they cannot be the store's data (another sample count, sample
    shape, or for a folder other files)."""
    if data is None:
        return _recorded(results)
    layout = results.layout
    described = (results.metadata.get("identity") or {}).get("data") or {}
    shape = tuple(layout.inputs[0])
    if isinstance(data, (str, os.PathLike)):
        folder = Path(data)
        if not folder.is_dir():
            raise ValueError(f"data: {folder} is not a folder of images" if folder.exists()
                             else f"data: no such folder: {folder}")
        inputs = _Folder(folder, (None, *shape), described.get("pixel_range"))
        count = len(inputs.files)
        if described.get("kind") == "folder" and described.get("files") != inputs.digest:
            raise ValueError(f"data: the images under {folder} are not the ones the store "
                             f"{results.path} explained (another list of file names)")
    else:
        array = data
        if isinstance(data, (tuple, list)):
            _check_parts(data, shape, len(layout.inputs))
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


def _check_parts(data: Any, shape: tuple, n_inputs: int) -> None:
    """``ValueError`` when the list/tuple ``data`` is not what analyze_dataset reads
    (inputs, or (inputs, labels)): e.g. a list of single samples."""
    from ..datasets.elements import split_element

    first = data[0] if len(data) else None
    if first is not None and not isinstance(first, (tuple, list)) and tuple(
            np.shape(first)) == shape and len(data) > 1:
        raise ValueError(f"data: a {type(data).__name__} of {len(data)} arrays shaped "
                         f"{shape}, one sample each; give the samples as one array "
                         f"(np.stack(data)), or (inputs, labels), as analyze_dataset read "
                         "them")
    try:
        split_element(data, n_inputs)
    except (ValueError, TypeError) as error:
        raise ValueError(f"data: {error}") from None


def _recorded(results: Any) -> Inputs | None:
    """The inputs from the store's recorded ``data_paths``, when one still fits."""
    paths = results.metadata.get("data_paths") or []
    kind = ((results.metadata.get("identity") or {}).get("data") or {}).get("kind")
    if len(paths) != 1 or kind not in ("folder", "arrays"):
        return None
    path = Path(paths[0])
    if not path.exists():
        return None
    try:
        if kind == "folder":
            return open_inputs(path, results)
        return open_inputs(np.load(path, mmap_mode="r"), results)
    except (ValueError, OSError) as error:
        warnings.warn(f"no input thumbnails: the data recorded in {results.path} ({path}) "
                      f"does not fit it any more ({error}); pass data= (--data)",
                      stacklevel=3)
        return None
