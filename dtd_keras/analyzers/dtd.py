"""DTD: each layer's rule from the domain of its input (the seed's training-free deep
Taylor decomposition)."""

from __future__ import annotations

import warnings
from typing import Any

import keras

from ..engine.domains import POSITIVE, Box, Domain, as_domain
from ..engine.graph import Call
from ..errors import UnsupportedLayerError
from ..layers import LayerRelevance
from ..rules import W2, Rule, ZBox, ZPlus, ZSign
from .base import Analyzer

__all__ = ["DTD", "HIDDEN_REAL_RULE"]

HIDDEN_REAL_RULE: Rule = ZSign()
"""DTD's default for a hidden Dense/Conv layer reading real values."""

_CHOICES = ("pass hidden_real_rule=dk.rules.W2() for the seed's w² (the same map for every "
            "input), another rule, or 'error' to refuse such models; or explain with an LRP "
            "preset (e.g. dk.create_analyzer('lrp.composite', model))")


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

    A *hidden* Dense/Conv layer (one that does not read the model input) whose input is
    real-valued (below a PReLU, LeakyReLU, swish, … or a linear output) would get w²,
    which reads only the weights: every input would then get the same map there, scaled
    by the logit. Such layers get ``hidden_real_rule`` instead, by default
    :class:`~dtd_keras.rules.ZSign` (each neuron's relevance to the contributions
    ``x_i w_ij`` of its own sign, bias left out), which reads the activations, stays
    positive and conserves; one warning names them.

    Parameters
    ----------
    input_domain:
        ``"real"`` (default, valid for any input), ``"positive"``, ``dk.Box(low, high)``
        or a ``(low, high)`` tuple; a list gives one per model input. Inputs outside it
        raise :class:`~dtd_keras.errors.DomainError` (a ``ValueError``).
    hidden_real_rule:
        The rule for hidden Dense/Conv layers whose input domain is ℝ: None (default:
        ``ZSign()``, with a warning naming those layers), a rule (no warning; ``W2()``
        is the seed's input-independent rule), or ``"error"`` to refuse such models
        (:class:`~dtd_keras.errors.UnsupportedLayerError` naming the layers).
        ``analyzer.hidden_real_layers`` lists the layers it applies to.
    """

    default_add = "positive"

    def __init__(self, model: keras.Model, input_domain: Any = "real", *,
                 hidden_real_rule: Rule | str | None = None, **options: Any) -> None:
        if not (hidden_real_rule is None or hidden_real_rule == "error"
                or isinstance(hidden_real_rule, Rule)):
            raise TypeError("hidden_real_rule must be a dtd_keras rule (e.g. dk.rules.W2()), "
                            f"'error' or None (ZSign() with a warning), got {hidden_real_rule!r}")
        self._declared = input_domain
        self.hidden_real_rule = hidden_real_rule
        self.hidden_real_layers: list[str] = []  # the layers that got hidden_real_rule
        self._hidden_real: list[str] = []  # the same, as errors name them
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
        if reads_input or not step.mixes_inputs:
            return W2()  # the declared real input (the seed's rule), or fixed weights
        self.hidden_real_layers.append(call.name)
        self._hidden_real.append(call.description)
        chosen = self.hidden_real_rule
        return chosen if isinstance(chosen, Rule) else HIDDEN_REAL_RULE

    def _finish_build(self) -> None:
        super()._finish_build()
        if not self._hidden_real or isinstance(self.hidden_real_rule, Rule):
            return
        layers = ", ".join(self._hidden_real)
        count = len(self._hidden_real)
        what = (f"{count} hidden layer{'s' if count > 1 else ''} read{'' if count > 1 else 's'} "
                f"real-valued inputs (domain ℝ: below a non-ReLU activation or a linear "
                f"output): {layers}")
        if self.hidden_real_rule == "error":
            raise UnsupportedLayerError(
                f"DTD(hidden_real_rule='error'): {what}. Deep Taylor's rule for ℝ, w², reads "
                "only the weights, so these layers would give every input the same map. "
                "Explain this model with an LRP preset (e.g. dk.create_analyzer("
                "'lrp.composite', model)), or choose their rule with hidden_real_rule="
                "dk.rules.ZSign() (reads the activations) or dk.rules.W2() (the seed's)")
        warnings.warn(
            f"DTD: {what}. Deep Taylor's rule for ℝ, w², reads only the weights and would "
            f"give every input the same map there, so they get {HIDDEN_REAL_RULE!r} instead "
            "(each neuron's relevance to the contributions x_i·w_ij of its own sign, bias "
            "left out: it reads the activations, is positive and conserves). To choose: "
            f"{_CHOICES}",
            UserWarning, stacklevel=5)
