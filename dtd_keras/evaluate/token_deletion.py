r"""Token deletion, most relevant first, with the AOPC: pixel flipping for token inputs.

The tokens of each sequence are ranked by their relevance (summed over the features for
``[batch, seq, dim]`` maps), most relevant first (MoRF), and replaced one per step by a
fixed id (a pad or mask token); :math:`x^{(k)}` is the sequence after ``k`` steps. As in
:mod:`.pixel_flipping` (Samek et al. 2017),

.. math::

    \mathrm{AOPC} = \Big\langle \frac{1}{L + 1} \sum_{k=0}^{L}
    \big(f(x^{(0)}) - f(x^{(k)})\big) \Big\rangle_{x}

with ``L = steps`` and ``f`` the explained logit. A random order of the same tokens is run
alongside (the baseline a heatmap must beat). Positions in ``keep`` (padding, a class
token) are never replaced and never ranked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..explanation import Explanation
from ._common import LogitFunction, figure, positive_int
from .pixel_flipping import DeletionCurves, _seed_tuple

__all__ = ["TokenDeletion", "token_deletion"]


@dataclass(frozen=True)
class TokenDeletion(DeletionCurves):
    """The deletion curves and their AOPC.

    ``curves`` / ``random_curves``: ``(N, steps + 1)`` explained logit after ``k`` tokens
    replaced (MoRF / random order, the latter averaged over ``seeds``); ``curve`` /
    ``random_curve`` their mean over samples; ``aopc`` / ``aopc_random`` the area over the
    curve averaged over samples, ``aopc_per_sample`` / ``aopc_random_per_sample`` per
    sample, ``aopc_curve`` / ``aopc_random_curve`` the AOPC as a function of ``L``.
    """

    steps: int
    replace_id: int
    seeds: tuple[int, ...] = field(default=(0,))

    def to_dict(self) -> dict[str, Any]:
        """The headline numbers and mean curves (JSON-ready)."""
        return {**self._headline(), "steps": self.steps, "replace_id": self.replace_id,
                "seeds": list(self.seeds)}

    def plot(self) -> Any:
        """Mean logit against the number of replaced tokens, MoRF vs random."""
        fig = figure(4.5, 3)
        ax = fig.subplots()
        k = np.arange(self.steps + 1)
        ax.plot(k, self.curve, label=f"most relevant first (AOPC {self.aopc:.3g})")
        ax.plot(k, self.random_curve, "--", label=f"random order (AOPC {self.aopc_random:.3g})")
        ax.set_xlabel("tokens replaced")
        ax.set_ylabel("explained logit (mean)")
        ax.legend()
        return fig


def _keep_mask(keep: Any, shape: tuple[int, int]) -> np.ndarray:
    if keep is None:
        return np.zeros(shape, bool)
    array = np.asarray(keep)
    if array.dtype != bool:
        raise ValueError(f"keep must be a boolean mask, got dtype {array.dtype}")
    try:
        return np.broadcast_to(array, shape)
    except ValueError:
        raise ValueError(f"keep has shape {array.shape}, which does not broadcast to the "
                         f"tokens' shape {shape}: give (seq,) or (batch, seq)") from None


def token_deletion(model: Any, tokens: Any, relevance: Any, *, replace_id: int = 0,
                   neuron: Any = None, steps: int | None = None, keep: Any = None,
                   seeds: Sequence[int] = (0,), batch_size: int = 256) -> TokenDeletion:
    """Replace the most relevant tokens first by ``replace_id`` and measure the logit's
    fall (AOPC), against a random order.

    Parameters
    ----------
    model:
        The Keras model (or an analyzer, whose model is used) taking ``(batch, seq)``
        integer token ids as its one input; its explained logit is computed as the
        analyzers do (softmax stripped).
    tokens, relevance:
        Token ids ``(N, T)`` and their relevance ``(N, T)`` or ``(N, T, D)`` (summed over
        ``D``), or an :class:`~dtd_keras.Explanation` as ``relevance`` (its ``neuron`` is
        then used). ``tokens`` is checked against the model as ``explain`` checks it.
    replace_id:
        The id written over a deleted token (a pad, mask or unknown token).
    neuron:
        The output neuron tracked: ``None`` (each sample's top logit at the unchanged
        input), an int, or one per sample.
    steps:
        Tokens replaced, one per step (default: every position not in ``keep``, the
        fewest over the samples).
    keep:
        Boolean mask ``(T,)`` or ``(N, T)`` of positions never replaced (padding, a class
        token).
    seeds:
        One random order per seed; the random curves are averaged over seeds.
    """
    if isinstance(relevance, Explanation):
        if neuron is None:
            neuron = relevance.neuron
        relevance = relevance.relevance
    logit = LogitFunction(model, positive_int(batch_size, "batch_size"))
    ids = logit.check_inputs(tokens)[0]
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"token_deletion takes (batch, seq) integer token ids; the model's "
                         f"input gives {ids.dtype} of shape {ids.shape}")
    if len(ids) == 0:
        raise ValueError(f"tokens holds no samples (shape {ids.shape})")
    if isinstance(replace_id, (bool, np.bool_)) or not isinstance(replace_id,
                                                                  (int, np.integer)):
        raise ValueError(f"replace_id must be an int token id, got {replace_id!r}")
    scores = np.asarray(relevance, dtype=np.float64)
    if scores.ndim == 3 and scores.shape[:2] == ids.shape:
        scores = scores.sum(axis=-1)
    if scores.shape != ids.shape:
        raise ValueError(f"relevance has shape {np.shape(relevance)}; the tokens have "
                         f"{ids.shape} (give (batch, seq) or (batch, seq, dim))")
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"relevance contains {np.count_nonzero(~np.isfinite(scores))} NaN "
                         "or infinite values")
    kept = _keep_mask(keep, ids.shape)
    free = int((~kept).sum(axis=1).min())
    steps = free if steps is None else positive_int(steps, "steps")
    if not 1 <= steps <= free:
        raise ValueError(f"steps must be between 1 and the fewest replaceable tokens of a "
                         f"sample ({free}), got {steps}")
    seeds = _seed_tuple(seeds)

    chosen, start = logit(ids, neuron)
    n, length = ids.shape
    morf = np.argsort(np.where(kept, np.inf, -scores), axis=1, kind="stable")[:, :steps]

    def run(order: np.ndarray) -> np.ndarray:
        current = ids.copy()
        values = [start]
        rows = np.arange(n)
        for k in range(steps):
            current[rows, order[:, k]] = replace_id
            values.append(logit(current, chosen)[1])
        return np.stack(values, axis=1).astype(np.float64)

    curves = run(morf)
    random_runs = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        noise = np.where(kept, np.inf, rng.uniform(size=(n, length)))
        random_runs.append(run(np.argsort(noise, axis=1)[:, :steps]))
    random_curves = np.mean(random_runs, axis=0)
    return TokenDeletion(**TokenDeletion._fields(curves, random_curves, chosen), steps=steps,
                         replace_id=int(replace_id), seeds=seeds)
