"""The analyzer base class: a model in, a compiled relevance function out.

:class:`Analyzer` walks the model (:mod:`dtd_keras.engine.graph`), gives every call its
per-layer relevance behaviour (:mod:`dtd_keras.layers`), infers the domain of every
tensor from the declared input domain, lets the subclass choose each linear layer's
rule (:mod:`.dtd`, :mod:`.lrp`), and compiles forward and backward pass into one
``tf.function`` with a free batch dimension. What it does with inputs (``explain``:
checking them, choosing neurons, running the compiled functions, assembling the
:class:`~dtd_keras.Explanation`) is :mod:`.explaining`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ..engine.conditions import channel_masks
from ..engine.domains import REAL, Domain
from ..engine.graph import Call, Graph, walk
from ..engine.layer_relevance import layer_input_keys, layer_keys
from ..engine.passes import backward, forward_values, output_count, select, top_relevance, unstack
from ..layers import LayerRelevance
from ..layers.embedding import TOKEN_RELEVANCE_MODES
from ..layers.registry import expands
from ..rules import Rule
from .explaining import Explaining
from .steps import build_steps

__all__ = ["Analyzer"]

MAX_POOL_MODES = ("winner", "proportional")
ADD_MODES = ("proportional", "positive")


class Analyzer(Explaining):
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

    @property
    def concrete_function_many(self):
        """The function traced once for ``neuron`` of shape ``[batch, K]`` (K neurons per
        sample; maps ``[batch, K, …]``), built on first use."""
        if self._concrete_many is None:
            self._concrete_many = self._function.get_concrete_function(
                self.input_specs, tf.TensorSpec((None, None), tf.int32, name="neurons"))
        return self._concrete_many

    def export(self, path: Any, *, overwrite: bool = False) -> Any:
        """Write a TensorFlow SavedModel serving these explanations (:mod:`dtd_keras.export`).

        Returns the path written (a :class:`pathlib.Path`).
        """
        from ..export import export_analyzer

        return export_analyzer(self, path, overwrite=overwrite)

    def __repr__(self) -> str:
        rules = ", ".join(f"{k}: {v!r}" for k, v in self.rules.items())
        return f"{type(self).__name__}({self.model.name!r}, rules={{{rules}}})"
