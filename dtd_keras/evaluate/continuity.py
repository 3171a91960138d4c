r"""Explanation continuity (Montavon et al. 2018), scale-free by default.

G. Montavon, W. Samek, K.-R. Müller, "Methods for interpreting and understanding deep
neural networks", *Digital Signal Processing* 73 (2018), section 5: an explanation
should not jump when the input barely moves. For each input :math:`x` and small
perturbations :math:`x' = x + δ`, with :math:`R(x')` explaining the same output neuron
as :math:`R(x)`,

.. math::

    C(x) = \max_{x'} \frac{\lVert R(x) - R(x') \rVert_1}
                          {\lVert R(x) \rVert_1 \, \lVert x - x' \rVert_2}
    \qquad \text{(default, } \texttt{normalize=True}\text{)}

the change of the map relative to the map itself, per unit of input distance. It is
scale-free: maps ×10 give the same value, so methods whose maps come in different
units (relevance summing to the logit, gradients, random maps) can be compared.
``normalize=False`` gives the raw ratio of the paper,
:math:`\max_{x'} \lVert R(x) - R(x') \rVert_1 / \lVert x - x' \rVert_2`, which scales
with the map (maps ×10: value ×10). Lower is smoother. The reported ``value`` is the
mean of :math:`C(x)` over the inputs.

An input whose map :math:`R(x)` is zero everywhere has no normalised continuity (a
relative change of nothing): its :math:`C(x)` is NaN, it is left out of the mean with
a warning that counts such inputs (``zero_maps``), and if every map is zero a
``ValueError`` says so. The raw ratio is defined for them.
"""

from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engine.domains import POSITIVE, Box
from ._common import as_batch, explain_with, figure

__all__ = ["Continuity", "continuity"]


@dataclass(frozen=True)
class Continuity:
    """``value``: mean over inputs of the per-input maximum ratio (module docstring);
    ``max``: the largest ratio seen; ``per_sample`` the per-input maxima; ``ratios``
    every ratio ``(N, perturbations)`` (NaN where clipping into the domain left
    ``x' = x``, and, normalised, for inputs whose map is all zero); ``normalized``:
    whether the ratios are divided by ``‖R(x)‖₁`` (scale-free, the default) or raw;
    ``zero_maps``: inputs left out because ``R(x) = 0`` (normalised only)."""

    value: float
    max: float
    per_sample: np.ndarray
    ratios: np.ndarray
    radius: float
    normalized: bool = True
    zero_maps: int = 0

    def to_dict(self) -> dict[str, float | bool | int]:
        """The headline numbers (JSON-ready), with which kind of value they are."""
        return {"value": self.value, "max": self.max, "radius": self.radius,
                "normalized": self.normalized, "zero_maps": self.zero_maps}

    def plot(self) -> Any:
        """Histogram of the per-input continuity."""
        fig = figure(5, 3)
        ax = fig.subplots()
        ax.hist(self.per_sample[np.isfinite(self.per_sample)], bins=30)
        ax.axvline(self.value, color="k", linestyle="--", label=f"mean {self.value:.3g}")
        ax.set_xlabel("max ‖R(x) − R(x′)‖₁ / (‖R(x)‖₁ ‖x − x′‖₂)" if self.normalized
                      else "max ‖R(x) − R(x′)‖₁ / ‖x − x′‖₂")
        ax.set_ylabel("inputs")
        ax.legend()
        return fig


def _domain_bounds(explainer: Any) -> tuple[Any, Any]:
    domains = getattr(explainer, "input_domains", None)
    if not domains:
        return None, None
    domain = domains[0]
    if isinstance(domain, Box):
        return domain.low, domain.high
    if domain is POSITIVE:
        return 0.0, None
    return None, None


