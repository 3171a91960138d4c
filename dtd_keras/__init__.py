"""dtd_keras: Deep Taylor Decomposition and LRP for Keras 3 / TensorFlow models.

>>> import dtd_keras as dk
>>> analyzer = dk.DTD(model, input_domain=dk.Box(0.0, 1.0))
>>> relevance = analyzer.analyze(x)
"""

from __future__ import annotations

try:
    import tensorflow as _tf  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "dtd_keras needs TensorFlow 2.21: pip install 'dtd-keras[cpu]' (or [gpu], or "
        "[tensorflow])"
    ) from error

import keras as _keras

if _keras.backend.backend() != "tensorflow":  # pragma: no cover
    raise ImportError(
        f"dtd_keras runs on Keras' TensorFlow backend, but KERAS_BACKEND is "
        f"{_keras.backend.backend()!r}; set KERAS_BACKEND=tensorflow"
    )

from . import rules
from .analyzers import DTD, LRP, Analyzer
from .domains import Box
from .errors import DomainError, UnsupportedLayerError
from .explanation import Explanation
from .layers import register_layer
from .presets import PRESETS, create_analyzer
from .relevance_model import MinMaxDTD

__version__ = "0.1.0"

_SUBMODULES = ("callbacks", "evaluate", "export", "image")


def __getattr__(name: str):
    """Import the optional submodules (pictures, callbacks, export, metrics) on first use."""
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "DTD", "LRP", "Analyzer", "Box", "DomainError", "Explanation", "MinMaxDTD",
    "UnsupportedLayerError",
    "PRESETS", "create_analyzer", "register_layer", "rules",
]
