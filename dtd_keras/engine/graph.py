"""Graph walking: flatten a Keras 3 model into an ordered list of layer calls.

Keras records a functional model as nodes (one per layer *call*). :func:`walk` lists
every call in topological order, recursing into nested models (a nested model is one
node outside, a whole graph inside), and names each tensor by an integer key so that
a layer called twice yields two calls with their own tensors. Calls that the chosen
output does not depend on are dropped.

Composite layers (a Python-coded layer whose ``call`` runs sublayers and ``keras.ops``,
such as ``MultiHeadAttention`` or keras-hub's ``TransformerEncoder``) are seen inside
where the caller asks (``expand``): :func:`expand_layer` runs the layer's own ``call`` on
symbolic inputs, which records every sublayer call and operation as a functional graph,
and the walk recurses into it as into a nested model. The sublayers are the model's own
objects, so the weights stay live.

Keras masks (``Embedding(mask_zero=True)`` and layers that propagate its mask) travel as
a ``_keras_mask`` attribute of tensors, which layers such as ``MultiHeadAttention`` read
inside ``call``. The walk makes them explicit: a mask is a tensor of the graph (the
calls computing it are added where the model's graph does not hold them), and an
expanded layer receives its inputs' masks as extra inputs, as Keras' ``__call__``
would give them (:func:`input_masks`).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import keras
import tensorflow as tf

__all__ = ["SYMBOLIC_CALLS", "Call", "ComputedMask", "Graph", "expand_layer", "input_masks",
           "walk"]

SYMBOLIC_CALLS: dict[type, Callable[..., Any]] = {}
"""Layer class → ``fn(layer, *args, **kwargs)``, run instead of ``layer.call`` when the
layer is seen inside: for layers whose own ``call`` needs concrete shapes (a sequence
length of None), an integration registers an equivalent that records the same sublayers
and operations (see :mod:`dtd_keras.integrations.keras_hub`). Exact classes only."""


class ComputedMask(keras.Operation):
    """A mask computed from tensors at run time, recorded as ONE operation when a layer is
    seen inside (its shape may depend on a sequence length unknown when the model is
    built). Its output is boolean or integer, so it carries no relevance."""

    def __init__(self, function: Callable[..., Any], name: str) -> None:
        super().__init__(name=name)
        self.function = function

    def call(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)


@dataclass
class Call:
    """One call of a layer or operation in the (flattened) model graph."""

    operation: Any
    node: Any
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    name: str
    index: int = 0
    scope: str = ""
    folded: Any = None  # a BatchNormalization merged into this call by a canonizer
    padding: Any = None  # a ZeroPadding layer merged into this call by a canonizer
    note: str = ""  # why the analyzer could not see inside this layer, where it knows

    @property
    def description(self) -> str:
        """``'name' (Class)``: how errors name this call."""
        return f"'{self.name}' ({type(self.operation).__name__})"

    def arguments(self, inputs: Any) -> tuple[tuple, dict]:
        """The call's positional and keyword arguments with ``inputs`` (one value per
        input tensor of its node, in order) in those tensors' place."""
        local = {id(t): v for t, v in zip(self.node.input_tensors, inputs)}
        return self.node.arguments.fill_in(local)


@dataclass
class Graph:
    """A model flattened into calls. ``shapes`` maps tensor keys to static shapes."""

    inputs: list[int]
    input_names: list[str]
    output: int
    calls: list[Call]
    shapes: dict[int, tuple] = field(default_factory=dict)
    output_index: int = 0  # which of the model's outputs ``output`` is
    dtypes: dict[int, str] = field(default_factory=dict)  # tensor key -> dtype name

    def is_float(self, key: int) -> bool:
        """Whether tensor ``key`` holds floats (integer and boolean tensors, such as token
        ids, position ids and masks, carry no relevance)."""
        return "float" in self.dtypes.get(key, "float32")

    def producer(self, key: int) -> Call | None:
        """The call whose output is ``key`` (None for a model input)."""
        for call in self.calls:
            if key in call.outputs:
                return call
        return None

    def consumers(self, key: int) -> list[Call]:
        """The calls reading tensor ``key``."""
        return [c for c in self.calls if key in c.inputs]


