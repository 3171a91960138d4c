r"""Region perturbation, most relevant first, with the AOPC (Samek et al. 2017).

W. Samek, A. Binder, G. Montavon, S. Lapuschkin, K.-R. Müller, "Evaluating the
visualization of what a deep neural network has learned", *IEEE TNNLS* 28(11), 2017.
The input is cut into a fixed grid of non-overlapping square patches (``patch_size``
pixels a side, over the spatial axes; all channels of a patch together). Patches are
sorted by their summed relevance, most relevant first (MoRF), and perturbed one per step;
:math:`x^{(k)}` is the input after ``k`` steps. This differs from Samek et al., who
perturb a window (9×9 in their experiments) around each next most relevant *location*,
so that windows may overlap; the grid makes every step perturb the same number of new
values and the random order a plain permutation of the same patches. The area over the
MoRF perturbation curve is

.. math::

    \mathrm{AOPC} = \Big\langle \frac{1}{L + 1} \sum_{k=0}^{L}
    \big(f(x^{(0)}) - f(x^{(k)})\big) \Big\rangle_{x}

with ``L = steps`` and ``f`` the explained logit (pre-softmax, the neuron chosen at the
unperturbed input). A random patch order is run alongside with the same replacement
values (the baseline a heatmap must beat).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..explanation import Explanation
from ._common import LogitFunction, as_batch, figure, positive_int

__all__ = ["DEFAULT_PATCHES", "MIN_PATCHES", "PixelFlipping", "default_patch_size",
           "pixel_flipping"]

DEFAULT_PATCHES = 64
"""The default ``patch_size`` leaves at least this many patches (where the input has
that many positions)."""
MIN_PATCHES = 16
"""Fewer patches than this warn: AOPC over so few steps hardly tells methods apart."""


@dataclass(frozen=True)
class DeletionCurves:
    """What a deletion metric measures (pixel flipping, token deletion): the curves and
    their AOPC, most relevant first against a random order, per sample and on average."""

    aopc: float
    aopc_random: float
    curve: np.ndarray
    random_curve: np.ndarray
    curves: np.ndarray
    random_curves: np.ndarray
    aopc_per_sample: np.ndarray
    aopc_random_per_sample: np.ndarray
    aopc_curve: np.ndarray
    aopc_random_curve: np.ndarray
    neuron: np.ndarray

    @staticmethod
    def _fields(curves: np.ndarray, random_curves: np.ndarray,
                neuron: np.ndarray) -> dict[str, Any]:
        """The fields above from the per-sample MoRF and random curves ``(N, steps + 1)``."""
        per_sample, aopc_curve = _aopc(curves)
        random_per_sample, random_aopc_curve = _aopc(random_curves)
        return dict(aopc=float(per_sample.mean()), aopc_random=float(random_per_sample.mean()),
                    curve=curves.mean(axis=0), random_curve=random_curves.mean(axis=0),
                    curves=curves, random_curves=random_curves, aopc_per_sample=per_sample,
                    aopc_random_per_sample=random_per_sample, aopc_curve=aopc_curve,
                    aopc_random_curve=random_aopc_curve, neuron=neuron)

    def _headline(self) -> dict[str, Any]:
        return {"aopc": self.aopc, "aopc_random": self.aopc_random,
                "curve": self.curve.tolist(), "random_curve": self.random_curve.tolist()}


@dataclass(frozen=True)
class PixelFlipping(DeletionCurves):
    """The perturbation curves and their AOPC.

    ``curves`` / ``random_curves``: ``(N, steps + 1)`` explained logit after ``k``
    patches perturbed (MoRF / random order; averaged over ``seeds``); ``curve`` /
    ``random_curve`` their mean over samples. ``aopc`` / ``aopc_random`` the area over
    the curve (module docstring) averaged over samples, ``aopc_per_sample`` /
    ``aopc_random_per_sample`` per sample; ``aopc_curve`` the AOPC as a function of the
    number of steps ``L`` (Samek et al.'s plots).
    """

    patch_size: tuple[int, ...]
    steps: int
    perturbation: Any
    seeds: tuple[int, ...] = field(default=(0,))

    def to_dict(self) -> dict[str, Any]:
        """The headline numbers and mean curves (JSON-ready)."""
        return {**self._headline(), "patch_size": list(self.patch_size), "steps": self.steps,
                "perturbation": self.perturbation, "seeds": list(self.seeds)}

    def plot(self) -> Any:
        """Mean logit and AOPC against the number of perturbed patches, MoRF vs random."""
        fig = figure(8, 3)
        left, right = fig.subplots(1, 2)
        k = np.arange(self.steps + 1)
        left.plot(k, self.curve, label=f"most relevant first (AOPC {self.aopc:.3g})")
        left.plot(k, self.random_curve, "--",
                  label=f"random order (AOPC {self.aopc_random:.3g})")
        left.set_xlabel("patches perturbed")
        left.set_ylabel("explained logit (mean)")
        left.legend()
        right.plot(k, self.aopc_curve, label="most relevant first")
        right.plot(k, self.aopc_random_curve, "--", label="random order")
        right.set_xlabel("L (perturbation steps)")
        right.set_ylabel("AOPC")
        return fig


def _patch_ids(spatial: tuple[int, ...], patch: tuple[int, ...]) -> tuple[np.ndarray, int]:
    grids = np.meshgrid(*[np.arange(s) // p for s, p in zip(spatial, patch)], indexing="ij")
    counts = tuple(-(-s // p) for s, p in zip(spatial, patch))
    ids = np.ravel_multi_index(tuple(g.ravel() for g in grids), counts)
    return ids, int(np.prod(counts))


def _aopc(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    drop = curves[:, :1] - curves
    per_sample = drop.mean(axis=1)
    cumulative = np.cumsum(drop, axis=1) / np.arange(1, drop.shape[1] + 1)
    return per_sample, cumulative.mean(axis=0)


def default_patch_size(spatial: Sequence[int]) -> int:
    """The default patch side for inputs of ``spatial`` shape: the largest ``p`` whose
    grid still has at least :data:`DEFAULT_PATCHES` patches,
    ``∏ ⌈s_i / p⌉ >= DEFAULT_PATCHES``; 1 when the input has fewer positions than that
    (8×8 → 1, 28×28 → 3, 32×32 → 4, 224×224 → 31)."""
    def patches(p: int) -> int:
        return int(np.prod([-(-s // p) for s in spatial]))

    p = 1
    while p < max(spatial) and patches(p + 1) >= DEFAULT_PATCHES:
        p += 1
    return p


def _bounds(value: Any, name: str, sample: tuple[int, ...]) -> np.ndarray:
    """A perturbation bound as an array shaped like one sample; errors name the shapes."""
    try:
        array = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or an array, got {value!r}") from None
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    try:
        return np.broadcast_to(array, sample)
    except ValueError:
        raise ValueError(f"{name} has shape {array.shape}, which does not broadcast to one "
                         f"sample's shape {sample}: give a scalar or an array broadcastable "
                         "to one sample (no batch axis)") from None


def _seed_tuple(seeds: Any) -> tuple[int, ...]:
    values = list(seeds) if isinstance(seeds, (Sequence, np.ndarray)) and not isinstance(
        seeds, (str, bytes)) else None
    if not values or any(isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer))
                         for s in values):
        raise ValueError(f"seeds must be a non-empty sequence of ints, got {seeds!r}")
    return tuple(int(s) for s in values)


def _patch_grid(patch_size: Any, spatial: tuple[int, ...]) -> tuple[int, ...]:
    """``patch_size`` (None, an int, or one per spatial axis) as one int per axis."""
    if patch_size is None:
        return (default_patch_size(spatial),) * len(spatial)
    sizes = [patch_size] if np.ndim(patch_size) == 0 else list(patch_size)
    what = f"patch_size must be None, a positive int or one per spatial axis {spatial}"
    try:
        patch = tuple(positive_int(p, "patch_size") for p in sizes)
    except ValueError:
        raise ValueError(f"{what}, got {patch_size!r}") from None
    if len(patch) == 1:
        patch = patch * len(spatial)
    if len(patch) != len(spatial):
        raise ValueError(f"{what}, got {patch_size!r}")
    return patch


def _warn_if_coarse(patch: tuple[int, ...], spatial: tuple[int, ...], count: int) -> None:
    if count < MIN_PATCHES and max(patch) > 1:
        warnings.warn(
            f"pixel_flipping: patch_size {patch} cuts inputs of spatial shape {spatial} into "
            f"only {count} patches; AOPC over so few steps hardly tells methods apart. Use "
            f"a smaller patch_size (the default, None, gives at least {DEFAULT_PATCHES} "
            "patches where the input has that many positions)", UserWarning, stacklevel=3)


def pixel_flipping(model: Any, x: Any, relevance: Any, *, neuron: Any = None,
                   patch_size: int | Sequence[int] | None = None, steps: int | None = None,
                   perturbation: str | float = "uniform", low: Any = 0.0, high: Any = 1.0,
                   seeds: Sequence[int] = (0,), channels_last: bool | None = None,
                   batch_size: int = 256) -> PixelFlipping:
    """Perturb the most relevant patches first and measure the logit's fall (AOPC).

    The patches are a fixed grid of non-overlapping squares, ranked once by their summed
    relevance; Samek et al. 2017 instead perturb a window around each next most relevant
    location (windows may overlap). Both rank regions by relevance; the numbers of the
    two protocols are not interchangeable.

    Parameters
    ----------
    model:
        The Keras model (or an analyzer, whose model is used). Its explained logit is
        computed as the analyzers do (softmax stripped), compiled once, in batches.
    x, relevance:
        Inputs ``(N, ...)`` and their relevance maps (same shape), or an
        :class:`~dtd_keras.Explanation` as ``relevance`` (its ``neuron`` is then used).
        ``x`` is checked against the model as ``explain`` checks it (shape, finiteness,
        and an analyzer's declared input domain) before TensorFlow sees it.
    neuron:
        The output neuron whose logit is tracked: ``None`` (each sample's top logit at
        the unperturbed input), an int, or one per sample.
    patch_size:
        Patch side over the spatial axes (an int, or one per spatial axis). Spatial
        axes are all but the batch axis and, when ``channels_last`` (default: inputs
        with 4 or more axes), the last one. Default ``None``: the largest side that
        leaves at least 64 patches (:func:`default_patch_size`: 8×8 → 1, 28×28 → 3,
        224×224 → 31). A grid of fewer than 16 patches warns: AOPC over so few steps
        hardly tells methods apart.
    steps:
        Patches perturbed, one per step (default: all of them).
    perturbation:
        ``"uniform"``: each perturbed value is replaced by uniform noise in
        ``[low, high]`` (the input domain; scalars or arrays broadcastable to one
        sample's shape), drawn once per seed and shared by the MoRF and random orders; a
        finite number: the patch is set to that constant.
    seeds:
        One run per seed (noise and random order); curves are averaged over seeds.
    """
    if isinstance(relevance, Explanation):
        if neuron is None:
            neuron = relevance.neuron
        relevance = relevance.relevance
    logit = LogitFunction(model, positive_int(batch_size, "batch_size"))
    # an analyzer also checks its declared input domain; a model its input shape
    data = as_batch(x, against=model if hasattr(model, "check_inputs") else logit)
    relevance = as_batch(relevance, "relevance")
    if relevance.shape != data.shape:
        raise ValueError(f"relevance has shape {relevance.shape}, x has {data.shape}")
    seeds = _seed_tuple(seeds)
    channels = data.ndim >= 4 if channels_last is None else bool(channels_last)
    spatial = tuple(data.shape[1:-1] if channels else data.shape[1:])
    if not spatial:
        raise ValueError(f"x of shape {data.shape} has no spatial axis to cut into patches")
    patch = _patch_grid(patch_size, spatial)
    ids, count = _patch_ids(spatial, patch)
    _warn_if_coarse(patch, spatial, count)
    steps = count if steps is None else positive_int(steps, "steps")
    if not 1 <= steps <= count:
        raise ValueError(f"steps must be between 1 and the number of patches ({count}), "
                         f"got {steps}")
    if isinstance(perturbation, str):
        if perturbation != "uniform":
            raise ValueError(f"perturbation must be 'uniform' or a number, got {perturbation!r}")
        low_a = _bounds(low, "low", data.shape[1:])
        high_a = _bounds(high, "high", data.shape[1:])
        if np.any(low_a > high_a):
            raise ValueError(f"perturbation bounds need low <= high; low > high at "
                             f"{np.count_nonzero(low_a > high_a)} of {low_a.size} values")
    elif isinstance(perturbation, (bool, np.bool_)) or not isinstance(
            perturbation, (int, float, np.integer, np.floating)) or not np.isfinite(perturbation):
        raise ValueError("perturbation must be 'uniform' or a finite number, got "
                         f"{perturbation!r}")

    n = len(data)
    chosen, _ = logit(data, neuron)
    flat_shape = (n, ids.size, -1)
    scores = relevance.reshape(flat_shape).sum(axis=-1)
    patch_scores = np.stack([np.bincount(ids, weights=s, minlength=count) for s in scores])
    morf = np.argsort(-patch_scores, axis=1, kind="stable")[:, :steps]

    def run(order: np.ndarray, replacement: np.ndarray) -> np.ndarray:
        current = data.reshape(flat_shape).copy()
        fill = replacement.reshape(flat_shape)
        values = [logit(data, chosen)[1]]
        for k in range(steps):
            mask = (ids[None, :] == order[:, k:k + 1])[..., None]
            current = np.where(mask, fill, current)
            values.append(logit(current.reshape(data.shape), chosen)[1])
        return np.stack(values, axis=1).astype(np.float64)

    morf_runs, random_runs = [], []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        if isinstance(perturbation, str):
            replacement = rng.uniform(low_a, high_a, size=data.shape).astype(np.float32)
        else:
            replacement = np.full(data.shape, float(perturbation), dtype=np.float32)
        shuffled = np.stack([rng.permutation(count)[:steps] for _ in range(n)])
        morf_runs.append(run(morf, replacement))
        random_runs.append(run(shuffled, replacement))
    curves, random_curves = np.mean(morf_runs, axis=0), np.mean(random_runs, axis=0)
    return PixelFlipping(
        **PixelFlipping._fields(curves, random_curves, chosen), patch_size=patch,
        steps=steps, perturbation=perturbation if isinstance(perturbation, str)
        else float(perturbation), seeds=seeds)

