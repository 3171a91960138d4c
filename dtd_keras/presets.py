"""Named analyzers, in the vocabulary users of the older Keras toolbox know.

``create_analyzer(name, model, **options)`` builds one; :data:`PRESETS` lists them.

==========================  ===========================================================
name                        analyzer
==========================  ===========================================================
``deep_taylor``             ``DTD(model, input_domain=...)`` (rules by input domain)
``deep_taylor.bounded``     ``DTD(model, input_domain=Box(low, high))`` (needs low, high)
``lrp.z``                   ``LRP(model, Epsilon(0))`` — LRP-0, bias in the denominator
``lrp.epsilon``             ``LRP(model, Epsilon(epsilon=1e-7))``
``lrp.alpha_1_beta_0``      ``LRP(model, AlphaBeta(1, 0))``
``lrp.alpha_2_beta_1``      ``LRP(model, AlphaBeta(2, 1))``
``lrp.z_plus``              ``LRP(model, ZPlus())``
``lrp.w_square``            ``LRP(model, W2())``
``lrp.flat``                ``LRP(model, Flat())``
``lrp.gamma``               ``LRP(model, Gamma(gamma=0.25))``
``lrp.composite``           zᴮ (or w² without bounds) at the input, γ in the lower
                            convolutions, ε in the upper ones, LRP-0 in the dense top
``gradient``                plain gradient of the explained logit
``input_x_gradient``        input ⊙ gradient (alias ``input_t_gradient``)
==========================  ===========================================================
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf

from .analyzers import DTD, LRP, Analyzer
from .engine.domains import Box
from .engine.passes import unstack
from .engine.propagation import tile
from .layers import LayerRelevance
from .rules import W2, AlphaBeta, Epsilon, Flat, Gamma, Rule, ZBox, ZPlus

__all__ = ["PRESETS", "Composite", "Gradient", "InputXGradient", "create_analyzer"]


class Gradient(Analyzer):
    """The gradient of the explained logit w.r.t. the input, with the analyzers' API
    (same forward graph, neuron selection, softmax stripping, export, callbacks)."""

    times_input = False
    absorbed_by: tuple[str, ...] = ()  # no rules: nothing is conserved nor absorbed by design

    def _choose_rule(self, call, step, domain, reads_input):
        return Epsilon(0.0)  # unused: the backward pass is the gradient

    def _finish_build(self) -> None:
        self.rules = {}  # no relevance rules: the backward pass is the gradient

    def _relevance_graph(self, inputs: tuple, neuron: tf.Tensor, inspect=None):
        copies = tf.shape(neuron)[1] if len(neuron.shape) == 2 else None
        if copies is not None:  # K neurons: K copies of the batch, copy-major
            inputs = tuple(tile(x, copies) for x in inputs)
            neuron = tf.reshape(tf.transpose(neuron), [-1])
        inputs = tuple(tf.identity(x) for x in inputs)
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            chosen, explained = self.select_logits(inputs, neuron)
        grads = tape.gradient(explained, inputs)
        grads = [tf.zeros_like(x) if g is None else g for x, g in zip(inputs, grads)]
        if self.times_input:
            grads = [x * g for x, g in zip(inputs, grads)]
        if copies is None:
            return tuple(grads), chosen, explained

        def per_sample(t):  # [K·batch] -> [batch, K]
            return tf.transpose(tf.reshape(t, [copies, -1]))

        return unstack(grads, copies), per_sample(chosen), per_sample(explained)


class InputXGradient(Gradient):
    """Input ⊙ gradient of the explained logit."""

    times_input = True


class Composite(LRP):
    """The layer-dependent composite recommended in the LRP literature.

    zᴮ at the layers reading the input (w² when no ``low``/``high`` is given), LRP-γ in
    the lower half of the convolutional layers, LRP-ε in the upper half, LRP-0
    (``Epsilon(0)``) in the dense layers at the top (or the last layer if there are none).
    ``split=(k, m)`` overrides: rule-taking layers ``[0, k)`` get γ, ``[k, m)`` ε, and
    ``[m, …)`` LRP-0 (the input layers keep the input rule); ``layer_rules`` still wins.
    """

    def __init__(self, model: keras.Model, *, low: Any = None, high: Any = None,
                 gamma: float = 0.25, epsilon: float = 0.25,
                 split: tuple[int, int] | None = None, **options: Any) -> None:
        if (low is None) != (high is None):
            raise ValueError("lrp.composite needs both low and high, or neither")
        self._split = split
        self._bands = (Gamma(gamma), Epsilon(epsilon), Epsilon(0.0))
        input_rule = W2() if low is None else ZBox(low, high)
        super().__init__(model, Epsilon(epsilon), input_rule=input_rule, **options)

    def _finish_build(self) -> None:
        super()._finish_build()
        names = list(self.rules)
        dense = [n for n, (s, _) in zip(names, self._linear_steps())
                 if isinstance(s.layer, keras.layers.Dense)]
        if self._split is not None:
            lower, upper = self._split
        else:
            first = sum(1 for _, r in self._linear_steps() if r is self.input_rule)
            top = [names.index(n) for n in dense if names.index(n) >= first]
            upper = max(top[0] if top else len(names) - 1, first)
            lower = first + (upper - first) // 2
        if not 0 <= lower <= upper <= len(names):
            raise ValueError(f"split={self._split} must satisfy 0 <= k <= m <= {len(names)}")
        for i, (name, (step, rule)) in enumerate(zip(names, self._linear_steps())):
            if rule is self.input_rule or rule is not self.rule or step.fixed_rule is not None:
                continue  # input layers, layer_rules and fixed rules stay
            band = self._bands[0] if i < lower else self._bands[1] if i < upper else self._bands[2]
            self.rules[name] = band
            self._set_rule(step, band)

    def _linear_steps(self) -> list[tuple[LayerRelevance, Rule]]:
        return [(s, r) for s, r in self._steps if s.needs_rule]

    def _set_rule(self, step: LayerRelevance, rule: Rule) -> None:
        self._steps = [(s, rule if s is step else r) for s, r in self._steps]


def _bounded(model: keras.Model, low: Any = None, high: Any = None, **options: Any) -> DTD:
    if low is None or high is None:
        raise ValueError("deep_taylor.bounded needs low and high (the input box)")
    return DTD(model, input_domain=Box(low, high), **options)


def _lrp(rule_factory: Callable[..., Rule], **defaults: Any) -> Callable[..., LRP]:
    def build(model: keras.Model, **options: Any) -> LRP:
        params = {k: options.pop(k, v) for k, v in defaults.items()}
        return LRP(model, rule_factory(**params), **options)

    return build


PRESETS: dict[str, Callable[..., Analyzer]] = {
    "deep_taylor": DTD,
    "deep_taylor.bounded": _bounded,
    "lrp.z": _lrp(lambda: Epsilon(0.0)),
    "lrp.epsilon": _lrp(Epsilon, epsilon=1e-7),
    "lrp.alpha_1_beta_0": _lrp(lambda: AlphaBeta(1, 0)),
    "lrp.alpha_2_beta_1": _lrp(lambda: AlphaBeta(2, 1)),
    "lrp.z_plus": _lrp(ZPlus),
    "lrp.w_square": _lrp(W2),
    "lrp.flat": _lrp(Flat),
    "lrp.gamma": _lrp(Gamma, gamma=0.25),
    "lrp.composite": Composite,
    "gradient": Gradient,
    "input_x_gradient": InputXGradient,
    "input_t_gradient": InputXGradient,
}
"""Preset name → analyzer factory ``(model, **options)``."""


def create_analyzer(name: str, model: keras.Model, **options: Any) -> Analyzer:
    """Build the analyzer called ``name`` (see :data:`PRESETS`) for ``model``."""
    if name not in PRESETS:
        raise ValueError(f"unknown analyzer {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name](model, **options)
