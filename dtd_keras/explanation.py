"""What an analyzer returns: relevance maps with what a user needs to judge them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Explanation", "Properties"]


@dataclass(frozen=True)
class Properties:
    """Seed section 3, per sample (every field is an array over the batch).

    ``total`` is Σ relevance over all inputs; ``explained`` the explained logit;
    ``conservation_error`` = ``total − explained`` and ``relative_error`` that divided by
    ``max(|explained|, tiny)`` (Definition 1: conservative when ~0). ``negative_mass`` is
    the sum of the negative relevances (≤ 0) and ``negative_fraction`` its share of
    Σ|R|. ``positive`` (Definition 2) holds when no value is below
    ``−rtol · max|explained|`` (float rounding); ``consistent`` (Definition 3) when
    positive and ``|relative_error| ≤ rtol``.
    """

    total: np.ndarray
    explained: np.ndarray
    conservation_error: np.ndarray
    relative_error: np.ndarray
    negative_mass: np.ndarray
    negative_fraction: np.ndarray
    positive: np.ndarray
    consistent: np.ndarray

    def to_dicts(self) -> list[dict]:
        """One plain dict per sample (per sample and neuron for several neurons per
        sample, sample-major; JSON-ready)."""
        fields = {k: v.reshape(-1) for k, v in vars(self).items()}
        return [{k: v[i].item() for k, v in fields.items()} for i in range(self.total.size)]

    def __str__(self) -> str:
        head = "sample  explained     Σ relevance   rel. error  neg. fraction  positive  consistent"
        rows = [
            f"{i:6d}  {e:11.5g}  {t:13.5g}  {r:10.2e}  {n:13.3f}  {p!s:8}  {c!s}"
            for i, (e, t, r, n, p, c) in enumerate(zip(*(a.reshape(-1) for a in (
                self.explained, self.total, self.relative_error, self.negative_fraction,
                self.positive, self.consistent))))
        ]
        return "\n".join([head, *rows])


@dataclass(frozen=True)
class Explanation:
    """Relevance for a batch: ``relevance`` (an array shaped like the input, or a list
    of them for a multi-input model), the explained output ``neuron`` and the
    ``explained`` logit per sample."""

    relevance: np.ndarray | list[np.ndarray]
    neuron: np.ndarray
    explained: np.ndarray

    def maps(self) -> list[np.ndarray]:
        """The relevance maps as a list (one per model input)."""
        return self.relevance if isinstance(self.relevance, list) else [self.relevance]

    def properties(self, rtol: float = 1e-4) -> Properties:
        """Conservation and positivity per sample (seed Definitions 1–3)."""
        axes = self.explained.shape  # [batch], or [batch, K] for K neurons per sample
        count = int(np.prod(axes))
        maps = [m.reshape(count, int(np.prod(m.shape[len(axes):]))).astype(np.float64)
                for m in self.maps()]
        flat = np.concatenate(maps, axis=1)
        explained = self.explained.reshape(count).astype(np.float64)
        total = flat.sum(axis=1)
        error = total - explained
        scale = np.maximum(np.abs(explained), np.finfo(np.float32).tiny)
        relative = error / scale
        negative = np.where(flat < 0, flat, 0.0).sum(axis=1)
        absolute = np.abs(flat).sum(axis=1)
        fraction = np.divide(np.abs(negative), absolute, out=np.zeros_like(negative),
                             where=absolute > 0)
        positive = flat.min(axis=1, initial=0.0) >= -rtol * scale
        consistent = positive & (np.abs(relative) <= rtol)
        fields = (total, explained, error, relative, negative, fraction, positive, consistent)
        return Properties(*(f.reshape(axes) for f in fields))
