"""Stage 1 of relevance maximization: every sample's score for every channel of a layer.

The scores go into a results store of :mod:`dtd_keras.datasets` whose per-sample payload
is the ``[channels]`` score vector ``scores`` (instead of relevance maps and properties),
written by the same chunk loop, commit protocol, resume checks and progress bar as
:func:`~dtd_keras.analyze_dataset`: a killed run loses at most the chunks in flight, a
rerun resumes, and a store of another model, analyzer, data or arguments (``layer``,
``method``, ``reduce``, ``normalize``, ``neuron``, ``chunk_size``) is refused.
``batch_size`` is not part of it (it only splits a chunk into compiled calls; with
``chunk_size`` left at None a rerun keeps the store's chunks).

**The score** (as zennit-crp 0.6's ``ChannelConcept.reference_sampling`` with the
defaults of its ``FeatureVisualization``: ``max_target="sum"``, ``abs_norm=True``): the
layer's output relevance (``method="relevance"``, for the explained neuron) or its
activation (``method="activation"``) ``[batch, …, C]`` is reduced over every axis but the
channel axis (the last) by its ``"sum"`` (or, ``reduce="max"``, its largest value), and
with ``normalize`` each sample's vector is divided by ``Σ_c |score_c| + 1e-10``, so a
score is the channel's share of that sample's total |relevance| at the layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from ..datasets import arguments
from ..datasets.create import prepare, refuse_overlap
from ..datasets.identity import run_identity
from ..datasets.run import _digest, _run
from ..datasets.sources import Source, data_changed, open_source
from ..datasets.store import Layout, Store, read_metadata
from ..engine.conditions import merged_channels
from ..engine.layer_relevance import concrete_with_layers, layer_keys, supports_layers
from ..engine.passes import output_count, select

__all__ = ["METHODS", "REDUCTIONS", "Target", "check_channels", "reduce_scores",
           "score_store", "target_layer"]

METHODS = ("relevance", "activation")
REDUCTIONS = ("sum", "max")
_EPSILON = 1e-10


@dataclass(frozen=True)
class Target:
    """The layer whose channels are the concepts."""

    name: str
    key: int
    description: str
    shape: tuple
    channels: int


def target_layer(analyzer: Any, layer: Any) -> Target:
    """The checked ``layer``: a name the analyzer knows, with one float output whose last
    axis (the channels) has a known size. The analyzer must compute hidden-layer relevance
    (the conditional heatmaps need it, also for ``method="activation"``)."""
    if not isinstance(layer, str):
        raise TypeError(f"layer must be a layer name (str), got {layer!r}")
    if not supports_layers(analyzer):
        raise ValueError(f"{type(analyzer).__name__} computes no relevance at hidden layers, "
                         "which reference samples need (scores and conditional heatmaps); "
                         "use a rule-based analyzer (DTD, LRP)")
    (name,), (key,) = layer_keys(analyzer, [layer], "reference_samples' layer")
    call = next(step.call for step, _ in analyzer._steps if step.call.name == name)
    shape = tuple(analyzer.graph.shapes[key])
    merged = merged_channels(analyzer.graph, key)
    if merged:
        raise ValueError(f"reference samples need the channels of layer {call.description}: "
                         f"{merged}")
    if len(shape) < 2 or shape[-1] is None:
        raise ValueError(f"layer {call.description} outputs shape {shape}, with no channel "
                         "axis (the last) of known size: its channels cannot be concepts")
    return Target(name, key, call.description, shape, int(shape[-1]))


def check_channels(target: Target, channels: Any) -> np.ndarray:
    """``channels`` (an int, indices, or None for all) as int64 ``[C]`` in range."""
    if channels is None:
        return np.arange(target.channels, dtype=np.int64)
    picked = np.asarray(channels)
    if isinstance(channels, (str, bytes)) or picked.ndim > 1 or (
            picked.size and not np.issubdtype(picked.dtype, np.integer)):
        raise ValueError(f"channels must be channel indices of layer {target.description} "
                         f"(output shape {target.shape}), got {channels!r}")
    picked = picked.reshape(-1).astype(np.int64)
    if picked.size == 0 or np.any(picked < 0) or np.any(picked >= target.channels):
        raise ValueError(f"channels {picked.tolist()}: layer {target.description} has "
                         f"{target.channels} channels (output shape {target.shape}); give "
                         f"one or more indices in 0..{target.channels - 1}")
    return picked


def reduce_scores(values: np.ndarray, reduce: str = "sum", normalize: bool = True
                  ) -> np.ndarray:
    """``[batch, …, C]`` → ``[batch, C]`` float32: each channel's sum (or max) over the
    other axes; with ``normalize``, divided by the sample's ``Σ_c |·| + 1e-10``."""
    values = np.asarray(values, np.float64)
    flat = values.reshape(values.shape[0], -1, values.shape[-1])
    scores = flat.sum(axis=1) if reduce == "sum" else flat.max(axis=1)
    if normalize:
        scores = scores / (np.abs(scores).sum(axis=1, keepdims=True) + _EPSILON)
    return scores.astype(np.float32)


