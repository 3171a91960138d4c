"""AttnLRP and CP-LRP: LRP for transformers.

:class:`AttnLRP` is :class:`~dtd_keras.LRP` with LRP-ε (a small ε, within 1e-3 of
LRP-0; biases absorb their share) on every Dense/EinsumDense/Conv and the attention
rules of :mod:`dtd_keras.rules.attention` on softmax and bilinear products. It passes
``attention=mode`` to every layer behaviour, so each reads which rules apply:

- ``mode="attn_lrp"`` (Achtibat et al., ICML 2024): softmax rule, uniform rule on
  q·kᵀ and A·v, identity rule on LayerNorm/RMSNorm, elementwise activations pass
  relevance unchanged;
- ``mode="cp_lrp"`` (Ali et al., ICML 2022): attention probabilities held constant
  (all of A·v's relevance to the values), LayerNorm alike.

``layer_rules`` and ``input_rule`` work as for :class:`~dtd_keras.LRP` (e.g. γ on a
ViT's patch-embedding convolution).
"""

from __future__ import annotations

from typing import Any

import keras

from ..rules import Epsilon, Rule
from .lrp import LRP

__all__ = ["ATTENTION_EPSILON", "AttnLRP"]

ATTENTION_EPSILON = 1e-6
"""The ε of the attention analyzers' LRP-ε and of the bilinear rules' denominators."""

MODES = ("attn_lrp", "cp_lrp")


class AttnLRP(LRP):
    """LRP for transformers: AttnLRP (default) or CP-LRP rules.

    Parameters
    ----------
    mode:
        ``"attn_lrp"`` or ``"cp_lrp"``.
    epsilon:
        ε of the LRP-ε rule on Dense/EinsumDense/Conv (default 1e-6: within 1e-3 of
        LRP-0) and of the bilinear rules' stabiliser.
    rule:
        Overrides the default ``Epsilon(epsilon)`` for every Dense/Conv layer.
    **options:
        :class:`~dtd_keras.LRP`'s (``input_rule``, ``layer_rules``, ``output``, …).
    """

    def __init__(self, model: keras.Model, mode: str = "attn_lrp", *,
                 epsilon: float = ATTENTION_EPSILON, rule: Rule | None = None,
                 **options: Any) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not (
                0 <= epsilon < float("inf")):
            raise ValueError(f"epsilon must be a finite number >= 0, got {epsilon!r}")
        self.mode = mode
        self.epsilon = float(epsilon)
        super().__init__(model, Epsilon(self.epsilon) if rule is None else rule, **options)

    def _step_options(self) -> dict[str, Any]:
        return {**super()._step_options(), "attention": self.mode,
                "attention_epsilon": self.epsilon}

    def state_fingerprint(self) -> str:
        """What decides the maps beyond the rule per layer: the attention mode and ε
        (:func:`dtd_keras.analyze_dataset` records it, so a store never mixes modes)."""
        return f"attention={self.mode}, epsilon={self.epsilon!r}"
