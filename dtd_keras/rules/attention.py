r"""Rules for the non-linear parts of attention, as small tensor functions.

Written once, used by every layer and operation that needs them
(:mod:`dtd_keras.layers.attention`: ``keras.ops.dot_product_attention``, the ``Softmax``
layer and op, ``einsum``/``matmul`` of two variable tensors).

Softmax (AttnLRP, Achtibat et al. 2024, Proposition 3.1)
    :math:`R^{in}_i = x_i \big(R^{out}_i - s_i \sum_j R^{out}_j\big)`, with ``x`` the
    softmax input and ``s = softmax(x)``: input × gradient through the softmax with
    ``R_out / s`` as the upstream. Not conservative: the Taylor expansion's bias term
    absorbs (or injects) :math:`\sum_j R^{out}_j - \sum_i R^{in}_i`. Masked inputs get
    exactly zero.
Uniform rule for a bilinear product ``z = f(a, b)`` (AttnLRP, q·kᵀ and A·v)
    :math:`R_a = \tfrac12\, a \odot \nabla_a\big(f(a, b) \cdot R / \hat z\big)`, ``R_b``
    the same: each factor receives half. ``ẑ`` is ``z`` stabilised like LRP-ε
    (``z + ε·sign(z)``, zero counting as positive; ``ε = 0``: a zero ``z`` passes no
    relevance). Conservative when ``f`` has no additive bias (``Σ R_a + Σ R_b = Σ R``
    up to ε, since ``a·∇_a f = b·∇_b f = f``); an additive bias inside ``f`` (a score
    bias) absorbs its share.
CP-LRP (Ali et al., ICML 2022)
    The attention probabilities ``A`` are held constant, so ``A·v`` is linear in ``v``:
    :math:`R_v = v \odot \nabla_v\big(f(A, v) \cdot R / \hat z\big)` (LRP-ε on the
    value path) and ``R_A = 0``: no relevance reaches the queries and keys. Conservative
    up to ε.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf

from ..engine.division import safe_divide
from .linear import stabilize

__all__ = ["ATTENTION_MODES", "BILINEAR_EPSILON", "bilinear_relevance",
           "constant_left_relevance", "softmax_relevance", "stabilize"]

Tensor = Any

ATTENTION_MODES = (None, "attn_lrp", "cp_lrp")
"""Values of the ``attention`` option behaviours read (None: the AttnLRP rules)."""

BILINEAR_EPSILON = 1e-6
"""The ε stabilising the bilinear rules' denominators unless the analyzer sets one."""


def softmax_relevance(x: Tensor, s: Tensor, relevance: Tensor,
                      axis: int | Sequence[int] = -1, mask: Tensor | None = None) -> Tensor:
    r"""AttnLRP's softmax rule: :math:`R^{in}_i = x_i (R^{out}_i - s_i \sum_j R^{out}_j)`.

    ``x`` the softmax input, ``s`` its output, ``relevance`` the output's relevance, the
    sum over ``axis`` (the softmax axes). Equals ``x ⊙ ∇_x(s · R/s)`` (input × gradient
    with upstream ``R/s``) without dividing by ``s``. NOT conservative: the Taylor bias
    absorbs the difference. ``mask`` (boolean, broadcastable; False = masked): those
    inputs get exactly zero relevance (their ``x`` is a large negative filler).
    """
    total = tf.reduce_sum(relevance, axis=axis, keepdims=True)
    if mask is not None:
        x = tf.where(mask, x, tf.zeros_like(x))
    return x * (relevance - s * total)


def _products(f: Callable[[Tensor, Tensor], Tensor], a: Tensor, b: Tensor,
              relevance: Tensor, epsilon: float, watch: Sequence[Tensor],
              z: Tensor | None = None) -> list[Tensor]:
    """``t ⊙ ∇_t(f(a, b) · R/ẑ)`` for each ``t`` in ``watch`` (one forward, one backward).
    ``z``: ``f(a, b)`` where the caller has it already (the forward pass's value): the
    product's gradient does not read its output, so the repeated forward is then dropped
    from the compiled graph."""
    watch = list(watch)
    with tf.GradientTape() as tape:
        tape.watch(watch)
        product = f(a, b)
    z = product if z is None else z
    s = safe_divide(relevance, stabilize(z, epsilon))
    grads = tape.gradient(product, watch, output_gradients=s)
    return [t * (tf.zeros_like(t) if g is None else g) for t, g in zip(watch, grads)]


def bilinear_relevance(f: Callable[[Tensor, Tensor], Tensor], a: Tensor, b: Tensor,
                       relevance: Tensor, epsilon: float = BILINEAR_EPSILON,
                       z: Tensor | None = None) -> tuple[Tensor, Tensor]:
    r"""AttnLRP's uniform rule for ``z = f(a, b)``, bilinear in ``(a, b)``:
    :math:`R_a = \tfrac12 a \odot \nabla_a(f(a,b) \cdot R/\hat z)`, ``R_b`` alike.

    Each factor receives half. Conserves (up to ε) when ``f`` has no additive bias;
    a bias inside ``f`` absorbs its share. Zero ``ẑ`` (only with ``ε = 0``) passes none.
    """
    a, b = tf.identity(a), tf.identity(b)
    r_a, r_b = _products(f, a, b, relevance, epsilon, (a, b), z)
    return 0.5 * r_a, 0.5 * r_b


def constant_left_relevance(f: Callable[[Tensor, Tensor], Tensor], a: Tensor, b: Tensor,
                            relevance: Tensor, epsilon: float = BILINEAR_EPSILON,
                            z: Tensor | None = None) -> Tensor:
    r"""CP-LRP for ``z = f(a, b)`` with ``a`` (the attention probabilities) held constant:
    :math:`R_b = b \odot \nabla_b(f(a,b) \cdot R/\hat z)`, and ``a`` gets none.

    Linear in ``b``: LRP-ε on the value path, conservative up to ε.
    """
    b = tf.identity(b)
    return _products(f, a, b, relevance, epsilon, (b,), z)[0]
