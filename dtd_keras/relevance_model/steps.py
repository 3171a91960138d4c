"""Replacement behaviours that :class:`~dtd_keras.relevance_model.MinMaxDTD` installs
through the engine's extension point
(:meth:`~dtd_keras.analyzers.Analyzer.replace_behaviour`): the layer above a modelled one
notes the context, a modelled layer goes through its relevance model."""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from ..engine.propagation import propagate, safe_divide, tile
from ..layers.base import LayerRelevance

__all__ = ["ContextRecorder", "ModelledStep"]


class ContextRecorder:
    r"""Wraps the step above a min-max layer: notes as context the relevance its neurons
    hold in this backward pass: their relevance from above or, for a modelled step that
    went through its relevance model, what that model handed down (in the default
    ``"model"`` mode its :math:`\hat R`)."""

    def __init__(self, inner: Any, owner: Any, names: list[str]) -> None:
        self.inner = inner
        self.owner = owner
        self.names = names

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _note(self, relevances) -> None:
        held = self.owner._trace_output.get(self.call.name, relevances[0])
        flat = tf.reshape(held, [tf.shape(held)[0], -1])
        for name in self.names:
            self.owner._trace_context[name] = flat

    def relevance(self, inputs, outputs, relevances, rule=None, **kept):
        lower = self.inner.relevance(inputs, outputs, relevances, rule, **kept)
        self._note(relevances)
        return lower

    def relevance_many(self, inputs, outputs, relevances, rule, copies, **kept):
        lower = self.inner.relevance_many(inputs, outputs, relevances, rule, copies, **kept)
        self._note(relevances)
        return lower


class ModelledStep:
    """Replaces a chosen layer's rule by its relevance model. While collecting training
    data (whose x and R the owner reads through the layer hook) it goes through the
    relevance model if the layer is among the owner's active (already fitted) ones, else
    through the layer's training-free rule."""

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
        if owner._mode == "collect" and self.name not in owner._active:
            return inner.relevance(inputs, outputs, relevances, rule)
        model = owner.relevance_models[self.name]
        padding = inner.padding

        def forward(a, kernel, bias):
            return model.linear(a if padding is None else padding(a), kernel, bias)

        y = model.detect(inputs[0] if padding is None else padding(inputs[0]), context)
        if owner.redistribute == "incoming":  # R_j = y_j / R̂_k · R_k
            share = safe_divide(relevances[0], model.pool(y))
            y = y * tf.repeat(share, model.pool_size, axis=-1)
        owner._trace_output[inner.call.name] = model.pool(y)  # what this layer hands down
        kernel = tf.convert_to_tensor(model.kernel)
        return [propagate(rule, forward, kernel, None, inputs[0], y,
                          inner.options.get("domain"), row_separable=False)]
