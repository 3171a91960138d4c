"""The analyzer base class: a model in, a compiled relevance function out.

:class:`Analyzer` walks the model (:mod:`dtd_keras.engine.graph`), gives every call its
per-layer relevance behaviour (:mod:`dtd_keras.layers`), infers the domain of every
tensor from the declared input domain, lets the subclass choose each linear layer's
rule (:mod:`.dtd`, :mod:`.lrp`), and compiles forward and backward pass into one
``tf.function`` with a free batch dimension.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ..engine.concepts import with_concept_axes
from ..engine.conditions import channel_masks, explain_conditioned
from ..engine.diagnose import check_sizes, diagnose
from ..engine.domains import REAL, Domain
from ..engine.graph import Call, Graph, walk
from ..engine.inputs import check_inputs
from ..engine.layer_relevance import (
    concrete_with_layers,
    empty_input_maps,
    empty_layer_maps,
    join_neurons,
    layer_input_keys,
    layer_keys,
    split_outputs,
)
from ..engine.neurons import parse_neurons
from ..engine.passes import backward, forward_values, output_count, select, top_relevance, unstack
from ..engine.tokens import check_token_values, empty_maps
from ..explanation import Explanation
from ..layers import LayerRelevance
from ..layers.embedding import TOKEN_RELEVANCE_MODES
from ..layers.registry import expands
from ..rules import Rule
from .steps import build_steps

__all__ = ["Analyzer"]

MAX_POOL_MODES = ("winner", "proportional")
MANY_NEURONS_BUDGET = 1 << 28
"""Float32 activation copies (1 GiB) one call may hold when explaining many neurons."""
ADD_MODES = ("proportional", "positive")


class Analyzer:
    """Base class: builds and compiles the relevance graph of ``model``.

    Parameters
    ----------
    model:
        A built Keras 3 Sequential or functional model.
    output:
        Which model output to explain, by index or name (needed only for multi-output
        models).
    max_pool:
        ``"winner"`` (all of a window's relevance to its maximum) or
        ``"proportional"`` (in proportion to the window's inputs).
    add:
        How ``Add`` splits relevance between branches: ``"proportional"`` to each
        branch's value or ``"positive"`` to its positive part (default: DTD positive,
        LRP proportional; see :mod:`dtd_keras.layers.merge`).
    jit_compile:
        Compile with XLA (opt-in: slower on CPU, may help on GPU/TPU).
    token_input:
        Token models: the model input (name or index) whose embedding gives the token
        relevance; default: the integer input read by the embedding with the largest
        vocabulary. Other embeddings' shares go to ``Explanation.embeddings``.
    token_relevance:
        ``"sum"`` (token relevance ``[batch, seq]``, summed over the embedding features)
        or ``"features"`` (``[batch, seq, dim]``).
    """

    default_add = "proportional"

    def __init__(self, model: keras.Model, *, output: int | str | None = None,
                 max_pool: str = "winner", add: str | None = None,
                 jit_compile: bool = False, token_input: int | str | None = None,
                 token_relevance: str = "sum") -> None:
        if max_pool not in MAX_POOL_MODES:
            raise ValueError(f"max_pool must be one of {MAX_POOL_MODES}, got {max_pool!r}")
        add = self.default_add if add is None else add
        if add not in ADD_MODES:
            raise ValueError(f"add must be one of {ADD_MODES}, got {add!r}")
        if token_relevance not in TOKEN_RELEVANCE_MODES:
            raise ValueError(f"token_relevance must be one of {TOKEN_RELEVANCE_MODES}, got "
                             f"{token_relevance!r}")
        self.token_input = token_input
        self.token_relevance = token_relevance
        self.model = model
        self.max_pool = max_pool
        self.add = add
        self.graph: Graph = walk(model, output, expand=expands)
        self.trace_count = 0
        self._absorbed_by: tuple[str, ...] | None = None
        self._sizes_checked: set[tuple] = set()  # input shapes every layer can take
        self._build()
        self._jit_compile = jit_compile
        self._function = tf.function(self._traced_relevance_graph, jit_compile=jit_compile,
                                     autograph=False)
        self._concrete = None
        self._concrete_many = None

    # ----------------------------------------------------------------- building
    def _input_domains(self) -> list[Domain]:
        """The declared domain of each model input."""
        return [REAL for _ in self.graph.inputs]

    def _choose_rule(self, call: Call, step: LayerRelevance, domain: Domain,
                     reads_input: bool) -> Rule:
        raise NotImplementedError

    def _step_options(self) -> dict[str, Any]:
        """Options every call's relevance behaviour receives (subclasses add theirs)."""
        return {"max_pool": self.max_pool, "add": self.add,
                "token_relevance": self.token_relevance}

    def _build(self) -> None:
        """Walk the calls: each call's behaviour, rule and domains
        (:func:`dtd_keras.analyzers.steps.build_steps`), then :meth:`_finish_build`."""
        build_steps(self)
        self._finish_build()

    def _finish_build(self) -> None:
        """Hook for subclasses to validate their configuration after the walk."""

    @property
    def layer_names(self) -> tuple[str, ...]:
        """Every call the analyzer explains, in graph order, named as :meth:`explain`'s
        ``layers=`` takes them (``"inner/dense"`` in a nested model, ``"dense[1]"`` for a
        layer's second call)."""
        return tuple(step.call.name for step, _ in self._steps)

    def behaviour(self, name: str) -> LayerRelevance:
        """The relevance behaviour (:class:`~dtd_keras.layers.LayerRelevance`) of the
        call ``name`` (:attr:`layer_names`); its rule, if it takes one, is
        ``rules[name]``. A ValueError for an unknown name."""
        for step, _ in self._steps:
            if step.call.name == name:
                return step
        raise ValueError(f"no layer {name!r} in {type(self).__name__}; the known layers "
                         f"are {list(self.layer_names)}")

    def replace_behaviour(self, name: str, wrap: Any) -> None:
        """Engine extension point: the call ``name`` goes through ``wrap(behaviour)``
        from now on, in every pass (call it while building, in :meth:`_finish_build`,
        before the first trace). The replacement keeps the behaviour's ``call`` and its
        ``relevance(inputs, outputs, relevances, rule, **kept)`` and ``relevance_many``
        signatures (it may delegate everything else to the original); its rule stays
        ``rules[name]``. :class:`~dtd_keras.relevance_model.MinMaxDTD` replaces its
        modelled layers' rules by their relevance models so. A RuntimeError once the
        analyzer is built (its compiled passes would not see the change)."""
        if "_function" in self.__dict__:
            raise RuntimeError(f"replace_behaviour({name!r}) is for building: call it in "
                               f"{type(self).__name__}._finish_build, before any pass is "
                               "compiled")
        self.behaviour(name)  # known
        self._steps = [(wrap(step) if step.call.name == name else step, rule)
                       for step, rule in self._steps]

    @property
    def absorbed_by(self) -> tuple[str, ...]:
        """The calls where this analyzer's rules let relevance be absorbed by design
        (a bias or ε in an LRP rule's denominator, LayerNorm's β, a softmax's Taylor
        bias): the maps then sum to the explained logit minus their share. Empty: the
        rules conserve (DTD on ReLU networks), and any gap is an error. Explanations
        carry it (:attr:`~dtd_keras.Explanation.absorbed_by`)."""
        if self._absorbed_by is None:
            self._absorbed_by = tuple(step.call.name for step, rule in self._steps
                                      if step.absorbs(rule))
        return self._absorbed_by

    # ------------------------------------------------------------ computing
    def _forward_values(self, inputs: Sequence[Any]) -> dict:
        return forward_values(self._steps, self.graph.inputs, inputs)

    def select_logits(self, inputs: tuple, neuron: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """The forward part of :attr:`function` alone (traceable): the chosen neurons
        (``-1``: the top logit; ``[batch]`` or ``[batch, K]``) and their logits."""
        logits = self._forward_values(inputs)[self._explained]
        return select(logits, neuron, output_count(logits, self.output_size))

    def _traced_relevance_graph(self, inputs: tuple, neuron: tf.Tensor):
        self.trace_count += 1
        return self._relevance_graph(inputs, neuron)

    def _relevance_graph(self, inputs: tuple, neuron: tf.Tensor, inspect: Any = None,
                         layers: tuple[str, ...] = (), condition: Any = None,
                         layer_inputs: bool = False):
        """Forward pass, top relevance, backward pass (:mod:`dtd_keras.engine.passes`). Traced
        once per analyzer (and per tuple of ``layers``). ``neuron``: ``[batch]`` (``-1``:
        top logit) or ``[batch, K]`` (then maps are ``[batch, K, …]``). ``inspect(step,
        rule, lower)`` sees each call's input relevance (diagnosis). ``layers``: names of
        calls whose output relevance follows the maps and shares, in that order.
        ``condition``: ``(key, channels, axis)``, a call output's tensor key, ``[K]``
        channel indices and their axis (without batch; -1: last): ``neuron`` is
        ``[batch]``, the top relevance goes down in K copies, copy k keeping at ``key``
        only channel k's relevance (maps ``[batch, K, …]``;
        :mod:`dtd_keras.engine.conditions`). ``layer_inputs``: after the layers'
        relevance, what each hands down to each of its inputs, then those inputs' values
        (:mod:`dtd_keras.engine.layer_relevance`)."""
        values = self._forward_values(inputs)
        logits = values[self._explained]
        count = output_count(logits, self.output_size)
        chosen, explained = select(logits, neuron, count)
        top = top_relevance(logits, chosen, explained, count)
        copies = tf.shape(neuron)[1] if len(neuron.shape) == 2 else None
        masks = None
        if condition is not None:
            copies, masks = channel_masks(values, *condition)  # top: tiled at the mask
        shares: dict = {}
        names, keys = layer_keys(self, layers)
        captured: dict = dict.fromkeys(keys)
        handed = dict.fromkeys(names) if layer_inputs else None
        maps = backward(self._steps, values, self._explained, top, self.graph.inputs,
                        copies, inspect, shares, captured, masks, handed)
        maps = (*maps, *(shares[name] for name in self.embedding_names),
                *(captured[k] for k in keys),
                *(r for n in (names if layer_inputs else ()) for r in handed[n]))
        read = [values[k] for ks in layer_input_keys(self, names if layer_inputs else ())
                for k in ks]
        maps = maps if copies is None else unstack(maps, copies)
        return (*maps, *read), chosen, explained

    @property
    def function(self) -> tf.types.experimental.PolymorphicFunction:
        """The ``tf.function`` ``(inputs_tuple, neuron) -> (maps, neuron, logit)``.

        ``maps`` holds one map per model input, then (token models) one share per
        :attr:`embedding_names`.

        It has no ``input_signature``, so it can be given to
        ``tf.distribute.Strategy.run``. ``neuron`` is int32 of shape ``[batch]``
        (``-1`` selects the top logit), or ``[batch, K]`` for K neurons per sample (maps
        ``[batch, K, …]``, neuron and logit ``[batch, K]``). Inputs are not
        domain-checked here.
        """
        return self._function

    @property
    def input_names(self) -> list[str]:
        """The model inputs' names, in the order of :meth:`analyze`'s list of maps (inputs
        may be given as a dict keyed by these names)."""
        return list(self.graph.input_names)

    @property
    def input_specs(self) -> tuple[tf.TensorSpec, ...]:
        """One spec per model input, batch dimension free: float32, or the input's own
        integer/boolean dtype (token ids, masks)."""
        return tuple(
            tf.TensorSpec((None, *self.graph.shapes[k][1:]),
                          tf.float32 if self.graph.is_float(k) else self.graph.dtypes[k],
                          name=f"input_{i}")
            for i, k in enumerate(self.graph.inputs))

    @property
    def concrete_function(self):
        """The function traced once for any batch size (built on first use)."""
        if self._concrete is None:
            self._concrete = self._function.get_concrete_function(
                self.input_specs, tf.TensorSpec((None,), tf.int32, name="neuron"))
        return self._concrete

    @property
    def output_size(self) -> int | None:
        """Number of neurons in the explained output (None if not static)."""
        shape = self.graph.shapes[self._explained]  # every tensor's static shape is known
        if any(d is None for d in shape[1:]):
            return None
        return int(np.prod(shape[1:], dtype=np.int64))

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

    @property
    def concrete_function_many(self):
        """The function traced once for ``neuron`` of shape ``[batch, K]`` (K neurons per
        sample; maps ``[batch, K, …]``), built on first use."""
        if self._concrete_many is None:
            self._concrete_many = self._function.get_concrete_function(
                self.input_specs, tf.TensorSpec((None, None), tf.int32, name="neurons"))
        return self._concrete_many

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
        if neurons_per_pass is not None and (
                isinstance(neurons_per_pass, bool) or not isinstance(neurons_per_pass, int)
                or neurons_per_pass < 1):
            raise ValueError(f"neurons_per_pass must be a positive int, got {neurons_per_pass!r}")
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

    def export(self, path: Any, *, overwrite: bool = False) -> Any:
        """Write a TensorFlow SavedModel serving these explanations (:mod:`dtd_keras.export`).

        Returns the path written (a :class:`pathlib.Path`).
        """
        from ..export import export_analyzer

        return export_analyzer(self, path, overwrite=overwrite)

    def __repr__(self) -> str:
        rules = ", ".join(f"{k}: {v!r}" for k, v in self.rules.items())
        return f"{type(self).__name__}({self.model.name!r}, rules={{{rules}}})"
