"""Loading the model file, safely, with one-line errors."""

from __future__ import annotations

import zipfile
from pathlib import Path

from .errors import CLIError

__all__ = ["check_model_file", "input_shape", "load_model"]


def check_model_file(path: str) -> None:
    """A missing model file, a folder or a .keras file that is no zip archive → CLIError
    (without importing TensorFlow)."""
    target = Path(path)
    if not target.exists():
        raise CLIError(f"model file not found: {path}")
    if target.is_dir():
        raise CLIError(f"{path} is a folder; give a Keras model file (.keras or .h5)")
    if target.suffix == ".keras" and not zipfile.is_zipfile(target):
        raise CLIError(f"cannot load the model {path}: not a Keras .keras file (no zip archive)")


def load_model(path: str, unsafe: bool = False):
    """``keras.models.load_model`` in safe mode (unless ``unsafe``), with one-line errors."""
    check_model_file(path)
    target = Path(path)
    import keras

    try:
        model = keras.models.load_model(target, safe_mode=not unsafe, compile=False)
    except Exception as error:  # Keras raises many types for bad files
        text = " ".join(str(error).split())
        if "safe_mode" in text or "arbitrary code" in text:
            raise CLIError(
                f"refusing to load {path} in safe mode: it contains Python code (e.g. a "
                "Lambda layer) that would run on loading; if you trust the file, pass "
                "--unsafe") from None
        raise CLIError(f"cannot load the model {path}: {type(error).__name__}: {text}"
                       ) from None
    if not isinstance(model, keras.Model):
        raise CLIError(f"{path} does not hold a Keras model")
    if len(model.inputs) != 1:
        raise CLIError(f"{path} has {len(model.inputs)} inputs; the command line explains "
                       "single-input models (use the Python API, dk.create_analyzer)")
    return model


def input_shape(model) -> tuple:
    """The model input's shape, ``None`` for free dimensions (the batch first)."""
    return tuple(None if d is None else int(d) for d in model.inputs[0].shape)