def _bound(value: Any, name: str, shape: tuple[int, ...]) -> np.ndarray | None:
    """``low``/``high`` as a float array that broadcasts to one sample; a named error."""
    if value is None:
        return None
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"continuity: {name} must be a number or an array of numbers; got "
                         f"{value!r}") from error
    try:
        broadcast = np.broadcast_shapes(array.shape, shape)
    except ValueError:
        broadcast = None
    if broadcast != shape:
        raise ValueError(f"continuity: {name} of shape {array.shape} does not broadcast to "
                         f"one sample's shape {shape} (give a number, or an array of shape "
                         f"{shape} or one that broadcasts to it)")
    if np.any(np.isnan(array)):
        raise ValueError(f"continuity: {name} contains NaN")
    return array


def _check_arguments(radius: Any, samples: Any, seed: Any, batch_size: Any,
                     normalize: Any, given: bool) -> None:
    if not isinstance(normalize, (bool, np.bool_)):
        raise ValueError(f"continuity: normalize must be True or False; got {normalize!r}")
    if not isinstance(batch_size, numbers.Integral) or isinstance(batch_size, bool) \
            or batch_size < 1:
        raise ValueError(f"continuity: batch_size must be an integer >= 1; got "
                         f"{batch_size!r}")
    if given:
        return
    if not isinstance(samples, numbers.Integral) or isinstance(samples, bool) or samples < 1:
        raise ValueError(f"continuity: samples (random perturbations per input) must be an "
                         f"integer >= 1; got {samples!r}")
    if not isinstance(radius, numbers.Real) or isinstance(radius, bool) \
            or not np.isfinite(radius) or radius <= 0:
        raise ValueError(f"continuity: radius (the perturbations' L2 length) must be a "
                         f"finite number > 0; got {radius!r}")
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool):
        raise ValueError(f"continuity: seed must be an integer; got {seed!r}")


