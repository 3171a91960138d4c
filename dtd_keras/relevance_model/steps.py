"""Wrappers of an analyzer's steps: note the context, or go through a relevance model."""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from ..engine.propagation import propagate, safe_divide, tile
from ..layers.base import LayerRelevance

__all__ = ["ContextRecorder", "ModelledStep"]


class ContextRecorder:
    """Wraps the step above a min-max layer: notes its upper relevance as context."""

    def __init__(self, inner: Any, owner: Any, names: list[str]) -> None:
        self.inner = inner
        self.owner = owner
        self.names = names

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _note(self, relevances) -> None:
        flat = tf.reshape(relevances[0], [tf.shape(relevances[0])[0], -1])
        for name in self.names:
            self.owner._trace_context[name] = flat

    def relevance(self, inputs, outputs, relevances, rule=None, **kept):
        self._note(relevances)
        return self.inner.relevance(inputs, outputs, relevances, rule, **kept)

    def relevance_many(self, inputs, outputs, relevances, rule, copies, **kept):
        self._note(relevances)
        return self.inner.relevance_many(inputs, outputs, relevances, rule, copies, **kept)


class ModelledStep:
    """Replaces a chosen layer's rule by its relevance model (or records training data)."""

    def __init__(self, inner: LayerRelevance, owner: Any, name: str) -> None:
        self.inner = inner
        self.owner = owner
        self.name = name

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def relevance_many(self, inputs, outputs, relevances, rule, copies, **kept):
        """Several neurons per sample: the relevance model on tiled values."""
        return self.relevance([tile(x, copies) for x in inputs],
                              [tile(y, copies) for y in outputs], relevances, rule)

    def relevance(self, inputs, outputs, relevances, rule=None, **kept):
        owner, inner = self.owner, self.inner
        context = owner._trace_context[self.name]
        if owner._mode == "collect":
            owner._trace_record[self.name] = (inputs[0], relevances[0], context)
            return inner.relevance(inputs, outputs, relevances, rule)
        model = owner.relevance_models[self.name]
        padding = inner.padding

        def forward(a, kernel, bias):
            return model.linear(a if padding is None else padding(a), kernel, bias)

        y = model.detect(inputs[0] if padding is None else padding(inputs[0]), context)
        if owner.redistribute == "incoming":  # R_j = y_j / R̂_k · R_k
            share = safe_divide(relevances[0], model.pool(y))
            y = y * tf.repeat(share, model.pool_size, axis=-1)
        kernel = tf.convert_to_tensor(model.kernel)
        return [propagate(rule, forward, kernel, None, inputs[0], y,
                          inner.options.get("domain"), row_separable=False)]
