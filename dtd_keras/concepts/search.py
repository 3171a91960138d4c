""":func:`reference_samples`: relevance maximization (and activation maximization) over a
dataset, in two stages.

1. Every sample is scored for every channel of the layer (:mod:`.scores`), into a
   resumable results store at ``out``.
2. Per asked channel, the ``k`` samples with the largest stored score are read again; one
   conditional-heatmap call per channel (``explain(x, neuron, condition={layer: [c]})``,
   for the neuron the scores explained) gives the concept's input relevance, and the crop
   around where it is largest (:mod:`.samples`).

**Samples of score 0 are no reference samples.** zennit-crp 0.6 ranks every sample, so a
channel that is 0 on every sample (a dead ReLU channel; a channel no relevance reaches)
still gets ``k`` "reference samples" of score 0, in an arbitrary order. Here a sample is a
reference sample of a channel when its score is not exactly 0 (a negative relevance is a
real, if odd, reference: the concept spoke against the explained neuron there): per
channel the ``k`` samples of largest nonzero score, descending. Where a channel has at
least ``k`` positive scores this is zennit-crp's top-k; otherwise its positive samples
come first, then its negative ones (zennit-crp puts the samples of score 0 between them),
and the entries left over are marked not found (:class:`~.samples.ReferenceSamples`'
``found``), with one ``UserWarning`` naming those channels.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .samples import ReferenceSamples, crop, crop_box, empty_box
from .scores import (
    METHODS,
    REDUCTIONS,
    check_channels,
    read_samples,
    score_store,
    target_layer,
)

__all__ = ["reference_samples", "top_k"]


def top_k(scores: np.ndarray, channels: np.ndarray, k: int
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(indices [C, k], scores [C, k], found [C, k])``: per channel the ``k`` samples of
    largest nonzero score, descending (ties: the earlier sample first); a channel with
    fewer nonzero scores gets entries not found (index -1, score 0) after them."""
    picked = np.asarray(scores)[:, channels]  # [N, C]
    order = np.lexsort((-picked, picked == 0), axis=0)[:k].T  # [C, k]: score 0 last
    values = np.take_along_axis(picked.T, order, axis=1)
    found = values != 0
    return (np.where(found, order, -1).astype(np.int64), np.where(found, values, 0),
            found)


def _warn_missing(found: np.ndarray, channels: np.ndarray, layer: str, method: str,
                  count: int) -> None:
    """One ``UserWarning`` naming the channels with fewer than ``k`` reference samples."""
    k, hits = found.shape[1], found.sum(axis=1)
    what = "relevance" if method == "relevance" else "activation"
    parts = []
    dead = channels[hits == 0].tolist()
    if dead:
        parts.append(f"channels {dead} of {layer} have no {what} on any of the {count} "
                     "samples (dead?)")
    few = [(int(c), int(n)) for c, n in zip(channels, hits) if 0 < n < k]
    if few:
        parts.append(f"channels {[c for c, _ in few]} of {layer} have nonzero {what} on "
                     f"only {', '.join(str(n) for _, n in few)} of k={k} samples")
    if parts:
        warnings.warn("; ".join(parts) + ": their missing reference samples are marked "
                      "found=False (index -1, score 0)", UserWarning, stacklevel=3)


def _check_options(method: Any, reduce: Any, k: Any, crop_threshold: Any) -> None:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive int (reference samples per channel), got "
                         f"{k!r}")
    if isinstance(crop_threshold, bool) or not isinstance(crop_threshold, (int, float)) \
            or not 0 <= crop_threshold < 1:
        raise ValueError(f"crop_threshold must be a number in [0, 1), got {crop_threshold!r}")


