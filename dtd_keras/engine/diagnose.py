"""Checks that name the problem: at construction, and when an explanation fails.

At construction, :func:`check_dtype` refuses layers that do not compute in float32 and
:func:`check_box_shape` refuses box bounds that are not per sample. When the compiled
relevance function raises a TensorFlow error (an input smaller than a kernel, a neuron
index beyond an output whose size is only known at run time) or returns non-finite
numbers (float32 overflow, NaN weights), :func:`diagnose` re-runs the computation
eagerly, call by call, and returns an error naming the first layer at fault.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from ..errors import NumericalError, UnsupportedLayerError
from .domains import Box, Domain
from .graph import Call, Graph

__all__ = ["check_box_shape", "check_dtype", "check_sizes", "diagnose"]


def check_dtype(call: Call) -> None:
    """Refuse a layer whose weights are not float32 or that computes in float64.

    Mixed-precision layers (``mixed_float16``/``mixed_bfloat16``: float32 weights, float16
    or bfloat16 compute) are explained in float32."""
    policy = getattr(call.operation, "dtype_policy", None)
    if policy is None:
        return
    for what, dtype, allowed in (
            ("computes in", policy.compute_dtype, ("float32", "float16", "bfloat16")),
            ("stores its weights in", policy.variable_dtype, ("float32",))):
        if dtype is not None and dtype not in allowed:
            raise UnsupportedLayerError(
                f"layer {call.description} {what} {dtype}; dtd_keras explains models with "
                "float32 weights (float32 or mixed precision; relevance is computed in "
                "float32). Rebuild the model with dtype='float32' layers, e.g. under "
                "keras.config.set_dtype_policy('float32'), and copy the weights over")


def check_box_shape(domain: Domain, shape: tuple, name: str) -> None:
    """Refuse box bounds that do not broadcast to one sample of the input ``name``."""
    if not isinstance(domain, Box):
        return
    sample = tuple(1 if d is None else d for d in shape[1:])
    for side, bound in (("low", domain.low), ("high", domain.high)):
        if bound.ndim > len(sample):
            raise ValueError(
                f"the box's {side} bound has shape {bound.shape}, more axes than one sample of "
                f"input '{name}' {tuple(shape[1:])}: bounds are per sample (no batch axis); "
                "give bounds shaped like one sample, or scalars")
        try:
            fits = np.broadcast_shapes(bound.shape, sample) == sample
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(
                f"the box's {side} bound has shape {bound.shape}, which does not broadcast to "
                f"one sample of input '{name}' {tuple(shape[1:])}")


def _nonfinite(values: Any) -> int:
    return int(np.count_nonzero(~np.isfinite(np.asarray(values))))


def _largest(arrays: Sequence[np.ndarray]) -> float:
    finite = [np.abs(a[np.isfinite(a)]).max() for a in arrays if np.isfinite(a).any()]
    return float(max(finite)) if finite else 0.0


def _broken_weights(analyzer: Any) -> Exception | None:
    for step, _ in analyzer._steps:
        for layer in filter(None, (step.layer, getattr(step, "folded", None))):
            for variable in getattr(layer, "weights", []):
                bad = _nonfinite(variable)
                if bad:
                    return NumericalError(
                        f"layer {step.call.description} has {bad} NaN or infinite values in "
                        f"its weight '{variable.path}' (of {int(np.prod(variable.shape))}): "
                        "the model itself is broken (a diverged training?); nothing can be "
                        "explained")
    return None


def _window(layer: Any) -> str:
    parts = [f"{k}={getattr(layer, k)}" for k in ("kernel_size", "pool_size", "strides",
                                                   "padding", "dilation_rate")
             if getattr(layer, k, None) is not None]
    return f" ({', '.join(parts)})" if parts else ""


def _too_small(call: Call, received: str, shapes: str, says: str) -> ValueError:
    return ValueError(
        f"layer {call.description}{_window(call.operation)} cannot compute on an input of "
        f"shape {received} (the model input has shape {shapes}); the input may be smaller "
        f"than the layer's window. {says}")


def check_sizes(graph: Graph, shapes: Sequence[tuple]) -> None:
    """Refuse model inputs of ``shapes`` (with batch axis) that some layer cannot take,
    before anything runs: a window larger than what reaches it, an empty output. Keras'
    shape inference runs call by call (TensorFlow itself may return garbage for a conv
    window larger than its input, or fail later with no detail)."""
    import keras

    values: dict[int, Any] = {k: keras.KerasTensor(tuple(s), "float32")
                              for k, s in zip(graph.inputs, shapes)}
    shown = ", ".join(str(tuple(s)) for s in shapes)
    for call in graph.calls:
        inputs = [values[k] for k in call.inputs]
        received = ", ".join(str(tuple(x.shape)) for x in inputs)
        try:
            args, kwargs = call.arguments(inputs)
            outputs = keras.tree.flatten(call.operation.compute_output_spec(*args, **kwargs))
        except ValueError as error:
            raise _too_small(call, received, shown,
                             f"Keras says: {str(error).strip().splitlines()[0]}") from None
        except Exception:  # noqa: BLE001  shape inference unavailable: TensorFlow will tell
            return
        empty = [tuple(o.shape) for o in outputs if 0 in tuple(o.shape)[1:]]
        if empty:
            raise _too_small(call, received, shown, f"Its output would be empty: {empty[0]}")
        values.update(zip(call.outputs, outputs))


def _tensorflow_says(error: Any) -> str:
    """The line of a TensorFlow error that says what went wrong (not "Graph execution
    error:" or the traceback of where the node was defined)."""
    lines = [line.strip() for line in
             (getattr(error, "message", None) or str(error)).splitlines()]
    useful = [line for line in lines if line and not line.startswith(
        ("Graph execution error", "Detected at node", "File ", "[["))]
    return useful[0] if useful else (lines[0] if lines else type(error).__name__)


def _forward(analyzer: Any, arrays: Sequence[np.ndarray]) -> Exception | dict:
    """Run the forward pass call by call; the error for the first call that fails."""
    values: dict[int, Any] = dict(zip(analyzer.graph.inputs,
                                      (tf.constant(a) for a in arrays)))
    shapes = ", ".join(str(a.shape) for a in arrays)
    for step, _ in analyzer._steps:
        call = step.call
        inputs = [values[k] for k in call.inputs]
        received = ", ".join(str(tuple(x.shape)) for x in inputs)
        try:
            outputs = step.forward(inputs)
        except (tf.errors.OpError, ValueError) as error:
            return _too_small(call, received, shapes, f"TensorFlow says: {_tensorflow_says(error)}")
        bad = sum(_nonfinite(o) for o in outputs)
        if bad:
            size = sum(int(np.prod(o.shape)) for o in outputs)
            return NumericalError(
                f"the forward pass overflows float32 at layer {call.description}: {bad} of "
                f"{size} output values are infinite or NaN, from an input of shape {received} "
                f"whose largest magnitude is {_largest([np.asarray(x) for x in inputs]):.3g} "
                f"(the model input's is {_largest(arrays):.3g}); scale the input down")
        values.update(zip(call.outputs, outputs))
    return values


def _backward(analyzer: Any, arrays: Sequence[np.ndarray], chosen: np.ndarray
              ) -> Exception | None:
    """Run the relevance pass eagerly (``chosen``: ``[batch]`` or ``[batch, K]``); the
    error for the first call whose relevance is not finite."""
    found: list[Exception] = []

    def inspect(step: Any, rule: Any, lower: Sequence[Any]) -> None:
        bad = sum(_nonfinite(r) for r in lower)
        if bad and not found:
            box = (f"; its box {rule!r} is far wider than the values explained"
                   if type(rule).__name__ == "ZBox" else "")
            found.append(NumericalError(
                f"relevance is not finite below layer {step.call.description} under "
                f"{rule!r}: {bad} values are infinite or NaN, because the rule's "
                f"denominators overflow float32{box} (the model input's largest magnitude "
                f"is {_largest(arrays):.3g}); use inputs or box bounds of a sensible scale"))

    analyzer._relevance_graph(tuple(tf.constant(a) for a in arrays), tf.constant(chosen),
                              inspect=inspect)
    return found[0] if found else None


def _neuron_error(analyzer: Any, values: dict, chosen: np.ndarray) -> Exception | None:
    logits = values[analyzer._explained]
    count = int(np.prod(logits.shape[1:]))
    if chosen.size and int(chosen.max()) >= count:
        return ValueError(f"neuron index out of range: got {chosen.tolist()}, the explained "
                          f"output has {count} neurons for inputs of this shape")
    return None


def diagnose(analyzer: Any, arrays: Sequence[np.ndarray], chosen: np.ndarray,
             error: tf.errors.OpError | None = None) -> Exception:
    """The error to raise for a failed explanation of ``arrays`` (already domain-checked).

    ``error`` is TensorFlow's error if the compiled function raised one; otherwise its
    result held non-finite values."""
    found = _broken_weights(analyzer)
    if found is None:
        forward = _forward(analyzer, arrays)
        found = forward if isinstance(forward, Exception) else _neuron_error(
            analyzer, forward, chosen)
    if found is None and error is None:
        found = _backward(analyzer, arrays, chosen)
    if found is not None:
        return found
    if error is not None:
        return RuntimeError(f"explaining failed in TensorFlow: {_tensorflow_says(error)}")
    return NumericalError("the explanation holds NaN or infinite values; no single layer "
                          "could be blamed")
