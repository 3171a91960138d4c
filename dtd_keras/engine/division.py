"""Division of relevance by a rule's denominators: zero where they vanish, NaN (or a
recorded flag) where they overflow."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow as tf

__all__ = ["TINY", "deferred_overflow_check", "overflowed", "safe_divide"]

Tensor = Any

TINY = float(np.finfo(np.float32).tiny)
"""The smallest normal float32 (≈1.2e-38); TensorFlow flushes smaller values to 0 on CPU."""


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
