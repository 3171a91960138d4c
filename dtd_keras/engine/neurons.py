"""Which output neurons to explain: what users pass as ``neuron=``, as index arrays."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["check_neurons_per_pass", "parse_neurons"]


def parse_neurons(neuron: Any, batch: int, size: int | None) -> np.ndarray:
    """``neuron`` as int32 indices: ``[batch]`` for one neuron per sample (``-1``: the
    top logit) or ``[batch, K]`` for K neurons per sample.

    ``None``: each sample's top logit; an int: that neuron for every sample; a sequence of
    ``batch`` ints: one per sample; ``"all"``: every output neuron (needs an output of
    static size ``size``); a ``[batch, K]`` array (or list of lists): K per sample.
    Indices are checked against ``size`` when it is known (else at run time).
    """
    if neuron is None:
        return np.full((batch,), -1, dtype=np.int32)
    if isinstance(neuron, str):
        if neuron != "all":
            raise ValueError(f"neuron must be None, an int, indices or 'all'; got {neuron!r}")
        if size is None:
            raise ValueError("neuron='all' needs an explained output whose size the model "
                             "fixes; this one's depends on the input shape: pass indices")
        return np.tile(np.arange(size, dtype=np.int32), (batch, 1))
    chosen = np.asarray(neuron)
    if chosen.size == 0 and chosen.ndim in (1, 2):  # an empty batch, or no neurons
        chosen = chosen.astype(np.int64)
    if not np.issubdtype(chosen.dtype, np.integer):
        raise ValueError(f"neuron must hold integers, got {neuron!r} ({chosen.dtype})")
    if chosen.ndim == 0:
        chosen = np.full((batch,), int(chosen), dtype=np.int64)
    elif chosen.ndim > 2 or chosen.shape[0] != batch:
        raise ValueError(f"neuron must be an int, one index per sample ({batch}) or a "
                         f"[{batch}, K] array of K per sample; got shape {chosen.shape}")
    limit = size if size is not None else np.iinfo(np.int32).max
    if np.any(chosen < 0) or np.any(chosen >= limit):
        raise ValueError(f"neuron index out of range: got {chosen.tolist()}, the "
                         f"explained output has {size} neurons")
    return chosen.astype(np.int32)


def check_neurons_per_pass(neurons_per_pass: Any) -> None:
    """A ValueError unless ``neurons_per_pass`` (how many neurons, or conditioned
    channels, one compiled call explains) is None or a positive int."""
    if neurons_per_pass is not None and (
            isinstance(neurons_per_pass, bool) or not isinstance(neurons_per_pass, int)
            or neurons_per_pass < 1):
        raise ValueError(f"neurons_per_pass must be a positive int, got {neurons_per_pass!r}")
