""":func:`reference_samples`: relevance maximization (and activation maximization) over a
dataset, in two stages.

1. Every sample is scored for every channel of the layer (:mod:`.scores`), into a
   resumable results store at ``out``.
2. Per asked channel, the ``k`` samples with the largest stored score are read again; one
   conditional-heatmap call per channel (``explain(x, neuron, condition={layer: [c]})``,
   for the neuron the scores explained) gives the concept's input relevance, and the crop
   around where it is largest (:mod:`.samples`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .samples import ReferenceSamples, crop, crop_box
from .scores import (
    METHODS,
    REDUCTIONS,
    check_channels,
    read_samples,
    score_store,
    target_layer,
)

__all__ = ["reference_samples", "top_k"]


def top_k(scores: np.ndarray, channels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(indices [C, k], scores [C, k])``: per channel the ``k`` samples of largest score,
    descending (ties: the earlier sample first)."""
    picked = np.asarray(scores)[:, channels]  # [N, C]
    order = np.argsort(-picked, axis=0, kind="stable")[:k].T  # [C, k]
    return order.astype(np.int64), np.take_along_axis(picked.T, order, axis=1)


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
        ``indices`` and ``scores`` ``[C, k]`` (descending), ``boxes``, ``crops`` and
        ``heatmaps`` per channel and sample.
    """
    _check_options(method, reduce, k, crop_threshold)
    target = target_layer(analyzer, layer)
    picked = check_channels(target, channels)
    store, source = score_store(
        analyzer, data, out, target, method=method, reduce=reduce, normalize=normalize,
        neuron=neuron, batch_size=batch_size, chunk_size=chunk_size, resume=resume,
        overwrite=overwrite, progress=progress, pixel_range=pixel_range, k=int(k))
    indices, scores = top_k(store.array("scores")[...], picked, int(k))
    explained = store.array("neuron")[...]
    samples = read_samples(store, source, np.unique(indices))
    boxes, crops, heatmaps = [], [], []
    for row, channel in zip(indices, picked):
        x = np.stack([samples[int(i)] for i in row])
        maps = np.concatenate([
            analyzer.explain(x[i:i + batch_size], explained[row[i:i + batch_size]],
                             condition={target.name: [int(channel)]}).relevance[:, 0]
            for i in range(0, len(row), batch_size)])
        row_boxes = [crop_box(m, crop_threshold) for m in maps]
        boxes.append(row_boxes)
        crops.append([crop(s, b) for s, b in zip(x, row_boxes)])
        heatmaps.append([crop(m, b) for m, b in zip(maps, row_boxes)])
    return ReferenceSamples(layer=target.name, method=method, channels=picked,
                            indices=indices, scores=scores.astype(np.float32),
                            boxes=np.asarray(boxes, np.int64), crops=crops,
                            heatmaps=heatmaps)
