"""The on-disk results store: a Zarr v3 group, chunked along samples, committed chunk by chunk.

Layout of ``out/`` (every array's first axis is the sample; with ``neuron="all"`` the
per-sample arrays get a class axis after it)::

    zarr.json            group metadata; attributes["dtd_keras"]: format, identity, layout
    relevance            float32/16 (N, [K,] *input_shape)  (relevance_0, … for several inputs)
    neuron, logit        int32 / float32 (N[, K]): the explained neuron and its logit
    index                int64 (N,): the sample's position in the data
    label                int64 (N,): the class label (only when the data has labels)
    properties/<field>   (N[, K]): seed section 3, the fields of ``Explanation.properties()``
    done                 uint64 (chunks,): the commit markers, one file per chunk

**Commit protocol.** Chunk ``i`` (samples ``i·chunk_size …``) is written into every array
first; then its marker ``done/c/<i>`` (8 bytes: a nonzero digest of the chunk's inputs,
which is also the value of ``done[i]`` to Zarr) is written to a temporary file and
``os.replace``\\ d into place. A chunk without its marker is recomputed and overwritten, so a
process killed at any moment loses at most the chunks in flight and never leaves a chunk
that looks done but is not. Different processes write different chunks (the multi-worker
case): their files never overlap.

**Creation.** The skeleton (metadata and empty arrays) is built in a temporary folder next
to ``out`` and renamed onto it: concurrent workers race safely, one rename wins and the
others join the store it made (after checking it is the same run).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..explanation import Properties
from .identity import differences

__all__ = ["FORMAT", "Layout", "Store", "is_store", "prepare"]

FORMAT = "dtd_keras.dataset"
FORMAT_VERSION = 1
PROPERTY_FIELDS = tuple(f.name for f in dataclasses.fields(Properties))
_BOOL_FIELDS = ("positive", "consistent")
_MAX_CHUNK_BYTES = 64 << 20


@dataclass(frozen=True)
class Layout:
    """The arrays' shapes: samples, chunking, per-input sample shape, class axis, dtype."""

    count: int
    chunk_size: int
    inputs: list[list[int]]
    classes: int | None
    dtype: str
    labels: bool

    @property
    def n_chunks(self) -> int:
        return -(-self.count // self.chunk_size)

    @property
    def relevance_names(self) -> list[str]:
        if len(self.inputs) == 1:
            return ["relevance"]
        return [f"relevance_{i}" for i in range(len(self.inputs))]

    @property
    def per_sample(self) -> tuple[int, ...]:
        """The axes after the sample axis of neuron, logit and properties."""
        return () if self.classes is None else (self.classes,)

    def chunk_range(self, index: int) -> tuple[int, int]:
        start = index * self.chunk_size
        return start, min(start + self.chunk_size, self.count)

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def _metadata_file(path: Path) -> dict | None:
    try:
        return json.loads((path / "zarr.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_metadata(path: Path) -> dict | None:
    """The store's ``dtd_keras`` metadata, or None if ``path`` is not one of our stores."""
    meta = _metadata_file(Path(path))
    if not meta or meta.get("node_type") != "group":
        return None
    ours = (meta.get("attributes") or {}).get("dtd_keras")
    return ours if isinstance(ours, dict) and ours.get("format") == FORMAT else None


def is_store(path: Path) -> bool:
    """Whether ``path`` holds a dtd_keras results store."""
    return read_metadata(path) is not None


def _create_arrays(path: Path, metadata: dict, layout: Layout) -> None:
    import zarr
    from zarr.codecs import BytesCodec

    group = zarr.open_group(path, mode="w-", attributes={"dtd_keras": metadata})
    chunk = max(1, layout.chunk_size)
    n, per = layout.count, layout.per_sample
    config = {"write_empty_chunks": True}

    def array(name: str, shape: tuple, chunks: tuple, dtype: str, fill: Any) -> None:
        group.create_array(name, shape=shape, chunks=chunks, dtype=dtype, fill_value=fill,
                           config=config)

    item = np.dtype(layout.dtype).itemsize
    for name, shape in zip(layout.relevance_names, layout.inputs):
        sample_bytes = item * int(np.prod(shape, dtype=np.int64))
        if layout.classes is None:
            array(name, (n, *shape), (chunk, *shape), layout.dtype, np.nan)
        else:  # split the class axis so that one file stays below _MAX_CHUNK_BYTES
            per_class = max(1, _MAX_CHUNK_BYTES // max(1, chunk * sample_bytes))
            array(name, (n, layout.classes, *shape),
                  (chunk, min(layout.classes, per_class), *shape), layout.dtype, np.nan)
    array("neuron", (n, *per), (chunk, *per), "int32", -1)
    array("logit", (n, *per), (chunk, *per), "float32", np.nan)
    array("index", (n,), (chunk,), "int64", -1)
    if layout.labels:
        array("label", (n,), (chunk,), "int64", -1)
    for field in PROPERTY_FIELDS:
        dtype, fill = ("bool", False) if field in _BOOL_FIELDS else ("float64", np.nan)
        array(f"properties/{field}", (n, *per), (chunk, *per), dtype, fill)
    group.create_array("done", shape=(layout.n_chunks,), chunks=(1,), dtype="uint64",
                       fill_value=0, serializer=BytesCodec(endian="little"),
                       compressors=None, filters=None)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _create(path: Path, metadata: dict, layout: Layout) -> None:
    """Build the store next to ``path`` and rename it into place (idempotent under races)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.parent / f".{path.name}.creating-{uuid.uuid4().hex}"
    try:
        _create_arrays(temporary, metadata, layout)
        try:
            os.rename(temporary, path)  # onto a missing or empty folder: atomic
        except OSError:
            if not is_store(path):  # not another worker's store: something else is there
                raise
    finally:
        if temporary.exists():
            shutil.rmtree(temporary)


def _existing(path: Path) -> bool:
    return path.exists() and (not path.is_dir() or any(path.iterdir()))


def prepare(path: Path, identity: dict, layout: Layout, *, resume: bool, overwrite: bool,
            workers: int = 1) -> Store:
    """Create the store at ``path`` or open it to resume; refuse what would mix runs.

    An existing store is resumed only if ``resume`` and its identity equals ``identity``
    (else a ``ValueError`` lists what differs); anything else at ``path`` is refused unless
    ``overwrite`` (which removes it first; single worker only).
    """
    path = Path(path)
    if _existing(path):
        stored = read_metadata(path)
        if overwrite:
            if workers > 1:
                raise ValueError(f"overwrite=True with {workers} workers would let them delete "
                                 f"each other's work; remove {path} before starting them")
            _remove(path)
        elif stored is None:
            raise FileExistsError(f"{path} exists and is not a dtd_keras results store; "
                                  "choose another out, or pass overwrite=True to replace it")
        elif not resume:
            store = Store(path)
            raise FileExistsError(
                f"{path} already holds results ({len(store.done())} of "
                f"{store.layout.n_chunks} chunks done); pass resume=True to continue it, "
                "or overwrite=True to start again")
    if not _existing(path):
        metadata = {"format": FORMAT, "format_version": FORMAT_VERSION,
                    "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                    "identity": identity, "layout": layout.to_json(),
                    "properties": list(PROPERTY_FIELDS)}
        _create(path, json.loads(json.dumps(metadata)), layout)
    stored = read_metadata(path)
    if stored is None:
        raise FileExistsError(f"{path} is not a dtd_keras results store")
    changed = differences(stored["identity"], identity)
    if changed:
        raise ValueError(
            f"cannot resume {path}: it holds the results of a different run. What differs:\n  "
            + "\n  ".join(changed)
            + "\nRun with the same model, weights, analyzer, data and arguments to resume, "
              "or pass overwrite=True to start again, or choose another out.")
    if stored["layout"] != json.loads(json.dumps(layout.to_json())):
        raise ValueError(f"cannot resume {path}: its layout {stored['layout']} differs from "
                         f"this run's {layout.to_json()}")
    return Store(path, writable=True)


class Store:
    """An opened results store: its metadata, arrays and commit markers."""

    def __init__(self, path: Path, *, writable: bool = False) -> None:
        import zarr

        self.path = Path(path)
        metadata = read_metadata(self.path)
        if metadata is None:
            raise ValueError(f"{self.path} is not a dtd_keras results store (no "
                             f"'{FORMAT}' metadata in {self.path / 'zarr.json'})")
        if metadata.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{self.path} has store format version "
                             f"{metadata.get('format_version')}; this dtd_keras reads "
                             f"version {FORMAT_VERSION}")
        self.metadata = metadata
        self.layout = Layout(**metadata["layout"])
        self.group = zarr.open_group(self.path, mode="r+" if writable else "r")
        self._arrays: dict[str, Any] = {}

    def array(self, name: str) -> Any:
        """The Zarr array ``name`` (opened once)."""
        if name not in self._arrays:
            self._arrays[name] = self.group[name]
        return self._arrays[name]

    # -------------------------------------------------------------- markers
    @property
    def _markers(self) -> Path:
        return self.path / "done" / "c"

    def done(self) -> dict[int, int]:
        """``{chunk: digest}`` of the committed chunks."""
        try:
            names = [n for n in os.listdir(self._markers) if n.isdigit()]
        except FileNotFoundError:
            return {}
        found = {}
        for name in names:
            raw = (self._markers / name).read_bytes()
            if len(raw) == 8 and int(name) < self.layout.n_chunks:
                found[int(name)] = int(np.frombuffer(raw, "<u8")[0])
        return found

    def commit(self, index: int, values: dict[str, np.ndarray], digest: int) -> None:
        """Write chunk ``index`` into every array, then its marker (atomically).

        ``digest`` (nonzero) identifies the chunk's inputs; resuming compares it.
        """
        if not 0 < digest < 2**64:
            raise ValueError(f"chunk digests are nonzero 64-bit integers, got {digest}")
        start, stop = self.layout.chunk_range(index)
        for name, value in values.items():
            if value.shape[0] != stop - start:
                raise ValueError(f"chunk {index}: {name} has {value.shape[0]} samples, "
                                 f"expected {stop - start}")
            self.array(name)[start:stop] = value
        self._markers.mkdir(parents=True, exist_ok=True)
        temporary = self._markers / f".{index}.{os.getpid()}.{uuid.uuid4().hex}.partial"
        temporary.write_bytes(np.array([digest], "<u8").tobytes())
        os.replace(temporary, self._markers / str(index))
