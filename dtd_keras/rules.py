r"""Relevance rules, each a few lines on one shared abstraction.

A linear layer (Dense, Conv, …) computes :math:`z_j = f(x; W)_j + b_j`. Every rule here
redistributes the upper-layer relevance :math:`R_j` onto the layer input as a sum of
*terms*. A term ``(a, ρ, β, σ)`` names an input ``a = a(x)``, a weight map ``ρ(W)``, an
optional bias map ``β(b)`` and a sign ``σ = ±1``. A rule with one group of terms does

.. math::

    d_j = \sum_t σ_t \big(f(a_t; ρ_t(W))_j + β_t(b)_j\big), \qquad s_j = R_j / d_j,
    \qquad R_i = \sum_t σ_t\, a_{t,i} \, \big[\nabla_{a_t} (f(a_t; ρ_t(W)) \cdot s)\big]_i

which is the *gradient trick*: a forward pass with modified weights, a division, one
backward pass, a multiplication. Because ``f`` is linear in ``a``, the gradient is the
transposed layer applied to ``s``, so this equals the seed's matrix pseudocode
(supplement section 2) for every layer type at once. Rules with two groups (αβ) add the
groups with coefficients.

Division: where ``|d_j|`` is below the smallest normal float32 (≈1.2e-38), ``s_j = 0``:
a neuron whose denominator vanishes passes no relevance down (never NaN or Inf).
The ε-rule instead stabilises the denominator as the seed's section 4 writes it.

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

__all__ = ["AlphaBeta", "Epsilon", "Flat", "Gamma", "Rule", "W2", "Z", "ZBox", "ZPlus"]

Tensor = Any
TINY = float(np.finfo(np.float32).tiny)


def positive(t: Tensor) -> Tensor:
    """``(t)⁺``: keep the positive part (the seed's ``w⁺ = 1[w ≥ 0] w``)."""
    return tf.maximum(t, 0.0)


def negative(t: Tensor) -> Tensor:
    """``(t)⁻``: keep the negative part."""
    return tf.minimum(t, 0.0)


def _same(t: Tensor) -> Tensor:
    return t


@dataclass(frozen=True)
class Term:
    """One term of a rule: input map, weight map, bias map (None: left out) and sign."""

    input: Callable[[Tensor], Tensor] = _same
    weight: Callable[[Tensor], Tensor] = _same
    bias: Callable[[Tensor], Tensor] | None = None
    sign: float = 1.0


@dataclass(frozen=True)
class Group:
    """Terms sharing one denominator; the group's relevance is scaled by ``coefficient``.

    ``where`` (None: every neuron) restricts the group to the output neurons whose plain
    pre-activation ``z_j = f(x; W)_j + b_j`` satisfies it (``"positive"``: z_j > 0,
    ``"negative"``: z_j < 0); the other neurons pass no relevance through this group.
    """

    terms: tuple[Term, ...]
    coefficient: float = 1.0
    where: str | None = None


def safe_divide(numerator: Tensor, denominator: Tensor) -> Tensor:
    """``numerator / denominator``, and 0 where ``|denominator| < TINY``.

    A vanishing denominator becomes ∞, and a finite numerator over ∞ is 0. A denominator
    that is itself infinite or NaN (float32 overflow) gives NaN, never a silent 0: the
    analyzer then finds the layer and raises an error that names it.
    """
    infinite = tf.constant(np.inf, dtype=denominator.dtype)
    quotient = numerator / tf.where(tf.abs(denominator) < TINY, infinite, denominator)
    return tf.where(tf.math.is_finite(denominator), quotient, np.nan)


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

    def get_config(self) -> dict:
        """The rule's parameters, enough to re-create it with ``type(rule)(**config)``."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}


CHUNK_ELEMENTS = 1 << 23
"""Kernels of row-separable layers (Dense) larger than this (32 MiB of float32) are
processed in blocks of input rows, so a modified copy such as W⁺ never exists whole."""


def tile(t: Tensor, copies: Tensor) -> Tensor:
    """``copies`` copies of the batch ``t`` stacked along its first axis (copy-major)."""
    ones = tf.ones([len(t.shape) - 1], tf.int32)
    return tf.tile(t, tf.concat([tf.reshape(copies, [1]), ones], 0))


def _group_terms(group: Group, forward: Callable, kernel: Tensor, bias: Tensor | None,
                 x: Tensor, after: Tensor, tape: tf.GradientTape | None = None,
                 rows: tuple[int, int] | None = None, copies: Tensor | None = None
                 ) -> tuple[list[Tensor], Tensor]:
    """The term inputs (watched by ``tape``) and their summed modified forward pass,
    for the kernel rows ``rows`` (and the matching last-axis slice of ``x``) if given;
    with ``copies``, the inputs are tiled that many times along the batch axis."""
    # Everything here waits for ``after`` (the upper relevance): otherwise TensorFlow
    # schedules the modified forward passes (and copies such as W⁺) during the model's
    # forward pass and keeps them alive until the backward pass reaches this layer.
    with tf.control_dependencies([after]):
        if rows is not None:
            kernel, x = kernel[rows[0]:rows[1]], x[..., rows[0]:rows[1]]
        inputs = [tf.identity(term.input(x)) for term in group.terms]
        if copies is not None:
            inputs = [tile(a, copies) for a in inputs]
        kernels = [term.weight(kernel) for term in group.terms]
    if tape is not None:
        tape.watch(inputs)
    parts = []
    for a, k, term in zip(inputs, kernels, group.terms):
        b = term.bias(bias) if (term.bias is not None and bias is not None) else None
        parts.append(term.sign * forward(a, k, b))
    return inputs, (tf.add_n(parts) if len(parts) > 1 else parts[0])


def _times_gradient(tape: tf.GradientTape, z: Tensor, inputs: list[Tensor],
                    s: Tensor) -> Tensor:
    """``Σ_t a_t ⊙ ∇_{a_t}(z · s)``: the backward pass and multiplication of the trick."""
    grads = tape.gradient(z, inputs, output_gradients=s)
    return tf.add_n([a * g for a, g in zip(inputs, grads) if g is not None])


def _times_gradient_copies(group: Group, forward: Callable, kernel: Tensor, x: Tensor,
                           s: Tensor, copies: Tensor) -> Tensor:
    """:func:`_times_gradient` for ``copies`` stacked relevance sets ``s`` of the batch
    ``x``. ``f`` is linear, so its gradient does not depend on the point: the backward
    pass runs on stand-in zeros of the stacked shape (their forward pass is never
    computed), and each copy of the gradient is multiplied by the one term input."""
    inputs, _ = _group_terms(group, lambda a, k, b: a, kernel, None, x, s)
    stacked = [tf.concat([tf.reshape(copies, [1]) * tf.shape(a)[:1], tf.shape(a)[1:]], 0)
               for a in inputs]
    sources = [tf.zeros(shape, a.dtype) for shape, a in zip(stacked, inputs)]
    with tf.GradientTape() as tape:
        tape.watch(sources)
        z = tf.add_n([term.sign * forward(a, term.weight(kernel), None)
                      for a, term in zip(sources, group.terms)])
    grads = tape.gradient(z, sources, output_gradients=s)
    parts = []
    for a, g in zip(inputs, grads):
        if g is None:
            continue
        per_copy = tf.concat([tf.reshape(copies, [1]), tf.shape(a)], 0)
        parts.append(tf.reshape(tf.reshape(g, per_copy) * a[None], tf.shape(g)))
    return tf.add_n(parts)


def _row_blocks(kernel: Tensor, rule: Rule) -> list[tuple[int, int]] | None:
    rows, cols = (kernel.shape[0], kernel.shape[1]) if len(kernel.shape) == 2 else (None, None)
    if rows is None or cols is None or rows * cols <= CHUNK_ELEMENTS or not rule.chunkable:
        return None
    step = max(1, CHUNK_ELEMENTS // cols)
    return [(i, min(i + step, rows)) for i in range(0, rows, step)]


def _divide(relevance: Tensor, denominator: Tensor, copies: Tensor | None) -> Tensor:
    """``relevance / denominator``; with ``copies``, ``relevance`` holds that many stacked
    relevance sets for the one batch ``denominator`` was computed on."""
    if copies is None:
        return safe_divide(relevance, denominator)
    stacked = tf.reshape(relevance, tf.concat([tf.reshape(copies, [1]),
                                               tf.shape(denominator)], 0))
    return tf.reshape(safe_divide(stacked, denominator[None]), tf.shape(relevance))


def propagate(rule: Rule, forward: Callable[[Tensor, Tensor, Tensor | None], Tensor],
              kernel: Tensor, bias: Tensor | None, x: Tensor, relevance: Tensor,
              domain: Any = None, *, row_separable: bool = False,
              copies: Tensor | None = None, preactivation: Tensor | None = None) -> Tensor:
    """Apply ``rule`` to one linear layer with the gradient trick.

    ``forward(a, kernel, bias)`` is the layer's linear map (bias may be None);
    ``x`` its input, ``relevance`` the relevance of its output. Returns the relevance of
    ``x``. ``row_separable`` (Dense): ``forward`` sums over ``x``'s last axis against the
    kernel's rows, so a large kernel may be processed in blocks of rows (same result).

    ``copies`` (several neurons per sample): ``relevance`` stacks ``copies`` relevance
    sets for the batch ``x`` along the batch axis (copy-major), and so does the result.
    Denominators depend only on ``x``: they are computed once and shared; only the
    backward pass runs per copy.

    ``preactivation``: ``forward(x, kernel, bias)`` as the forward pass computed it;
    rules whose denominator it is (:attr:`Rule.plain`) and γ's sign test reuse it.
    """
    blocks = _row_blocks(kernel, rule) if row_separable else None
    reuse = preactivation is not None and rule.plain
    total, plain = None, preactivation
    for group in rule.groups(domain):
        upper = relevance
        if group.where is not None:
            if plain is None:  # the layer's own pre-activation, bias included
                with tf.control_dependencies([relevance]):
                    plain = forward(x, kernel, bias)
            side = _SIDES[group.where](plain)
            if copies is not None:
                side = tile(side, copies)
            upper = tf.where(side, relevance, tf.zeros_like(relevance))
        if blocks is not None and not reuse:
            contribution = _propagate_blocks(group, rule, forward, kernel, bias, x, upper,
                                             blocks, copies)
        elif copies is None and not reuse:  # one forward pass: denominator and gradient
            with tf.GradientTape() as tape:
                inputs, z = _group_terms(group, forward, kernel, bias, x, upper, tape)
            s = safe_divide(upper, rule.stabilize(z))
            contribution = _times_gradient(tape, z, inputs, s)
        else:  # denominator once; the (tiled) forward pass only feeds the gradient
            if reuse:
                z = preactivation
            else:
                _, z = _group_terms(group, forward, kernel, bias, x, upper)
            s = _divide(upper, rule.stabilize(z), copies)
            if copies is None:
                with tf.GradientTape() as tape:
                    inputs, z = _group_terms(group, forward, kernel, None, x, s, tape)
                contribution = _times_gradient(tape, z, inputs, s)
            else:
                contribution = _times_gradient_copies(group, forward, kernel, x, s, copies)
        if group.coefficient != 1.0:
            contribution = group.coefficient * contribution
        total = contribution if total is None else total + contribution
    return total


def _propagate_blocks(group: Group, rule: Rule, forward: Callable, kernel: Tensor,
                      bias: Tensor | None, x: Tensor, relevance: Tensor,
                      blocks: list[tuple[int, int]], copies: Tensor | None = None) -> Tensor:
    """:func:`propagate` for one group, block by block of kernel rows, in sequence."""
    z, after = None, relevance
    for i, rows in enumerate(blocks):  # the denominator, summed over blocks
        _, part = _group_terms(group, forward, kernel, bias if i == 0 else None, x, after,
                               rows=rows)
        z = part if z is None else z + part
        after = z
    s = _divide(relevance, rule.stabilize(z), copies)
    pieces, after = [], s
    for rows in blocks:  # then the relevance of each block of inputs
        with tf.GradientTape() as tape:
            inputs, part = _group_terms(group, forward, kernel, None, x, after, tape, rows,
                                        copies)
        piece = _times_gradient(tape, part, inputs, s)
        pieces.append(piece)
        after = piece
    return tf.concat(pieces, axis=-1)


_SIDES = {"positive": lambda z: z > 0, "negative": lambda z: z < 0}


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
        return (Group((Term(input=_ones, weight=_square),)),)


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
    from .domains import POSITIVE, Box

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
            return (Group((Term(weight=positive),)),)
        return (Group((Term(input=positive, weight=positive),
                       Term(input=negative, weight=negative))),)


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
        from .domains import Box

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
        )),)

    def __repr__(self) -> str:
        def show(a: np.ndarray) -> str:
            return f"{float(a):g}" if a.ndim == 0 else f"array{a.shape}"

        return f"ZBox(low={show(self.low)}, high={show(self.high)})"


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
        if self.epsilon == 0:
            return denominator
        sign = tf.where(denominator >= 0, tf.ones_like(denominator), -tf.ones_like(denominator))
        return denominator + self.epsilon * sign


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
        groups = [Group(tuple(pos), self.alpha)]
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
        return (Group((Term(input=_ones, weight=_ones),)),)


