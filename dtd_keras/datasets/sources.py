"""Where the samples come from: numpy arrays, a ``tf.data.Dataset`` or a folder of images.

:func:`open_source` turns what the user passes into a :class:`Source`: the number of
samples, a JSON-ready description (part of the run's identity) and :meth:`Source.chunks`,
which reads the samples chunk by chunk as float32 arrays (one per model input) with their
labels. Elements are ``inputs`` or ``(inputs, labels)`` (a third item, Keras' sample
weights, is ignored); ``inputs`` is an array, or a tuple of arrays for a multi-input model.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..reading import IMAGE_SUFFIXES, read_inputs

__all__ = ["Chunk", "Source", "open_source"]


@dataclass(frozen=True)
class Chunk:
    """Samples ``start … start + len`` of the data: chunk number ``index``."""

    index: int
    start: int
    inputs: list[np.ndarray]
    labels: np.ndarray | None

    def __len__(self) -> int:
        return int(self.inputs[0].shape[0])


class Source:
    """The samples to explain, read in chunks of consecutive samples."""

    count: int
    """Number of samples."""
    description: dict
    """What the data is (kind, sample count, shapes; a hash of the file list for folders)."""
    has_labels: bool
    """Whether the elements carry integer class labels (needed for ``neuron="label"``)."""
    labels_note: str = ""
    """Why there are no usable labels, for error messages."""
    rereads_cheaply: bool = True
    """Reading a finished chunk again is cheap (so resuming checks its inputs' digest)."""

    def chunks(self, chunk_size: int, wanted: Sequence[int],
               shard: tuple[int, int] = (0, 1)) -> Iterator[Chunk]:
        """The chunks numbered ``wanted`` (ascending), and possibly others of the shard.

        ``shard = (index, count)``: every wanted chunk number is ``index`` modulo
        ``count``; a source may read only that share of the data.
        """
        raise NotImplementedError


# ------------------------------------------------------------------- elements
def split_element(element: Any, n_inputs: int) -> tuple[list[Any], Any]:
    """``inputs`` or ``(inputs, labels[, weights])`` → (list of inputs, labels or None)."""
    if isinstance(element, dict):
        raise TypeError("data elements that are dicts are not supported; give inputs or "
                        "(inputs, labels) tuples (e.g. dataset.map(lambda d: (d['image'], "
                        "d['label'])))")
    if not isinstance(element, (tuple, list)):
        if n_inputs != 1:
            raise ValueError(f"the model has {n_inputs} inputs; give a tuple of {n_inputs} "
                             "arrays, or ((x_1, …), labels)")
        return [element], None
    parts = list(element)
    if not parts:
        raise ValueError("data elements are empty tuples")
    if isinstance(parts[0], (tuple, list)):
        inputs, rest = list(parts[0]), parts[1:]
    elif n_inputs == 1:
        inputs, rest = [parts[0]], parts[1:]
    else:
        inputs, rest = parts, []
    if len(inputs) != n_inputs or len(rest) > 2:
        raise ValueError(f"cannot read data elements made of {len(parts)} parts for a model "
                         f"with {n_inputs} input(s); give inputs or (inputs, labels), where "
                         "inputs is an array or, for several model inputs, a tuple of arrays")
    return inputs, (rest[0] if rest else None)


def class_labels(labels: Any, count: int) -> tuple[np.ndarray | None, str]:
    """Integer class labels of shape ``(count,)`` (``(count, 1)`` is flattened), or None
    and the reason why not."""
    if labels is None:
        return None, "the data has no labels; give (inputs, labels)"
    array = np.asarray(labels)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if not np.issubdtype(array.dtype, np.integer) or array.shape != (count,):
        return None, (f"the labels are {array.dtype} of shape {array.shape[1:]} per sample, "
                      "not integer class indices (one-hot? give np.argmax(y, axis=-1))")
    return array.astype(np.int64), ""


def _float32(array: Any) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(array, dtype=np.float32))


