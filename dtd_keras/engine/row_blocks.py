"""Huge Dense kernels in blocks of rows: a modified copy such as W⁺ never exists whole.

A Dense layer sums ``x``'s last axis against its kernel's rows, so every rule's forward
pass is a sum over blocks of rows and its backward pass is block by block. Kernels above
:data:`CHUNK_ELEMENTS` run that way: one ``tf.while_loop`` sums the denominators, a second
computes each block's relevance, one block at a time. A block's W⁺ is made and used
while it is still in the CPU's last-level cache (VGG16's fc1, 25088×4096: the modified
forward pass costs 16 ms per call at batch 8 in 8 MiB blocks, 27 ms in 32 MiB blocks,
against 11 ms for the plain product), and the loop keeps the graph small whatever the
number of blocks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import tensorflow as tf

from .terms import Group, divide, group_terms, times_gradient

__all__ = ["CHUNK_ELEMENTS", "propagate_blocks", "row_block_size"]

Tensor = Any
Rule = Any

CHUNK_ELEMENTS = 1 << 21
"""Kernels of row-separable layers (Dense) larger than this (8 MiB of float32) are
processed in blocks of input rows of about this size."""


def row_block_size(kernel: Tensor, rule: Rule) -> int | None:
    """Rows per block for ``kernel`` under ``rule``; None: process it whole."""
    if len(kernel.shape) != 2 or None in kernel.shape or not rule.chunkable:
        return None
    rows, cols = kernel.shape
    if rows * cols <= CHUNK_ELEMENTS:
        return None
    return max(1, CHUNK_ELEMENTS // cols)


def _loop(count: int, body: Callable, state: tuple) -> tuple:
    """``state = body(i, *state)`` for ``i = 0 … count−1``, one iteration at a time."""
    def step(i, *rest):
        return (i + 1, *body(i, *rest))

    return tf.while_loop(lambda i, *rest: i < count, step, (tf.constant(0), *state),
                         parallel_iterations=1)[1:]


def _last_axis_first(t: Tensor) -> Tensor:
    rank = len(t.shape)
    return tf.transpose(t, [rank - 1, *range(rank - 1)])


def propagate_blocks(group: Group, rule: Rule, forward: Callable, kernel: Tensor,
                     bias: Tensor | None, x: Tensor, relevance: Tensor, size: int,
                     copies: Tensor | None = None,
                     stack: tuple[int, int] | None = None) -> Tensor:
    """:func:`~dtd_keras.engine.propagation.propagate` for one group, ``size`` kernel rows at a
    time: the same numbers, up to the order of float32 additions."""
    rows = kernel.shape[0]
    full, tail = divmod(rows, size)  # ``full`` blocks in the loops, then a shorter one

    def block(first: Any, count: int, after: Tensor, with_bias: bool = False) -> Tensor:
        return group_terms(group, forward, kernel, bias if with_bias else None, x, after,
                           rows=(first, count), stack=stack)[1]

    z = block(0, size, relevance, with_bias=True)  # the denominator: bias and block 0,
    (z,) = _loop(full - 1, lambda i, z: (z + block((i + 1) * size, size, z),), (z,))
    if tail:  # … the other blocks, the tail
        z = z + block(full * size, tail, z)
    s = divide(relevance, rule.stabilize(z), copies, group.nonnegative)

    def piece(first: Any, count: int) -> Tensor:  # the relevance of one block of inputs
        with tf.GradientTape() as tape:
            inputs, part = group_terms(group, forward, kernel, None, x, s, tape,
                                       (first, count), copies, stack)
        return times_gradient(tape, part, inputs, s)

    pieces = tf.TensorArray(x.dtype, size=full, element_shape=None)
    (pieces,) = _loop(full, lambda i, ta: (ta.write(i, _last_axis_first(piece(i * size, size))),),
                      (pieces,))
    stacked = pieces.concat()  # [full·size, batch, …]: back to [batch, …, full·size]
    rank = len(stacked.shape)
    result = tf.transpose(stacked, [*range(1, rank), 0])
    if tail:
        result = tf.concat([result, piece(full * size, tail)], axis=-1)
    return result
