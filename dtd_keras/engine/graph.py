"""Graph walking: flatten a Keras 3 model into an ordered list of layer calls.

Keras records a functional model as nodes (one per layer *call*). :func:`walk` lists
every call in topological order, recursing into nested models (a nested model is one
node outside, a whole graph inside), and names each tensor by an integer key so that
a layer called twice yields two calls with their own tensors. Calls that the chosen
output does not depend on are dropped.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import keras

__all__ = ["Call", "Graph", "walk"]


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

    @property
    def description(self) -> str:
        """``'name' (Class)``: how errors name this call."""
        return f"'{self.name}' ({type(self.operation).__name__})"


@dataclass
class Graph:
    """A model flattened into calls. ``shapes`` maps tensor keys to static shapes."""

    inputs: list[int]
    input_names: list[str]
    output: int
    calls: list[Call]
    shapes: dict[int, tuple] = field(default_factory=dict)
    output_index: int = 0  # which of the model's outputs ``output`` is

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


def walk(model: Any, output: int | str | None = None) -> Graph:
    """Flatten ``model`` into a :class:`Graph` explaining output ``output``: an index
    into ``model.outputs`` or an output's name. None only for single-output models.
    Calls made with ``training=True`` are refused (:class:`UnsupportedLayerError`).
    """
    functional = as_functional(model)
    counter = itertools.count()
    calls: list[Call] = []
    shapes: dict[int, tuple] = {}

    def visit(fn: Any, scope: str, input_keys: tuple[int, ...]) -> tuple[int, ...]:
        env: dict[int, int] = {}
        for tensor, key in zip(fn.inputs, input_keys):
            env[id(tensor)] = key
        for depth in sorted(fn._nodes_by_depth, reverse=True):
            for node in fn._nodes_by_depth[depth]:
                op = node.operation
                if isinstance(op, keras.layers.InputLayer):
                    continue
                _refuse_training_mode(node, scope)
                in_keys = tuple(env[id(t)] for t in node.input_tensors)
                if isinstance(op, keras.Model):
                    inner = as_functional(op)
                    out_keys = visit(inner, f"{scope}{op.name}/", in_keys)
                else:
                    out_keys = tuple(next(counter) for _ in node.output_tensors)
                    calls.append(Call(op, node, in_keys, out_keys, f"{scope}{op.name}",
                                      scope=scope))
                for tensor, key in zip(node.output_tensors, out_keys):
                    env[id(tensor)] = key
                    shapes[key] = tuple(tensor.shape)
        return tuple(env[id(t)] for t in fn.outputs)

    input_keys = tuple(next(counter) for _ in functional.inputs)
    for tensor, key in zip(functional.inputs, input_keys):
        shapes[key] = tuple(tensor.shape)
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
    return Graph(list(input_keys), names, outputs[output], kept, shapes, output)