def as_functional(model: Any) -> Any:
    """The functional graph behind ``model``; a clear error where there is none."""
    from ..errors import UnsupportedLayerError

    if isinstance(model, keras.Sequential):
        functional = getattr(model, "_functional", None)
        if functional is None:
            raise ValueError(
                f"Sequential model '{model.name}' has no known input shape yet: give it a "
                "keras.Input, call model.build((None, ...)), or call it on data once"
            )
        return functional
    if hasattr(model, "_nodes_by_depth") and isinstance(getattr(model, "inputs", None), list):
        return model
    raise UnsupportedLayerError(
        f"model '{getattr(model, 'name', model)}' ({type(model).__name__}) is a subclassed "
        "keras.Model whose graph cannot be inspected; rebuild it as a functional or "
        "Sequential model"
    )


def _refuse_training_mode(node: Any, scope: str) -> None:
    """A call made with ``training=True`` computes its training behaviour (batch
    statistics, dropout) at inference too; the analyzer would explain something else."""
    from ..errors import UnsupportedLayerError

    kwargs = getattr(getattr(node, "arguments", None), "kwargs", None) or {}
    if kwargs.get("training") is True:
        op = node.operation
        raise UnsupportedLayerError(
            f"layer '{scope}{op.name}' ({type(op).__name__}) is called with training=True, so "
            "the model computes its training behaviour even at inference while relevance "
            "would explain the inference behaviour; call it without training=True (Keras "
            "passes the mode), or explain a model built without it")


def _output_index(functional: Any, outputs: tuple, output: int | str | None) -> int:
    """The position of ``output`` (an index, an output layer's name or a dict key)."""
    count = len(outputs)
    if output is None:
        if count != 1:
            raise ValueError(
                f"model '{functional.name}' has {count} outputs; pass output=<index or name> "
                "to choose the one to explain")
        return 0
    if isinstance(output, str):
        names = [t._keras_history.operation.name for t in functional.outputs]
        struct = getattr(functional, "_outputs_struct", None)
        if isinstance(struct, dict):
            keys = list(struct)
            position = {id(t): i for i, t in enumerate(functional.outputs)}
            for key in keys:
                if output == key and id(struct[key]) in position:
                    return position[id(struct[key])]
        if output in names:
            return names.index(output)
        known = sorted(set(names) | (set(struct) if isinstance(struct, dict) else set()))
        raise ValueError(f"output={output!r} names no output of model '{functional.name}'; "
                         f"its outputs are {known}")
    if isinstance(output, bool) or not isinstance(output, int):
        raise TypeError(f"output must be an int index or an output name, got {output!r}")
    if not 0 <= output < count:
        raise ValueError(f"output={output} is out of range: model has {count} outputs")
    return output


def input_masks(node: Any) -> list[Any]:
    """The Keras masks (symbolic ``_keras_mask``) of the inputs of ``node`` that have one,
    in input order: an expanded layer receives them as extra inputs."""
    masks = [getattr(t, "_keras_mask", None) for t in node.input_tensors]
    return [m for m in masks if m is not None]


def _pass_masks(layer: Any, args: tuple, kwargs: dict, named: dict[int, Any]) -> dict:
    """``kwargs`` with the ``mask`` / ``<arg>_mask`` arguments Keras' ``Layer.__call__``
    fills in from the inputs' masks (``named``: id of a fresh input → its fresh mask)."""
    if not named:
        return kwargs
    try:
        bound = inspect.signature(layer.call).bind_partial(*args, **kwargs).arguments
        names = inspect.signature(layer.call).parameters
    except (TypeError, ValueError):
        return kwargs
    tensors = {k: v for k, v in bound.items() if id(v) in named}
    kwargs = dict(kwargs)
    if len(tensors) == 1 and "mask" in names and bound.get("mask") is None:
        kwargs["mask"] = named[id(next(iter(tensors.values())))]
    for k, v in tensors.items():
        if f"{k}_mask" in names and bound.get(f"{k}_mask") is None:
            kwargs[f"{k}_mask"] = named[id(v)]
    return kwargs


