"""(placeholder: filled in by issue 14's work on attention layers)."""

from __future__ import annotations

from typing import Any

__all__ = ["LAYERS"]

LAYERS: dict[type, Any] = {}
"""Layer/operation class → relevance behaviour, merged into the registry's table."""
