"""What an analyzer returns: relevance maps with what a user needs to judge them."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .engine.concepts import ConceptRelevance

__all__ = ["Explanation", "Properties", "check_rtol", "per_sample_fields"]


def check_rtol(rtol: object) -> float:
    """``rtol`` as a float; a ValueError unless it is a finite number >= 0."""
    if isinstance(rtol, (bool, np.bool_)) or not isinstance(
            rtol, (int, float, np.integer, np.floating)) or not (np.isfinite(rtol) and rtol >= 0):
        raise ValueError(f"rtol must be a finite number >= 0, got {rtol!r}")
    return float(rtol)


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

    ``explained_positive`` (derived from ``explained``, not stored) marks samples whose
    explained logit is > 0. The others cannot be consistent: a conservative map then sums
    to ``f(x) ≤ 0`` and so has negative values, and a positive map loses the relevance
    (only ``f(x) = 0`` with an all-zero map passes). Printing marks them with ``*``.

    ``absorbed_by`` (not per sample) names the calls where the analyzer's rules absorb
    relevance by design (LRP-ε/αβ/γ with a bias or ε in the denominator, LayerNorm's β
    under the identity rule, the softmax rule's Taylor bias): there the maps sum to the
    logit minus the absorbed share (:attr:`absorbed`), which is the rule, not an error of
    the method; ``conservation_error`` and ``consistent`` still follow Definitions 1 and 3.
    Empty (DTD, and everything built before it existed): the rules conserve and any gap
    is an error.
    """

    total: np.ndarray
    explained: np.ndarray
    conservation_error: np.ndarray
    relative_error: np.ndarray
    negative_mass: np.ndarray
    negative_fraction: np.ndarray
    positive: np.ndarray
    consistent: np.ndarray
    absorbed_by: tuple[str, ...] = field(default=(), metadata={"per_sample": False})

    @property
    def absorbed(self) -> np.ndarray:
        """Per sample: ``explained − total``, the relevance the absorbing calls
        (:attr:`absorbed_by`) kept; where nothing absorbs, minus the conservation error."""
        return np.asarray(self.explained) - np.asarray(self.total)

    @property
    def explained_positive(self) -> np.ndarray:
        """Per sample: is the explained logit > 0? (Samples where it is not cannot be
        consistent; see the class docstring.)"""
        return np.asarray(self.explained) > 0

    def to_dicts(self) -> list[dict]:
        """One plain dict per sample (per sample and neuron for several neurons per
        sample, sample-major; JSON-ready): every field, and ``explained_positive``."""
        columns = {k: getattr(self, k).reshape(-1) for k in per_sample_fields()}
        columns["explained_positive"] = self.explained_positive.reshape(-1)
        return [{k: v[i].item() for k, v in columns.items()} for i in range(self.total.size)]

    def __str__(self) -> str:
        absorbing = bool(self.absorbed_by)
        gap, width = ("  rel. absorbed", 13) if absorbing else ("   rel. error", 10)
        head = f"sample  explained     Σ relevance{gap}  neg. fraction  positive  consistent"
        relative = -self.relative_error if absorbing else self.relative_error
        rows = [
            f"{i:6d}  {e:11.5g}  {t:13.5g}  {r:{width}.2e}  {n:13.3f}  {p!s:8}  {c!s}"
            + ("" if k else " *")
            for i, (e, t, r, n, p, c, k) in enumerate(zip(*(a.reshape(-1) for a in (
                self.explained, self.total, relative, self.negative_fraction,
                self.positive, self.consistent, self.explained_positive))))
        ]
        if not np.all(self.explained_positive):
            rows.append("* explained logit <= 0: cannot be consistent (a conservative map "
                        "then has negative values, a positive one loses relevance)")
        if absorbing:
            rows.append(absorption_note(self.absorbed_by))
        return "\n".join([head, *rows])


def absorption_note(calls: tuple[str, ...], shown: int = 6) -> str:
    """The note under a properties table whose analyzer absorbs relevance at ``calls``."""
    names = ", ".join(calls[:shown]) + (f", … ({len(calls)} in all)" if len(calls) > shown
                                        else "")
    return ("rel. absorbed = (explained − Σ relevance) / |explained|: relevance absorbed by "
            "design, not an error of the method. This analyzer's rules give biases (or ε, "
            "LayerNorm's β, a softmax's Taylor bias) their share of the relevance at: "
            f"{names}. 'consistent' (Definition 3) asks for conservation, which these rules "
            "do not promise.")


