"""A fitted ``MinMaxDTD`` in one ``.npz`` file: writing it, and reading it back checked.

The file holds ``meta`` (a JSON string: format, the analyzer's configuration, each
relevance model's configuration, the fit's R²) and the relevance models' weights as
``"{layer index}/{weight index}"``. Reading refuses anything else, damaged or
truncated files included, with a ``ValueError`` that names the file and what is wrong.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..engine.domains import Box, as_domain
from ..errors import UnsupportedLayerError

__all__ = ["FORMAT_VERSION", "build", "domain_config", "domain_from_config", "layer_weights",
           "read", "write"]

FORMAT_VERSION = 2          # 2: stacked relevance models fitted top-down; R² of totals
READABLE = (1, 2)
MODEL_KEYS = ("kind", "units", "input_shape", "output_shape", "context_size", "pool_size")


def domain_config(domain: Any) -> Any:
    """A domain as JSON: its name, or a box's bounds."""
    domain = as_domain(domain)
    if isinstance(domain, Box):
        return {"low": domain.low.tolist(), "high": domain.high.tolist()}
    return domain.name


def domain_from_config(config: Any) -> Any:
    """The inverse of :func:`domain_config`."""
    if isinstance(config, dict):
        return Box(np.asarray(config["low"], np.float32), np.asarray(config["high"], np.float32))
    return config


def write(path: Any, meta: dict, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``meta`` and ``arrays`` to ``path`` (``.npz`` appended if missing) through a
    temporary file in the same folder: a failed write leaves no truncated file."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npz",
                                         dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, meta=np.asarray(json.dumps(meta)), **arrays)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _bad(path: Path, what: str) -> ValueError:
    return ValueError(f"{path} is not a readable MinMaxDTD file: {what}")


def _entries(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file (MinMaxDTD.load reads what "
                                "MinMaxDTD.save wrote)")
    if path.is_dir():
        raise _bad(path, "it is a folder")
    try:
        loaded = np.load(path, allow_pickle=False)
    except PermissionError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise _bad(path, f"neither an .npz archive nor an array ({type(error).__name__}: "
                         f"{error}); it is damaged, truncated or another kind of file"
                   ) from error
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise _bad(path, f"it holds a single array of shape {np.shape(loaded)} (.npy), not "
                         "the .npz archive MinMaxDTD.save writes")
    with loaded:
        if "meta" not in loaded.files:
            raise _bad(path, f"it has no 'meta' entry (entries: {sorted(loaded.files)[:8]}); "
                             "it was not written by MinMaxDTD.save")
        try:
            return {key: loaded[key] for key in loaded.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
            raise _bad(path, f"an entry cannot be read ({type(error).__name__}: {error}); "
                             "the file is damaged or truncated") from error


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_meta(path: Path, meta: Any) -> None:
    if not isinstance(meta, dict):
        raise _bad(path, f"its 'meta' is a JSON {type(meta).__name__}, not an object")
    version = meta.get("format")
    if version not in READABLE:
        raise ValueError(f"{path}: unknown MinMaxDTD file format {version!r} (this version "
                         f"of dtd_keras reads formats {list(READABLE)})")
    config, models = meta.get("config"), meta.get("models")
    if not isinstance(config, dict) or not isinstance(models, dict):
        raise _bad(path, "its 'meta' lacks the 'config' and 'models' objects")
    layers = config.get("layers")
    if not (isinstance(layers, list) and layers and all(isinstance(n, str) for n in layers)):
        raise _bad(path, f"its configuration's 'layers' is {layers!r}, not a list of layer "
                         "names")
    for key in ("pool_size", "seed"):
        if key in config and not (isinstance(config[key], int)
                                  and not isinstance(config[key], bool)):
            raise _bad(path, f"its configuration's {key!r} is {config[key]!r}, not an int")
    if not isinstance(config.get("options", {}), dict):
        raise _bad(path, "its configuration's 'options' is not an object")
    for key in ("r2", "r2_totals"):
        scores = meta.get(key, {})
        if not (isinstance(scores, dict) and all(_is_number(v) for v in scores.values())):
            raise _bad(path, f"its {key!r} is {scores!r}, not layer names with numbers")
    if version == 1 and len(layers) > 1:
        raise ValueError(
            f"{path}: written by an older dtd_keras (format 1), which fitted the relevance "
            f"models of {layers} each to the training-free relevance, so that the upper "
            "ones had no effect on the maps; fit again (they are now fitted top-down, "
            "each to the relevance the models above deliver) and save")


def read(path: Any) -> tuple[dict, dict[str, np.ndarray]]:
    """``(meta, weights)`` from a file :func:`write` wrote, its structure checked
    (whether it fits a model: :func:`build`, :func:`layer_weights`)."""
    path = Path(path)
    entries = _entries(path)
    raw = entries.pop("meta")
    if raw.ndim != 0 or raw.dtype.kind != "U":
        raise _bad(path, f"its 'meta' entry is a {raw.dtype} array of shape {raw.shape}, not "
                         "a JSON string")
    try:
        meta = json.loads(str(raw))
    except json.JSONDecodeError as error:
        raise _bad(path, f"its 'meta' entry is not valid JSON ({error})") from error
    _check_meta(path, meta)
    return meta, entries


def build(cls: Any, path: Any, model: Any, meta: dict) -> Any:
    """An unfitted analyzer of class ``cls`` for ``model`` from the file's configuration;
    a configuration that does not fit the model is a ``ValueError`` naming the file."""
    try:
        return cls.from_config(model, meta["config"])
    except UnsupportedLayerError:
        raise  # the model's, not the file's
    except (ValueError, TypeError, KeyError) as error:
        raise ValueError(f"{path}: its configuration does not build a MinMaxDTD for this "
                         f"model: {error}") from error


def layer_weights(path: Any, meta: dict, weights: dict[str, np.ndarray], index: int,
                  name: str, relevance_model: Any) -> list[np.ndarray]:
    """The stored weights of the relevance model of layer ``name`` (``index``-th), checked
    against ``relevance_model``: configuration, every weight's presence, shape, dtype and
    finiteness."""
    stored = meta["models"].get(name)
    if not isinstance(stored, dict):
        raise ValueError(f"{path}: it holds no relevance model for layer '{name}'")
    ours = relevance_model.get_config()
    for key in MODEL_KEYS:
        if stored.get(key) != ours[key]:
            raise ValueError(
                f"{path}: the relevance model of layer '{name}' has {key}="
                f"{stored.get(key)!r}, but this model needs {ours[key]!r}")
    arrays = []
    for j, variable in enumerate(relevance_model.weights):
        key, what = f"{index}/{j}", f"'{variable.name}' of layer '{name}'"
        if key not in weights:
            raise _bad(Path(path), f"the weight {what} (entry '{key}') is missing")
        array = weights[key]
        expected = tuple(variable.shape)
        if array.shape != expected:
            raise ValueError(f"{path}: the weight {what} (entry '{key}') has shape "
                             f"{array.shape}, but this model needs {expected}")
        if array.dtype.kind != "f":
            raise _bad(Path(path), f"the weight {what} (entry '{key}') holds {array.dtype}, "
                                   "not floats")
        if not np.all(np.isfinite(array)):
            raise _bad(Path(path), f"the weight {what} (entry '{key}') holds NaN or "
                                   "infinite values")
        arrays.append(array)
    return arrays