def expand_layer(node: Any) -> Any | None:
    """The functional graph inside the layer call ``node``: the layer's own ``call`` run on
    fresh symbolic inputs shaped like the node's (then one input per mask of
    :func:`input_masks`, attached to its tensor as Keras would). None where it cannot be
    seen inside (its ``call`` needs concrete values, runs a sublayer with weights on
    values that are no input of it, or records nothing but itself)."""
    return _expand(node)[0]


@contextlib.contextmanager
def _eager_sublayer_calls(layer: Any):
    """Within: the sublayers with weights that ``layer``'s call runs on concrete values
    (e.g. a position embedding on ``keras.ops.arange``): their result would be frozen into
    a constant, its relevance lost and its weights no longer followed."""
    seen: list[Any] = []
    patched = [s for s in layer._flatten_layers(include_self=False) if s.weights]
    for sub in patched:
        @functools.wraps(sub.call)  # its signature stays readable (inspect.signature)
        def call(*args: Any, _sub: Any = sub, _call: Any = sub.call, **kwargs: Any) -> Any:
            if tf.executing_eagerly() and not any(
                    isinstance(t, keras.KerasTensor) for t in keras.tree.flatten((args, kwargs))):
                seen.append(_sub)
            return _call(*args, **kwargs)

        sub.__dict__["call"] = call
    try:
        yield seen
    finally:
        for sub in patched:
            sub.__dict__.pop("call", None)


def _expand(node: Any) -> tuple[Any | None, str]:
    """:func:`expand_layer`, and why not where it cannot (a note for the refusal)."""
    from keras.src.backend import set_keras_mask

    layer = node.operation
    tensors = list(node.input_tensors)
    try:
        fresh = [keras.Input(batch_shape=tuple(t.shape), dtype=t.dtype) for t in tensors]
        masks, named = [], {}
        for t, f in zip(tensors, fresh):
            mask = getattr(t, "_keras_mask", None)
            if mask is not None:
                masks.append(keras.Input(batch_shape=tuple(mask.shape), dtype=mask.dtype))
                set_keras_mask(f, masks[-1])
                named[id(f)] = masks[-1]
        local = {id(t): f for t, f in zip(tensors, fresh)}
        args, kwargs = node.arguments.fill_in(local)
        symbolic = SYMBOLIC_CALLS.get(type(layer))
        kwargs = _pass_masks(layer, args, kwargs, named)
        with _eager_sublayer_calls(layer) as eager:
            outputs = (layer.call(*args, **kwargs) if symbolic is None
                       else symbolic(layer, *args, **kwargs))
        if eager:
            names = ", ".join(f"'{s.name}' ({type(s).__name__})" for s in eager)
            return None, (f"its call runs the sublayer {names} on values that are no input of "
                          "the layer (e.g. positions from keras.ops.arange): its output would "
                          "be frozen into a constant and its relevance lost; compute them from "
                          "the inputs (e.g. keras.ops.cumsum(keras.ops.ones_like(ids), axis=1)"
                          " - 1) or register a behaviour for the layer")
        flat = keras.tree.flatten(outputs)
        if not flat or len(flat) != len(node.output_tensors):
            return None, ""
        inner = keras.Model(fresh + masks, flat, name=layer.name)
    except Exception:  # noqa: BLE001 - any failure: the layer stays one opaque call
        return None, ""
    ops = [n.operation for nodes in inner._nodes_by_depth.values() for n in nodes
           if not isinstance(n.operation, keras.layers.InputLayer)]
    if not ops or any(op is layer for op in ops):
        return None, ""
    frozen = [op for op in ops if _unknown_shape(op)]
    if frozen:
        return None, (f"its call reshapes to a shape read while the model was built, "
                      f"with a length unknown then ({frozen[0].name}: "
                      f"{_unknown_shape(frozen[0])}), so the recorded operation cannot run "
                      "at other lengths; register a behaviour for the layer")
    return inner, ""


def _unknown_shape(op: Any) -> tuple | None:
    """The target shape of a reshape/broadcast operation if it holds an unknown (None)
    length: recorded from a symbolic ``ops.shape``, it cannot run on real inputs."""
    shape = getattr(op, "newshape", None) if type(op).__name__ == "Reshape" else (
        getattr(op, "shape", None) if type(op).__name__ == "BroadcastTo" else None)
    if isinstance(shape, (tuple, list)) and any(d is None for d in shape):
        return tuple(shape)
    return None