def per_sample_fields() -> tuple[str, ...]:
    """The names of :class:`Properties`' per-sample array fields (what a results store
    keeps, and :meth:`Properties.to_dicts` lists)."""
    return tuple(f.name for f in fields(Properties) if f.metadata.get("per_sample", True))


@dataclass(frozen=True)
class Explanation:
    """Relevance for a batch: ``relevance`` (an array shaped like the input, or a list
    of them for a multi-input model), the explained output ``neuron`` and the
    ``explained`` logit per sample. ``absorbed_by``: the calls where the analyzer's rules
    absorb relevance by design (:attr:`dtd_keras.analyzers.Analyzer.absorbed_by`; empty:
    they conserve), which :meth:`properties` reports.

    Token models: the token input's map is the token embedding's share, ``[batch, seq]``
    (``[batch, seq, dim]`` with ``token_relevance="features"``); ``embeddings`` holds
    the share of every other embedding (position, segment), keyed by layer name, shaped
    alike. The relevance of the explained output is ``relevance`` and ``embeddings``
    together (:meth:`properties` sums both).

    ``layer_relevance``: the relevance at the outputs of the layers asked for with
    ``explain(x, layers=[...])``, keyed by layer name, each shaped like that layer's
    output (``[batch, K, …]`` for K neurons per sample); empty by default. Not part of
    :meth:`properties`. ``concept_axes``: per layer there, the axes
    :meth:`concept_relevance` keeps (batch, K if any, the layer's channel axis), set by
    the analyzer (which knows a ``channels_first`` layout).

    ``layer_input_relevance`` and ``layer_inputs`` (with ``explain(x, layers=[...],
    layer_inputs=True)``; else empty): per layer asked for, a list with one array per
    input of the layer: the relevance the layer hands down to that input, before other
    readers of the input add theirs (shaped like the input, ``[batch, K, …]`` for K
    neurons per sample; zeros where it gives none), and the input's value as the
    analyzer computes it (``[batch, …]``)."""

    relevance: np.ndarray | list[np.ndarray]
    neuron: np.ndarray
    explained: np.ndarray
    absorbed_by: tuple[str, ...] = ()
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)
    layer_relevance: dict[str, np.ndarray] = field(default_factory=dict)
    layer_input_relevance: dict[str, list[np.ndarray]] = field(default_factory=dict)
    layer_inputs: dict[str, list[np.ndarray]] = field(default_factory=dict)
    concept_axes: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def maps(self) -> list[np.ndarray]:
        """The relevance maps as a list (one per model input)."""
        return self.relevance if isinstance(self.relevance, list) else [self.relevance]

    def concept_relevance(self, layer: str) -> ConceptRelevance:
        """Each channel ("concept") of ``layer``'s output with its relevance for the
        explained output: :attr:`layer_relevance` summed over every axis but batch, K
        and channel, ``.values`` ``[batch, (K,) channels]``; ``.top(k)`` gives the most
        relevant channels first (:mod:`dtd_keras.engine.concepts`). A ValueError unless
        the layer was asked for with ``explain(x, layers=[layer])``."""
        from .engine.concepts import concept_relevance

        return concept_relevance(self, layer)

    def properties(self, rtol: float = 1e-4) -> Properties:
        """Conservation and positivity per sample (seed Definitions 1–3), over the maps
        and the embedding shares. ``rtol`` (a
        finite number >= 0, else ValueError) is the tolerance of the positive and
        consistent tests (see :class:`Properties`)."""
        rtol = check_rtol(rtol)
        axes = self.explained.shape  # [batch], or [batch, K] for K neurons per sample
        count = int(np.prod(axes))
        maps = [m.reshape(count, int(np.prod(m.shape[len(axes):]))).astype(np.float64)
                for m in [*self.maps(), *self.embeddings.values()]]
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
        values = (total, explained, error, relative, negative, fraction, positive, consistent)
        return Properties(*(v.reshape(axes) for v in values), absorbed_by=self.absorbed_by)