def _sample_rank(spec_shapes: Iterable[tuple], model_shapes: Sequence[tuple]) -> bool:
    """True when the elements are batches (rank of the model input), False when samples."""
    ranks = set()
    for got, want in zip(spec_shapes, model_shapes):
        if len(got) == len(want):
            ranks.add(True)
        elif len(got) == len(want) - 1:
            ranks.add(False)
        else:
            raise ValueError(f"data elements of shape {tuple(got)} fit neither one sample nor "
                             f"a batch of the model input {('batch', *want[1:])}")
    if len(ranks) != 1:
        raise ValueError("some inputs are batched and some are not")
    return ranks.pop()


# ------------------------------------------------------------------- numpy
class ArraySource(Source):
    """Numpy arrays (or anything ``np.asarray`` reads, e.g. memory maps) indexed by sample."""

    def __init__(self, data: Any, model_shapes: Sequence[tuple]) -> None:
        inputs, labels = split_element(data, len(model_shapes))
        self.inputs = [x if hasattr(x, "shape") else np.asarray(x) for x in inputs]
        counts = {int(x.shape[0]) if len(x.shape) else -1 for x in self.inputs}
        if len(counts) != 1 or -1 in counts:
            raise ValueError(f"the input arrays have different numbers of samples: "
                             f"{sorted(counts)}")
        self.count = counts.pop()
        if _sample_rank([x.shape for x in self.inputs], model_shapes) is False:
            raise ValueError(f"input array of shape {self.inputs[0].shape} holds one sample; "
                             "give a batch (add a leading axis)")
        if labels is not None and len(labels) != self.count:
            raise ValueError(f"{len(labels)} labels for {self.count} samples")
        self.labels, self.labels_note = class_labels(labels, self.count)
        self.has_labels = self.labels is not None
        self.description = {"kind": "arrays", "count": self.count,
                            "shapes": [list(x.shape[1:]) for x in self.inputs]}

    def chunks(self, chunk_size: int, wanted: Sequence[int],
               shard: tuple[int, int] = (0, 1)) -> Iterator[Chunk]:
        for index in wanted:
            start = index * chunk_size
            stop = min(start + chunk_size, self.count)
            yield Chunk(index, start, [_float32(x[start:stop]) for x in self.inputs],
                        None if self.labels is None else self.labels[start:stop])


# ------------------------------------------------------------------- tf.data
class DatasetSource(Source):
    """A ``tf.data.Dataset`` of samples or of batches (re-batched into chunks).

    Its length is its cardinality when known; otherwise the data is counted first (one
    pass over it, without explaining). It is read in order, so finished chunks are read
    again on resume (and their digests checked).
    """

    def __init__(self, dataset: Any, model_shapes: Sequence[tuple]) -> None:
        import tensorflow as tf

        self.n_inputs = len(model_shapes)
        spec_inputs, spec_labels = split_element(dataset.element_spec, self.n_inputs)
        batched = _sample_rank([tuple(s.shape) for s in spec_inputs], model_shapes)
        if batched:
            dataset = dataset.unbatch()
            spec_inputs, spec_labels = split_element(dataset.element_spec, self.n_inputs)
        cardinality = int(dataset.cardinality())
        if cardinality == int(tf.data.INFINITE_CARDINALITY):
            raise ValueError("the dataset is infinite (e.g. .repeat() without a count); "
                             "give a finite one (e.g. .take(n))")
        self.dataset = dataset
        if cardinality < 0:  # unknown: count it
            cardinality = int(dataset.batch(4096).reduce(
                np.int64(0), lambda n, element: n + tf.cast(tf.shape(
                    tf.nest.flatten(element)[0])[0], tf.int64)))
        self.count = cardinality
        dtype = getattr(spec_labels, "dtype", None)
        shape = tuple(getattr(spec_labels, "shape", ()) or ())
        self.has_labels = dtype is not None and dtype.is_integer and shape in ((), (1,))
        self.labels_note = "" if self.has_labels else (
            "the dataset has no labels; give (inputs, labels) elements" if spec_labels is None
            else f"the dataset's labels ({spec_labels}) are not integer class indices, one "
                 "per sample")
        self.description = {"kind": "tf.data", "count": self.count,
                            "shapes": [list(s.shape) for s in spec_inputs]}

    def chunks(self, chunk_size: int, wanted: Sequence[int],
               shard: tuple[int, int] = (0, 1)) -> Iterator[Chunk]:
        wanted = set(wanted)
        if not wanted:
            return
        index, count = shard
        dataset = self.dataset.batch(chunk_size)
        if count > 1:
            dataset = dataset.shard(count, index)
        last = max(wanted)
        for position, element in enumerate(dataset.as_numpy_iterator()):
            number = index + position * count
            if number > last:
                break
            if number not in wanted:
                continue
            inputs, labels = split_element(element, self.n_inputs)
            inputs = [_float32(x) for x in inputs]
            labels = class_labels(labels, len(inputs[0]))[0] if self.has_labels else None
            yield Chunk(number, number * chunk_size, inputs, labels)


