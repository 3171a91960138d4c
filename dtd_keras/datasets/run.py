"""The run loop: explain a dataset chunk by chunk into a results store.

:func:`analyze_dataset` checks its arguments (:mod:`.arguments`), reads the data
(:mod:`.sources`), creates or resumes the store (:mod:`.create`), checks that the finished
chunks are still there and still come from the same data, and for each of its worker's
unfinished chunks checks the inputs, runs the analyzer's compiled function in batches
(under a ``tf.distribute`` strategy if one is given), computes the seed-section-3
properties and commits the chunk.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
import warnings
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ..explanation import Explanation, check_rtol
from . import arguments
from .compute import Explainer, worker_share
from .create import prepare, refuse_overlap
from .results import Results
from .sources import Chunk, Source, data_changed, open_source
from .store import PROPERTY_FIELDS, Layout, Store

__all__ = ["analyze_dataset"]


def _digest(chunk: Chunk) -> int:
    """A nonzero 64-bit digest of the chunk's inputs and labels."""
    digest = hashlib.blake2b(digest_size=8)
    for array in chunk.inputs:
        digest.update(f"{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    if chunk.labels is not None:
        digest.update(np.ascontiguousarray(chunk.labels, dtype="<i8").tobytes())
    return int.from_bytes(digest.digest(), "little") or 1


def _properties(maps: list[np.ndarray], neuron: np.ndarray, logit: np.ndarray,
                classes: int | None, rtol: float) -> dict[str, np.ndarray]:
    count = len(logit)
    if classes is not None:  # one row per (sample, class)
        maps = [m.reshape(count * classes, *m.shape[2:]) for m in maps]
        neuron, logit = neuron.reshape(-1), logit.reshape(-1)
    found = Explanation(maps if len(maps) > 1 else maps[0], neuron, logit).properties(rtol)
    return {f"properties/{field}": getattr(found, field).reshape(count, *(
        () if classes is None else (classes,))) for field in PROPERTY_FIELDS}


def _check(analyzer: Any, chunk: Chunk) -> None:
    try:
        analyzer.check_inputs(chunk.inputs[0] if len(chunk.inputs) == 1 else chunk.inputs)
    except ValueError as error:
        raise type(error)(f"samples {chunk.start}…{chunk.start + len(chunk) - 1}: "
                          f"{error}") from None


# ------------------------------------------------------------------- the run
def analyze_dataset(analyzer: Any, data: Any, out: str | Path, *,
                    neuron: int | Sequence[int] | str | None = None, batch_size: int = 64,
                    chunk_size: int | None = None, dtype: str = "float32",
                    strategy: Any = None, resume: bool = True, overwrite: bool = False,
                    progress: bool = True, pixel_range: Any = "auto",
                    rtol: float = 1e-4) -> Results:
    """Explain every sample of ``data`` with ``analyzer`` into the results store ``out``.

    Parameters
    ----------
    analyzer:
        Any dtd_keras analyzer (``dk.DTD``, ``dk.LRP``, a preset).
    data:
        A ``tf.data.Dataset`` (of samples or of batches; elements ``inputs`` or
        ``(inputs, labels)``; it must yield the same samples on every pass), numpy arrays
        (``x``, ``(x, y)``; a tuple of arrays for a multi-input model) or a folder of
        images (read as the ``dtd-keras explain`` command reads them, recursively, in
        sorted order). Real numbers only (complex data is refused). A Python generator or
        iterator is refused (it can be read only once): wrap it in
        ``tf.data.Dataset.from_generator`` or pass ``np.stack(list(samples))``.
    out:
        A local folder (a shared filesystem for several workers): the Zarr v3 store. It
        must not be, contain or lie inside the data's folder or files.
    neuron:
        As in ``analyze``: None (each sample's top logit), an int, one int per sample;
        or ``"label"`` (each sample's integer label) or ``"all"`` (every output neuron:
        the results get a class axis after the sample axis).
    batch_size:
        Samples per call of the compiled function (across a strategy's local replicas);
        a positive int, capped at the number of samples.
    chunk_size:
        Samples per committed chunk (the unit of resumption); default: a multiple of
        ``batch_size`` holding about 4 MiB of relevance, at most 64 batches; capped at
        the number of samples.
    dtype:
        ``"float32"`` or ``"float16"`` for the stored relevance (properties are always
        computed from float32).
    strategy:
        A ``tf.distribute`` strategy: ``MirroredStrategy`` splits each batch over the local
        devices; ``MultiWorkerMirroredStrategy`` (``TF_CONFIG``) gives each worker the
        chunks ``i`` with ``i % workers == worker index``, all writing the same store.
    resume:
        Continue an existing store of the same run (same library version, model, weights,
        analyzer, data and arguments; anything else is refused with what differs). With
        ``resume=False`` an existing store is refused.
    overwrite:
        Replace the results store at ``out`` (single worker only). Only a store this
        library wrote, holding nothing else, is replaced; anything else at ``out`` is
        refused, with or without ``overwrite``.
    progress:
        Show a progress bar (tqdm, on stderr) with samples/s and ETA.
    pixel_range:
        For a folder of images: the range pixel values 0…255 are mapped onto;
        ``"auto"`` uses the analyzer's scalar input box, else raw values.
    rtol:
        Tolerance of the ``positive``/``consistent`` properties: a finite number ≥ 0.

    Returns
    -------
    Results
        The store, opened lazily (see :func:`load_results`); with several workers this
        worker's view, complete once every worker has finished.
    """
    arguments.check_sizes(batch_size, chunk_size)
    if dtype not in arguments.DTYPES:
        raise ValueError(f"dtype must be one of {arguments.DTYPES}, got {dtype!r}")
    rtol = check_rtol(rtol)
    specs = analyzer.input_specs
    shapes = arguments.fixed_shapes(specs)
    source = open_source(data, [tuple(s.shape) for s in specs],
                         arguments.pixel_range(analyzer, pixel_range))
    refuse_overlap(Path(out), source.paths)
    mode, chosen, recorded = arguments.neuron_spec(neuron, source, analyzer.output_size)
    classes = analyzer.output_size if mode == "all" else None
    bytes_per_sample = np.dtype(dtype).itemsize * (classes or 1) * sum(
        int(np.prod(s, dtype=np.int64)) for s in shapes)
    batch_size, chunk_size = arguments.sizes(batch_size, chunk_size, source.count,
                                             bytes_per_sample)
    layout = Layout(count=source.count, chunk_size=chunk_size, inputs=shapes, classes=classes,
                    dtype=dtype, labels=source.has_labels, file_digests=source.file_digests)
    from .identity import run_identity

    identity = run_identity(analyzer, {"neuron": recorded, "batch_size": batch_size,
                                       "chunk_size": chunk_size, "dtype": dtype,
                                       "rtol": rtol}, source.description)
    worker, workers = worker_share(strategy)
    if workers > 1 and not resume:
        raise ValueError("with several workers resume must be True: the workers join the "
                         f"store the first of them creates; remove {out} beforehand to "
                         "start from scratch")
    store = prepare(Path(out), identity, layout, resume=resume, overwrite=overwrite,
                    workers=workers, data_paths=source.paths)
    _run(store, analyzer, source, Explainer(analyzer, strategy, batch_size),
         mode, chosen, (worker, workers), progress, rtol)
    return Results(Store(store.path))


def _chosen(chunk: Chunk, mode: str, chosen: Any, size: int | None) -> np.ndarray | None:
    """The neuron per sample of ``chunk`` (−1: top logit; None: every neuron)."""
    if mode == "all":
        return None
    if mode == "per_sample":
        return chosen[chunk.start:chunk.start + len(chunk)]
    if mode != "label":
        return np.full((len(chunk),), -1 if mode == "top" else chosen, np.int32)
    labels = chunk.labels.astype(np.int32)
    if size is not None and (labels.min() < 0 or labels.max() >= size):
        raise ValueError(f"samples {chunk.start}…{chunk.start + len(chunk) - 1}: labels out "
                         f"of range ({labels.min()} … {labels.max()}) for an explained output "
                         f"of {size} neurons")
    return labels


def _commit(store: Store, chunk: Chunk, digest: int, maps: list[np.ndarray],
            neuron: np.ndarray, logit: np.ndarray, rtol: float) -> None:
    """Properties, then every array of the chunk, then its marker (in the writer thread)."""
    layout = store.layout
    # a store with a payload (e.g. per-channel scores) has no relevance and no properties
    values = {name: m.astype(layout.dtype, copy=False)
              for name, m in zip(layout.payload or layout.relevance_names, maps)}
    values.update(neuron=neuron, logit=logit,
                  index=np.arange(chunk.start, chunk.start + len(chunk), dtype=np.int64),
                  **({} if layout.payload is not None
                     else _properties(maps, neuron, logit, layout.classes, rtol)))
    if layout.labels:
        values["label"] = chunk.labels
    if layout.file_digests:
        values["file_digest"] = chunk.file_digests
    store.commit(chunk.index, values, digest)


def _progress_bar(enabled: bool, total: int, initial: int, share: tuple[int, int],
                  desc: str = "explaining") -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm
    worker, workers = share
    return tqdm(total=total, initial=initial, unit="sample", file=sys.stderr, smoothing=0.1,
                desc=desc + (f" (worker {worker + 1}/{workers})" if workers > 1 else ""))


def _finished(store: Store, source: Source, mine: list[int]) -> dict[int, int]:
    """``{chunk: digest}`` of this worker's finished chunks: committed, every chunk file
    there (a chunk whose file was deleted is explained again, with a warning), and, for
    an image folder, every file's bytes unchanged (else the run is refused)."""
    done, missing = store.checked_done()
    layout = store.layout
    lost = {index: file for index, file in missing.items() if index in mine}
    if lost:
        listed = ", ".join(f"chunk {index} (samples {layout.chunk_range(index)[0]}…"
                           f"{layout.chunk_range(index)[1] - 1}): {file}"
                           for index, file in lost.items())
        warnings.warn(f"{store.path}: committed chunks have files missing (deleted?): "
                      f"{listed}; explaining them again", stacklevel=4)
    done = {i: d for i, d in done.items() if i in mine}
    if not layout.file_digests:
        return done
    for index in sorted(done):
        start, stop = layout.chunk_range(index)
        changed = np.flatnonzero(source.digests(start, stop)
                                 != store.array("file_digest")[start:stop])
        if changed.size:
            more = (f" (and {changed.size - 1} other file(s) of that chunk)"
                    if changed.size > 1 else "")
            raise ValueError(
                f"cannot resume {store.path}: {source.name(start + int(changed[0]))} changed "
                f"after chunk {index} (samples {start}…{stop - 1}) was explained from it"
                f"{more}; resuming would mix two versions of the data. Pass overwrite=True "
                "to explain the folder again, or choose another out")
    return done


@contextlib.contextmanager
def _interrupted(store: Store, settle: Any) -> Any:
    """On Ctrl-C, let the chunks in flight commit (``settle``) and raise a short
    KeyboardInterrupt saying how much is committed and how to resume (no traceback of
    the TensorFlow call it interrupted)."""
    try:
        yield
    except KeyboardInterrupt:
        try:
            settle()
        except Exception:  # noqa: BLE001 - a failed commit counts as not committed
            pass
        layout = store.layout
        committed = sum(b - a for a, b in map(layout.chunk_range, store.done()))
        raise KeyboardInterrupt(f"{committed} of {layout.count} samples committed in "
                                f"{store.path}; run the same call again to resume") from None


def _run(store: Store, analyzer: Any, source: Source, explainer: Explainer, mode: str,
         chosen: Any, share: tuple[int, int], progress: bool, rtol: float,
         desc: str = "explaining") -> None:
    """Explain this worker's unfinished chunks; check the finished ones' digests.

    A writer thread commits chunk i while the analyzer explains chunk i + 1 (at most
    two chunks in flight); a chunk is counted done once its marker is written.
    ``explainer(inputs, neurons, classes)`` gives ``(maps, neuron, logit)``: the relevance
    maps, or for a store with a payload its arrays in the payload's order.
    """
    layout = store.layout
    worker, workers = share
    mine = [i for i in range(layout.n_chunks) if i % workers == worker]
    done = _finished(store, source, mine)
    todo = [i for i in mine if i not in done]
    wanted = mine if source.rereads_cheaply else todo

    def samples(chunks: list[int]) -> int:
        return sum(b - a for a, b in map(layout.chunk_range, chunks))

    bar = _progress_bar(progress, samples(mine), samples(mine) - samples(todo), share, desc)
    pending: deque = deque()

    def settle(keep: int) -> None:
        while len(pending) > keep:
            future, count = pending.popleft()
            future.result()
            if bar is not None:
                bar.update(count)

    try:
        with ThreadPoolExecutor(1, thread_name_prefix="dtd_keras-commit") as writer, \
                _interrupted(store, lambda: settle(keep=0)):
            for chunk in source.chunks(layout.chunk_size, wanted, share):
                if chunk.index not in wanted:
                    continue
                digest = _digest(chunk)
                if chunk.index in done:
                    if done[chunk.index] != digest:
                        start, stop = layout.chunk_range(chunk.index)
                        raise ValueError(
                            f"cannot resume {store.path}: chunk {chunk.index} (samples "
                            f"{start}…{stop - 1}) was explained from other inputs than the "
                            "data given now; pass overwrite=True to start again, or choose "
                            "another out")
                    continue
                _check(analyzer, chunk)
                neurons = _chosen(chunk, mode, chosen, analyzer.output_size)
                maps, neuron, logit = explainer(chunk.inputs, neurons, layout.classes)
                pending.append((writer.submit(_commit, store, chunk, digest, maps, neuron,
                                              logit, rtol), len(chunk)))
                settle(keep=1)
            settle(keep=0)
    finally:
        if bar is not None:
            bar.close()
    missing = [i for i in todo if i not in store.done()]
    if missing:
        raise data_changed(f"it ended before chunk {missing[0]} (sample "
                           f"{layout.chunk_range(missing[0])[0]}): it yielded fewer than the "
                           f"{layout.count} samples counted at the start")
