r"""Rules for linear layers, each a few lines on one shared abstraction.

Every rule is a list of term groups (:class:`~dtd_keras.engine.propagation.Term`,
:class:`~dtd_keras.engine.propagation.Group`: input map, weight map, bias map, sign) plus a
stabiliser; :func:`~dtd_keras.engine.propagation.propagate` applies any rule to any linear layer
with the gradient trick (see :mod:`dtd_keras.engine.propagation` for the formula it evaluates).
Notation: ``z_ij = x_i w_ij``, ``w⁺ = max(w, 0)``, ``w⁻ = min(w, 0)``.

Bias: the seed's DTD rules (w², z, z⁺, zᴮ) and flat leave the bias out of the
denominator, so each layer conserves relevance exactly. ε, αβ and γ put it in, as
LRP does, so the bias absorbs (or injects) relevance.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from ..engine.propagation import (  # noqa: F401  (re-exported: the rules' shared abstraction)
    TINY,
    Group,
    Term,
    negative,
    positive,
    propagate,
    safe_divide,
    tile,
)
from ..engine.terms import _same

__all__ = ["AlphaBeta", "Epsilon", "Flat", "Gamma", "Rule", "W2", "Z", "ZBox", "ZFlat", "ZPlus",
           "ZSign", "stabilize"]

Tensor = Any


class Rule:
    """Base class: a rule is a list of term groups plus a stabiliser.

    Subclasses implement :meth:`groups`; :func:`propagate` does the rest for every
    layer type.
    """

    def groups(self, domain: Any) -> Sequence[Group]:
        """The term groups. ``domain`` is the layer input's domain, for shortcuts only."""
        raise NotImplementedError

    def stabilize(self, denominator: Tensor) -> Tensor:
        """Map the denominator before dividing; default: exact (zero → no relevance)."""
        return denominator

    @property
    def chunkable(self) -> bool:
        """Whether term inputs are elementwise in ``x`` (so blocks of inputs can be
        processed apart); False for bounds given per input position."""
        return True

    @property
    def plain(self) -> bool:
        """Whether the only denominator is the layer's own pre-activation ``f(x; W) + b``
        (ε, LRP-0), so the forward pass's value can serve."""
        return False

    @property
    def needs_preactivation(self) -> bool:
        """Whether the rule reads the forward pass's pre-activation ``f(x; W) + b`` (as
        its denominator, or to test its sign); the forward pass keeps it only then."""
        return self.plain

    def get_config(self) -> dict:
        """The rule's parameters, enough to re-create it with ``type(rule)(**config)``."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}


def _ones(t: Tensor) -> Tensor:
    return tf.ones_like(t)


def _square(t: Tensor) -> Tensor:
    return tf.square(t)


@dataclass(frozen=True)
class W2(Rule):
    r"""w²-rule (seed 1.1/2.1), for inputs in ℝᵈ.

    :math:`R_i = \sum_j \frac{w_{ij}^2}{\sum_i w_{ij}^2} R_j`. Input-independent; the
    bias is left out. Terms: input 1, weights W².
    """

    def groups(self, domain: Any) -> Sequence[Group]:
        return (Group((Term(input=_ones, weight=_square),), nonnegative=True),)


@dataclass(frozen=True)
class Z(Rule):
    r"""z-rule (seed 1.2/2.2): :math:`R_i = \sum_j \frac{z_{ij}}{\sum_i z_{ij}} R_j`.

    ``z_ij = x_i w_ij``.

    The bias is left out of the denominator (conservative). Can produce negative
    relevance, and is unstable where :math:`\sum_i z_{ij} ≈ 0`.
    """

    def groups(self, domain: Any) -> Sequence[Group]:
        return (Group((Term(),)),)


def _nonnegative(domain: Any) -> bool:
    from ..engine.domains import POSITIVE, Box

    return domain is POSITIVE or (isinstance(domain, Box) and bool(np.all(domain.low >= 0)))


@dataclass(frozen=True)
class ZPlus(Rule):
    r"""z⁺-rule (seed 1.3/2.3), for inputs in ℝᵈ₊.

    :math:`R_i = \sum_j \frac{z^+_{ij}}{\sum_i z^+_{ij}} R_j` with :math:`z^+_{ij}` the
    positive part of :math:`x_i w_{ij}`; bias left out. For :math:`x ≥ 0` this is the
    seed's :math:`x_i w^+_{ij}` exactly; on real-valued inputs (where LRP presets apply
    it) the positive part of the product, :math:`x^+ w^+ + x^- w^-`, keeps the
    denominator a sum of non-negative terms (positive, never an overflow).
    """

    def groups(self, domain: Any) -> Sequence[Group]:
        if _nonnegative(domain):
            return (Group((Term(weight=positive),), nonnegative=True),)
        return (Group((Term(input=positive, weight=positive),
                       Term(input=negative, weight=negative)), nonnegative=True),)


@dataclass(frozen=True)
class ZSign(Rule):
    r"""Each neuron's relevance to the contributions of its own sign: DTD's rule for hidden
    layers on real-valued inputs (below a PReLU, LeakyReLU, swish, … or a linear output).

    Where :math:`\sum_i z_{ij} \ge 0`: :math:`R_i = \sum_j \frac{z^+_{ij}}{\sum_i
    z^+_{ij}} R_j` (z⁺ with :math:`z^+_{ij}` the positive part of :math:`x_i w_{ij}`);
    where :math:`\sum_i z_{ij} < 0`: the same with the negative parts :math:`z^-_{ij}`.
    Bias left out, as in every DTD rule. Deep Taylor's root search along the contributions
    that carry the neuron's sign (seed Equation 7 with :math:`v_i = x_i 1[\operatorname{sign}
    (z_{ij}) = \operatorname{sign}(\sum_i z_{ij})]`): the segment lies in ℝᵈ, and the
    bias-free sum changes sign along it. Reads the activations; shares are non-negative
    (positive relevance stays positive); conservative wherever :math:`\sum_i z_{ij} \ne 0`,
    also on neurons that an activation such as PReLU leaves negative (where z⁺ would find
    no positive contribution and lose their relevance). On ℝ₊ inputs it is z⁺ for
    neurons with a non-negative sum.
    """

    def groups(self, domain: Any) -> Sequence[Group]:
        if _nonnegative(domain):  # x⁻ = 0
            return (Group((Term(weight=positive),), where="nonnegative_sum", nonnegative=True),
                    Group((Term(weight=negative, sign=-1.0),), where="negative_sum",
                          nonnegative=True))
        return (Group((Term(input=positive, weight=positive),
                       Term(input=negative, weight=negative)),
                      where="nonnegative_sum", nonnegative=True),
                Group((Term(input=positive, weight=negative, sign=-1.0),
                       Term(input=negative, weight=positive, sign=-1.0)),
                      where="negative_sum", nonnegative=True))


@dataclass(frozen=True, eq=False)
class ZBox(Rule):
    r"""zᴮ-rule (seed 1.4/2.4), for inputs in the box ``[low, high]``.

    :math:`R_i = \sum_j \frac{x_i w_{ij} - l_i w^+_{ij} - h_i w^-_{ij}}
    {\sum_i (x_i w_{ij} - l_i w^+_{ij} - h_i w^-_{ij})} R_j`; bias left out.
    Computed as :math:`(x_i - l_i) w^+_{ij} + (x_i - h_i) w^-_{ij}` (the seed's proof of
    Proposition 3), a sum of non-negative terms inside the box.
    ``low``/``high`` are scalars or arrays broadcastable to one sample of the layer input.
    """

    low: Any = 0.0
    high: Any = 1.0

    def __post_init__(self) -> None:
        from ..engine.domains import Box

        box = Box(self.low, self.high)  # validates
        object.__setattr__(self, "low", box.low)
        object.__setattr__(self, "high", box.high)

    def _minus(self, value: np.ndarray) -> Callable[[Tensor], Tensor]:
        def shift(x: Tensor) -> Tensor:
            return x - tf.constant(value, dtype=x.dtype)

        return shift

    @property
    def chunkable(self) -> bool:
        return self.low.ndim == 0 and self.high.ndim == 0

    def groups(self, domain: Any) -> Sequence[Group]:
        # x w - l w⁺ - h w⁻ = (x - l) w⁺ + (x - h) w⁻: both terms ≥ 0 inside the box
        # (seed Proposition 3), so the float sum is positive too, with no cancellation.
        return (Group((
            Term(input=self._minus(self.low), weight=positive),
            Term(input=self._minus(self.high), weight=negative),
        ), nonnegative=True),)

    def __repr__(self) -> str:
        def show(a: np.ndarray) -> str:
            return f"{float(a):g}" if a.ndim == 0 else f"array{a.shape}"

        return f"ZBox(low={show(self.low)}, high={show(self.high)})"


def stabilize(z: Tensor, epsilon: float) -> Tensor:
    """``z + ε·sign(z)``, with ``sign(0) = +1`` (LRP-ε's stabiliser); ``ε = 0`` leaves
    ``z``. Shared by :class:`Epsilon` and the bilinear rules of
    :mod:`dtd_keras.rules.attention`."""
    if epsilon == 0:
        return z
    eps = tf.constant(epsilon, z.dtype)
    return z + tf.where(z >= 0, eps, -eps)


@dataclass(frozen=True)
class Epsilon(Rule):
    r"""LRP-ε (seed section 4): :math:`R_i = \sum_j \frac{z_{ij}}{s(\sum_i z_{ij} + b_j)} R_j`.

    :math:`s(t) = t + ε(1_{t≥0} - 1_{t<0})`; the bias is in the denominator.
    ``epsilon=0`` is LRP-0 (the z-rule with bias), with zero denominators giving zero.
    """

    epsilon: float = 1e-6

    def __post_init__(self) -> None:
        if not np.isfinite(self.epsilon) or self.epsilon < 0:
            raise ValueError(f"Epsilon needs epsilon >= 0, got {self.epsilon!r}")

    def groups(self, domain: Any) -> Sequence[Group]:
        return (Group((Term(bias=_same),)),)

    @property
    def plain(self) -> bool:
        return True

    def stabilize(self, denominator: Tensor) -> Tensor:
        return stabilize(denominator, self.epsilon)


@dataclass(frozen=True)
class AlphaBeta(Rule):
    r"""LRP-αβ (seed section 4), with α − β = 1.

    :math:`R_i = \sum_j \big(α \frac{z^+_{ij}}{\sum_i z^+_{ij} + b^+_j}
    - β \frac{z^-_{ij}}{\sum_i z^-_{ij} + b^-_j}\big) R_j`, where :math:`z^±_{ij}` is
    the positive/negative part of the product :math:`x_i w_{ij}` (so
    :math:`z^+ = x^+ w^+ + x^- w^-`) and :math:`b^±` the bias' parts.
    """

    alpha: float = 1.0
    beta: float = 0.0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.alpha) and np.isfinite(self.beta)):
            raise ValueError(f"AlphaBeta needs finite alpha, beta; got {self.alpha}, {self.beta}")
        if self.beta < 0:
            raise ValueError(f"AlphaBeta needs beta >= 0, got beta={self.beta}")
        if abs((self.alpha - self.beta) - 1.0) > 1e-6:
            raise ValueError(
                f"AlphaBeta needs alpha - beta = 1 (seed section 4); got alpha={self.alpha}, "
                f"beta={self.beta}, alpha - beta = {self.alpha - self.beta}"
            )

    def groups(self, domain: Any) -> Sequence[Group]:
        nonnegative = _nonnegative(domain)
        pos = [Term(input=positive, weight=positive, bias=positive)]
        neg = [Term(input=positive, weight=negative, bias=negative)]
        if not nonnegative:  # negative inputs: x⁻w⁻ ≥ 0 and x⁻w⁺ ≤ 0 contribute too
            pos.append(Term(input=negative, weight=negative))
            neg.append(Term(input=negative, weight=positive))
        groups = [Group(tuple(pos), self.alpha, nonnegative=True)]
        if self.beta != 0:
            groups.append(Group(tuple(neg), -self.beta))
        return tuple(groups)


@dataclass(frozen=True)
class Gamma(Rule):
    r"""Generalized LRP-γ (Montavon et al. 2019; Andéol et al. 2021; zennit ≥ 0.5).

    Each output neuron's weights and bias are pushed towards the contributions that
    agree in sign with its pre-activation :math:`z_j = \sum_i x_i w_{ij} + b_j`:

    - where :math:`z_j > 0`: :math:`R_i = \sum_j \frac{x^+_i (w_{ij} + γw^+_{ij})
      + x^-_i (w_{ij} + γw^-_{ij})}{\sum_i [x^+_i (w_{ij} + γw^+_{ij})
      + x^-_i (w_{ij} + γw^-_{ij})] + b_j + γb^+_j} R_j`;
    - where :math:`z_j < 0`: the same with :math:`w^+ ↔ w^-` in both terms and the
      bias :math:`b_j + γb^-_j`;
    - where :math:`z_j = 0`: no relevance passes.

    The bias is in the denominator. For :math:`x ≥ 0` (after a ReLU) and :math:`z_j > 0`
    this is the classic :math:`x_i (w_{ij} + γw^+_{ij}) / (\sum_i … + b_j + γb^+_j)`;
    on real-valued inputs it stays bounded where the classic rule explodes.
    ``gamma=0`` is LRP-0.
    """

    gamma: float = 0.25

    def __post_init__(self) -> None:
        if not np.isfinite(self.gamma) or self.gamma < 0:
            raise ValueError(f"Gamma needs gamma >= 0, got {self.gamma!r}")

    @property
    def needs_preactivation(self) -> bool:
        return True

    def groups(self, domain: Any) -> Sequence[Group]:
        g = self.gamma

        def up(t: Tensor) -> Tensor:
            return t + g * positive(t)

        def down(t: Tensor) -> Tensor:
            return t + g * negative(t)

        if _nonnegative(domain):  # x⁻ = 0: one term per side
            return (Group((Term(weight=up, bias=up),), where="positive"),
                    Group((Term(weight=down, bias=down),), where="negative"))
        return (
            Group((Term(input=positive, weight=up, bias=up),
                   Term(input=negative, weight=down)), where="positive"),
            Group((Term(input=positive, weight=down, bias=down),
                   Term(input=negative, weight=up)), where="negative"),
        )


@dataclass(frozen=True)
class Flat(Rule):
    r"""Flat rule: :math:`R_i = \sum_j \frac{1}{\sum_{i'} 1} R_j` over the inputs ``i``
    connected to ``j`` (its receptive field; padding is not an input).

    The w²-rule with every weight set to 1; bias left out.
    """

    def groups(self, domain: Any) -> Sequence[Group]:
        return (Group((Term(input=_ones, weight=_ones),), nonnegative=True),)


@dataclass(frozen=True)
class ZFlat(Rule):
    r"""The z-rule, and the flat rule where it has nothing to divide by.

    :math:`R_i = \sum_j \frac{z_{ij}}{\sum_i z_{ij}} R_j` for the neurons with
    :math:`\sum_i z_{ij} \neq 0`; a neuron whose inputs sum to 0 (an all-zero pooling
    window) splits its relevance evenly over its inputs instead of losing it. Bias left
    out: conservative. LRP uses it at average pools (zennit's ``Norm``, without the loss
    at empty windows, which input-independent rules above such as w² and flat send
    relevance to).
    """

    def groups(self, domain: Any) -> Sequence[Group]:
        return (Group((Term(),), where="nonvanishing"),
                Group((Term(input=_ones, weight=_ones),), where="vanishing",
                      nonnegative=True))

