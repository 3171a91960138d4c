"""The on-disk results store: a Zarr v3 group, chunked along samples, committed chunk by chunk.

Layout of ``out/`` (every array's first axis is the sample; with ``neuron="all"`` the
per-sample arrays get a class axis after it)::

    zarr.json            group metadata; attributes["dtd_keras"]: format, identity, layout
    relevance            float32/16 (N, [K,] *input_shape)  (relevance_0, … for several inputs)
    neuron, logit        int32 / float32 (N[, K]): the explained neuron and its logit
    index                int64 (N,): the sample's position in the data
    label                int64 (N,): the class label (only when the data has labels)
    file_digest          uint64 (N,): a digest of each image file's bytes (image folders only)
    properties/<field>   (N[, K]): seed section 3, the fields of ``Explanation.properties()``
    <payload name>       float (N, *shape): a store with a ``payload`` (e.g. the per-channel
                         scores of :func:`dtd_keras.concepts.reference_samples`) holds these
                         arrays instead of ``relevance`` and ``properties``
    done                 uint64 (chunks,): the commit markers, one file per chunk

**Commit protocol.** Chunk ``i`` (samples ``i·chunk_size …``) is written into every array
first (every chunk file is written, also one that holds only fill values); then its marker
``done/c/<i>`` (8 bytes: a nonzero digest of the chunk's inputs, which is also the value of
``done[i]`` to Zarr) is written to a temporary file and ``os.replace``\\ d into place. A
chunk without its marker is recomputed and overwritten, so a process killed at any moment
loses at most the chunks in flight and never leaves a chunk that looks done but is not. A
chunk with its marker but a chunk file missing (deleted behind the store's back) counts as
not done (:meth:`Store.checked_done`). Different processes write different chunks (the
multi-worker case): their files never overlap.

Creating, replacing and reopening a store: :mod:`.create`.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..explanation import per_sample_fields

__all__ = ["FORMAT", "Layout", "Store", "is_store", "read_metadata"]

FORMAT = "dtd_keras.dataset"
FORMAT_VERSION = 1
PROPERTY_FIELDS = per_sample_fields()
# the arrays whose committed chunks never equal their fill values: in stores written before
# every chunk file was written, only these can tell a deleted chunk file
_NEVER_FILL = ("relevance", "logit", "index")


@dataclass(frozen=True)
class Layout:
    """The arrays' shapes: samples, chunking, per-input sample shape, class axis, dtype."""

    count: int
    chunk_size: int
    inputs: list[list[int]]
    classes: int | None
    dtype: str
    labels: bool
    file_digests: bool = False
    payload: dict[str, list[int]] | None = None
    """Per-sample arrays ``{name: shape after the sample axis}`` (dtype :attr:`dtype`)
    that replace the relevance maps and the properties; None: a relevance store."""

    @property
    def n_chunks(self) -> int:
        return -(-self.count // self.chunk_size)

    @property
    def relevance_names(self) -> list[str]:
        """The relevance arrays (none in a store with a payload)."""
        if self.payload is not None:
            return []
        if len(self.inputs) == 1:
            return ["relevance"]
        return [f"relevance_{i}" for i in range(len(self.inputs))]

    @property
    def per_sample(self) -> tuple[int, ...]:
        """The axes after the sample axis of neuron, logit and properties."""
        return () if self.classes is None else (self.classes,)

    @property
    def array_names(self) -> list[str]:
        """Every per-sample array of the store (not ``done``)."""
        return [*self.relevance_names, *(self.payload or {}), "neuron", "logit", "index",
                *(["label"] if self.labels else []),
                *(["file_digest"] if self.file_digests else []),
                *(() if self.payload is not None
                  else (f"properties/{field}" for field in PROPERTY_FIELDS))]

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
        self.writable = writable
        self.group = zarr.open_group(self.path, mode="r+" if writable else "r")
        self._arrays: dict[str, Any] = {}

    def array(self, name: str) -> Any:
        """The Zarr array ``name`` (opened once; writing every chunk file, also one that
        holds only fill values, so that a missing file always means a lost chunk)."""
        if name not in self._arrays:
            array = self.group[name]
            if self.writable:
                array = array.with_config({"write_empty_chunks": True})
            self._arrays[name] = array
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

    def chunk_files(self, index: int) -> list[str]:
        """The files (relative to the store) that hold chunk ``index`` of every array."""
        checked = (self.layout.array_names if self.metadata.get("every_chunk_file")
                   else [n for n in self.layout.array_names if n.startswith(_NEVER_FILL)])
        files = []
        for name in checked:
            array = self.array(name)
            others = [range(n) for n in array.cdata_shape[1:]]
            files += [f"{name}/{array.metadata.encode_chunk_key((index, *rest))}"
                      for rest in itertools.product(*others)]
        return files

    def _present(self) -> set[str]:
        """Every file under the arrays' chunk folders, relative to the store (one listing
        per folder, instead of one lookup per chunk file)."""
        found = set()
        for name in self.layout.array_names:
            for root, _, files in os.walk(self.path / name / "c"):
                prefix = Path(root).relative_to(self.path).as_posix()
                found.update(f"{prefix}/{f}" for f in files)
        return found

    def checked_done(self) -> tuple[dict[int, int], dict[int, str]]:
        """``({chunk: digest}, {chunk: missing file})``: the committed chunks whose every
        chunk file is there, and those with a marker but a file missing (deleted after
        the chunk was committed; they count as not done)."""
        done, missing = {}, {}
        committed = self.done()
        present = self._present() if committed else set()
        for index, digest in sorted(committed.items()):
            lost = next((f for f in self.chunk_files(index) if f not in present), None)
            if lost is None:
                done[index] = digest
            else:
                missing[index] = lost
        return done, missing

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