def reference_samples(analyzer: Any, data: Any, layer: str,
                      channels: int | Sequence[int] | None = None, *, k: int = 8,
                      method: str = "relevance", out: str | Path,
                      neuron: int | Sequence[int] | str | None = None, batch_size: int = 64,
                      chunk_size: int | None = None, reduce: str = "sum",
                      normalize: bool = True, crop_threshold: float = 0.1,
                      progress: bool = True, resume: bool = True, overwrite: bool = False,
                      pixel_range: Any = "auto") -> ReferenceSamples:
    """For each concept (``channels`` of ``layer``), the ``k`` samples of ``data`` where
    its relevance (or, ``method="activation"``, its activation) is largest, with their
    conditional heatmaps and crops (Achtibat et al., *Nature Machine Intelligence* 2023).

    Parameters
    ----------
    analyzer:
        A rule-based analyzer (``dk.DTD``, ``dk.LRP``, a rule preset) of a single-input
        model; gradient presets compute no hidden-layer relevance and are refused.
    data:
        As :func:`~dtd_keras.analyze_dataset` reads it: numpy arrays (``x``, ``(x, y)``),
        a ``tf.data.Dataset`` yielding the same samples on every pass, a folder of images.
    layer:
        The layer (as :attr:`~dtd_keras.Analyzer.layer_names` names it) whose output
        channels (last axis) are the concepts; a Flatten or Reshape output that merges
        positions and channels is refused (use the layer before it, or a Dense after it).
    channels:
        A channel, a list of them, or None for every channel of the layer.
    k:
        Reference samples per channel (1 … number of samples).
    method:
        ``"relevance"``: score = the channel's relevance for the explained neuron
        (relevance maximization); ``"activation"``: the channel's activation.
    out:
        The folder of the score store (every sample × every channel of the layer). A
        killed run resumes from it; another model, analyzer, data or arguments is refused
        (``overwrite=True`` replaces it, but never a store of another kind, such as an
        :func:`~dtd_keras.analyze_dataset` store). Other ``channels``, ``k``,
        ``crop_threshold`` and ``batch_size`` reuse it without scoring again; another
        ``layer``, ``method``, ``neuron``, ``reduce``, ``normalize`` or an explicit
        other ``chunk_size`` is refused.
    neuron:
        The explained output: None (each sample's top logit), an int, one per sample, or
        ``"label"`` (the data's labels; zennit-crp explains the dataset's target, so
        ``"label"`` is its equivalent).
    batch_size, chunk_size, progress, resume, overwrite, pixel_range:
        As in :func:`~dtd_keras.analyze_dataset` (a chunk is the unit of resumption).
    reduce, normalize:
        How a channel's ``[…, C]`` values become one score per sample (zennit-crp 0.6's
        defaults): the ``"sum"`` (or ``"max"``) over all axes but the channel axis, then,
        with ``normalize``, divided by the sample's ``Σ_c |score_c| + 1e-10``.
    crop_threshold:
        The crop box bounds the positions whose conditional heatmap reaches this fraction
        of its maximum (:mod:`dtd_keras.concepts.samples`).

    Returns
    -------
    ReferenceSamples
        ``indices`` and ``scores`` ``[C, k]`` (descending), ``found`` ``[C, k]`` (False
        where a channel has fewer than ``k`` samples of nonzero score: index -1, score 0,
        empty box, crop and heatmap; one ``UserWarning`` names those channels),
        ``boxes``, ``crops`` and ``heatmaps`` per channel and sample.
    """
    _check_options(method, reduce, k, crop_threshold)
    target = target_layer(analyzer, layer)
    picked = check_channels(target, channels)
    store, source = score_store(
        analyzer, data, out, target, method=method, reduce=reduce, normalize=normalize,
        neuron=neuron, batch_size=batch_size, chunk_size=chunk_size, resume=resume,
        overwrite=overwrite, progress=progress, pixel_range=pixel_range, k=int(k))
    # only the asked channels' columns are read (N × C would be every channel's scores)
    columns, where = np.unique(picked, return_inverse=True)
    indices, scores, found = top_k(store.array("scores").oindex[:, columns], where, int(k))
    _warn_missing(found, picked, target.name, method, source.count)
    explained = store.array("neuron")[...]
    samples = read_samples(store, source, np.unique(indices[found])) if found.any() else {}
    shape = tuple(store.layout.inputs[0])
    nothing = empty_box(shape)
    blank = crop(np.zeros(shape, np.float32), nothing)  # the crop of a not-found entry
    boxes, crops, heatmaps = [], [], []
    for row, hit, channel in zip(indices, found, picked):
        row = row[hit]
        x = np.stack([samples[int(i)] for i in row]) if len(row) else blank[None]
        maps = [m for i in range(0, len(row), batch_size) for m in analyzer.explain(
            x[i:i + batch_size], explained[row[i:i + batch_size]],
            condition={target.name: [int(channel)]}).relevance[:, 0]]
        row_boxes = [crop_box(m, crop_threshold) for m in maps]
        missing = int(k) - len(row)
        boxes.append(row_boxes + [nothing] * missing)
        crops.append([crop(s, b) for s, b in zip(x, row_boxes)] + [blank] * missing)
        heatmaps.append([crop(m, b) for m, b in zip(maps, row_boxes)] + [blank] * missing)
    return ReferenceSamples(layer=target.name, method=method, channels=picked,
                            indices=indices, scores=scores.astype(np.float32),
                            boxes=np.asarray(boxes, np.int64), crops=crops,
                            heatmaps=heatmaps, found=found)
