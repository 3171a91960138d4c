"""dtd_keras: Deep Taylor Decomposition and LRP for Keras 3 / TensorFlow models.

>>> import dtd_keras as dk
>>> analyzer = dk.DTD(model, input_domain=dk.Box(0.0, 1.0))
>>> relevance = analyzer.analyze(x)

``import dtd_keras`` is cheap and works without TensorFlow: TensorFlow and Keras are
imported on first use of a name that needs them (``dk.DTD``, ``dk.rules``, …), so
``dtd-keras --help`` and ``dk.image`` answer without loading it. That first use raises
an ImportError naming the extras to install when TensorFlow is missing, and keeps
TensorFlow's C++ start-up lines off the terminal unless ``DTD_KERAS_VERBOSE=1`` or
``TF_CPP_MIN_LOG_LEVEL`` asks for them (see :mod:`dtd_keras._tensorflow`).
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> submodule that defines it; imported (with TensorFlow) on first access
_EXPORTS = {
    "DTD": "analyzers", "LRP": "analyzers", "Analyzer": "analyzers",
    "AttnLRP": "analyzers",
    "Box": "engine.domains",
    "DomainError": "errors", "NumericalError": "errors", "UnsupportedLayerError": "errors",
    "Explanation": "explanation",
    "register_layer": "layers",
    "PRESETS": "presets", "create_analyzer": "presets",
    "analyze_dataset": "datasets", "load_results": "datasets",
    "MinMaxDTD": "relevance_model",
    "report": "reporting",
}

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from . import rules
    from .analyzers import DTD, LRP, Analyzer, AttnLRP
    from .datasets import analyze_dataset, load_results
    from .engine.domains import Box
    from .errors import DomainError, NumericalError, UnsupportedLayerError
    from .explanation import Explanation
    from .layers import register_layer
    from .presets import PRESETS, create_analyzer
    from .relevance_model import MinMaxDTD
    from .reporting import report

# submodules that need no TensorFlow (the others import it through _check_backend)
_WITHOUT_TENSORFLOW = {"cli", "demo", "demo_folder", "errors", "image", "reading", "reporting"}

_backend_checked = False


def _check_backend() -> None:
    """TensorFlow must be installed (ImportError naming the extras otherwise), and Keras
    must run on it; imports both, once, TensorFlow's start-up lines hidden."""
    global _backend_checked
    if _backend_checked:
        return
    from ._tensorflow import import_tensorflow

    import_tensorflow()
    import keras

    if keras.backend.backend() != "tensorflow":  # pragma: no cover
        raise ImportError(
            f"dtd_keras runs on Keras' TensorFlow backend, but KERAS_BACKEND is "
            f"{keras.backend.backend()!r}; set KERAS_BACKEND=tensorflow"
        )
    _backend_checked = True


def __getattr__(name: str) -> Any:
    """Import the public names and the submodules (``dk.rules``, ``dk.image``, …) on
    first use."""
    if name in _EXPORTS:
        _check_backend()
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}"):
        if name not in _WITHOUT_TENSORFLOW:
            _check_backend()
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | {"rules", "callbacks", "export", "image"})


__all__ = [
    "DTD", "LRP", "Analyzer", "AttnLRP", "Box", "DomainError", "Explanation", "MinMaxDTD",
    "NumericalError", "UnsupportedLayerError", "PRESETS", "create_analyzer", "register_layer",
    "rules", "analyze_dataset", "load_results", "report",
]
