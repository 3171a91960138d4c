"""DTD: each layer's rule from the domain of its input (the seed's training-free deep
Taylor decomposition)."""

from __future__ import annotations

from typing import Any

import keras

from ..engine.domains import POSITIVE, Box, Domain, as_domain
from ..engine.graph import Call
from ..layers import LayerRelevance
from ..rules import W2, Rule, ZBox, ZPlus
from .base import Analyzer

__all__ = ["DTD"]


def _per_input(value: Any, count: int) -> list[Any]:
    if isinstance(value, list):
        if len(value) != count:
            raise ValueError(f"got {len(value)} input domains for a model with {count} inputs")
        return value
    return [value] * count


class DTD(Analyzer):
    """Training-free deep Taylor decomposition: each layer's rule from its input's domain.

    The model input has the declared ``input_domain``; a ReLU output is ℝ₊; pooling,
    flatten, reshape and dropout keep their input's domain; a linear output is ℝ. Each
    Dense/Conv layer gets the seed's rule for the domain of its input: ℝ → w²,
    ℝ₊ → z⁺, box → zᴮ (so zᴮ/w²/z⁺ at the first layer of a ReLU network, z⁺ above).
    ``analyzer.rules`` shows the choice per layer.

    Parameters
    ----------
    input_domain:
        ``"real"`` (default, valid for any input), ``"positive"``, ``dk.Box(low, high)``
        or a ``(low, high)`` tuple; a list gives one per model input. Inputs outside it
        raise :class:`~dtd_keras.errors.DomainError` (a ``ValueError``).
    """

    default_add = "positive"

    def __init__(self, model: keras.Model, input_domain: Any = "real", **options: Any) -> None:
        self._declared = input_domain
        super().__init__(model, **options)

    def _input_domains(self) -> list[Domain]:
        return [as_domain(d) for d in _per_input(self._declared, len(self.graph.inputs))]

    def _choose_rule(self, call: Call, step: LayerRelevance, domain: Domain,
                     reads_input: bool) -> Rule:
        if step.dtd_rule is not None:
            return step.dtd_rule
        if step.fixed_rule is not None:
            return step.fixed_rule
        if isinstance(domain, Box):
            return ZBox(domain.low, domain.high)
        if domain is POSITIVE:
            return ZPlus()
        return W2()
