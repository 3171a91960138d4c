"""What a stored run is: the model, its weights, the analyzer (with any fitted state of
its own) and the run's arguments.

:func:`run_identity` collects them as a JSON-ready dict; a store keeps it in its metadata,
and a run resumes a store only when :func:`differences` between the two is empty.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["analyzer_config", "differences", "model_config", "run_identity",
           "weights_fingerprint"]


def weights_fingerprint(model: Any) -> str:
    """SHA-256 of every weight's dtype, shape and values, in the model's order.

    Variable names are left out (Keras numbers them per process); the order, shapes and
    values identify the weights.
    """
    digest = hashlib.sha256()
    for variable in model.weights:
        value = np.ascontiguousarray(np.asarray(variable.numpy()))
        digest.update(f"{value.dtype.str}{value.shape}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def _canonical(value: Any) -> Any:
    """A JSON-ready form of rules and domains, with arrays replaced by their hash."""
    if isinstance(value, np.ndarray):
        array = np.ascontiguousarray(value)
        return {"array": list(array.shape), "dtype": array.dtype.str,
                "sha256": hashlib.sha256(array.tobytes()).hexdigest()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"type": type(value).__name__, **{
            f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}}
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(value))  # no memory addresses


def _hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def analyzer_config(analyzer: Any) -> dict:
    """The analyzer's type, rule per layer (repr), input domains, options, and a hash of
    every rule and domain parameter (box bounds included, which the reprs abbreviate);
    for an analyzer with fitted state (``MinMaxDTD``: its relevance models' weights), its
    ``state_fingerprint()`` as ``state``."""
    rules = {name: repr(rule) for name, rule in analyzer.rules.items()}
    domains = [repr(d) for d in analyzer.input_domains]
    parameters = _canonical({"rules": dict(analyzer.rules), "domains": list(
        analyzer.input_domains)})
    config = {"type": f"{type(analyzer).__module__}.{type(analyzer).__qualname__}",
              "rules": rules, "input_domains": domains,
              "max_pool": analyzer.max_pool, "add": analyzer.add,
              "output_size": analyzer.output_size, "parameters": _hash(parameters)}
    state = getattr(analyzer, "state_fingerprint", None)
    if callable(state):
        config["state"] = state()
    return config


def model_config(model: Any) -> dict:
    """The model's name, input shapes and a hash of its layers (name, class, config)."""
    layers = []
    for layer in model.layers:
        try:
            config = layer.get_config()
        except Exception:  # noqa: BLE001 - a layer without a config is named by its class
            config = None
        layers.append([layer.name, type(layer).__name__, _canonical(config)])
    return {"name": model.name, "class": type(model).__name__,
            "inputs": [[None if d is None else int(d) for d in x.shape] for x in model.inputs],
            "layers": len(layers), "architecture": _hash(layers)}


def run_identity(analyzer: Any, arguments: dict, data: dict) -> dict:
    """Everything a stored result depends on; a run resumes a store only if it matches."""
    from .. import __version__

    return {"library_version": __version__, "model": model_config(analyzer.model),
            "weights": weights_fingerprint(analyzer.model),
            "analyzer": analyzer_config(analyzer), "arguments": arguments, "data": data}


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def _show(value: Any, limit: int = 60) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def differences(stored: Mapping, current: Mapping) -> list[str]:
    """What differs between two identities, one line per field (``"weights: … → …"``)."""
    old = _flatten(json.loads(json.dumps(stored)))
    new = _flatten(json.loads(json.dumps(current)))
    return [f"{key}: stored {_show(old.get(key, '(none)'))}, now {_show(new.get(key, '(none)'))}"
            for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]
