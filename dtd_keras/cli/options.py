"""The ``--domain`` and ``--preset`` options: parsed, checked, turned into analyzer options."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .errors import CLIError, UsageError

__all__ = ["analyzer_options", "check_domain", "check_preset", "describe_domain",
           "make_analyzer", "parse_domain"]


def parse_domain(text: str) -> Any:
    """``"real"``, ``"positive"`` or ``"LOW,HIGH"`` → ``"real"``, ``"positive"`` or a Box."""
    from ..engine.domains import Box

    value = text.strip().lower()
    if value in ("real", "positive"):
        return value
    parts = [p.strip() for p in value.replace(":", ",").split(",")]
    if len(parts) == 2:
        try:
            low, high = float(parts[0]), float(parts[1])
        except ValueError:
            low = high = None
        if low is not None and math.isfinite(low) and math.isfinite(high):
            if low > high:
                raise CLIError(f"--domain {text}: LOW must not exceed HIGH")
            return Box(low, high)
    raise CLIError(f"--domain {text!r} is not 'LOW,HIGH' (e.g. 0,1), 'real' or 'positive'")


def describe_domain(domain: Any) -> str:
    """The domain as ``--domain`` writes it."""
    if isinstance(domain, str):
        return domain
    return f"{float(domain.low):g},{float(domain.high):g}"


def check_preset(name: str) -> None:
    """Refuse a ``--preset`` that ``dtd_keras.PRESETS`` does not name (a usage error;
    checked against the parser's copy of the names, without importing TensorFlow)."""
    from .parser import PRESET_NAMES

    if name not in PRESET_NAMES:
        raise UsageError(f"argument --preset: invalid choice: {name!r} (choose from "
                         f"{', '.join(sorted(PRESET_NAMES))})")


def analyzer_options(preset: str, domain: Any) -> dict[str, Any]:
    """The ``create_analyzer`` options that declare ``domain`` for ``preset``."""
    box = not isinstance(domain, str)
    if preset == "deep_taylor":
        return {"input_domain": domain}
    if preset in ("deep_taylor.bounded", "lrp.composite"):
        if box:
            return {"low": float(domain.low), "high": float(domain.high)}
        if preset == "deep_taylor.bounded":
            raise CLIError(f"the preset deep_taylor.bounded needs a box domain, e.g. "
                           f"--domain 0,1 (got --domain {domain})")
    return {}


def make_analyzer(model, preset: str, domain: Any):
    """``dk.create_analyzer(preset, model, …)`` with the domain's options."""
    from ..presets import create_analyzer

    return create_analyzer(preset, model, **analyzer_options(preset, domain))


def check_domain(domain: Any, x: np.ndarray, what: str) -> None:
    """Inputs outside ``domain`` → one line that names ``--domain``."""
    from ..engine.domains import as_domain

    try:
        as_domain(domain).check(x, what)
    except ValueError as error:
        raise CLIError(f"{error} (declare the input range with --domain, e.g. --domain real)"
                       ) from None
