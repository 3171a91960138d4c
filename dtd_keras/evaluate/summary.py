"""Seed section 3 over a dataset: conservation, positivity, consistency."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..explanation import Explanation, Properties, check_rtol, per_sample_fields
from ._common import as_batch, explain_with, figure, positive_int

__all__ = ["Summary", "summary"]


@dataclass(frozen=True)
class Summary:
    """Seed Definitions 1–3 aggregated over ``count`` heatmaps.

    ``mean_conservation_error`` / ``max_conservation_error``: mean and max over samples
    of ``|Σ R − f(x)| / |f(x)|`` (the relative error of
    :meth:`~dtd_keras.Explanation.properties`); ``share_positive``: share of heatmaps
    with no value below ``−rtol·|f(x)|`` (Definition 2 up to rounding);
    ``share_consistent``: share also within ``rtol`` of conservation (Definition 3);
    ``negative_fraction``: mean over samples of the negative share of ``Σ|R|``;
    ``share_explained_positive``: share of heatmaps whose explained logit is > 0 (the
    others cannot be consistent: :class:`~dtd_keras.explanation.Properties`).
    ``properties`` holds the per-sample numbers.
    """

    count: int
    rtol: float
    mean_conservation_error: float
    max_conservation_error: float
    share_positive: float
    share_consistent: float
    negative_fraction: float
    share_explained_positive: float
    properties: Properties

    def to_dict(self) -> dict[str, float]:
        """The aggregate numbers (JSON-ready)."""
        return {k: v for k, v in vars(self).items() if k != "properties"}

    def plot(self) -> Any:
        """Histograms of the per-sample relative conservation error and negative fraction."""
        fig = figure(8, 3)
        left, right = fig.subplots(1, 2)
        error = np.abs(self.properties.relative_error)
        floor = np.finfo(np.float32).eps / 10
        left.hist(np.log10(np.maximum(error, floor)), bins=30)
        left.axvline(np.log10(self.rtol), color="k", linestyle="--", label=f"rtol {self.rtol:g}")
        left.set_xlabel("log10 |Σ R − f(x)| / |f(x)|")
        left.set_ylabel("samples")
        left.legend()
        right.hist(self.properties.negative_fraction, bins=30, range=(0, 1))
        right.set_xlabel("negative share of Σ|R|")
        fig.suptitle(f"{self.count} heatmaps: {self.share_consistent:.0%} consistent, "
                     f"{self.share_positive:.0%} positive")
        return fig


def _concatenate(explanations: Sequence[Explanation]) -> Explanation:
    maps = [e.relevance for e in explanations]
    if any(isinstance(m, list) for m in maps):
        if not all(isinstance(m, list) for m in maps):
            raise ValueError("cannot mix single- and multi-input explanations")
        relevance: Any = [np.concatenate(parts) for parts in zip(*maps)]
    else:
        relevance = np.concatenate(maps)
    return Explanation(relevance, np.concatenate([e.neuron for e in explanations]),
                       np.concatenate([e.explained for e in explanations]),
                       absorbed_by=tuple(dict.fromkeys(n for e in explanations
                                                       for n in e.absorbed_by)))


def summary(source: Any, x: Any = None, *, neuron: Any = None, rtol: float = 1e-4,
            batch_size: int = 256) -> Summary:
    """Seed section 3 over a dataset.

    ``source`` is an :class:`~dtd_keras.Explanation`, a sequence of them, a finished
    results store (:func:`dtd_keras.load_results`: its stored properties, recomputed from
    its relevance a block at a time if it used another ``rtol``), or an analyzer (any
    preset, :class:`~dtd_keras.MinMaxDTD`, a baseline) that explains ``x`` in batches of
    ``batch_size`` (``neuron`` as in ``analyze``). ``rtol`` is the tolerance
    of the positive and consistent tests (see :class:`Summary`).
    """
    rtol = check_rtol(rtol)
    batch_size = positive_int(batch_size, "batch_size")
    if hasattr(source, "properties") and hasattr(source, "done"):  # dk.load_results(...)
        return _aggregate(_stored_properties(source, rtol, batch_size), rtol)
    if isinstance(source, Explanation):
        explanation = source
    elif isinstance(source, (list, tuple)) and source and all(
            isinstance(e, Explanation) for e in source):
        explanation = _concatenate(source)
    else:
        if x is None:
            raise ValueError("summary needs x to explain when given an analyzer")
        data = as_batch(x, against=source)
        chosen = None if neuron is None else np.broadcast_to(np.asarray(neuron), (len(data),))
        explanation = _concatenate([
            explain_with(source, data[i:i + batch_size],
                         None if chosen is None else chosen[i:i + batch_size])
            for i in range(0, len(data), batch_size)])
    if len(explanation.explained) == 0:
        raise ValueError("summary needs at least one explanation")
    if np.any(np.isnan(explanation.explained)):
        raise ValueError("these explanations carry no explained logit (NaN), so "
                         "conservation cannot be measured; use an analyzer's explain()")
    return _aggregate(explanation.properties(rtol), rtol)


def _stored_properties(results: Any, rtol: float, batch_size: int) -> Properties:
    """The properties of a results store (:func:`dtd_keras.load_results`): as stored when
    the run used this ``rtol``, else recomputed from its relevance, a block at a time."""
    done = np.asarray(results.done, bool)
    if not done.all():
        raise ValueError(f"the results store holds {int(done.sum())} of {len(done)} finished "
                         "samples; summarize a finished run")
    stored = results.metadata.get("identity", {}).get("arguments", {}).get("rtol")
    if stored is not None and float(stored) == float(rtol):
        return Properties(**results.properties)
    parts = []
    maps = results.relevance if isinstance(results.relevance, list) else [results.relevance]
    for start in range(0, len(done), batch_size):
        part = slice(start, start + batch_size)
        block = [np.asarray(m[part]) for m in maps]
        parts.append(Explanation(block if len(block) > 1 else block[0], results.neuron[part],
                                 results.logit[part]).properties(rtol))
    return Properties(*(np.concatenate([getattr(p, f) for p in parts])
                        for f in per_sample_fields()))


def _aggregate(props: Properties, rtol: float) -> Summary:
    if props.total.size == 0:
        raise ValueError("summary needs at least one explanation")
    error = np.abs(props.relative_error)
    return Summary(
        count=int(error.size), rtol=float(rtol),
        mean_conservation_error=float(error.mean()),
        max_conservation_error=float(error.max()),
        share_positive=float(props.positive.mean()),
        share_consistent=float(props.consistent.mean()),
        negative_fraction=float(props.negative_fraction.mean()),
        share_explained_positive=float(props.explained_positive.mean()),
        properties=props)
