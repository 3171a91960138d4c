"""Max pooling: winner-take-all (default) or proportional to the window's inputs."""

from __future__ import annotations

from typing import Any

import keras

from ..engine.graph import Call, Graph
from ..engine.propagation import propagate
from ..rules import Z
from .base import LayerRelevance, Reindex

__all__ = ["ProportionalPool", "max_pool_relevance"]


class ProportionalPool(Reindex):
    """Max pooling, relevance split in proportion to each window's inputs:
    ``R_i = Σ_j x_i / Σ_{i'∈window j} x_i' · R_j`` (the z-rule on window sums)."""

    def relevance(self, inputs, outputs, relevances, rule=None):
        layer = self.layer

        def window_mean(a, kernel, bias):
            return keras.ops.average_pool(a, layer.pool_size, layer.strides, layer.padding,
                                          layer.data_format)

        return [propagate(Z(), window_mean, None, None, inputs[0], relevances[0])]


def max_pool_relevance(call: Call, graph: Graph, **options: Any) -> LayerRelevance:
    """Windowed max pooling by the analyzer's ``max_pool`` mode; global max: winner."""
    proportional = options.get("max_pool") == "proportional" and hasattr(call.operation,
                                                                         "pool_size")
    return (ProportionalPool if proportional else Reindex)(call, graph, **options)
