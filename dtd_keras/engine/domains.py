"""Input domains: the set a tensor's values live in, which selects the DTD rule.

Deep Taylor decomposition picks each layer's rule from the domain of that layer's
input (seed supplement, section 1): ℝᵈ → w²-rule, ℝᵈ₊ → z⁺-rule, a box
[l, h] → zᴮ-rule. :data:`REAL`, :data:`POSITIVE` and :class:`Box` are those three
domains; :func:`as_domain` parses what users write (``"real"``, ``"positive"``,
``Box(0, 1)`` or a ``(low, high)`` tuple).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Box", "Domain", "POSITIVE", "REAL", "as_domain"]


class Domain:
    """Base class of input domains."""

    name: str = "domain"

    def check(self, x: np.ndarray, what: str) -> None:
        """Raise :class:`~dtd_keras.errors.DomainError` if ``x`` (a batch) leaves the domain."""
        del x, what

    def graph_checks(self, x: Any, what: str) -> list:
        """TensorFlow assertions of the same (for exported graphs): finite, in the domain."""
        import tensorflow as tf

        return [tf.debugging.assert_all_finite(x, f"{what} contains NaN or infinite values")]

    def __repr__(self) -> str:
        return repr(self.name)


class _Real(Domain):
    name = "real"


class _Positive(Domain):
    name = "positive"

    def check(self, x: np.ndarray, what: str) -> None:
        from ..errors import DomainError

        lowest = float(np.min(x)) if x.size else 0.0
        if lowest < 0.0:
            where = np.unravel_index(int(np.argmin(x)), x.shape)
            raise DomainError(
                f"{what} has values below 0, outside the declared domain 'positive': "
                f"min {lowest:.6g} at index {tuple(int(i) for i in where)} "
                f"({np.count_nonzero(x < 0)} of {x.size} values negative)"
            )


    def graph_checks(self, x: Any, what: str) -> list:
        import tensorflow as tf

        return [*super().graph_checks(x, what), tf.debugging.assert_non_negative(
            x, message=f"{what} has values below 0, outside the declared domain 'positive'")]


REAL: Domain = _Real()
"""ℝᵈ: any real input (w²-rule)."""

POSITIVE: Domain = _Positive()
"""ℝᵈ₊: non-negative inputs, e.g. every tensor after a ReLU (z⁺-rule)."""


BOX_LIMIT = 1e30
"""The largest box bound magnitude: zᴮ's sums and quotients stay within float32 below it."""


@dataclass(frozen=True, eq=False)
class Box(Domain):
    """The box ``[low, high]`` (zᴮ-rule), e.g. pixels in ``Box(0.0, 1.0)``.

    ``low`` and ``high`` are scalars or arrays broadcastable to one sample's shape
    (no batch axis), finite and within ±1e30, with ``low <= high`` everywhere and
    ``low < high`` somewhere.
    """

    low: Any
    high: Any
    name = "box"

    def __post_init__(self) -> None:
        low = np.asarray(self.low, dtype=np.float32)
        high = np.asarray(self.high, dtype=np.float32)
        try:
            np.broadcast_shapes(low.shape, high.shape)
        except ValueError:
            raise ValueError(
                f"Box bounds do not broadcast: low has shape {low.shape}, high {high.shape}"
            ) from None
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise ValueError("Box bounds must be finite")
        largest = float(max(np.abs(low).max(initial=0.0), np.abs(high).max(initial=0.0)))
        if largest > float(np.float32(BOX_LIMIT)):
            raise ValueError(
                f"Box bounds reach {largest:.3g}; bounds beyond ±{BOX_LIMIT:g} make the "
                "zᴮ-rule's float32 sums overflow or its quotients underflow to zero (every "
                "relevance lost). Declare the range your inputs can really take, or 'real' "
                "(w²-rule) for unbounded inputs")
        if np.any(low > high):
            raise ValueError(
                f"Box needs low <= high everywhere; low exceeds high by up to "
                f"{float(np.max(low - high)):.6g}"
            )
        if low.size and high.size and np.all(low == high):
            raise ValueError(
                f"Box({float(low.flat[0]):g}, {float(high.flat[0]):g}) has no width: low == "
                "high everywhere, so every input is fixed and the zᴮ-rule has no relevance to "
                "give; declare the range your inputs can take")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    def check(self, x: np.ndarray, what: str) -> None:
        from ..errors import DomainError

        try:
            below = self.low - x
            above = x - self.high
        except ValueError:
            raise DomainError(
                f"{what} of shape {x.shape} does not broadcast with the box bounds "
                f"(low {self.low.shape}, high {self.high.shape}); give bounds shaped like "
                "one sample"
            ) from None
        problems = []
        for excess, side in ((below, "below low"), (above, "above high")):
            if excess.size and np.max(excess) > 0:
                where = np.unravel_index(int(np.argmax(excess)), excess.shape)
                problems.append(
                    f"{np.count_nonzero(excess > 0)} values {side}, the worst "
                    f"{float(np.max(excess)):.6g} {side.split()[0]} at index "
                    f"{tuple(int(i) for i in where)}"
                )
        if problems:
            raise DomainError(f"{what} lies outside the declared domain {self!r}: "
                              + "; ".join(problems))

    def graph_checks(self, x: Any, what: str) -> list:
        import tensorflow as tf

        message = f"{what} lies outside the declared domain {self!r}"
        return [*super().graph_checks(x, what),
                tf.debugging.assert_greater_equal(x, tf.constant(self.low), message=message),
                tf.debugging.assert_less_equal(x, tf.constant(self.high), message=message)]

    def __repr__(self) -> str:
        def show(a: np.ndarray) -> str:
            return f"{float(a):g}" if a.ndim == 0 else f"array{a.shape}"

        return f"Box({show(self.low)}, {show(self.high)})"


def as_domain(domain: Any) -> Domain:
    """Parse a user-given domain: ``"real"``, ``"positive"``, a :class:`Box` or ``(low, high)``."""
    if isinstance(domain, Domain):
        return domain
    if isinstance(domain, str):
        table = {"real": REAL, "positive": POSITIVE}
        if domain.lower() in table:
            return table[domain.lower()]
        raise ValueError(
            f"unknown input domain {domain!r}: use 'real', 'positive', dk.Box(low, high) "
            "or a (low, high) tuple"
        )
    if isinstance(domain, tuple) and len(domain) == 2:
        return Box(*domain)
    raise ValueError(
        f"cannot read {domain!r} as an input domain: use 'real', 'positive', "
        "dk.Box(low, high) or a (low, high) tuple"
    )
