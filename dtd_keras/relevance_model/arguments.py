"""Checks of ``MinMaxDTD``'s scalar arguments: each error names the argument and the value."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["integer", "real"]


def integer(value: Any, name: str, minimum: int = 1, allow_none: bool = False) -> int | None:
    """``value`` as an int ``>= minimum`` (or None where allowed); a float, string or bool
    is refused, never truncated."""
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an int >= {minimum}"
                         f"{' or None' if allow_none else ''}, got {value!r} "
                         f"({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")
    return int(value)


def real(value: Any, name: str, low: float, high: float = math.inf,
         include_low: bool = False) -> float:
    """``value`` as a finite float in ``(low, high)`` (``[low, high)`` with
    ``include_low``)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                     np.floating)):
        raise ValueError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    number = float(value)
    above = number >= low if include_low else number > low
    if not (math.isfinite(number) and above and number < high):
        bounds = f"{'[' if include_low else '('}{low:g}, {high:g})"
        raise ValueError(f"{name} must be a finite number in {bounds}, got {value!r}")
    return number
