"""Where the samples come from: numpy arrays, a ``tf.data.Dataset`` or a folder of images.

:func:`open_source` turns what the user passes into a :class:`Source`: the number of
samples, a JSON-ready description (part of the run's identity) and :meth:`Source.chunks`,
which reads the samples chunk by chunk as float32 arrays (one per model input) with their
labels. Elements are ``inputs`` or ``(inputs, labels)`` (a third item, Keras' sample
weights, is ignored; :mod:`.elements`); ``inputs`` is an array, or a tuple of arrays for a
multi-input model. Python generators and iterators are refused by name: the data is read
more than once (counted, then explained; read again on resume).
"""

from __future__ import annotations

import hashlib
import os
import types
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..reading import IMAGE_SUFFIXES, read_inputs
from .elements import (
    as_float32,
    check_dtype,
    check_sample_shapes,
    class_labels,
    is_batched,
    split_element,
)

__all__ = ["Chunk", "Source", "data_changed", "open_source"]


@dataclass(frozen=True)
class Chunk:
    """Samples ``start … start + len`` of the data: chunk number ``index``."""

    index: int
    start: int
    inputs: list[np.ndarray]
    labels: np.ndarray | None
    file_digests: np.ndarray | None = None
    """Per sample, a digest of the file it was read from (image folders only)."""

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
    paths: list[Path] = []
    """The files and folders the data is read from (a store must not overlap them)."""
    file_digests: bool = False
    """Whether :meth:`digests` gives each sample's file digest (checked on resume)."""

    def chunks(self, chunk_size: int, wanted: Sequence[int],
               shard: tuple[int, int] = (0, 1)) -> Iterator[Chunk]:
        """The chunks numbered ``wanted`` (ascending), and possibly others of the shard.

        ``shard = (index, count)``: every wanted chunk number is ``index`` modulo
        ``count``; a source may read only that share of the data.
        """
        raise NotImplementedError

    def digests(self, start: int, stop: int) -> np.ndarray:
        """The file digests of samples ``start … stop − 1`` (sources with files only)."""
        raise NotImplementedError

    def name(self, sample: int) -> str:
        """Where sample ``sample`` comes from, for messages."""
        return f"sample {sample}"


def data_changed(detail: str) -> ValueError:
    """The error for data that yields other samples on another pass."""
    return ValueError(
        f"the data changed between passes: {detail}. analyze_dataset reads the data more "
        "than once (a tf.data pipeline of unknown length is counted first; a resumed run "
        "reads it again), so it must yield the same samples every time: no random "
        "filter or sampling, shuffle with a seed and reshuffle_each_iteration=False (or "
        "save the samples, e.g. dataset.save(path), and explain those)")


# ------------------------------------------------------------------- numpy
def _array(item: Any, i: int) -> Any:
    if hasattr(item, "shape"):
        return item  # numpy, memory maps, Zarr/HDF5 arrays: read chunk by chunk
    try:
        return np.asarray(item)
    except ValueError as error:  # e.g. a list of arrays of different shapes
        raise ValueError(f"input {i} ({type(item).__name__}) is not an array of samples: "
                         f"{error}") from None


class ArraySource(Source):
    """Numpy arrays (or anything ``np.asarray`` reads, e.g. memory maps) indexed by sample."""

    def __init__(self, data: Any, model_shapes: Sequence[tuple]) -> None:
        inputs, labels = split_element(data, len(model_shapes))
        self.inputs = [_array(x, i) for i, x in enumerate(inputs)]
        for i, (given, x) in enumerate(zip(inputs, self.inputs)):
            dtype = getattr(x, "dtype", None)
            if not len(x.shape) or (isinstance(dtype, np.dtype) and dtype.kind == "O"):
                raise ValueError(
                    f"input {i} ({type(given).__name__}) is not an array of samples; give "
                    "numpy arrays (x, (x, y), or a tuple of arrays for several model inputs), "
                    "a tf.data.Dataset or a folder of images")
            if dtype is not None:  # else checked chunk by chunk
                check_dtype(dtype, f"input {i}")
        counts = {int(x.shape[0]) for x in self.inputs}
        if len(counts) != 1:
            raise ValueError(f"the input arrays have different numbers of samples: "
                             f"{sorted(counts)}")
        self.count = counts.pop()
        if is_batched([x.shape for x in self.inputs], model_shapes) is False:
            raise ValueError(f"input array of shape {self.inputs[0].shape} holds one sample; "
                             "give a batch (add a leading axis)")
        check_sample_shapes([x.shape[1:] for x in self.inputs], model_shapes)
        if labels is not None and len(labels) != self.count:
            raise ValueError(f"{len(labels)} labels for {self.count} samples")
        self.labels, self.labels_note = class_labels(labels, self.count)
        self.has_labels = self.labels is not None
        self.paths = [Path(x.filename) for x in self.inputs
                      if isinstance(x, np.memmap) and x.filename]
        self.description = {"kind": "arrays", "count": self.count,
                            "shapes": [list(x.shape[1:]) for x in self.inputs]}

    def chunks(self, chunk_size: int, wanted: Sequence[int],
               shard: tuple[int, int] = (0, 1)) -> Iterator[Chunk]:
        for index in wanted:
            start = index * chunk_size
            stop = min(start + chunk_size, self.count)
            yield Chunk(index, start, [as_float32(x[start:stop], f"input {i}")
                                       for i, x in enumerate(self.inputs)],
                        None if self.labels is None else self.labels[start:stop])


