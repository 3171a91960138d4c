"""What ``RelevanceMonitor`` checks and builds before training: its arguments, the
analyzer, the log folder, TensorBoard."""

from __future__ import annotations

import importlib
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["analyzer_names", "as_arrays", "build_analyzer", "check_writable", "is_analyzer",
           "positive_int", "require", "tensorboard_installed"]


def is_analyzer(value: Any) -> bool:
    """A built ``dk.Analyzer``."""
    from ..analyzers import Analyzer

    return isinstance(value, Analyzer)


def analyzer_names() -> list[str]:
    """The preset names an analyzer may be given by (``dk.PRESETS``)."""
    from ..presets import PRESETS

    return sorted(PRESETS)


def build_analyzer(spec: Any, options: dict[str, Any], model):
    """The analyzer ``spec`` names (a preset name, a built analyzer, a factory) for
    ``model``; refuses one that explains another model's weights."""
    if is_analyzer(spec):
        analyzer = spec
    elif isinstance(spec, str):
        from ..presets import create_analyzer

        analyzer = create_analyzer(spec, model, **options)
    else:
        analyzer = spec(model)
        if not is_analyzer(analyzer):
            raise TypeError(f"the analyzer callable {spec!r} returned "
                            f"{type(analyzer).__name__}, not a dk.Analyzer")
    own = {id(v) for v in model.weights}
    foreign = [v.path for v in analyzer.model.weights if id(v) not in own]
    if foreign:
        raise ValueError(f"the analyzer explains model '{analyzer.model.name}', whose "
                         f"weights {foreign[:3]} are not those of the trained model "
                         f"'{model.name}'")
    return analyzer


def require(module: str, extra: str, why: str) -> None:
    """Import ``module`` or say which extra installs it."""
    try:
        importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f"{why} needs {module}: pip install 'dtd-keras[{extra}]'") from error


def tensorboard_installed() -> bool:
    """Whether ``tf.summary``'s image and scalar summaries (the tensorboard package) are
    there."""
    try:
        importlib.import_module("tensorboard")
    except ImportError:
        return False
    return True


def positive_int(value: Any, name: str, allow_none: bool) -> int | None:
    """``value`` as a positive int (or None where allowed), else a ValueError naming it."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        allowed = "a positive int or None" if allow_none else "a positive int"
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return int(value)


def as_arrays(samples: Any) -> list[np.ndarray]:
    """The samples as float32 copies, one batch per model input."""
    items = list(samples) if isinstance(samples, (list, tuple)) else [samples]
    if not items:
        raise ValueError("samples is empty: pass the array of samples to explain, e.g. x[:8]")
    arrays = []
    for i, item in enumerate(items):
        if hasattr(item, "numpy"):  # a tf.Tensor or tf.Variable
            item = item.numpy()
        try:
            array = np.array(item, dtype=np.float32)  # a copy: later edits do not leak in
        except (TypeError, ValueError) as error:
            raise ValueError(f"samples[{i}] is not a numeric array: {error}") from error
        if array.ndim < 2 or array.shape[0] == 0:
            raise ValueError(f"samples{'' if len(items) == 1 else f'[{i}]'} must be a batch "
                             f"(samples first) with at least one sample; got shape "
                             f"{array.shape}")
        arrays.append(array)
    sizes = {a.shape[0] for a in arrays}
    if len(sizes) != 1:
        raise ValueError(f"the sample arrays have different batch sizes: {sorted(sizes)}")
    return arrays


def check_writable(folder: Path, log_dir: Path) -> None:
    """Make sure files can be written in ``folder`` (inside ``log_dir``): create it,
    write and delete a probe file, and remove again the folders this created, so that
    the check leaves nothing behind. Raises an OSError of the failing kind that names
    ``log_dir``."""
    missing = []
    parent = folder
    while not parent.exists() and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise type(error)(f"RelevanceMonitor cannot write to log_dir {str(log_dir)!r}: "
                          f"{error.strerror or error}") from error
    finally:
        for created in missing:  # innermost first
            try:
                os.rmdir(created)
            except OSError:
                break
