"""Reading a results store: :func:`load_results` → :class:`Results`, without loading it whole."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .store import PROPERTY_FIELDS, Store

__all__ = ["Results", "load_results"]


class Results:
    """The results of :func:`~dtd_keras.analyze_dataset`, opened lazily.

    ``relevance`` is a Zarr array (a list of them for a multi-input model): sample-major,
    indexable like a numpy array (``results.relevance[10:20]`` reads only the chunks it
    needs; ``np.asarray(results.relevance)`` loads all). The small per-sample arrays
    (``neuron``, ``logit``, ``index``, ``label``, ``properties``) are numpy arrays, read on
    first access. With ``neuron="all"`` every per-sample array has a class axis after the
    sample axis. In a partial store, samples of unfinished chunks hold the fill values
    (NaN, −1, False); ``done`` says which samples are finished (a chunk whose file was
    deleted after it was committed is not: ``lost`` names that file).
    """

    def __init__(self, store: Store) -> None:
        if store.layout.payload is not None:
            raise ValueError(f"{store.path} holds {sorted(store.layout.payload)} per sample, "
                             "not relevance (a store of dtd_keras.concepts.reference_samples"
                             "' scores); pass it as out= to reference_samples to read it")
        self._store = store
        self.path: Path = store.path
        self.metadata: dict = store.metadata
        """Format, creation time, identity (library version, model, weights fingerprint,
        analyzer configuration, arguments, data) and layout."""
        self.layout = store.layout
        self.classes: int | None = store.layout.classes
        arrays = [store.array(name) for name in store.layout.relevance_names]
        self.relevance: Any = arrays[0] if len(arrays) == 1 else arrays

    def __len__(self) -> int:
        return self.layout.count

    def _read(self, name: str) -> np.ndarray:
        return self._store.array(name)[...]

    @cached_property
    def _checked(self) -> tuple[dict[int, int], dict[int, str]]:
        return self._store.checked_done()

    @property
    def lost(self) -> dict[int, str]:
        """``{chunk: file}``: committed chunks with a chunk file missing (deleted behind
        the store's back); they count as not done, and resuming explains them again."""
        return dict(self._checked[1])

    @property
    def done(self) -> np.ndarray:
        """Per sample: whether its chunk is committed and all its chunk files are there."""
        mask = np.zeros(self.layout.count, dtype=bool)
        for chunk in self._checked[0]:
            start, stop = self.layout.chunk_range(chunk)
            mask[start:stop] = True
        return mask

    @property
    def complete(self) -> bool:
        """Whether every chunk is committed."""
        return bool(self.done.all())

    @cached_property
    def neuron(self) -> np.ndarray:
        """The explained output neuron per sample (int32; ``(N, K)`` for ``"all"``)."""
        return self._read("neuron")

    @cached_property
    def logit(self) -> np.ndarray:
        """The explained logit per sample (float32; ``(N, K)`` for ``"all"``)."""
        return self._read("logit")

    @cached_property
    def index(self) -> np.ndarray:
        """Each sample's position in the data (int64; −1 where not done)."""
        return self._read("index")

    @cached_property
    def label(self) -> np.ndarray | None:
        """The data's integer class labels (None when the data had none)."""
        return self._read("label") if self.layout.labels else None

    @cached_property
    def properties(self) -> dict[str, np.ndarray]:
        """Seed section 3 per sample, one numpy array per field of
        :class:`~dtd_keras.explanation.Properties` (``Properties(**results.properties)``
        rebuilds that object)."""
        return {field: self._read(f"properties/{field}") for field in PROPERTY_FIELDS}

    def table(self) -> dict[str, np.ndarray]:
        """``index``, ``neuron``, ``logit``, ``label`` (if any) and the properties as one
        dict of arrays, one row per sample (``pandas.DataFrame(results.table())`` works
        when there is no class axis)."""
        columns = {"index": self.index, "neuron": self.neuron, "logit": self.logit}
        if self.label is not None:
            columns["label"] = self.label
        return {**columns, **self.properties}

    def __repr__(self) -> str:
        shape = [tuple(a.shape) for a in (self.relevance if isinstance(self.relevance, list)
                                          else [self.relevance])]
        state = "complete" if self.complete else f"{int(self.done.sum())} of {len(self)} done"
        return f"Results({str(self.path)!r}, relevance {shape}, {state})"


def load_results(out: str | Path, *, allow_partial: bool = False) -> Results:
    """Open the results store ``out`` written by :func:`~dtd_keras.analyze_dataset`.

    Refuses (``ValueError``) a store whose run has not finished every chunk, or one with
    a committed chunk's file missing (deleted: the chunk would read back as NaN), unless
    ``allow_partial`` (then ``results.done`` says which samples are finished and
    ``results.lost`` which chunk files are missing).
    """
    path = Path(out)
    if not path.exists():
        raise FileNotFoundError(f"no results store at {path}")
    results = Results(Store(path))
    if not allow_partial and results.lost:
        chunk, lost = next(iter(sorted(results.lost.items())))
        start, stop = results.layout.chunk_range(chunk)
        others = len(results.lost) - 1
        raise ValueError(
            f"{path}: chunk {chunk} (samples {start}…{stop - 1}) was committed, but its file "
            f"{lost} is missing (deleted?)" + (f"; {others} other chunk(s) too" if others
                                              else "")
            + ". Run analyze_dataset again with the same arguments to explain it again, or "
            "pass allow_partial=True to read the rest.")
    if not allow_partial and not results.complete:
        layout = results.layout
        chunks = len(results._checked[0])
        raise ValueError(
            f"{path} is incomplete: {chunks} of {layout.n_chunks} chunks "
            f"({int(results.done.sum())} of {layout.count} samples) are done; a run is still "
            "going or was interrupted. Run analyze_dataset again with the same arguments to "
            "finish it, or pass allow_partial=True to read what is there.")
    return results