def _activation_function(analyzer: Any, key: int) -> Any:
    """``(inputs, neuron) -> (activation at key, chosen neuron, logit)``, compiled once per
    layer and cached on the analyzer (the analyzer's own forward pass)."""
    cache = analyzer.__dict__.setdefault("_activation_concrete", {})
    if key not in cache:
        def traced(inputs: tuple, neuron: tf.Tensor):
            values = analyzer._forward_values(inputs)
            logits = values[analyzer._explained]
            chosen, logit = select(logits, neuron, output_count(logits, analyzer.output_size))
            return values[key], chosen, logit

        function = tf.function(traced, autograph=False)
        cache[key] = function.get_concrete_function(
            analyzer.input_specs, tf.TensorSpec((None,), tf.int32, name="neuron"))
    return cache[key]


class Scorer:
    """Scores a chunk batch by batch: ``([scores [n, C]], neuron [n], logit [n])``; the
    signature of :class:`dtd_keras.datasets.compute.Explainer` that the chunk loop calls."""

    def __init__(self, analyzer: Any, target: Target, method: str, reduce: str,
                 normalize: bool, batch_size: int) -> None:
        self.analyzer, self.target, self.method = analyzer, target, method
        self.reduce, self.normalize, self.batch_size = reduce, normalize, batch_size
        self.function = (concrete_with_layers(analyzer, (target.name,), False)
                         if method == "relevance" else _activation_function(analyzer, target.key))

    def _batch(self, arrays: list[np.ndarray], neuron: np.ndarray) -> tuple:
        outputs = self.function(tuple(tf.constant(a) for a in arrays), tf.constant(neuron))
        if self.method == "relevance":
            maps, chosen, logit = outputs
            values = maps[-1].numpy()
        else:
            values, chosen, logit = (o.numpy() for o in outputs)
        logit = np.asarray(logit)
        if not (np.all(np.isfinite(values)) and np.all(np.isfinite(logit))):
            if self.method == "relevance":
                from ..engine.diagnose import diagnose

                raise diagnose(self.analyzer, arrays, np.asarray(chosen, np.int32))
            raise ValueError(f"layer {self.target.description}: non-finite activations")
        return reduce_scores(values, self.reduce, self.normalize), np.asarray(chosen), logit

    def __call__(self, inputs: list[np.ndarray], neuron: np.ndarray, classes: Any) -> tuple:
        pieces = [self._batch([x[i:i + self.batch_size] for x in inputs],
                              neuron[i:i + self.batch_size])
                  for i in range(0, len(inputs[0]), self.batch_size)]
        if not pieces:
            count = self.target.channels
            return [np.zeros((0, count), np.float32)], np.zeros(0, np.int32), np.zeros(0)
        return ([np.concatenate([p[0] for p in pieces])],
                np.concatenate([p[1] for p in pieces]).astype(np.int32),
                np.concatenate([p[2] for p in pieces]).astype(np.float32))


