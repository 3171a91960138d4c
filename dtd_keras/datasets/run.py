"""The run loop: explain a dataset chunk by chunk into a results store.

:func:`analyze_dataset` reads the data (:mod:`.sources`), creates or resumes the store
(:mod:`.store`), and for each of its worker's unfinished chunks checks the inputs, runs
the analyzer's compiled function in batches (under a ``tf.distribute`` strategy if one is
given), computes the seed-section-3 properties and commits the chunk.
"""

from __future__ import annotations

import hashlib
import sys
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ..explanation import Explanation
from .compute import Explainer, worker_share
from .results import Results
from .sources import Chunk, Source, open_source
from .store import PROPERTY_FIELDS, Layout, Store, prepare

__all__ = ["analyze_dataset"]

DTYPES = ("float32", "float16")
_TARGET_CHUNK_BYTES = 4 << 20
_MAX_BATCHES_PER_CHUNK = 64


# ------------------------------------------------------------------- arguments
def _neuron_spec(neuron: Any, source: Source, size: int | None
                 ) -> tuple[str, Any, Any]:
    """(mode, value, what to record): mode is "top", "fixed", "per_sample", "label", "all"."""
    limit = size if size is not None else np.iinfo(np.int32).max
    if neuron is None:
        return "top", None, None
    if isinstance(neuron, str):
        if neuron == "label":
            if not source.has_labels:
                raise ValueError(f"neuron='label' needs class labels: {source.labels_note}")
            return "label", None, "label"
        if neuron == "all":
            if size is None:
                raise ValueError("neuron='all' needs an explained output of static size")
            return "all", None, "all"
        raise ValueError(f"neuron must be None, an int, one int per sample, 'label' or "
                         f"'all'; got {neuron!r}")
    chosen = np.asarray(neuron)
    if not np.issubdtype(chosen.dtype, np.integer):
        raise ValueError(f"neuron must hold integers, got {chosen.dtype}")
    if chosen.ndim == 0:
        if not 0 <= int(chosen) < limit:
            raise ValueError(f"neuron {int(chosen)} is out of range: the explained output "
                             f"has {size} neurons")
        return "fixed", int(chosen), int(chosen)
    if chosen.shape != (source.count,):
        raise ValueError(f"neuron must be an int or one index per sample ({source.count}); "
                         f"got shape {chosen.shape}")
    if chosen.size and (chosen.min() < 0 or chosen.max() >= limit):
        raise ValueError(f"neuron index out of range ({int(chosen.min())} … "
                         f"{int(chosen.max())}): the explained output has {size} neurons")
    chosen = chosen.astype(np.int32)
    return "per_sample", chosen, {
        "per_sample": hashlib.sha256(chosen.astype("<i4").tobytes()).hexdigest()}


def _default_chunk_size(batch_size: int, bytes_per_sample: int) -> int:
    """A multiple of ``batch_size`` holding about 4 MiB of relevance (≤ 64 batches)."""
    batches = _TARGET_CHUNK_BYTES // max(1, batch_size * bytes_per_sample)
    return batch_size * int(min(_MAX_BATCHES_PER_CHUNK, max(1, batches)))