# ------------------------------------------------------------------- tf.data
class DatasetSource(Source):
    """A ``tf.data.Dataset`` of samples or of batches (re-batched into chunks).

    Its length is its cardinality when known; otherwise the data is counted first (one
    pass over it, without explaining). It is read in order, so finished chunks are read
    again on resume (and their digests checked). A pass that yields another number of
    samples than counted is refused (:func:`data_changed`).
    """

    def __init__(self, dataset: Any, model_shapes: Sequence[tuple]) -> None:
        import tensorflow as tf

        self.n_inputs = len(model_shapes)
        spec_inputs, spec_labels = split_element(dataset.element_spec, self.n_inputs)
        for i, spec in enumerate(spec_inputs):
            check_dtype(spec.dtype, f"input {i}")
        batched = is_batched([tuple(s.shape) for s in spec_inputs], model_shapes)
        if batched:
            dataset = dataset.unbatch()
            spec_inputs, spec_labels = split_element(dataset.element_spec, self.n_inputs)
        check_sample_shapes([tuple(s.shape) for s in spec_inputs], model_shapes)
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
            start = number * chunk_size
            if start >= self.count:
                raise data_changed(f"it yielded more than the {self.count} samples counted "
                                   "at the start")
            if number > last:
                break
            if number not in wanted:
                continue
            inputs, labels = split_element(element, self.n_inputs)
            inputs = [as_float32(x, f"input {i}") for i, x in enumerate(inputs)]
            expected = min(chunk_size, self.count - start)
            if len(inputs[0]) != expected:
                more = "more" if len(inputs[0]) > expected else "fewer"
                raise data_changed(
                    f"chunk {number} (samples {start}…{start + expected - 1}) got "
                    f"{len(inputs[0])} samples where {expected} were counted at the start "
                    f"({more} samples than the {self.count} counted)")
            labels = class_labels(labels, len(inputs[0]))[0] if self.has_labels else None
            yield Chunk(number, start, inputs, labels)


# ------------------------------------------------------------------- folders
def image_files(folder: Path) -> list[Path]:
    """The image files under ``folder`` (recursively), sorted by relative path."""
    found = [Path(root) / f for root, _, files in os.walk(folder) for f in files
             if Path(f).suffix.lower() in IMAGE_SUFFIXES]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def file_digest(path: Path) -> int:
    """A 64-bit BLAKE2b digest of the file's bytes."""
    digest = hashlib.blake2b(digest_size=8)
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return int.from_bytes(digest.digest(), "little")


class FolderSource(Source):
    """The image files under a folder (recursively, sorted by relative path), read and
    resized as the command line reads them (:func:`dtd_keras.reading.read_inputs`): pixel
    values 0…255 mapped linearly onto ``pixel_range`` (raw when None). No labels. Each
    file's bytes are digested as it is read; a resumed run compares the finished chunks'."""

    rereads_cheaply = False
    file_digests = True

    def __init__(self, folder: Path, model_shapes: Sequence[tuple],
                 pixel_range: tuple[float, float] | None) -> None:
        if len(model_shapes) != 1:
            raise ValueError("a folder of images can only feed a single-input model")
        self.folder = folder
        self.paths = [folder]
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

    def digests(self, start: int, stop: int) -> np.ndarray:
        return np.array([file_digest(f) for f in self.files[start:stop]], np.uint64)

    def name(self, sample: int) -> str:
        return str(self.files[sample])

    def chunks(self, chunk_size: int, wanted: Sequence[int],
               shard: tuple[int, int] = (0, 1)) -> Iterator[Chunk]:
        for index in wanted:
            start = index * chunk_size
            files = self.files[start:start + chunk_size]
            digests = self.digests(start, start + len(files))
            batch, _ = read_inputs([str(f) for f in files], self.shape, self.pixel_range)
            yield Chunk(index, start, [batch], None, digests)


# ------------------------------------------------------------------- dispatch
def _refuse_iterators(data: Any) -> None:
    kind = ("generator" if isinstance(data, types.GeneratorType)
            else "iterator" if isinstance(data, Iterator) else None)
    if kind is not None:
        raise TypeError(
            f"data is a Python {kind} ({type(data).__name__}), which can be read only "
            "once; analyze_dataset reads the data more than once (to count it, and again "
            "to resume). Pass tf.data.Dataset.from_generator(make_samples, "
            "output_signature=…) with a function that starts a new generator each time, or "
            "the samples as one array: np.stack(list(samples)) (or np.concatenate(list("
            "batches)) for a generator of batches)")


def open_source(data: Any, model_shapes: Sequence[tuple],
                pixel_range: tuple[float, float] | None = None) -> Source:
    """A :class:`Source` for ``data``: a ``tf.data.Dataset``, a folder path (``str`` or
    :class:`~pathlib.Path`), or arrays (``x``, ``(x, y)``, a tuple of arrays for a
    multi-input model). ``model_shapes`` are the model's input shapes, batch axis first."""
    import tensorflow as tf

    _refuse_iterators(data)
    if isinstance(data, tf.data.Dataset):
        return DatasetSource(data, model_shapes)
    if isinstance(data, (str, os.PathLike)):
        folder = Path(data)
        if not folder.is_dir():
            raise ValueError(f"{folder} is not a folder of images" if folder.exists()
                             else f"no such folder: {folder}")
        return FolderSource(folder, model_shapes, pixel_range)
    if isinstance(data, (tuple, list)):
        for part in data:
            _refuse_iterators(part)
    return ArraySource(data, model_shapes)
