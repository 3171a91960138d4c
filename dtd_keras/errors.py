"""Exceptions raised by dtd_keras. Each names the layer, shape or value at fault."""

from __future__ import annotations

__all__ = ["DomainError", "InputFileError", "NumericalError", "UnsupportedLayerError"]


class UnsupportedLayerError(TypeError):
    """A layer or operation in the model has no relevance rule.

    Raised when an analyzer is *built*, never on first use. The message names the
    layer, its class and where it sits in the graph, and points to
    :func:`dtd_keras.register_layer`, the extension point for custom layers.
    """


class DomainError(ValueError):
    """An input lies outside the input domain the analyzer was declared with."""


class NumericalError(ValueError):
    """An explanation would hold NaN or infinite values (float32 overflow, NaN weights).

    The message names the first layer at fault and the magnitude that overflowed."""


class InputFileError(ValueError):
    """An input file or folder cannot be read as the model's input (missing, unreadable,
    the wrong kind of array or image); the message names the file."""