def _pixel_range(analyzer: Any, pixel_range: Any) -> tuple[float, float] | None:
    if pixel_range != "auto":
        return None if pixel_range is None else (float(pixel_range[0]), float(pixel_range[1]))
    from ..engine.domains import Box

    domain = analyzer.input_domains[0]
    if isinstance(domain, Box) and domain.low.ndim == 0 and domain.high.ndim == 0:
        return float(domain.low), float(domain.high)
    return None


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
        ``(inputs, labels)``), numpy arrays (``x``, ``(x, y)``; a tuple of arrays for a
        multi-input model) or a folder of images (read as the ``dtd-keras explain``
        command reads them, recursively, in sorted order).
    out:
        A local folder (a shared filesystem for several workers): the Zarr v3 store.
    neuron:
        As in ``analyze``: None (each sample's top logit), an int, one int per sample;
        or ``"label"`` (each sample's integer label) or ``"all"`` (every output neuron:
        the results get a class axis after the sample axis).
    batch_size:
        Samples per call of the compiled function (across a strategy's local replicas).
    chunk_size:
        Samples per committed chunk (the unit of resumption); default: a multiple of
        ``batch_size`` holding about 4 MiB of relevance, at most 64 batches.
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
        Replace whatever is at ``out`` (single worker only).
    progress:
        Show a progress bar (tqdm, on stderr) with samples/s and ETA.
    pixel_range:
        For a folder of images: the range pixel values 0…255 are mapped onto;
        ``"auto"`` uses the analyzer's scalar input box, else raw values.
    rtol:
        Tolerance of the ``positive``/``consistent`` properties.

    Returns
    -------
    Results
        The store, opened lazily (see :func:`load_results`); with several workers this
        worker's view, complete once every worker has finished.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or (
            batch_size < 1):
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(
            chunk_size, (int, np.integer)) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    specs = analyzer.input_specs
    source = open_source(data, [tuple(s.shape) for s in specs], _pixel_range(analyzer,
                                                                             pixel_range))
    mode, chosen, recorded = _neuron_spec(neuron, source, analyzer.output_size)
    classes = analyzer.output_size if mode == "all" else None
    shapes = [[int(d) for d in s.shape[1:]] for s in specs]
    bytes_per_sample = np.dtype(dtype).itemsize * (classes or 1) * sum(
        int(np.prod(s, dtype=np.int64)) for s in shapes)
    chunk_size = int(chunk_size or _default_chunk_size(int(batch_size), bytes_per_sample))
    layout = Layout(count=source.count, chunk_size=chunk_size, inputs=shapes, classes=classes,
                    dtype=dtype, labels=source.has_labels)
    from .identity import run_identity

    arguments = {"neuron": recorded, "batch_size": int(batch_size), "chunk_size": chunk_size,
                 "dtype": dtype, "rtol": float(rtol)}
    identity = run_identity(analyzer, arguments, source.description)
    worker, workers = worker_share(strategy)
    if workers > 1 and not resume:
        raise ValueError("with several workers resume must be True: the workers join the "
                         f"store the first of them creates; remove {out} beforehand to "
                         "start from scratch")
    store = prepare(Path(out), identity, layout, resume=resume, overwrite=overwrite,
                    workers=workers)
    _run(store, analyzer, source, Explainer(analyzer, strategy, int(batch_size)),
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
    values = {name: m.astype(layout.dtype, copy=False)
              for name, m in zip(layout.relevance_names, maps)}
    values.update(neuron=neuron, logit=logit,
                  index=np.arange(chunk.start, chunk.start + len(chunk), dtype=np.int64),
                  **_properties(maps, neuron, logit, layout.classes, rtol))
    if layout.labels:
        values["label"] = chunk.labels
    store.commit(chunk.index, values, digest)


def _progress_bar(enabled: bool, total: int, initial: int, share: tuple[int, int]) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm
    worker, workers = share
    return tqdm(total=total, initial=initial, unit="sample", file=sys.stderr, smoothing=0.1,
                desc="explaining" + (f" (worker {worker + 1}/{workers})" if workers > 1 else ""))


def _run(store: Store, analyzer: Any, source: Source, explainer: Explainer, mode: str,
         chosen: Any, share: tuple[int, int], progress: bool, rtol: float) -> None:
    """Explain this worker's unfinished chunks; check the finished ones' digests.

    A writer thread commits chunk i while the analyzer explains chunk i + 1 (at most
    two chunks in flight); a chunk is counted done once its marker is written.
    """
    layout = store.layout
    worker, workers = share
    done = store.done()
    mine = [i for i in range(layout.n_chunks) if i % workers == worker]
    todo = [i for i in mine if i not in done]
    wanted = mine if source.rereads_cheaply else todo

    def samples(chunks: list[int]) -> int:
        return sum(b - a for a, b in map(layout.chunk_range, chunks))

    bar = _progress_bar(progress, samples(mine), samples(mine) - samples(todo), share)
    pending: deque = deque()

    def settle(keep: int) -> None:
        while len(pending) > keep:
            future, count = pending.popleft()
            future.result()
            if bar is not None:
                bar.update(count)

    try:
        with ThreadPoolExecutor(1, thread_name_prefix="dtd_keras-commit") as writer:
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
        raise RuntimeError(f"the data ended before chunk {missing[0]}: it yielded fewer than "
                           f"the {layout.count} samples counted at the start")