def score_store(analyzer: Any, data: Any, out: str | Path, target: Target, *, method: str,
                reduce: str, normalize: bool, neuron: Any, batch_size: int,
                chunk_size: int | None, resume: bool, overwrite: bool, progress: bool,
                pixel_range: Any, k: int) -> tuple[Store, Source]:
    """Score every sample of ``data`` into the store ``out`` (created, or resumed when it
    holds the same run); the finished store and the data's source. ``k`` is checked
    against the sample count before anything is written."""
    arguments.check_sizes(batch_size, chunk_size)
    specs = analyzer.input_specs
    shapes = arguments.fixed_shapes(specs)
    if len(shapes) != 1:
        raise ValueError(f"reference samples crop one input; this model has {len(shapes)} "
                         "inputs")
    source = open_source(data, [tuple(s.shape) for s in specs],
                         arguments.pixel_range(analyzer, pixel_range))
    if k > source.count:
        raise ValueError(f"k={k} reference samples asked for, but the data holds "
                         f"{source.count} samples")
    refuse_overlap(Path(out), source.paths)
    mode, chosen, recorded = arguments.neuron_spec(neuron, source, analyzer.output_size)
    if mode == "all":
        raise ValueError("neuron='all' is not available for reference samples: they explain "
                         "one neuron per sample (None, an int, one per sample, or 'label')")
    input_bytes = 4 * int(np.prod(shapes[0], dtype=np.int64))  # a chunk's inputs in memory
    if chunk_size is None and not overwrite:  # resuming: keep the store's chunks
        chunk_size = _stored_chunk_size(Path(out))
    batch_size, chunk_size = arguments.sizes(batch_size, chunk_size, source.count, input_bytes)
    layout = Layout(count=source.count, chunk_size=chunk_size, inputs=shapes, classes=None,
                    dtype="float32", labels=source.has_labels,
                    file_digests=source.file_digests, payload={"scores": [target.channels]})
    identity = run_identity(analyzer, {
        "reference_samples": {"layer": target.name, "method": method, "reduce": reduce,
                              "normalize": bool(normalize)},
        "neuron": recorded, "chunk_size": chunk_size},
        source.description)
    store = prepare(Path(out), identity, layout, resume=resume, overwrite=overwrite)
    scorer = Scorer(analyzer, target, method, reduce, normalize, batch_size)
    _run(store, analyzer, source, scorer, mode, chosen, (0, 1), progress, 0.0,
         desc=f"scoring {target.name} ({method})")
    return Store(store.path), source


def _stored_chunk_size(path: Path) -> int | None:
    """The chunk size of the score store at ``path`` (None: no score store there), so that
    a rerun with another ``batch_size`` and a defaulted ``chunk_size`` resumes it: the
    batch size only splits a chunk into compiled calls and is not part of the identity."""
    stored = read_metadata(path) if path.is_dir() else None
    layout = (stored or {}).get("layout") or {}
    if set(layout.get("payload") or ()) != {"scores"}:
        return None
    return int(layout["chunk_size"])


def read_samples(store: Store, source: Source, wanted: Sequence[int]) -> dict[int, Any]:
    """``{sample: its input (float32, as the source reads it)}`` for the samples
    ``wanted``, read chunk by chunk (one pass over a ``tf.data`` pipeline); a chunk whose
    inputs differ from those the store scored is refused."""
    chunk_size = store.layout.chunk_size
    needed = sorted({int(i) // chunk_size for i in wanted})
    wanted_set = {int(i) for i in wanted}
    done = store.done()
    found: dict[int, Any] = {}
    for chunk in source.chunks(chunk_size, needed):
        if chunk.index not in needed:
            continue
        if _digest(chunk) != done.get(chunk.index):
            start, stop = store.layout.chunk_range(chunk.index)
            raise ValueError(f"the data changed after it was scored into {store.path}: "
                             f"samples {start}…{stop - 1} differ from the scored ones; "
                             "pass overwrite=True to score it again")
        for i in range(chunk.start, chunk.start + len(chunk)):
            if i in wanted_set:
                found[i] = chunk.inputs[0][i - chunk.start]
    missing = wanted_set - set(found)
    if missing:
        raise data_changed(f"it yielded no sample {min(missing)} when the reference "
                           "samples were read again")
    return found
