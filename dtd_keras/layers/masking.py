"""Keras masks in layers that read them (``Embedding(mask_zero=True)`` and the layers it
feeds): the analyzer's graph holds each mask as a tensor (see
:mod:`dtd_keras.engine.graph`), an integer branch that carries no relevance.

- :class:`MaskedAveragePool` (``GlobalAveragePooling1D`` called with a mask):
  ``y = Σ_t m_t x_t / Σ_t m_t``, a linear map of ``x`` with weights ``m_t / Σ m``
  for the given mask. Every rule of :mod:`dtd_keras.rules` applies; masked steps have
  weight 0, so they get exactly zero relevance.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from .linear import AveragePool

__all__ = ["LAYERS", "MaskedAveragePool"]


class MaskedAveragePool(AveragePool):
    """Average pooling over the unmasked steps (its mask is the call's second input, if
    any; without one it is :class:`~dtd_keras.layers.linear.AveragePool`)."""

    _mask: Any = None

    def _use(self, inputs) -> None:
        self._mask = inputs[1] if len(inputs) > 1 else None

    def linear(self, a, kernel, bias):
        if self._mask is None:
            return super().linear(a, kernel, bias)
        mask = self._mask
        copies = tf.shape(a)[0] // tf.shape(mask)[0]  # K relevance sets, copy-major
        mask = tf.tile(mask, tf.concat([[copies], tf.ones([tf.rank(mask) - 1], tf.int32)], 0))
        return kernel * self.layer(a, mask=mask)

    def forward_keeping(self, inputs):
        self._use(inputs)
        return super().forward_keeping(inputs)

    def relevance_many(self, inputs, outputs, relevances, rule, copies, kept=None):
        self._use(inputs)
        return super().relevance_many(inputs, outputs, relevances, rule, copies, kept)


LAYERS: dict[type, Any] = {}
for _name in ("GlobalAveragePooling1D",):
    import keras

    LAYERS[getattr(keras.layers, _name)] = MaskedAveragePool
