r"""Explanation continuity (Montavon et al. 2018).

G. Montavon, W. Samek, K.-R. Müller, "Methods for interpreting and understanding deep
neural networks", *Digital Signal Processing* 73 (2018), section 5: an explanation
should not jump when the input barely moves. For each input :math:`x` and small
perturbations :math:`x' = x + δ`,

.. math::

    C(x) = \max_{x'} \frac{\lVert R(x) - R(x') \rVert_1}{\lVert x - x' \rVert_2}

with :math:`R(x')` explaining the same output neuron as :math:`R(x)`. Lower is
smoother. The reported ``value`` is the mean of :math:`C(x)` over the inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engine.domains import POSITIVE, Box
from ._common import as_batch, explain_with, figure

__all__ = ["Continuity", "continuity"]


@dataclass(frozen=True)
class Continuity:
    """``value``: mean over inputs of the per-input maximum ratio (module docstring);
    ``max``: the largest ratio seen; ``per_sample`` the per-input maxima; ``ratios``
    every ratio ``(N, perturbations)`` (NaN where clipping into the domain left
    ``x' = x``)."""

    value: float
    max: float
    per_sample: np.ndarray
    ratios: np.ndarray
    radius: float

    def to_dict(self) -> dict[str, float]:
        """The headline numbers (JSON-ready)."""
        return {"value": self.value, "max": self.max, "radius": self.radius}

    def plot(self) -> Any:
        """Histogram of the per-input continuity."""
        fig = figure(5, 3)
        ax = fig.subplots()
        ax.hist(self.per_sample[np.isfinite(self.per_sample)], bins=30)
        ax.axvline(self.value, color="k", linestyle="--", label=f"mean {self.value:.3g}")
        ax.set_xlabel("max ‖R(x) − R(x′)‖₁ / ‖x − x′‖₂")
        ax.set_ylabel("inputs")
        ax.legend()
        return fig


def _domain_bounds(explainer: Any) -> tuple[Any, Any]:
    domains = getattr(explainer, "input_domains", None)
    if not domains:
        return None, None
    domain = domains[0]
    if isinstance(domain, Box):
        return domain.low, domain.high
    if domain is POSITIVE:
        return 0.0, None
    return None, None


def continuity(explainer: Any, x: Any, *, neuron: Any = None, radius: float = 0.05,
               samples: int = 8, perturbations: Any = None, low: Any = None,
               high: Any = None, seed: int = 0, batch_size: int = 256) -> Continuity:
    """Continuity of ``explainer`` around each input (module docstring).

    Parameters
    ----------
    explainer:
        An analyzer, preset, :class:`~dtd_keras.MinMaxDTD`, baseline, or a callable
        ``f(x, neuron) -> relevance``.
    radius, samples, seed:
        ``samples`` random directions per input, each scaled to Euclidean length
        ``radius`` (seeded).
    perturbations:
        Instead, explicit perturbations ``δ`` of shape ``(P, *sample_shape)``, used
        as given for every input.
    low, high:
        Perturbed inputs are clipped into ``[low, high]`` (default: the explainer's
        declared input box, or 0 below for ``"positive"``); the ratio uses the
        perturbation that remains after clipping.
    """
    data = as_batch(x)
    n, shape = len(data), data.shape[1:]
    if perturbations is None:
        if not (np.isfinite(radius) and radius > 0) or samples < 1:
            raise ValueError(f"need radius > 0 and samples >= 1, got {radius}, {samples}")
        rng = np.random.default_rng(seed)
        directions = rng.normal(size=(n, samples, *shape))
        norms = np.sqrt((directions.reshape(n, samples, -1) ** 2).sum(-1))
        deltas = radius * directions / norms.reshape(n, samples, *([1] * len(shape)))
    else:
        given = np.asarray(perturbations, dtype=np.float64)
        if given.shape[1:] != shape or not np.all(np.isfinite(given)):
            raise ValueError(f"perturbations must be finite, shaped (P, *{shape}); "
                             f"got {given.shape}")
        deltas = np.broadcast_to(given, (n, *given.shape))
    count = deltas.shape[1]
    default_low, default_high = _domain_bounds(explainer)
    low = default_low if low is None else low
    high = default_high if high is None else high
    moved = data[:, None] + deltas
    if low is not None or high is not None:
        moved = np.clip(moved, low, high)
    moved = moved.astype(np.float32)
    step = (moved - data[:, None]).reshape(n, count, -1).astype(np.float64)
    distance = np.sqrt((step ** 2).sum(-1))

    def explain(batch: np.ndarray, chosen: Any) -> tuple[np.ndarray, np.ndarray]:
        parts, picked = [], []
        for i in range(0, len(batch), batch_size):
            e = explain_with(explainer, batch[i:i + batch_size],
                             None if chosen is None else chosen[i:i + batch_size])
            parts.append(e.relevance)
            picked.append(e.neuron)
        return np.concatenate(parts), np.concatenate(picked)

    chosen = None if neuron is None else np.broadcast_to(np.asarray(neuron), (n,))
    base, picked = explain(data, chosen)
    if np.any(picked < 0):  # a callable without neuron selection: keep what was given
        picked = chosen
    repeated = None if picked is None else np.repeat(picked, count)
    other, _ = explain(moved.reshape(n * count, *shape), repeated)
    change = np.abs(other.reshape(n, count, -1).astype(np.float64)
                    - base.reshape(n, 1, -1)).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = np.where(distance > 0, change / np.where(distance > 0, distance, 1), np.nan)
    if np.all(np.isnan(ratios)):
        raise ValueError("every perturbation was clipped away (x' = x): the inputs sit at "
                         "the domain's corners; use a larger radius or other perturbations")
    per_sample = np.nanmax(np.where(np.isnan(ratios), -np.inf, ratios), axis=1)
    per_sample = np.where(np.isinf(per_sample), np.nan, per_sample)
    return Continuity(float(np.nanmean(per_sample)), float(np.nanmax(ratios)), per_sample,
                      ratios, float(radius if perturbations is None else np.nan))
