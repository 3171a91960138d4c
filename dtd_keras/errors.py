"""Exceptions raised by dtd_keras. Each names the layer, shape or value at fault."""

from __future__ import annotations

__all__ = ["UnsupportedLayerError", "DomainError"]


class UnsupportedLayerError(TypeError):
    """A layer or operation in the model has no relevance rule.

    Raised when an analyzer is *built*, never on first use. The message names the
    layer, its class and where it sits in the graph, and points to
    :func:`dtd_keras.register_layer`, the extension point for custom layers.
    """


class DomainError(ValueError):
    """An input lies outside the input domain the analyzer was declared with."""