def walk(model: Any, output: int | str | None = None,
         expand: Callable[[Any], bool] | None = None) -> Graph:
    """Flatten ``model`` into a :class:`Graph` explaining output ``output``: an index
    into ``model.outputs`` or an output's name. None only for single-output models.
    Calls made with ``training=True`` are refused (:class:`UnsupportedLayerError`).
    ``expand(layer)``: whether to see inside a layer that is not a model (where it can
    be: :func:`expand_layer`); the inside is walked like a nested model.
    """
    functional = as_functional(model)
    counter = itertools.count()
    calls: list[Call] = []
    shapes: dict[int, tuple] = {}
    dtypes: dict[int, str] = {}

    def visit(fn: Any, scope: str, input_keys: tuple[int, ...]) -> tuple[int, ...]:
        env: dict[int, int] = {}
        for tensor, key in zip(fn.inputs, input_keys):
            env[id(tensor)] = key

        def ensure(tensor: Any) -> int:
            """The key of ``tensor``; a Keras mask computed outside the model's graph
            (only read from tensor attributes) is added with the calls computing it."""
            if id(tensor) not in env:
                operation, index, _ = tensor._keras_history
                emit(operation._inbound_nodes[index])
            return env[id(tensor)]

        def emit(node: Any) -> None:
            op = node.operation
            in_keys = tuple(ensure(t) for t in node.input_tensors)
            inner, note = None, ""
            if isinstance(op, keras.Model):
                inner = as_functional(op)
            elif expand is not None and isinstance(op, keras.layers.Layer) and expand(op):
                inner, note = _expand(node)
            if inner is not None:
                if len(inner.inputs) > len(in_keys):  # the inputs' masks come last
                    in_keys += tuple(ensure(m) for m in input_masks(node))
                out_keys = visit(inner, f"{scope}{op.name}/", in_keys)
            else:
                out_keys = tuple(next(counter) for _ in node.output_tensors)
                calls.append(Call(op, node, in_keys, out_keys, f"{scope}{op.name}",
                                  scope=scope, note=note))
            for tensor, key in zip(node.output_tensors, out_keys):
                env[id(tensor)] = key
                shapes[key] = tuple(tensor.shape)
                dtypes[key] = str(tensor.dtype)

        for depth in sorted(fn._nodes_by_depth, reverse=True):
            for node in fn._nodes_by_depth[depth]:
                if isinstance(node.operation, keras.layers.InputLayer):
                    continue
                _refuse_training_mode(node, scope)
                if node.output_tensors and all(id(t) in env for t in node.output_tensors):
                    continue  # already added as the source of a mask
                emit(node)
        return tuple(env[id(t)] for t in fn.outputs)

    input_keys = tuple(next(counter) for _ in functional.inputs)
    for tensor, key in zip(functional.inputs, input_keys):
        shapes[key] = tuple(tensor.shape)
        dtypes[key] = str(tensor.dtype)
    outputs = visit(functional, "", input_keys)

    output = _output_index(functional, outputs, output)

    seen: dict[int, int] = {}
    for call in calls:  # number calls over the whole graph: names don't depend on `output`
        call.index = seen.get(id(call.operation), 0)
        seen[id(call.operation)] = call.index + 1
    repeated = {k for k, v in seen.items() if v > 1}
    for call in calls:
        if id(call.operation) in repeated:
            call.name = f"{call.name}[{call.index}]"

    needed = {outputs[output]}
    kept: list[Call] = []
    for call in reversed(calls):
        if needed.intersection(call.outputs):
            kept.append(call)
            needed.update(call.inputs)
    kept.reverse()


    def input_name(i: int, tensor: Any) -> str:  # the Input layer's name, as users gave it
        history = getattr(tensor, "_keras_history", None)
        layer = getattr(history, "operation", None)
        return getattr(layer, "name", None) or getattr(tensor, "name", f"input_{i}")

    names = [input_name(i, t) for i, t in enumerate(functional.inputs)]
    return Graph(list(input_keys), names, outputs[output], kept, shapes, output, dtypes)
