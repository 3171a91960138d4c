"""Named analyzers, in the vocabulary users of the older Keras toolbox know.

``create_analyzer(name, model, **options)`` builds one; :data:`PRESETS` lists them.

==========================  ===========================================================
name                        analyzer
==========================  ===========================================================
``deep_taylor``             ``DTD(model, input_domain=...)`` (rules by input domain)
``deep_taylor.bounded``     ``DTD(model, input_domain=Box(low, high))`` (needs low, high)
``lrp.z``                   ``LRP(model, Epsilon(0))`` — LRP-0, bias in the denominator
``lrp.epsilon``             ``LRP(model, Epsilon(epsilon=1e-7))``
``lrp.alpha_1_beta_0``      ``LRP(model, AlphaBeta(1, 0))``
``lrp.alpha_2_beta_1``      ``LRP(model, AlphaBeta(2, 1))``
``lrp.z_plus``              ``LRP(model, ZPlus())``
``lrp.w_square``            ``LRP(model, W2())``
``lrp.flat``                ``LRP(model, Flat())``
``lrp.gamma``               ``LRP(model, Gamma(gamma=0.25))``
``lrp.composite``           zᴮ (or w² without bounds) at the input, γ in the lower
                            convolutions, ε in the upper ones, LRP-0 in the dense top
``attn_lrp``                ``AttnLRP(model)``: LRP-ε (ε=1e-6) and AttnLRP's attention rules
``cp_lrp``                  ``AttnLRP(model, mode="cp_lrp")``: attention held constant
``gradient``                plain gradient of the explained logit
``input_x_gradient``        input ⊙ gradient (alias ``input_t_gradient``)
==========================  ===========================================================
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from .analyzers import DTD, LRP, Analyzer, AttnLRP
from .engine.canonizers import strip_head
from .engine.domains import REAL, Box
from .engine.graph import Graph, walk
from .engine.passes import output_count, select, unstack
from .engine.propagation import tile
from .errors import UnsupportedLayerError
from .layers import LayerRelevance, Linear, relevance_for
from .rules import W2, AlphaBeta, Epsilon, Flat, Gamma, Rule, ZBox, ZPlus

__all__ = ["PRESETS", "Composite", "Gradient", "InputXGradient", "create_analyzer"]


class Gradient(Analyzer):
    """The gradient of the explained logit w.r.t. the input, with the analyzers' API
    (explain/analyze, neuron selection, several neurons per sample, export, callbacks).

    It needs no relevance rule, so it takes any differentiable Keras model: every layer
    runs its own ``call`` (none needs a registered behaviour). Where the model's graph is
    visible (Sequential, functional) a softmax/sigmoid head is stripped as by the other
    analyzers: the logit below it is explained. A subclassed model (or a functional one
    holding a subclassed model) shows no graph: its output is explained as it is, a
    softmax included, with a warning saying so; its input shapes come from its first
    call (``model(x)`` built it) or from the first ``explain``.

    Token inputs: the gradient w.r.t. an integer input (token ids) is taken at the
    output of the ``Embedding`` layer reading it and summed over the embedding features
    (``[batch, seq]``); :class:`InputXGradient` sums ``embedding ⊙ gradient``. An
    integer input that no Embedding reads (segment ids, a mask) gets zeros.
    """

    times_input = False
    absorbed_by: tuple[str, ...] = ()  # no rules: nothing is conserved nor absorbed by design

    def __init__(self, model: keras.Model, *, output: int | str | None = None,
                 max_pool: str = "winner", add: str | None = None,
                 jit_compile: bool = False) -> None:
        del max_pool, add  # accepted for the analyzers' API; no relevance rule here
        self.model = model
        self.max_pool, self.add = "winner", "proportional"
        self.trace_count = 0
        self._sizes_checked: set[tuple] = set()
        self.rules, self.domains = {}, {}
        # token models: maps per integer input (see the class docstring), no separate shares
        self.token_input, self.token_relevance, self.token_key = None, "sum", None
        self.embedding_names: list[str] = []
        self._output = output
        self._steps, self._heads, self._embeddings = [], [], {}
        try:
            self.graph: Graph | None = walk(model, output)  # no expansion: own calls
        except UnsupportedLayerError:  # a subclassed model: no graph to walk
            self.graph = None
            warnings.warn(
                f"{type(self).__name__}: model '{model.name}' ({type(model).__name__}) is "
                "subclassed (or holds a subclassed model), so its graph is not visible: its "
                "output is explained as it is, a softmax/sigmoid on it included (explain "
                "logits by giving the model a linear output)", UserWarning, stacklevel=3)
            shapes = _built_shapes(model)
            if shapes is not None:
                self._opaque_graph(shapes)
        else:
            self._build()
        self._function = tf.function(self._traced_relevance_graph, jit_compile=jit_compile,
                                     autograph=False)
        self._concrete = None
        self._concrete_many = None

    def _choose_rule(self, call, step, domain, reads_input):
        return Epsilon(0.0)  # unused: the backward pass is the gradient

    def _build(self) -> None:
        graph = self.graph
        calls, explained, heads = strip_head(list(graph.calls), graph.output)
        head = next((c for c in calls if explained in c.outputs), None)
        steps = []
        for index, call in enumerate(calls):
            step = LayerRelevance(call, graph)
            if call is head and heads and not isinstance(heads[0], keras.layers.Layer):
                try:  # a softmax fused into the last layer: its behaviour gives the logit
                    step = relevance_for(call, graph, index, head=True)
                except UnsupportedLayerError:
                    step = None
                if not isinstance(step, Linear):  # no logit to be had: the output as is
                    warnings.warn(
                        f"{type(self).__name__}: layer {call.description} applies "
                        f"{heads[0].__name__} itself and has no linear behaviour to compute "
                        "the logit below it; its output is explained as it is",
                        UserWarning, stacklevel=4)
                    calls, explained, heads = list(graph.calls), graph.output, []
                    return self._set_steps(calls, explained, heads)
            steps.append(step)
        self._set_steps(calls, explained, heads, steps)

    def _set_steps(self, calls, explained, heads, steps=None) -> None:
        graph = self.graph
        steps = steps or [LayerRelevance(c, graph) for c in calls]
        self._steps = [(s, None) for s in steps]
        self._explained, self._heads = explained, heads
        self.input_domains = [REAL for _ in graph.inputs]
        # token inputs: the Embedding layers reading them (their outputs are differentiated)
        self._embeddings = {
            key: [s.call.outputs[0] for s in steps
                  if isinstance(s.layer, keras.layers.Embedding) and s.call.inputs == (key,)]
            for key in graph.inputs if not graph.is_float(key)}

    def _opaque_graph(self, shapes: list[tuple]) -> None:
        """The graph of a subclassed model: its inputs (float32) and the explained output."""
        keys = list(range(len(shapes)))
        dummy = [np.zeros((1, *s[1:]), np.float32) for s in shapes]
        out = self._model_output([tf.constant(d) for d in dummy])
        self.graph = Graph(keys, [f"input_{i}" for i in keys], -1, [],
                           {**{k: (None, *s[1:]) for k, s in zip(keys, shapes)},
                            -1: (None, *out.shape[1:])},
                           dtypes={**{k: "float32" for k in keys}, -1: "float32"})
        self._explained = -1
        self.input_domains = [REAL for _ in keys]

    def _model_output(self, inputs: list) -> tf.Tensor:
        out = self.model(inputs if len(inputs) > 1 else inputs[0], training=False)
        if isinstance(out, dict) and isinstance(self._output, str):
            return out[self._output]
        flat = keras.tree.flatten(out)
        index = self._output if isinstance(self._output, int) else 0
        if len(flat) > 1 and self._output is None:
            raise ValueError(f"model '{self.model.name}' has {len(flat)} outputs; pass "
                             "output=<index or key> to choose the one to explain")
        if not 0 <= index < len(flat):
            raise ValueError(f"output={self._output!r} is out of range: model has "
                             f"{len(flat)} outputs")
        return tf.convert_to_tensor(flat[index])

    def check_inputs(self, x: Any) -> list[np.ndarray]:
        if self.graph is None:  # a subclassed model seen for the first time: x's shapes
            items = list(x) if isinstance(x, (list, tuple)) else [x]
            arrays = [np.asarray(getattr(i, "numpy", lambda i=i: i)()) for i in items]
            for i, a in enumerate(arrays):
                if np.issubdtype(a.dtype, np.integer) or a.dtype == bool:
                    raise ValueError(
                        f"input {i} holds {a.dtype} values (token ids?) and model "
                        f"'{self.model.name}' is subclassed: the gradient w.r.t. token ids is "
                        "taken at the output of the Embedding reading them, which only a "
                        "functional or Sequential model shows; rebuild it as one")
            self._opaque_graph([a.shape for a in arrays])
        arrays = super().check_inputs(x)
        self._check_ids(arrays)
        return arrays

    def _check_ids(self, arrays: list[np.ndarray]) -> None:
        """Token ids outside the vocabulary of an Embedding reading them: a named error
        (on GPU the lookup would return zeros silently)."""
        position = {k: i for i, k in enumerate(self.graph.inputs)}
        for step, _ in self._steps:
            layer = step.layer
            if not isinstance(layer, keras.layers.Embedding) or len(step.call.inputs) != 1:
                continue
            key = step.call.inputs[0]
            if key not in position:
                continue
            ids, size = arrays[position[key]], int(layer.input_dim)
            bad = (ids < 0) | (ids >= size)
            if bad.any():
                where = tuple(int(i) for i in np.argwhere(bad)[0])
                raise ValueError(
                    f"input {position[key]} ('{self.graph.input_names[position[key]]}') holds "
                    f"token id {int(ids[where])} at {where}, outside the vocabulary of "
                    f"embedding {step.call.description} (input_dim={size}: ids must lie in "
                    f"0..{size - 1})")

    def _forward_values(self, inputs, watch: Any = None) -> dict:
        if not self.graph.calls:  # subclassed: the model itself
            return {-1: self._model_output(list(inputs))}
        values = dict(zip(self.graph.inputs, inputs))
        watched = {k for keys in self._embeddings.values() for k in keys}
        for step, _ in self._steps:
            outputs = step.forward([values[k] for k in step.call.inputs])
            if watch is not None and step.call.outputs[0] in watched:
                watch(outputs[0])
            values.update(zip(step.call.outputs, outputs))
        return values

    def _relevance_graph(self, inputs: tuple, neuron: tf.Tensor, inspect=None):
        copies = tf.shape(neuron)[1] if len(neuron.shape) == 2 else None
        if copies is not None:  # K neurons: K copies of the batch, copy-major
            inputs = tuple(tile(x, copies) for x in inputs)
            neuron = tf.reshape(tf.transpose(neuron), [-1])
        inputs = tuple(tf.identity(x) for x in inputs)
        floats = [x for x in inputs if x.dtype.is_floating]
        with tf.GradientTape() as tape:
            tape.watch(floats)
            values = self._forward_values(inputs, watch=tape.watch)
            logits = values[self._explained]
            chosen, explained = select(logits, neuron, output_count(logits, self.output_size))
        tokens = {k: keys for k, keys in self._embeddings.items() if keys}
        sources = floats + [values[out] for keys in tokens.values() for out in keys]
        grads = iter(tape.gradient(explained, sources))
        found: dict[int, Any] = {}  # input position -> its map
        for i, x in enumerate(inputs):
            if x.dtype.is_floating:
                g = next(grads)
                g = tf.zeros_like(x) if g is None else g
                found[i] = x * g if self.times_input else g
        for key, keys in tokens.items():  # integer inputs: at their Embeddings
            total = None
            for out in keys:
                e, g = values[out], next(grads)
                if g is not None:
                    part = tf.reduce_sum(e * g if self.times_input else g, axis=-1)
                    total = part if total is None else total + part
            found[self.graph.inputs.index(key)] = total
        maps = [tf.zeros(tf.shape(x), tf.float32) if found.get(i) is None else found[i]
                for i, x in enumerate(inputs)]
        if copies is None:
            return tuple(maps), chosen, explained

        def per_sample(t):  # [K·batch] -> [batch, K]
            return tf.transpose(tf.reshape(t, [copies, -1]))

        return unstack(maps, copies), per_sample(chosen), per_sample(explained)


def _built_shapes(model: Any) -> list[tuple] | None:
    """The input shapes a subclassed model was built with (its first call), if known."""
    built = (getattr(model, "_build_shapes_dict", None) or {}).get("input_shape")
    if built is None:
        return None
    shapes = [built] if isinstance(built, tuple) and all(
        d is None or isinstance(d, int) for d in built) else list(built)
    if not all(isinstance(s, (tuple, list)) and all(isinstance(d, int) for d in s[1:])
               for s in shapes):
        return None
    return [tuple(s) for s in shapes]


class InputXGradient(Gradient):
    """Input ⊙ gradient of the explained logit (for token inputs: embedding ⊙ gradient,
    summed over the features)."""

    times_input = True


class Composite(LRP):
    """The layer-dependent composite recommended in the LRP literature.

    zᴮ at the layers reading the input (w² when no ``low``/``high`` is given), LRP-γ in
    the lower half of the convolutional layers, LRP-ε in the upper half, LRP-0
    (``Epsilon(0)``) in the dense layers at the top (or the last layer if there are none).
    ``split=(k, m)`` overrides: rule-taking layers ``[0, k)`` get γ, ``[k, m)`` ε, and
    ``[m, …)`` LRP-0 (the input layers keep the input rule); ``layer_rules`` still wins.
    """

    def __init__(self, model: keras.Model, *, low: Any = None, high: Any = None,
                 gamma: float = 0.25, epsilon: float = 0.25,
                 split: tuple[int, int] | None = None, **options: Any) -> None:
        if (low is None) != (high is None):
            raise ValueError("lrp.composite needs both low and high, or neither")
        self._split = split
        self._bands = (Gamma(gamma), Epsilon(epsilon), Epsilon(0.0))
        input_rule = W2() if low is None else ZBox(low, high)
        super().__init__(model, Epsilon(epsilon), input_rule=input_rule, **options)

    def _finish_build(self) -> None:
        super()._finish_build()
        names = list(self.rules)
        dense = [n for n, (s, _) in zip(names, self._linear_steps())
                 if isinstance(s.layer, keras.layers.Dense)]
        if self._split is not None:
            lower, upper = self._split
        else:
            first = sum(1 for _, r in self._linear_steps() if r is self.input_rule)
            top = [names.index(n) for n in dense if names.index(n) >= first]
            upper = max(top[0] if top else len(names) - 1, first)
            lower = first + (upper - first) // 2
        if not 0 <= lower <= upper <= len(names):
            raise ValueError(f"split={self._split} must satisfy 0 <= k <= m <= {len(names)}")
        for i, (name, (step, rule)) in enumerate(zip(names, self._linear_steps())):
            if rule is self.input_rule or rule is not self.rule or step.fixed_rule is not None:
                continue  # input layers, layer_rules and fixed rules stay
            band = self._bands[0] if i < lower else self._bands[1] if i < upper else self._bands[2]
            self.rules[name] = band
            self._set_rule(step, band)

    def _linear_steps(self) -> list[tuple[LayerRelevance, Rule]]:
        return [(s, r) for s, r in self._steps if s.needs_rule]

    def _set_rule(self, step: LayerRelevance, rule: Rule) -> None:
        self._steps = [(s, rule if s is step else r) for s, r in self._steps]


def _bounded(model: keras.Model, low: Any = None, high: Any = None, **options: Any) -> DTD:
    if low is None or high is None:
        raise ValueError("deep_taylor.bounded needs low and high (the input box)")
    return DTD(model, input_domain=Box(low, high), **options)


def _lrp(rule_factory: Callable[..., Rule], **defaults: Any) -> Callable[..., LRP]:
    def build(model: keras.Model, **options: Any) -> LRP:
        params = {k: options.pop(k, v) for k, v in defaults.items()}
        return LRP(model, rule_factory(**params), **options)

    return build


PRESETS: dict[str, Callable[..., Analyzer]] = {
    "deep_taylor": DTD,
    "deep_taylor.bounded": _bounded,
    "lrp.z": _lrp(lambda: Epsilon(0.0)),
    "lrp.epsilon": _lrp(Epsilon, epsilon=1e-7),
    "lrp.alpha_1_beta_0": _lrp(lambda: AlphaBeta(1, 0)),
    "lrp.alpha_2_beta_1": _lrp(lambda: AlphaBeta(2, 1)),
    "lrp.z_plus": _lrp(ZPlus),
    "lrp.w_square": _lrp(W2),
    "lrp.flat": _lrp(Flat),
    "lrp.gamma": _lrp(Gamma, gamma=0.25),
    "lrp.composite": Composite,
    "attn_lrp": lambda model, **options: AttnLRP(model, "attn_lrp", **options),
    "cp_lrp": lambda model, **options: AttnLRP(model, "cp_lrp", **options),
    "gradient": Gradient,
    "input_x_gradient": InputXGradient,
    "input_t_gradient": InputXGradient,
}
"""Preset name → analyzer factory ``(model, **options)``."""


def create_analyzer(name: str, model: keras.Model, **options: Any) -> Analyzer:
    """Build the analyzer called ``name`` (see :data:`PRESETS`) for ``model``."""
    if name not in PRESETS:
        raise ValueError(f"unknown analyzer {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name](model, **options)
