"""Terms and groups: what a rule is made of, and the gradient trick's three steps on
them (modified forward pass, division, backward pass times input).

A :class:`Term` ``(a, ρ, β, σ)`` names an input map ``a = a(x)``, a weight map ``ρ(W)``,
an optional bias map ``β(b)`` and a sign ``σ = ±1``; a :class:`Group` of terms shares one
denominator. :func:`dtd_keras.engine.propagation.propagate` puts the steps together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import tensorflow as tf

from .division import safe_divide

__all__ = ["Group", "Term", "divide", "group_terms", "negative", "positive", "summed_forward",
           "tile", "times_gradient", "times_gradient_copies"]

Tensor = Any
Rows = tuple[Any, int]  # (first row: int or scalar tensor, number of rows)


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
    z-rule's denominator) is / is not below the smallest normal float32 (ZFlat);
    ``"nonnegative_sum"`` / ``"negative_sum"``: ``Σ_i x_i w_ij`` is ≥ 0 / < 0 (ZSign). The
    other neurons pass no relevance through this group.

    ``nonnegative``: the denominator is a sum of non-negative terms on the layer's input
    domain (z⁺, zᴮ, w², flat, αβ's positive group), so its overflow test needs no ``|·|``.
    """

    terms: tuple[Term, ...]
    coefficient: float = 1.0
    where: str | None = None
    nonnegative: bool = False


def tile(t: Tensor, copies: Tensor) -> Tensor:
    """``copies`` copies of the batch ``t`` stacked along its first axis (copy-major)."""
    ones = tf.ones([len(t.shape) - 1], tf.int32)
    return tf.tile(t, tf.concat([tf.reshape(copies, [1]), ones], 0))


def summed_forward(group: Group, forward: Callable, inputs: list[Tensor],
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


def _row_slice(kernel: Tensor, x: Tensor, first: Any, count: int) -> tuple[Tensor, Tensor]:
    """``kernel[first:first+count]`` and ``x[..., first:first+count]``, with a static
    size even where ``first`` is a tensor (inside a loop)."""
    first = tf.reshape(tf.cast(first, tf.int32), [1])
    rank = len(x.shape)
    kernel = tf.slice(kernel, tf.concat([first, [0]], 0), [count, -1])
    x = tf.slice(x, tf.concat([tf.zeros([rank - 1], tf.int32), first], 0),
                 [-1] * (rank - 1) + [count])
    return kernel, x


def group_terms(group: Group, forward: Callable, kernel: Tensor, bias: Tensor | None,
                 x: Tensor, after: Tensor, tape: tf.GradientTape | None = None,
                 rows: Rows | None = None, copies: Tensor | None = None,
                 stack: tuple[int, int] | None = None) -> tuple[list[Tensor], Tensor]:
    """The term inputs (watched by ``tape``) and their summed modified forward pass,
    for the kernel rows ``rows = (first, count)`` (and the matching last-axis slice of
    ``x``) if given; with ``copies``, the inputs are tiled that many times along the
    batch axis."""
    # Everything here waits for ``after`` (the upper relevance): otherwise TensorFlow
    # schedules the modified forward passes (and copies such as W⁺) during the model's
    # forward pass and keeps them alive until the backward pass reaches this layer.
    with tf.control_dependencies([after]):
        if rows is not None:
            kernel, x = _row_slice(kernel, x, *rows)
        inputs = [tf.identity(term.input(x)) for term in group.terms]
        if copies is not None:
            inputs = [tile(a, copies) for a in inputs]
        kernels = [term.weight(kernel) for term in group.terms]
    if tape is not None:
        tape.watch(inputs)
    biases = [term.bias(bias) if (term.bias is not None and bias is not None) else None
              for term in group.terms]
    return inputs, summed_forward(group, forward, inputs, kernels, biases, stack)


def times_gradient(tape: tf.GradientTape, z: Tensor, inputs: list[Tensor],
                    s: Tensor) -> Tensor:
    """``Σ_t a_t ⊙ ∇_{a_t}(z · s)``: the backward pass and multiplication of the trick."""
    grads = tape.gradient(z, inputs, output_gradients=s)
    return tf.add_n([a * g for a, g in zip(inputs, grads) if g is not None])


def times_gradient_copies(group: Group, forward: Callable, kernel: Tensor, x: Tensor,
                           s: Tensor, copies: Tensor,
                           stack: tuple[int, int] | None = None) -> Tensor:
    """:func:`times_gradient` for ``copies`` stacked relevance sets ``s`` of the batch
    ``x``. ``f`` is linear, so its gradient does not depend on the point: the backward
    pass runs on stand-in zeros of the stacked shape (their forward pass is never
    computed), and each copy of the gradient is multiplied by the one term input."""
    inputs, _ = group_terms(group, lambda a, k, b: a, kernel, None, x, s)
    stacked = [tf.concat([tf.reshape(copies, [1]) * tf.shape(a)[:1], tf.shape(a)[1:]], 0)
               for a in inputs]
    sources = [tf.zeros(shape, a.dtype) for shape, a in zip(stacked, inputs)]
    with tf.GradientTape() as tape:
        tape.watch(sources)
        z = summed_forward(group, forward, sources,
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


def divide(relevance: Tensor, denominator: Tensor, copies: Tensor | None,
            nonnegative: bool = False) -> Tensor:
    """``relevance / denominator``; with ``copies``, ``relevance`` holds that many stacked
    relevance sets for the one batch ``denominator`` was computed on."""
    if copies is None:
        return safe_divide(relevance, denominator, nonnegative)
    stacked = tf.reshape(relevance, tf.concat([tf.reshape(copies, [1]),
                                               tf.shape(denominator)], 0))
    return tf.reshape(safe_divide(stacked, denominator[None], nonnegative),
                      tf.shape(relevance))