# ------------------------------------------------------------------- folders
def image_files(folder: Path) -> list[Path]:
    """The image files under ``folder`` (recursively), sorted by relative path."""
    found = [Path(root) / f for root, _, files in os.walk(folder) for f in files
             if Path(f).suffix.lower() in IMAGE_SUFFIXES]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


class FolderSource(Source):
    """The image files under a folder (recursively, sorted by relative path), read and
    resized as the command line reads them (:func:`dtd_keras.reading.read_inputs`): pixel
    values 0…255 mapped linearly onto ``pixel_range`` (raw when None). No labels."""

    rereads_cheaply = False

    def __init__(self, folder: Path, model_shapes: Sequence[tuple],
                 pixel_range: tuple[float, float] | None) -> None:
        if len(model_shapes) != 1:
            raise ValueError("a folder of images can only feed a single-input model")
        self.folder = folder
        self.shape = tuple(model_shapes[0])
        self.pixel_range = pixel_range
        self.files = image_files(folder)
        self.count = len(self.files)
        self.has_labels = False
        self.labels_note = "a folder of images has no labels"
        names = "\n".join(p.relative_to(folder).as_posix() for p in self.files)
        self.description = {"kind": "folder", "count": self.count,
                            "files": hashlib.sha256(names.encode()).hexdigest(),
                            "pixel_range": None if pixel_range is None else list(pixel_range)}

    def chunks(self, chunk_size: int, wanted: Sequence[int],
               shard: tuple[int, int] = (0, 1)) -> Iterator[Chunk]:
        for index in wanted:
            start = index * chunk_size
            files = self.files[start:start + chunk_size]
            batch, _ = read_inputs([str(f) for f in files], self.shape, self.pixel_range)
            yield Chunk(index, start, [batch], None)


# ------------------------------------------------------------------- dispatch
def open_source(data: Any, model_shapes: Sequence[tuple],
                pixel_range: tuple[float, float] | None = None) -> Source:
    """A :class:`Source` for ``data``: a ``tf.data.Dataset``, a folder path (``str`` or
    :class:`~pathlib.Path`), or arrays (``x``, ``(x, y)``, a tuple of arrays for a
    multi-input model). ``model_shapes`` are the model's input shapes, batch axis first."""
    import tensorflow as tf

    if isinstance(data, tf.data.Dataset):
        return DatasetSource(data, model_shapes)
    if isinstance(data, (str, os.PathLike)):
        folder = Path(data)
        if not folder.is_dir():
            raise ValueError(f"{folder} is not a folder of images" if folder.exists()
                             else f"no such folder: {folder}")
        return FolderSource(folder, model_shapes, pixel_range)
    return ArraySource(data, model_shapes)
