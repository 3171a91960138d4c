"""What an analyzer does with inputs: the front end of :meth:`Analyzer.explain`.

:class:`Explaining` (a base of :class:`~dtd_keras.analyzers.Analyzer`) checks ``x``,
parses ``neuron=``, splits several neurons per sample into compiled calls of bounded
memory, picks the compiled function for the request (plain, with ``layers=``, with
``condition=``: :mod:`dtd_keras.engine.layer_relevance`,
:mod:`dtd_keras.engine.conditions`), runs it (a named error where it fails or returns
non-finite values) and assembles the :class:`~dtd_keras.Explanation` (input maps,
embedding shares, layer relevance, layer inputs, concept axes). Building the analyzer
and its compiled relevance graph is :mod:`.base`'s job.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from ..engine.concepts import with_concept_axes
from ..engine.conditions import explain_conditioned
from ..engine.diagnose import check_sizes, diagnose
from ..engine.inputs import check_inputs
from ..engine.layer_relevance import (
    concrete_with_layers,
    empty_input_maps,
    empty_layer_maps,
    join_neurons,
    layer_keys,
    split_outputs,
)
from ..engine.neurons import check_neurons_per_pass, parse_neurons
from ..engine.tokens import check_token_values, empty_maps
from ..explanation import Explanation

__all__ = ["MANY_NEURONS_BUDGET", "Explaining"]

MANY_NEURONS_BUDGET = 1 << 28
"""Float32 activation copies (1 GiB) one call may hold when explaining many neurons."""


class Explaining:
    """The inputs-to-:class:`~dtd_keras.Explanation` half of
    :class:`~dtd_keras.analyzers.Analyzer` (its ``explain``, ``analyze``, ``logits``,
    ``predict``, ``check_inputs``, ``neurons_per_pass``).

    It uses what the analyzer builds (:mod:`.base`): ``graph``, ``input_domains``,
    ``output_size``, ``absorbed_by``, ``embedding_names``, ``_explained``, ``_heads``,
    ``_sizes_checked``, ``_forward_values`` and the compiled functions
    (``concrete_function``, ``concrete_function_many``, ``_relevance_graph``).
    """

    def check_inputs(self, x: Any) -> list[np.ndarray]:
        """Validate ``x`` (count, dtype, shapes, finiteness, declared domain, and, where
        the model takes inputs of any size, that every layer can take this one); float32
        arrays, one per model input (:func:`dtd_keras.engine.inputs.check_inputs`)."""
        arrays = check_inputs(self.graph, self.input_domains, x)
        check_token_values(self, arrays)
        shapes = tuple(a.shape[1:] for a in arrays)
        free = any(d is None for k in self.graph.inputs for d in self.graph.shapes[k][1:])
        if free and shapes not in self._sizes_checked:  # fixed shapes: Keras checked them
            check_sizes(self.graph, [a.shape for a in arrays])
            self._sizes_checked.add(shapes)
        return arrays


    def neurons_per_pass(self, batch: int) -> int:
        """How many neurons one compiled call explains together: the backward pass holds
        that many copies of every activation, kept under :data:`MANY_NEURONS_BUDGET`."""
        sizes = [np.prod(s[1:], dtype=np.int64) for s in self.graph.shapes.values()
                 if all(d is not None for d in s[1:])]
        if len(sizes) != len(self.graph.shapes):
            return 16
        return int(max(1, MANY_NEURONS_BUDGET // max(1, int(sum(sizes)) * max(batch, 1))))

    def explain(self, x: Any, neuron: Any = None, *, neurons_per_pass: int | None = None,
                layers: str | Sequence[str] | None = None, layer_inputs: bool = False,
                condition: dict[str, Sequence[int]] | None = None) -> Explanation:
        """Relevance for ``x`` with the chosen neurons and explained logits.

        ``neuron=None`` explains each sample's top logit; an int explains that output
        neuron for every sample; a sequence gives one neuron per sample. ``"all"`` (every
        output neuron) or a ``[batch, K]`` array explains K neurons per sample in one
        forward pass, with the rules' denominators shared: the result's relevance is
        ``[batch, K, …]``, ``neuron`` and ``explained`` ``[batch, K]``;
        ``neurons_per_pass`` caps how many go through one compiled call (default: as
        many as keep the copies of the activations under about 1 GiB).

        ``layers``: names of layers (as :attr:`rules` spells them: ``"inner/conv"``
        inside a nested model, ``"dense[1]"`` for a second call) whose output relevance
        the same compiled pass also returns, in
        :attr:`~dtd_keras.Explanation.layer_relevance`, shaped like each output
        (``[batch, K, …]`` for K neurons per sample). With ``layer_inputs=True`` also
        what each of them hands down to each of its inputs
        (:attr:`~dtd_keras.Explanation.layer_input_relevance`) and those inputs' values
        (:attr:`~dtd_keras.Explanation.layer_inputs`), from the same pass.

        ``condition``: ``{layer: [c1, c2, …]}`` (one layer) gives conditional heatmaps
        (CRP): for each listed channel of that layer's output, the input
        relevance of the explained neuron that flows through that channel alone, all in
        one pass: relevance ``[batch, K, …]`` for K channels, ``neuron`` and ``explained``
        ``[batch]`` (:mod:`dtd_keras.engine.conditions`). The channel axis is the last,
        or the first for a ``channels_first`` layer.

        :meth:`~dtd_keras.Explanation.concept_relevance` ranks a layer's channels from
        its ``layers=`` relevance.
        """
        if not isinstance(layer_inputs, bool):
            raise TypeError(f"layer_inputs must be True or False, got {layer_inputs!r}")
        return with_concept_axes(self, self._explain(x, neuron, neurons_per_pass, layers,
                                                     condition, layer_inputs))

    def _explain(self, x: Any, neuron: Any, neurons_per_pass: int | None, layers: Any,
                 condition: Any, layer_inputs: bool) -> Explanation:
        """:meth:`explain` (its arguments), before the concept axes are recorded."""
        if condition is not None:
            if layer_inputs:
                raise ValueError("layer_inputs=True does not combine with condition=")
            return explain_conditioned(self, x, neuron, condition, layers, neurons_per_pass)
        names, keys = layer_keys(self, layers)
        arrays = self.check_inputs(x)
        batch = arrays[0].shape[0]
        chosen = parse_neurons(neuron, batch, self.output_size)
        if batch == 0 or chosen.size == 0:  # nothing to explain (Keras' Flatten fails on it)
            axis = () if chosen.ndim == 1 else (chosen.shape[1],)
            empty = empty_maps(self, arrays, (batch, *axis))
            relevance, shares = self._maps_and_shares(empty)
            hidden = dict(zip(names, empty_layer_maps(self, keys, (batch, *axis))))
            handed, read = empty_input_maps(self, names if layer_inputs else (),
                                            (batch, *axis))
            return Explanation(relevance, chosen, np.zeros(chosen.shape, np.float32),
                               absorbed_by=self.absorbed_by, embeddings=shares,
                               layer_relevance=hidden, layer_input_relevance=handed,
                               layer_inputs=read)
        if chosen.ndim == 1:
            return self._run(self._concrete_with(names, False, layer_inputs), arrays, chosen,
                             names, layer_inputs)
        check_neurons_per_pass(neurons_per_pass)
        step = neurons_per_pass or self.neurons_per_pass(batch)
        function = self._concrete_with(names, True, layer_inputs)
        parts = [self._run(function, arrays, chosen[:, i:i + step], names, layer_inputs)
                 for i in range(0, chosen.shape[1], step)]
        return join_neurons(parts)

    def _concrete_with(self, names: tuple[str, ...], many: bool, inputs: bool = False) -> Any:
        """The concrete function for one neuron (or K, ``many``) per sample that also
        returns the relevance of the layers ``names`` (and, with ``inputs``, at and of
        their inputs); one per distinct request."""
        if not names:
            return self.concrete_function_many if many else self.concrete_function
        return concrete_with_layers(self, names, many, inputs)

    def _run(self, function: Any, arrays: list[np.ndarray], chosen: np.ndarray,
             names: tuple[str, ...] = (), inputs: bool = False) -> Explanation:
        """One compiled call (which also returns the relevance at the layers ``names``,
        and with ``inputs`` at and of their inputs); a named error where it fails or
        returns non-finite values."""
        try:
            maps, picked, logits = function(tuple(tf.constant(a) for a in arrays),
                                            tf.constant(chosen))
        except tf.errors.OpError as error:
            raise diagnose(self, arrays, chosen, error) from None
        maps, hidden, handed, read = split_outputs(self, maps, names, inputs)
        logits = logits.numpy()
        # a layer's non-finite relevance reaches the inputs: checking the input maps and
        # shares suffices (an overflow makes them NaN)
        if not (np.all(np.isfinite(logits)) and all(np.all(np.isfinite(m)) for m in maps)):
            raise diagnose(self, arrays, chosen)
        relevance, shares = self._maps_and_shares(maps)
        return Explanation(relevance, picked.numpy(), logits, absorbed_by=self.absorbed_by,
                           embeddings=shares, layer_relevance=hidden,
                           layer_input_relevance=handed, layer_inputs=read)

    def _maps_and_shares(self, maps: Sequence[np.ndarray]) -> tuple[Any, dict]:
        """The compiled function's maps as (relevance, embedding shares)."""
        n = len(self.graph.inputs)
        inputs, shares = list(maps[:n]), dict(zip(self.embedding_names, maps[n:]))
        return (inputs if n > 1 else inputs[0]), shares

    def logits(self, x: Any) -> np.ndarray:
        """The explained output for ``x`` as the analyzer computes it: before a stripped
        softmax/sigmoid head (what :meth:`explain`'s ``explained`` picks from)."""
        arrays = self.check_inputs(x)
        values = self._forward_values([tf.constant(a) for a in arrays])
        return np.asarray(values[self._explained])

    def predict(self, x: Any) -> np.ndarray:
        """The explained model output for ``x`` as the analyzer computes it (head
        included): equal to the model's own output, up to float32 rounding."""
        output = tf.constant(self.logits(x))
        for head in self._heads:
            output = head(output)
        return np.asarray(output)

    def analyze(self, x: Any, neuron: Any = None, **options: Any
                ) -> np.ndarray | list[np.ndarray]:
        """Relevance maps (float32, shaped like ``x``, with a neuron axis after the batch
        axis for several neurons per sample; a list for multi-input models). Takes
        :meth:`explain`'s arguments."""
        return self.explain(x, neuron, **options).relevance

