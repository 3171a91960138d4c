r"""Region perturbation, most relevant first, with the AOPC (Samek et al. 2017).

W. Samek, A. Binder, G. Montavon, S. Lapuschkin, K.-R. Müller, "Evaluating the
visualization of what a deep neural network has learned", *IEEE TNNLS* 28(11), 2017.
The input is cut into square patches (``patch_size`` pixels a side, over the spatial
axes; all channels of a patch together). Patches are sorted by their summed relevance,
most relevant first (MoRF), and perturbed one per step; :math:`x^{(k)}` is the input
after ``k`` steps. The area over the MoRF perturbation curve is

.. math::

    \mathrm{AOPC} = \Big\langle \frac{1}{L + 1} \sum_{k=0}^{L}
    \big(f(x^{(0)}) - f(x^{(k)})\big) \Big\rangle_{x}

with ``L = steps`` and ``f`` the explained logit (pre-softmax, the neuron chosen at the
unperturbed input). A random patch order is run alongside with the same replacement
values (the baseline a heatmap must beat).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..explanation import Explanation
from ._common import LogitFunction, as_batch, figure

__all__ = ["PixelFlipping", "pixel_flipping"]


@dataclass(frozen=True)
class PixelFlipping:
    """The perturbation curves and their AOPC.

    ``curves`` / ``random_curves``: ``(N, steps + 1)`` explained logit after ``k``
    patches perturbed (MoRF / random order; averaged over ``seeds``); ``curve`` /
    ``random_curve`` their mean over samples. ``aopc`` / ``aopc_random`` the area over
    the curve (module docstring) averaged over samples, ``aopc_per_sample`` /
    ``aopc_random_per_sample`` per sample; ``aopc_curve`` the AOPC as a function of the
    number of steps ``L`` (Samek et al.'s plots).
    """

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
    patch_size: tuple[int, ...]
    steps: int
    perturbation: Any
    seeds: tuple[int, ...] = field(default=(0,))

    def to_dict(self) -> dict[str, Any]:
        """The headline numbers and mean curves (JSON-ready)."""
        return {"aopc": self.aopc, "aopc_random": self.aopc_random,
                "curve": self.curve.tolist(), "random_curve": self.random_curve.tolist(),
                "patch_size": list(self.patch_size), "steps": self.steps,
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


def pixel_flipping(model: Any, x: Any, relevance: Any, *, neuron: Any = None,
                   patch_size: int | Sequence[int] = 4, steps: int | None = None,
                   perturbation: str | float = "uniform", low: Any = 0.0, high: Any = 1.0,
                   seeds: Sequence[int] = (0,), channels_last: bool | None = None,
                   batch_size: int = 256) -> PixelFlipping:
    """Perturb the most relevant patches first and measure the logit's fall (AOPC).

    Parameters
    ----------
    model:
        The Keras model (or an analyzer, whose model is used). Its explained logit is
        computed as the analyzers do (softmax stripped), compiled once, in batches.
    x, relevance:
        Inputs ``(N, ...)`` and their relevance maps (same shape), or an
        :class:`~dtd_keras.Explanation` as ``relevance`` (its ``neuron`` is then used).
    neuron:
        The output neuron whose logit is tracked: ``None`` (each sample's top logit at
        the unperturbed input), an int, or one per sample.
    patch_size:
        Patch side over the spatial axes (an int, or one per spatial axis). Spatial
        axes are all but the batch axis and, when ``channels_last`` (default: inputs
        with 4 or more axes), the last one.
    steps:
        Patches perturbed, one per step (default: all of them).
    perturbation:
        ``"uniform"``: each perturbed value is replaced by uniform noise in
        ``[low, high]`` (the input domain; scalars or arrays shaped like one sample),
        drawn once per seed and shared by the MoRF and random orders; a number: the
        patch is set to that constant.
    seeds:
        One run per seed (noise and random order); curves are averaged over seeds.
    """
    if isinstance(relevance, Explanation):
        if neuron is None:
            neuron = relevance.neuron
        relevance = relevance.relevance
    data = as_batch(x)
    relevance = as_batch(relevance, "relevance")
    if relevance.shape != data.shape:
        raise ValueError(f"relevance has shape {relevance.shape}, x has {data.shape}")
    if len(seeds) == 0:
        raise ValueError("seeds must name at least one seed")
    channels = data.ndim >= 4 if channels_last is None else bool(channels_last)
    spatial = data.shape[1:-1] if channels else data.shape[1:]
    if not spatial:
        raise ValueError(f"x of shape {data.shape} has no spatial axis to cut into patches")
    patch = (int(patch_size),) * len(spatial) if np.ndim(patch_size) == 0 else tuple(
        int(p) for p in patch_size)
    if len(patch) != len(spatial) or min(patch) < 1:
        raise ValueError(f"patch_size must be a positive int or one per spatial axis "
                         f"{spatial}, got {patch_size!r}")
    ids, count = _patch_ids(tuple(spatial), patch)
    steps = count if steps is None else int(steps)
    if not 1 <= steps <= count:
        raise ValueError(f"steps must be between 1 and the number of patches ({count}), "
                         f"got {steps}")
    if isinstance(perturbation, str):
        if perturbation != "uniform":
            raise ValueError(f"perturbation must be 'uniform' or a number, got {perturbation!r}")
        low_a = np.broadcast_to(np.asarray(low, np.float32), data.shape[1:])
        high_a = np.broadcast_to(np.asarray(high, np.float32), data.shape[1:])
        if np.any(low_a > high_a):
            raise ValueError("perturbation bounds need low <= high")
    elif not np.isfinite(float(perturbation)):
        raise ValueError(f"a constant perturbation must be finite, got {perturbation!r}")

    logit = LogitFunction(model, batch_size)
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
    per_sample, aopc_curve = _aopc(curves)
    random_per_sample, random_aopc_curve = _aopc(random_curves)
    return PixelFlipping(
        aopc=float(per_sample.mean()), aopc_random=float(random_per_sample.mean()),
        curve=curves.mean(axis=0), random_curve=random_curves.mean(axis=0),
        curves=curves, random_curves=random_curves, aopc_per_sample=per_sample,
        aopc_random_per_sample=random_per_sample, aopc_curve=aopc_curve,
        aopc_random_curve=random_aopc_curve, neuron=chosen, patch_size=patch,
        steps=steps, perturbation=perturbation if isinstance(perturbation, str)
        else float(perturbation), seeds=tuple(int(s) for s in seeds))
