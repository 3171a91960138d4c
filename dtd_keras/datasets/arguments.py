""":func:`~dtd_keras.analyze_dataset`'s arguments, checked and settled before anything is
written: sizes, dtype, tolerance, the neuron to explain, the pixel range of image folders."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from .sources import Source

__all__ = ["DTYPES", "check_sizes", "fixed_shapes", "neuron_spec", "pixel_range",
           "sizes"]

DTYPES = ("float32", "float16")
_TARGET_CHUNK_BYTES = 4 << 20
_MAX_BATCHES_PER_CHUNK = 64


def _positive_int(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, np.integer)) and value >= 1




def fixed_shapes(specs: Any) -> list[list[int]]:
    """The sample shape of each model input; a free dimension is refused (the store holds
    relevance of one shape)."""
    shapes = []
    for i, spec in enumerate(specs):
        shape = tuple(spec.shape)
        if any(d is None for d in shape[1:]):
            raise ValueError(
                f"model input {i} has free dimensions {('batch', *shape[1:])}: the results "
                "store holds relevance of one fixed shape; give the model a fixed-size input "
                "(e.g. keras.Input((224, 224, 3)) and call the model on it)")
        shapes.append([int(d) for d in shape[1:]])
    return shapes


def check_sizes(batch_size: Any, chunk_size: Any) -> None:
    """Refuse a ``batch_size`` that is not a positive int, a ``chunk_size`` that is not
    one or None."""
    if not _positive_int(batch_size):
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if chunk_size is not None and not _positive_int(chunk_size):
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")


def sizes(batch_size: Any, chunk_size: Any, count: int, bytes_per_sample: int
          ) -> tuple[int, int]:
    """(batch size, chunk size), both checked and capped at the sample count (a batch or
    chunk larger than the data only costs time and memory). The default chunk is a
    multiple of the batch holding about 4 MiB of relevance (≤ 64 batches)."""
    check_sizes(batch_size, chunk_size)
    limit = max(1, count)
    batch = min(int(batch_size), limit)
    if chunk_size is None:
        batches = _TARGET_CHUNK_BYTES // max(1, batch * bytes_per_sample)
        chunk_size = batch * int(min(_MAX_BATCHES_PER_CHUNK, max(1, batches)))
    return batch, min(int(chunk_size), limit)


def neuron_spec(neuron: Any, source: Source, size: int | None) -> tuple[str, Any, Any]:
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


def pixel_range(analyzer: Any, value: Any) -> tuple[float, float] | None:
    """The range pixel values 0…255 of image files are mapped onto (``"auto"``: the
    analyzer's scalar input box, else raw values)."""
    if value != "auto":
        return None if value is None else (float(value[0]), float(value[1]))
    from ..engine.domains import Box

    domain = analyzer.input_domains[0]
    if isinstance(domain, Box) and domain.low.ndim == 0 and domain.high.ndim == 0:
        return float(domain.low), float(domain.high)
    return None
