"""keras-hub layer classes (placeholder: filled in by issue 14's keras-hub work)."""

from __future__ import annotations

from typing import Any

__all__ = ["layers"]


def layers() -> dict[type, Any]:
    """keras-hub class → relevance behaviour."""
    return {}
