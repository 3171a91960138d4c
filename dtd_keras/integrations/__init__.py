"""Behaviours for layer classes of other libraries (keras-hub), registered on first use
when that library is already imported: dtd_keras never imports it itself."""

from __future__ import annotations

import importlib
import sys

__all__ = ["load_integrations"]

_INTEGRATIONS = {"keras_hub": "keras_hub"}  # library module -> our module
_loaded: set[str] = set()


def load_integrations(table: dict) -> None:
    """Add the behaviours of every integrated library the user has imported to ``table``."""
    for library, ours in _INTEGRATIONS.items():
        if library in _loaded or library not in sys.modules:
            continue
        module = importlib.import_module(f"{__name__}.{ours}")
        table.update(module.layers())
        _loaded.add(library)