def continuity(explainer: Any, x: Any, *, neuron: Any = None, radius: float = 0.05,
               samples: int = 8, perturbations: Any = None, low: Any = None,
               high: Any = None, seed: int = 0, batch_size: int = 256,
               normalize: bool = True) -> Continuity:
    """Continuity of ``explainer`` around each input (module docstring).

    By default the value is normalised, ``max ‖R(x) − R(x′)‖₁ / (‖R(x)‖₁ ‖x − x′‖₂)``:
    scale-free, comparable across methods. ``normalize=False`` gives the raw
    ``max ‖R(x) − R(x′)‖₁ / ‖x − x′‖₂``, in the map's units. The result's
    ``normalized`` (and ``to_dict()``) says which.

    Parameters
    ----------
    explainer:
        An analyzer, preset, :class:`~dtd_keras.MinMaxDTD`, baseline, or a callable
        ``f(x, neuron) -> relevance``.
    radius, samples, seed:
        ``samples`` (an integer >= 1) random directions per input, each scaled to
        Euclidean length ``radius`` (finite, > 0; seeded).
    perturbations:
        Instead, explicit perturbations ``δ`` of shape ``(P, *sample_shape)``, used
        as given for every input.
    low, high:
        Perturbed inputs are clipped into ``[low, high]`` (numbers or arrays that
        broadcast to one sample; default: the explainer's declared input box, or 0
        below for ``"positive"``); the ratio uses the perturbation that remains after
        clipping.
    normalize:
        Divide by ``‖R(x)‖₁`` (default). Inputs whose map is all zero are then left out
        of the mean (NaN, with a warning); all of them zero is a ``ValueError``.

    Raises
    ------
    ValueError
        No inputs; ``samples``, ``radius``, ``seed``, ``batch_size`` or ``normalize``
        of the wrong kind or out of range; perturbations of the wrong shape, empty or
        not finite; ``low``/``high`` that do not broadcast to one sample, contain NaN,
        or cross (``low > high``); every perturbation clipped away; every map zero
        (normalised).
    """
    given = perturbations is not None
    _check_arguments(radius, samples, seed, batch_size, normalize, given)
    data = as_batch(x)
    n, shape = len(data), data.shape[1:]
    if n == 0:
        raise ValueError(f"continuity needs at least one input; x has shape {data.shape}")
    if not given:
        rng = np.random.default_rng(seed)
        directions = rng.normal(size=(n, samples, *shape))
        norms = np.sqrt((directions.reshape(n, samples, -1) ** 2).sum(-1))
        deltas = radius * directions / norms.reshape(n, samples, *([1] * len(shape)))
    else:
        given_array = np.asarray(perturbations, dtype=np.float64)
        if given_array.shape[1:] != shape or len(given_array) == 0 \
                or not np.all(np.isfinite(given_array)):
            raise ValueError(f"perturbations must be finite, at least one, shaped "
                             f"(P, *{shape}); got shape {given_array.shape}")
        deltas = np.broadcast_to(given_array, (n, *given_array.shape))
    count = deltas.shape[1]
    default_low, default_high = _domain_bounds(explainer)
    low = _bound(default_low if low is None else low, "low", shape)
    high = _bound(default_high if high is None else high, "high", shape)
    if low is not None and high is not None and np.any(low > high):
        raise ValueError(f"continuity: low > high (low {np.min(low):g}…{np.max(low):g}, "
                         f"high {np.min(high):g}…{np.max(high):g})")
    moved = data[:, None] + deltas
    if low is not None or high is not None:
        moved = np.clip(moved, low, high)
    moved = moved.astype(np.float32)
    step = (moved - data[:, None]).reshape(n, count, -1).astype(np.float64)
    distance = np.sqrt((step ** 2).sum(-1))

    def explain(batch: np.ndarray, chosen: Any) -> tuple[np.ndarray, np.ndarray]:
        parts, picked = [], []
        for i in range(0, len(batch), batch_size):
            e = explain_with(explainer, batch[i:i + batch_size],
                             None if chosen is None else chosen[i:i + batch_size])
            parts.append(e.relevance)
            picked.append(e.neuron)
        return np.concatenate(parts), np.concatenate(picked)

    chosen = None if neuron is None else np.broadcast_to(np.asarray(neuron), (n,))
    base, picked = explain(data, chosen)
    if np.any(picked < 0):  # a callable without neuron selection: keep what was given
        picked = chosen
    repeated = None if picked is None else np.repeat(picked, count)
    other, _ = explain(moved.reshape(n * count, *shape), repeated)
    base = base.reshape(n, 1, -1).astype(np.float64)
    change = np.abs(other.reshape(n, count, -1).astype(np.float64) - base).sum(-1)
    scale = np.ones((n, 1))
    zero_maps = 0
    if normalize:
        size = np.abs(base).sum(-1)                        # ‖R(x)‖₁, shape (n, 1)
        zero = size[:, 0] == 0
        zero_maps = int(zero.sum())
        if zero_maps == n:
            raise ValueError(f"continuity: every one of the {n} maps R(x) is zero, so the "
                             "normalised continuity (divided by ‖R(x)‖₁) is undefined; "
                             "use normalize=False for the raw value")
        if zero_maps:
            warnings.warn(f"continuity: {zero_maps} of {n} inputs have an all-zero map "
                          "R(x); their normalised continuity is undefined (NaN) and left "
                          "out of the mean", RuntimeWarning, stacklevel=2)
        scale = np.where(zero[:, None], np.nan, size)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = np.where(distance > 0, change / (np.where(distance > 0, distance, 1) * scale),
                          np.nan)
    if np.all(np.isnan(ratios[np.isfinite(scale[:, 0])])):
        raise ValueError("every perturbation was clipped away (x' = x): the inputs sit at "
                         "the domain's corners; use a larger radius or other perturbations")
    per_sample = np.nanmax(np.where(np.isnan(ratios), -np.inf, ratios), axis=1)
    per_sample = np.where(np.isinf(per_sample), np.nan, per_sample)
    return Continuity(float(np.nanmean(per_sample)), float(np.nanmax(ratios)), per_sample,
                      ratios, float(radius if not given else np.nan), bool(normalize),
                      zero_maps)
