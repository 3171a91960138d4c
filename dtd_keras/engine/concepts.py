"""Which concepts matter: each channel's relevance at a hidden layer
(:meth:`dtd_keras.Explanation.concept_relevance`).

Concept Relevance Propagation (Achtibat et al., *Nature Machine Intelligence* 2023) ranks
a layer's channels ("concepts") by the relevance each holds for the explained output: the
layer's output relevance (``explain(x, layers=[name])``) summed over every axis but the
batch axis, the K axis (several neurons per sample, or K conditioned concepts) and the
channel axis. An explanation records, per layer it holds, which axes those are
(:attr:`~dtd_keras.Explanation.concept_axes`), since only the analyzer knows the layer's
layout (``channels_first``) and whether the result has a K axis.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from typing import Any

import numpy as np

from .conditions import channel_axis, merged_channels

__all__ = ["ConceptRelevance", "concept_relevance", "with_concept_axes"]


@dataclass(frozen=True)
class ConceptRelevance:
    """Each channel's relevance at layer ``layer``: ``values`` is ``[batch, channels]``,
    or ``[batch, K, channels]`` when the explanation has a K axis (K neurons per sample;
    K conditioned concepts, where copy k of the conditioned layer itself holds only
    channel ``c_k``'s relevance). float32, as the layer relevance (summed in float64)."""

    layer: str
    values: np.ndarray

    def top(self, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most relevant channels per sample (per sample and K), most relevant
        first: ``(channel indices, their relevance)``, each ``[batch, (K,) k]`` (ties in
        channel order). ``k=None``: every channel. A ValueError unless ``1 <= k <=
        channels``."""
        count = self.values.shape[-1]
        if k is None:
            k = count
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= count:
            raise ValueError(f"top(k): k must be an int in 1..{count} (layer {self.layer!r} "
                             f"has {count} channels), got {k!r}")
        order = np.argsort(-self.values, axis=-1, kind="stable")[..., :int(k)]
        return order, np.take_along_axis(self.values, order, axis=-1)


def concept_relevance(explanation: Any, layer: str) -> ConceptRelevance:
    """:class:`ConceptRelevance` of ``layer`` from ``explanation.layer_relevance``; a
    ValueError naming ``layers=[layer]`` where the explanation does not hold it (with
    close matches among the layers it holds), or where the layer's output merges
    positions and channels into one axis (a Flatten or Reshape output: no channels)."""
    found = explanation.layer_relevance
    if not isinstance(layer, str) or layer not in found:
        held = f"it holds {list(found)}" if found else "it holds no layer's relevance"
        near = difflib.get_close_matches(layer, list(found), n=3) if isinstance(
            layer, str) else []
        if near:
            held += f"; did you mean {' or '.join(map(repr, near))}?"
        raise ValueError(f"this explanation has no relevance at layer {layer!r} ({held}): "
                         f"to explain it, pass layers=[{layer!r}] to explain(), as in "
                         f"analyzer.explain(x, layers=[{layer!r}])")
    relevance = np.asarray(found[layer])
    kept = explanation.concept_axes.get(layer)
    if kept == ():  # with_concept_axes: positions and channels merged into one axis
        raise ValueError(f"concept_relevance({layer!r}): the output of layer {layer!r} "
                         "comes from a Flatten or Reshape that merges positions and "
                         "channels into one axis, so it has no channels (concepts) to rank; "
                         "use the layer before it (its channels) or a Dense layer after it "
                         "(its units are concepts)")
    if kept is None:  # built by hand: batch (and K, for K neurons), channels last
        lead = np.ndim(explanation.explained)
        kept = (*range(lead), relevance.ndim - 1)
    summed = tuple(a for a in range(relevance.ndim) if a not in kept)
    values = relevance.astype(np.float64).sum(axis=summed).astype(np.float32)
    return ConceptRelevance(layer, values)


def with_concept_axes(analyzer: Any, explanation: Any) -> Any:
    """``explanation`` with :attr:`~dtd_keras.Explanation.concept_axes` set for every
    layer in its ``layer_relevance``: the leading axes (the array's axes beyond the
    layer's output rank: batch, and K) and the layer's channel axis; ``()`` for a layer
    whose output merges positions and channels (:func:`merged_channels`)."""
    if not explanation.layer_relevance:
        return explanation
    graph = analyzer.graph
    keys = {step.call.name: step.call.outputs[0] for step, _ in analyzer._steps}
    axes = {}
    for name, array in explanation.layer_relevance.items():
        key = keys[name]
        rank = len(graph.shapes[key]) - 1
        lead = np.ndim(array) - rank
        if merged_channels(graph, key):
            axes[name] = ()
            continue
        channel = lead + channel_axis(graph, key) if rank else None
        axes[name] = (*range(lead), *(() if channel is None else (channel,)))
    return dataclasses.replace(explanation, concept_axes=axes)
