r"""Propagation: the one mechanism every rule runs on (the gradient trick).

A linear layer (Dense, Conv, …) computes :math:`z_j = f(x; W)_j + b_j`. A rule
(:mod:`dtd_keras.rules`) redistributes the upper-layer relevance :math:`R_j` onto the
layer input as a sum of *terms*. A :class:`Term` ``(a, ρ, β, σ)`` names an input
``a = a(x)``, a weight map ``ρ(W)``, an optional bias map ``β(b)`` and a sign ``σ = ±1``;
a :class:`Group` of terms shares one denominator:

.. math::

    d_j = \sum_t σ_t \big(f(a_t; ρ_t(W))_j + β_t(b)_j\big), \qquad s_j = R_j / d_j,
    \qquad R_i = \sum_t σ_t\, a_{t,i} \, \big[\nabla_{a_t} (f(a_t; ρ_t(W)) \cdot s)\big]_i

:func:`propagate` evaluates this with the *gradient trick*: a forward pass with modified
weights, a division, one backward pass, a multiplication. Because ``f`` is linear in
``a``, the gradient is the transposed layer applied to ``s``, so this equals the seed's
matrix pseudocode (supplement section 2) for every layer type at once. It also shares the
denominators between several neurons per sample, reuses the forward pass's pre-activation
where it is the denominator, and processes huge Dense kernels in blocks of rows.

Division (:mod:`dtd_keras.engine.division`): where ``d_j = 0`` (on CPU, TensorFlow flushes every
``|d_j|`` below the smallest normal float32, ≈1.2e-38, to 0), ``s_j = 0``: a neuron whose
denominator vanishes passes no relevance down; a denominator that overflowed gives NaN,
which the analyzer reports by layer. Inside
:func:`deferred_overflow_check` (a compiled relevance pass) the overflow test is one
reduction per division instead of two elementwise passes, and the pass's results become
NaN at the end if any denominator overflowed.

The pieces live in :mod:`dtd_keras.engine.terms` (terms, groups, the trick's steps),
:mod:`dtd_keras.engine.division` and :mod:`dtd_keras.engine.row_blocks` (huge Dense kernels); this
module puts them together and re-exports what rules and layers use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf

from .division import TINY, deferred_overflow_check, overflowed, safe_divide
from .row_blocks import propagate_blocks, row_block_size
from .terms import (
    Group,
    Term,
    divide,
    group_terms,
    negative,
    positive,
    tile,
    times_gradient,
    times_gradient_copies,
)

__all__ = ["TINY", "Group", "Term", "deferred_overflow_check", "negative", "overflowed",
           "positive", "propagate", "safe_divide", "sum_over_groups", "tile"]

Tensor = Any
Rule = Any  # a dtd_keras.rules.Rule: groups(domain), stabilize(d), plain, chunkable


def propagate(rule: Rule, forward: Callable[[Tensor, Tensor, Tensor | None], Tensor],
              kernel: Tensor, bias: Tensor | None, x: Tensor, relevance: Tensor,
              domain: Any = None, *, row_separable: bool = False,
              copies: Tensor | None = None, preactivation: Tensor | None = None,
              stack: tuple[int, int] | None = None) -> Tensor:
    """Apply ``rule`` to one linear layer with the gradient trick.

    ``forward(a, kernel, bias)`` is the layer's linear map (bias may be None);
    ``x`` its input, ``relevance`` the relevance of its output. Returns the relevance of
    ``x``. ``row_separable`` (Dense): ``forward`` sums over ``x``'s last axis against the
    kernel's rows, so a large kernel may be processed in blocks of rows (same result).

    ``copies`` (several neurons per sample): ``relevance`` stacks ``copies`` relevance
    sets for the batch ``x`` along the batch axis (copy-major), and so does the result.
    Denominators depend only on ``x``: they are computed once and shared; only the
    backward pass runs per copy.

    ``preactivation``: ``forward(x, kernel, bias)`` as the forward pass computed it
    (available only once ``relevance`` is, like ``x``: see
    :func:`dtd_keras.engine.passes.backward`);
    rules whose denominator it is (:attr:`Rule.plain`) and γ's sign test reuse it.

    ``stack``: ``(input axis, kernel axis)`` along which ``forward`` sums (channels), if
    concatenating inputs and kernels there adds their terms (Dense, Conv with one group);
    a group's several terms then share one forward and one backward pass.
    """
    block = row_block_size(kernel, rule) if row_separable else None
    reuse = preactivation is not None and rule.plain
    plain = {True: preactivation, False: None}  # with / without the bias

    def side(where: str) -> Tensor:
        with_bias, test = _SIDES[where]
        if plain[with_bias] is None:  # the layer's own Σ_i x_i w_ij (+ b_j)
            with tf.control_dependencies([relevance]):
                plain[with_bias] = forward(x, kernel, bias if with_bias else None)
        found = test(plain[with_bias])
        return found if copies is None else tile(found, copies)

    def contribute(group: Group, upper: Tensor) -> Tensor:
        if block is not None and not reuse:
            return propagate_blocks(group, rule, forward, kernel, bias, x, upper, block,
                                    copies, stack)
        if copies is None and not reuse:  # one forward pass: denominator and gradient
            with tf.GradientTape() as tape:
                inputs, z = group_terms(group, forward, kernel, bias, x, upper, tape,
                                         stack=stack)
            s = safe_divide(upper, rule.stabilize(z), group.nonnegative)
            return times_gradient(tape, z, inputs, s)
        # denominator once; the (tiled) forward pass only feeds the gradient
        if reuse:
            z = rule.stabilize(preactivation)
        else:
            _, z = group_terms(group, forward, kernel, bias, x, upper, stack=stack)
            z = rule.stabilize(z)
        s = divide(upper, z, copies, group.nonnegative)
        if copies is None:
            with tf.GradientTape() as tape:
                inputs, z = group_terms(group, forward, kernel, None, x, s, tape, stack=stack)
            return times_gradient(tape, z, inputs, s)
        return times_gradient_copies(group, forward, kernel, x, s, copies, stack)

    return sum_over_groups(rule, domain, relevance, side, contribute)


def sum_over_groups(rule: Rule, domain: Any, relevance: Tensor,
                    side: Callable[[str], Tensor],
                    contribute: Callable[[Group, Tensor], Tensor]) -> Tensor:
    """``Σ_g coefficient_g · contribute(g, R_g)`` over ``rule``'s groups, one group after
    the other (their temporaries never coexist); ``R_g`` is ``relevance``, kept only where
    ``side(g.where)`` holds for a group with ``where``. The loop every rule runs, shared by
    :func:`propagate` and the channel-sparse step of :mod:`dtd_keras.engine.conditions`."""
    total = None
    for group in rule.groups(domain):
        upper = relevance
        if total is not None:
            with tf.control_dependencies([total]):
                upper = tf.identity(relevance)
        if group.where is not None:
            upper = tf.where(side(group.where), upper, tf.zeros_like(upper))
        contribution = contribute(group, upper)
        if group.coefficient != 1.0:
            contribution = group.coefficient * contribution
        total = contribution if total is None else total + contribution
    return total


_SIDES = {  # where-name: (tested on z_j with the bias?, test)
    "positive": (True, lambda z: z > 0), "negative": (True, lambda z: z < 0),
    "vanishing": (False, lambda z: tf.abs(z) < TINY),
    "nonvanishing": (False, lambda z: tf.abs(z) >= TINY),
    "nonnegative_sum": (False, lambda z: z >= 0), "negative_sum": (False, lambda z: z < 0),
}
