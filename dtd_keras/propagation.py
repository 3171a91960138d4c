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

Division (:func:`safe_divide`): where ``d_j = 0`` (on CPU, TensorFlow flushes every
``|d_j|`` below the smallest normal float32, ≈1.2e-38, to 0), ``s_j = 0``: a neuron whose
denominator vanishes passes no relevance down; a denominator that overflowed gives NaN,
which the analyzer reports by layer. Inside
:func:`deferred_overflow_check` (a compiled relevance pass) the overflow test is one
reduction per division instead of two elementwise passes, and the pass's results become
NaN at the end if any denominator overflowed.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

__all__ = ["TINY", "Group", "Term", "deferred_overflow_check", "negative", "positive",
           "propagate", "safe_divide", "tile"]

Tensor = Any
Rule = Any  # a dtd_keras.rules.Rule: groups(domain), stabilize(d), plain, chunkable

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
    pre-activation satisfies it: ``"positive"`` / ``"negative"``: ``z_j = f(x; W)_j + b_j``
    is > 0 / < 0 (γ); ``"vanishing"`` / ``"nonvanishing"``: ``Σ_i x_i w_ij`` (no bias: the
    z-rule's denominator) is / is not below the smallest normal float32 (ZFlat). The other
    neurons pass no relevance through this group.

    ``nonnegative``: the denominator is a sum of non-negative terms on the layer's input
    domain (z⁺, zᴮ, w², flat, αβ's positive group), so its overflow test needs no ``|·|``.
    """

    terms: tuple[Term, ...]
    coefficient: float = 1.0
    where: str | None = None
    nonnegative: bool = False


_OVERFLOW: contextvars.ContextVar[list | None] = contextvars.ContextVar(
    "dtd_keras_overflow_flags", default=None)


@contextlib.contextmanager
def deferred_overflow_check() -> Iterator[list]:
    """Collect, instead of testing elementwise, whether :func:`safe_divide`'s denominators
    overflowed: each division inside adds one scalar (its largest ``|d_j|``) to the list
    yielded; :func:`overflowed` turns the list into one boolean. The caller must make its
    results NaN where that is true (a compiled relevance pass does, on its input maps)."""
    flags: list = []
    token = _OVERFLOW.set(flags)
    try:
        yield flags
    finally:
        _OVERFLOW.reset(token)


def overflowed(flags: list) -> Tensor:
    """Whether any denominator collected by :func:`deferred_overflow_check` is ∞ or NaN."""
    if not flags:
        return tf.constant(False)
    return tf.logical_not(tf.reduce_all(tf.math.is_finite(tf.stack(flags))))


def safe_divide(numerator: Tensor, denominator: Tensor, nonnegative: bool = False) -> Tensor:
    """``numerator / denominator``, and 0 where the denominator is 0.

    One fused operation (``tf.math.divide_no_nan``). TensorFlow computes with subnormal
    float32 flushed to zero on CPU, so every ``|denominator| < TINY`` counts as 0 there: a
    neuron whose denominator vanishes passes no relevance down. A denominator that is
    itself infinite or NaN (float32 overflow) gives NaN, never a silent 0: the analyzer
    then finds the layer and raises an error that names it. Inside
    :func:`deferred_overflow_check` an infinite denominator is recorded there instead (NaN
    still propagates). ``nonnegative``: the caller knows ``denominator ≥ 0``, so the
    recorded size needs no ``|·|``.
    """
    quotient = tf.math.divide_no_nan(numerator, denominator)
    flags = _OVERFLOW.get()
    if flags is None:
        return tf.where(tf.math.is_finite(denominator), quotient, np.nan)
    flags.append(tf.reduce_max(denominator if nonnegative else tf.abs(denominator)))
    return quotient


CHUNK_ELEMENTS = 1 << 23
"""Kernels of row-separable layers (Dense) larger than this (32 MiB of float32) are
processed in blocks of input rows, so a modified copy such as W⁺ never exists whole."""


def tile(t: Tensor, copies: Tensor) -> Tensor:
    """``copies`` copies of the batch ``t`` stacked along its first axis (copy-major)."""
    ones = tf.ones([len(t.shape) - 1], tf.int32)
    return tf.tile(t, tf.concat([tf.reshape(copies, [1]), ones], 0))


def _summed_forward(group: Group, forward: Callable, inputs: list[Tensor],
                    kernels: list[Tensor], biases: list[Tensor | None],
                    stack: tuple[int, int] | None) -> Tensor:
    """``Σ_t σ_t (f(a_t; k_t) + b_t)``. With ``stack = (input axis, kernel axis)`` (the
    axes ``f`` sums over, e.g. channels), several terms run as ONE forward pass on the
    inputs and kernels concatenated along them (the signs moved into kernel and bias):
    a first layer with three input channels costs about as much with six."""
    signs = [term.sign for term in group.terms]
    if stack is not None and len(inputs) > 1:
        kernels = [k if s == 1.0 else s * k for k, s in zip(kernels, signs)]
        signed = [b if s == 1.0 else s * b for b, s in zip(biases, signs) if b is not None]
        bias = (tf.add_n(signed) if len(signed) > 1 else signed[0]) if signed else None
        return forward(tf.concat(inputs, stack[0]), tf.concat(kernels, stack[1]), bias)
    parts = []
    for a, k, b, s in zip(inputs, kernels, biases, signs):
        z = forward(a, k, b)
        parts.append(z if s == 1.0 else s * z)
    return tf.add_n(parts) if len(parts) > 1 else parts[0]


def _group_terms(group: Group, forward: Callable, kernel: Tensor, bias: Tensor | None,
                 x: Tensor, after: Tensor, tape: tf.GradientTape | None = None,
                 rows: tuple[int, int] | None = None, copies: Tensor | None = None,
                 stack: tuple[int, int] | None = None) -> tuple[list[Tensor], Tensor]:
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
    biases = [term.bias(bias) if (term.bias is not None and bias is not None) else None
              for term in group.terms]
    return inputs, _summed_forward(group, forward, inputs, kernels, biases, stack)


def _times_gradient(tape: tf.GradientTape, z: Tensor, inputs: list[Tensor],
                    s: Tensor) -> Tensor:
    """``Σ_t a_t ⊙ ∇_{a_t}(z · s)``: the backward pass and multiplication of the trick."""
    grads = tape.gradient(z, inputs, output_gradients=s)
    return tf.add_n([a * g for a, g in zip(inputs, grads) if g is not None])


def _times_gradient_copies(group: Group, forward: Callable, kernel: Tensor, x: Tensor,
                           s: Tensor, copies: Tensor,
                           stack: tuple[int, int] | None = None) -> Tensor:
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
        z = _summed_forward(group, forward, sources,
                            [term.weight(kernel) for term in group.terms],
                            [None] * len(sources), stack)
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


def _divide(relevance: Tensor, denominator: Tensor, copies: Tensor | None,
            nonnegative: bool = False) -> Tensor:
    """``relevance / denominator``; with ``copies``, ``relevance`` holds that many stacked
    relevance sets for the one batch ``denominator`` was computed on."""
    if copies is None:
        return safe_divide(relevance, denominator, nonnegative)
    stacked = tf.reshape(relevance, tf.concat([tf.reshape(copies, [1]),
                                               tf.shape(denominator)], 0))
    return tf.reshape(safe_divide(stacked, denominator[None], nonnegative),
                      tf.shape(relevance))


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

    ``preactivation``: ``forward(x, kernel, bias)`` as the forward pass computed it;
    rules whose denominator it is (:attr:`Rule.plain`) and γ's sign test reuse it.

    ``stack``: ``(input axis, kernel axis)`` along which ``forward`` sums (channels), if
    concatenating inputs and kernels there adds their terms (Dense, Conv with one group);
    a group's several terms then share one forward and one backward pass.
    """
    blocks = _row_blocks(kernel, rule) if row_separable else None
    reuse = preactivation is not None and rule.plain
    total, plain = None, {True: preactivation, False: None}  # with / without the bias
    for group in rule.groups(domain):
        upper = relevance
        if total is not None:  # one group after the other: their temporaries never coexist
            with tf.control_dependencies([total]):
                upper = tf.identity(relevance)
        if group.where is not None:
            with_bias, test = _SIDES[group.where]
            if plain[with_bias] is None:  # the layer's own Σ_i x_i w_ij (+ b_j)
                with tf.control_dependencies([relevance]):
                    plain[with_bias] = forward(x, kernel, bias if with_bias else None)
            with tf.control_dependencies([relevance]):  # late, as above
                side = test(tf.identity(plain[with_bias]))
            if copies is not None:
                side = tile(side, copies)
            upper = tf.where(side, relevance, tf.zeros_like(relevance))
        if blocks is not None and not reuse:
            contribution = _propagate_blocks(group, rule, forward, kernel, bias, x, upper,
                                             blocks, copies, stack)
        elif copies is None and not reuse:  # one forward pass: denominator and gradient
            with tf.GradientTape() as tape:
                inputs, z = _group_terms(group, forward, kernel, bias, x, upper, tape,
                                         stack=stack)
            s = safe_divide(upper, rule.stabilize(z), group.nonnegative)
            contribution = _times_gradient(tape, z, inputs, s)
        else:  # denominator once; the (tiled) forward pass only feeds the gradient
            if reuse:  # stabilised only once the relevance arrives: not kept from the
                with tf.control_dependencies([upper]):  # forward pass on (a second copy)
                    z = rule.stabilize(tf.identity(preactivation))
            else:
                _, z = _group_terms(group, forward, kernel, bias, x, upper, stack=stack)
                z = rule.stabilize(z)
            s = _divide(upper, z, copies, group.nonnegative)
            if copies is None:
                with tf.GradientTape() as tape:
                    inputs, z = _group_terms(group, forward, kernel, None, x, s, tape,
                                             stack=stack)
                contribution = _times_gradient(tape, z, inputs, s)
            else:
                contribution = _times_gradient_copies(group, forward, kernel, x, s, copies,
                                                      stack)
        if group.coefficient != 1.0:
            contribution = group.coefficient * contribution
        total = contribution if total is None else total + contribution
    return total


def _propagate_blocks(group: Group, rule: Rule, forward: Callable, kernel: Tensor,
                      bias: Tensor | None, x: Tensor, relevance: Tensor,
                      blocks: list[tuple[int, int]], copies: Tensor | None = None,
                      stack: tuple[int, int] | None = None) -> Tensor:
    """:func:`propagate` for one group, block by block of kernel rows, in sequence."""
    z, after = None, relevance
    for i, rows in enumerate(blocks):  # the denominator, summed over blocks
        _, part = _group_terms(group, forward, kernel, bias if i == 0 else None, x, after,
                               rows=rows, stack=stack)
        z = part if z is None else z + part
        after = z
    s = _divide(relevance, rule.stabilize(z), copies, group.nonnegative)
    pieces, after = [], s
    for rows in blocks:  # then the relevance of each block of inputs
        with tf.GradientTape() as tape:
            inputs, part = _group_terms(group, forward, kernel, None, x, after, tape, rows,
                                        copies, stack)
        piece = _times_gradient(tape, part, inputs, s)
        pieces.append(piece)
        after = piece
    return tf.concat(pieces, axis=-1)


_SIDES = {  # where-name: (tested on z_j with the bias?, test)
    "positive": (True, lambda z: z > 0), "negative": (True, lambda z: z < 0),
    "vanishing": (False, lambda z: tf.abs(z) < TINY),
    "nonvanishing": (False, lambda z: tf.abs(z) >= TINY),
}
