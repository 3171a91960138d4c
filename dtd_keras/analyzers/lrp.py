"""LRP: layer-wise relevance propagation with the rules the user gives."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras

from ..engine.domains import REAL, Box, Domain
from ..engine.graph import Call
from ..layers import LayerRelevance
from ..rules import Epsilon, Rule, ZBox
from .base import Analyzer

__all__ = ["DEFAULT_RULE", "LRP"]

DEFAULT_RULE: Rule = Epsilon(1e-6)
"""LRP's rule where none is given."""


class LRP(Analyzer):
    """Layer-wise relevance propagation with the rules you give.

    Parameters
    ----------
    rule:
        The rule for every Dense/Conv layer (default ``Epsilon(1e-6)``; ``None`` is
        refused, not read as the default).
    input_rule:
        The rule for the layers that read the model input (through reshapes, pooling or
        dropout only), e.g. ``ZBox(0, 1)`` for pixels. A ``ZBox`` input rule also
        declares the input domain: inputs outside its box raise ``DomainError``.
    layer_rules:
        ``{layer name: rule}`` overrides (a nested layer is ``"inner_model/layer"``; a
        layer called twice can be named per call, ``"dense[1]"``, or for all calls).
    """

    def __init__(self, model: keras.Model, rule: Rule = DEFAULT_RULE, *,
                 input_rule: Rule | None = None,
                 layer_rules: Mapping[str, Rule] | None = None, **options: Any) -> None:
        if rule is None:
            raise TypeError(
                f"LRP needs a rule for every Dense/Conv layer, got rule=None: pass one, e.g. "
                f"dk.rules.Epsilon(0.1) or dk.rules.Gamma(0.25), or leave rule out for "
                f"{DEFAULT_RULE!r}")
        self.rule = rule
        self.input_rule = input_rule
        self.layer_rules = dict(layer_rules or {})
        for where, r in [("rule", rule), ("input_rule", input_rule),
                         *((f"layer_rules[{k!r}]", v) for k, v in self.layer_rules.items())]:
            if r is not None and not isinstance(r, Rule):
                raise TypeError(f"{where} must be a dtd_keras rule (e.g. dk.rules.Epsilon(0.1)), "
                                f"got {r!r}")
        self._used: set[str] = set()
        super().__init__(model, **options)

    def _input_domains(self) -> list[Domain]:
        if isinstance(self.input_rule, ZBox):
            return [Box(self.input_rule.low, self.input_rule.high) for _ in self.graph.inputs]
        return [REAL for _ in self.graph.inputs]

    def _choose_rule(self, call: Call, step: LayerRelevance, domain: Domain,
                     reads_input: bool) -> Rule:
        for key in (call.name, call.scope + call.operation.name, call.operation.name):
            if key in self.layer_rules:
                self._used.add(key)
                return self.layer_rules[key]
        if step.fixed_rule is not None:
            return step.fixed_rule
        if reads_input and self.input_rule is not None:
            return self.input_rule
        return step.adapt_rule(self.rule)

    def _finish_build(self) -> None:
        unknown = sorted(set(self.layer_rules) - self._used)
        if unknown:
            raise ValueError(f"layer_rules names layers that have no rule to set: {unknown}; "
                             f"the rule-taking layers are {sorted(self.rules)}")
