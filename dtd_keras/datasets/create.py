"""Creating, replacing and reopening a results store, without ever touching the user's files.

- :func:`refuse_overlap`: a store that is, contains or lies inside the data is refused.
- :func:`prepare`: create the store, or reopen it to resume (same run only); with
  ``overwrite`` replace only a store this library wrote, and only if it holds nothing else.
- Creation builds the skeleton (metadata and empty arrays) in a hidden folder
  ``.<name>.creating-<host>.<pid>.<id>`` next to ``out`` and renames it onto ``out``:
  concurrent workers race safely, one rename wins and the others join the store it made
  (after checking it is the same run). Errors name ``out``, not the hidden folder. What a
  killed creation left behind is removed by the next run (when its process is gone, or
  when it is older than :data:`STALE_AFTER_S`).
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .identity import differences
from .store import FORMAT, FORMAT_VERSION, PROPERTY_FIELDS, Layout, Store, is_store, read_metadata

__all__ = ["STALE_AFTER_S", "prepare", "refuse_overlap"]

STALE_AFTER_S = 15 * 60
"""A creation folder older than this is a leftover (creating a skeleton takes < 1 s)."""
_BOOL_FIELDS = ("positive", "consistent")
_MAX_CHUNK_BYTES = 64 << 20
# "attachments": evaluation results stored with the run (dtd_keras.reporting.attach);
# overwrite removes them with the results they describe
_ENTRIES = {"zarr.json", "neuron", "logit", "index", "label", "file_digest", "properties",
            "done", "attachments"}


# ------------------------------------------------------------------- paths
def refuse_overlap(out: Path, data: Sequence[Path]) -> None:
    """Refuse (``ValueError``) a store path that is, contains or lies inside one of the
    paths the data is read from (symbolic links resolved)."""
    where = Path(os.path.realpath(out))
    for source in data:
        real = Path(os.path.realpath(source))
        relation = ("is" if where == real else "lies inside" if real in where.parents
                    else "contains" if where in real.parents else None)
        if relation:
            raise ValueError(
                f"out {out} {relation} the data {source}: the results store must lie "
                "outside the data it explains (analyze_dataset never writes into, replaces "
                "or deletes the data it reads); choose another out")


def _foreign(path: Path) -> list[str]:
    """The entries of the store folder ``path`` that a results store does not hold."""
    payload = ((read_metadata(path) or {}).get("layout") or {}).get("payload") or {}
    return sorted(entry.name for entry in path.iterdir()
                  if entry.name not in _ENTRIES and entry.name not in payload
                  and not re.fullmatch(r"relevance(_\d+)?", entry.name))


def _kind(layout: Any) -> str:
    """What kind of store a layout (JSON) describes, in words: relevance maps and
    properties (:func:`~dtd_keras.analyze_dataset`), or a payload (e.g. the ``scores`` of
    :func:`~dtd_keras.concepts.reference_samples`)."""
    payload = (layout or {}).get("payload")
    if not payload:
        return "the relevance maps and properties of analyze_dataset"
    return f"a store of {', '.join(sorted(payload))} (reference_samples' stage 1)" \
        if set(payload) == {"scores"} else f"a store of {', '.join(sorted(payload))}"


def _remove_entries(path: Path) -> None:
    """Remove a store's own entries from ``path`` (never following symbolic links)."""
    for entry in path.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _existing(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _occupied(path: Path) -> bool:
    return _existing(path) and (not path.is_dir() or any(path.iterdir()))


# ------------------------------------------------------------------- creation
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

    for name, shape in (layout.payload or {}).items():
        array(name, (n, *shape), (chunk, *shape), layout.dtype, np.nan)
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
    if layout.file_digests:
        array("file_digest", (n,), (chunk,), "uint64", 0)
    for field in PROPERTY_FIELDS if layout.payload is None else ():
        dtype, fill = ("bool", False) if field in _BOOL_FIELDS else ("float64", np.nan)
        array(f"properties/{field}", (n, *per), (chunk, *per), dtype, fill)
    group.create_array("done", shape=(layout.n_chunks,), chunks=(1,), dtype="uint64",
                       fill_value=0, serializer=BytesCodec(endian="little"),
                       compressors=None, filters=None)


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"


def _running(pid: int) -> bool:
    """Whether process ``pid`` of this host runs (True when that cannot be told)."""
    if os.name != "posix" or pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process
        return True
    return True


def _remove_leftovers(path: Path) -> None:
    """Remove the creation folders of ``path`` that killed runs left behind: made on this
    host by a process that is gone, or older than :data:`STALE_AFTER_S` (made anywhere).
    Only folders holding nothing but store entries are removed."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.creating-(?:([A-Za-z0-9-]+)\.(\d+)\.)?"
                         r"[0-9a-f]+")
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if not match or entry.is_symlink() or not entry.is_dir():
            continue
        try:
            age = time.time() - entry.stat().st_mtime
            gone = match[1] == _host() and not _running(int(match[2]))
            if (gone or age > STALE_AFTER_S) and not _foreign(entry):
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            continue  # another run removed it meanwhile


def _create(path: Path, metadata: dict, layout: Layout) -> None:
    """Build the store next to ``path`` and rename it into place (idempotent under races).

    Errors name ``path``; the creation folder never stays behind (but when killed)."""
    temporary = path.parent / f".{path.name}.creating-{_host()}.{os.getpid()}.{uuid.uuid4().hex}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_leftovers(path)
        _create_arrays(temporary, metadata, layout)
        try:
            os.rename(temporary, path)  # onto a missing or empty folder: atomic
        except OSError:
            if not is_store(path):  # not another worker's store: something else is there
                raise
    except OSError as error:
        reason = str(error).replace(str(temporary), str(path))
        raise type(error)(f"cannot create the results store {path}: {reason}") from error
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)


# ------------------------------------------------------------------- prepare
def prepare(path: Path, identity: dict, layout: Layout, *, resume: bool, overwrite: bool,
            workers: int = 1, data_paths: Sequence[Path] = ()) -> Store:
    """Create the store at ``path`` or open it to resume; refuse what would mix runs.

    An existing store is resumed only if ``resume`` and its identity equals ``identity``
    (else a ``ValueError`` lists what differs). Anything at ``path`` that is not a store
    (a file, a folder of other things) is refused, also with ``overwrite``, and so is a
    store of another kind (relevance maps versus a payload such as reference samples'
    scores); ``overwrite`` (single worker only) replaces a store of the same kind this
    library wrote, and only when it holds nothing but the store's own entries.
    """
    path = Path(path)
    if _occupied(path):
        stored = read_metadata(path) if path.is_dir() else None
        if stored is None:
            raise FileExistsError(
                f"{path} exists and is not a dtd_keras results store (no '{FORMAT}' metadata "
                "in its zarr.json); a results store never replaces anything else, also not "
                "with overwrite=True: choose another out (a new or empty folder)")
        held, wanted = _kind(stored.get("layout")), _kind(layout.to_json())
        if held != wanted:
            raise FileExistsError(
                f"{path} holds {held}; this run writes {wanted}, and never replaces another "
                "kind of store, also not with overwrite=True: choose another out")
        if overwrite:
            if workers > 1:
                raise ValueError(f"overwrite=True with {workers} workers would let them delete "
                                 f"each other's work; remove {path} before starting them")
            foreign = _foreign(path)
            if foreign:
                raise FileExistsError(
                    f"{path} is a results store but also holds {foreign}, which "
                    "analyze_dataset did not write; overwrite=True replaces only a store "
                    "holding nothing else: move them out of it, or choose another out")
            _remove_entries(path)
        elif not resume:
            store = Store(path)
            raise FileExistsError(
                f"{path} already holds results ({len(store.done())} of "
                f"{store.layout.n_chunks} chunks done); pass resume=True to continue it, "
                "or overwrite=True to start again")
    if not _occupied(path):
        metadata = {"format": FORMAT, "format_version": FORMAT_VERSION,
                    "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                    "identity": identity, "layout": layout.to_json(),
                    "properties": list(PROPERTY_FIELDS), "every_chunk_file": True,
                    # where the data was read from (not part of the identity: a moved
                    # folder still resumes); dk.report reads input thumbnails from it
                    "data_paths": [os.path.realpath(p) for p in data_paths]}
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
    if Layout(**stored["layout"]).to_json() != json.loads(json.dumps(layout.to_json())):
        raise ValueError(f"cannot resume {path}: its layout {stored['layout']} differs from "
                         f"this run's {layout.to_json()}")
    return Store(path, writable=True)
