"""Embeddings: token lookups and position tables.

An embedding's output is a row of a learned table chosen by an integer id, not a
function of any float input, so relevance stops there: the relevance of the
embedding's output, summed over the embedding features, is the relevance of the id at
each position (its *share*; ``token_relevance="features"`` keeps the features axis).

- :class:`EmbeddingLookup` (``keras.layers.Embedding``; keras-hub's
  ``ReversibleEmbedding`` builds on it): a table row per id. The lookup reading the
  model's token input gives the token relevance (the relevance map of that input);
  every other lookup (segment ids, position ids computed with ``keras.ops``) reports its
  share separately (``Explanation.embeddings``), and its ids get none.
- :class:`PositionTable` (keras-hub's ``PositionEmbedding``): values that depend on no
  input value, only on the sequence length; its input gets no relevance and its share is
  reported separately.

Ids outside the table are refused before anything runs (see
:func:`dtd_keras.engine.tokens.check_token_values`); inside a compiled or exported
function, a lookup also asserts its ids (on GPU a lookup outside the table returns zeros
silently).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

from .base import LayerRelevance, Tensor
from .masking import LAYERS as MASKING_LAYERS

__all__ = ["LAYERS", "TOKEN_RELEVANCE_MODES", "EmbeddingLookup", "PositionTable"]

TOKEN_RELEVANCE_MODES = ("sum", "features")
"""``token_relevance`` values: ``"sum"`` (``[batch, seq]``) or ``"features"`` (keep the
embedding axis: ``[batch, seq, dim]``)."""


class EmbeddingShare(LayerRelevance):
    """A call whose output relevance is reported as a share (see the module docstring).

    ``is_token`` is set by the analyzer on the lookups that read the token input: their
    share is the relevance of that input; the others' shares go to
    ``Explanation.embeddings`` under :attr:`share_name`."""

    reports_share = True
    is_token = False

    @property
    def share_name(self) -> str:
        """The key of this share in ``Explanation.embeddings``: the call's name."""
        return self.call.name

    def share(self, relevances: Sequence[Tensor]) -> Tensor:
        """The output relevance summed over the embedding features (kept whole with
        ``token_relevance="features"``)."""
        relevance = relevances[0]
        if self.options.get("token_relevance", "sum") == "features":
            return relevance
        return tf.reduce_sum(relevance, axis=-1)

    def relevance(self, inputs, outputs, relevances, rule=None):
        return [None for _ in inputs]

    def relevance_many(self, inputs, outputs, relevances, rule, copies):
        return self.relevance(inputs, outputs, relevances, rule)


class EmbeddingLookup(EmbeddingShare):
    """``table[ids]``: a row of a learned table per integer id (``keras.layers.Embedding``).

    Subclasses for other lookup layers override :attr:`vocabulary_size` (the number of
    rows) and, if the ids are not the call's first input, :attr:`ids_index`."""

    ids_index = 0

    @property
    def vocabulary_size(self) -> int:
        """The number of rows of the table: valid ids are ``0 … size − 1``."""
        return int(self.layer.input_dim)

    @property
    def ids_key(self) -> int:
        """The graph key of the ids tensor."""
        return self.call.inputs[self.ids_index]

    def check_ids(self, ids: Tensor) -> Any:
        """An in-graph assertion that every id lies in the table (named error)."""
        size = self.vocabulary_size
        ids = tf.cast(ids, tf.int64) if ids.dtype.is_floating else ids
        inside = tf.reduce_all((ids >= 0) & (ids < tf.cast(size, ids.dtype)))
        return tf.debugging.Assert(inside, [
            f"token ids outside the vocabulary of embedding {self.call.description} "
            f"(input_dim={size}: ids must lie in 0..{size - 1}); smallest and largest id:",
            tf.reduce_min(ids), tf.reduce_max(ids)])

    def forward(self, inputs):
        with tf.control_dependencies([self.check_ids(inputs[self.ids_index])]):
            inputs = [tf.identity(x) for x in inputs]
        return super().forward(inputs)

    def relevance(self, inputs, outputs, relevances, rule=None):
        lower: list = [None for _ in inputs]
        if self.is_token:
            lower[self.ids_index] = self.share(relevances)
        return lower


class PositionTable(EmbeddingShare):
    """Values that depend on no input value, only on positions (a learned or fixed table
    of ``table_length`` rows, sliced to the sequence length): no input gets relevance;
    the share is reported. Subclasses give :attr:`table_length` and, if the sequence
    axis is not the second-to-last of the first input, override :meth:`sequence_length`."""

    @property
    def table_length(self) -> int:
        """How many positions the table holds."""
        raise NotImplementedError

    def sequence_length(self, shapes: Sequence[tuple]) -> int | None:
        """The sequence length the call reads, from its inputs' shapes (None: unknown)."""
        return shapes[0][-2] if shapes and len(shapes[0]) >= 2 else None


LAYERS: dict[type, Any] = {keras.layers.Embedding: EmbeddingLookup, **MASKING_LAYERS}
"""Layer/operation class → relevance behaviour, merged into the registry's table (with
the layers reading Keras masks, :mod:`dtd_keras.layers.masking`)."""
