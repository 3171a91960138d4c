"""Canonizers: rewrite the analyzer's view of the graph into an equivalent one whose
layers the rules understand.

Like zennit's canonizers, but nothing is changed in the model and nothing needs undoing:
the rewrite lives only in the analyzer's list of calls, and the folded weights are
computed from the live variables at every call, so training after building the
analyzer is still explained correctly.

:func:`fold_batchnorm` merges each BatchNormalization that directly follows a linear
layer (Dense, Conv, DepthwiseConv, SeparableConv, ConvTranspose with linear activation,
whose output nothing else reads, normalising that layer's channel axis) into that layer.

:func:`fold_padding` merges each ZeroPadding layer whose only reader is a linear layer
into that layer, which then pads its own input, as a conv's ``padding="same"`` does:
the padded zeros are constants, not inputs, so no rule hands them relevance (the w² and
flat rules otherwise would, and the padding would drop it).

:func:`strip_head` takes a softmax/sigmoid off the model's output: relevance explains the
logit below it.
"""

from __future__ import annotations

import dataclasses

import keras

from .graph import Call, Graph

__all__ = ["canonize", "fold_batchnorm", "fold_padding", "strip_head"]

FOLDABLE = tuple(getattr(keras.layers, n) for n in (
    "Dense", "Conv1D", "Conv2D", "Conv3D", "DepthwiseConv1D", "DepthwiseConv2D",
    "SeparableConv1D", "SeparableConv2D", "Conv1DTranspose", "Conv2DTranspose",
    "Conv3DTranspose") if hasattr(keras.layers, n))


def _channel_axis(layer: keras.layers.Layer, rank: int) -> int:
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        return 1
    return rank - 1


def _foldable(linear: Call, bn: Call, graph: Graph, calls: list[Call]) -> bool:
    layer = linear.operation
    if type(layer) not in FOLDABLE:
        return False
    if getattr(layer.activation, "__name__", "linear") != "linear":
        return False
    readers = [c for c in calls if linear.outputs[0] in c.inputs]
    if readers != [bn]:
        return False
    rank = len(graph.shapes[linear.outputs[0]])
    axis = bn.operation.axis
    if not isinstance(axis, int):
        return False
    return axis % rank == _channel_axis(layer, rank)


def fold_batchnorm(graph: Graph, calls: list[Call]) -> list[Call]:
    """``calls`` with every foldable (linear, BatchNormalization) pair merged into one."""
    by_output = {c.outputs[0]: c for c in calls if len(c.outputs) == 1}
    merged: dict[int, Call] = {}
    dropped: set[int] = set()
    for bn in calls:
        if type(bn.operation) is not keras.layers.BatchNormalization or len(bn.inputs) != 1:
            continue
        linear = by_output.get(bn.inputs[0])
        if linear is None or id(linear) in merged or not _foldable(linear, bn, graph, calls):
            continue
        merged[id(linear)] = dataclasses.replace(linear, outputs=bn.outputs,
                                                 folded=bn.operation)
        dropped.add(id(bn))
    return [merged.get(id(c), c) for c in calls if id(c) not in dropped]


PADDING = tuple(getattr(keras.layers, n) for n in ("ZeroPadding1D", "ZeroPadding2D",
                                                    "ZeroPadding3D"))


def fold_padding(graph: Graph, calls: list[Call]) -> list[Call]:
    """``calls`` with every ZeroPadding read only by one linear layer merged into it."""
    linear_types = FOLDABLE + tuple(getattr(keras.layers, n) for n in (
        "AveragePooling1D", "AveragePooling2D", "AveragePooling3D"))
    replaced: dict[int, Call] = {}
    dropped: set[int] = set()
    for pad in calls:
        if type(pad.operation) not in PADDING:
            continue
        readers = [c for c in calls if pad.outputs[0] in c.inputs]
        if len(readers) != 1 or len(readers[0].inputs) != 1:
            continue
        reader = replaced.get(id(readers[0]), readers[0])
        if type(reader.operation) not in linear_types or reader.padding is not None:
            continue
        replaced[id(readers[0])] = dataclasses.replace(reader, inputs=pad.inputs,
                                                       padding=pad.operation)
        dropped.add(id(pad))
    return [replaced.get(id(c), c) for c in calls if id(c) not in dropped]


def canonize(graph: Graph, calls: list[Call]) -> list[Call]:
    """All canonizers, in order: BatchNorm folding, then padding folding."""
    return fold_padding(graph, fold_batchnorm(graph, calls))


def _head_layer(call: Call) -> bool:
    """A softmax/sigmoid layer (not fused into another layer)."""
    from ..layers import HEAD_ACTIVATIONS, activation_name

    layer = call.operation
    if isinstance(layer, keras.layers.Softmax):
        return True
    return isinstance(layer, keras.layers.Activation) and (
        activation_name(layer.activation) in HEAD_ACTIVATIONS)


def strip_head(calls: list[Call], output: int) -> tuple[list[Call], int, list]:
    """``(calls, explained, heads)``: ``calls`` without a softmax/sigmoid layer producing
    ``output``, the tensor whose value is explained (the logit below it) and the stripped
    head functions in order (a softmax/sigmoid fused into the last layer as its
    ``activation`` first; that layer itself computes the logit when it is the head)."""
    from ..layers import HEAD_ACTIVATIONS, activation_name

    def producer_of(key: int) -> Call | None:
        return next((c for c in calls if key in c.outputs), None)

    calls, explained, heads = list(calls), output, []
    head = producer_of(output)
    if head is not None and _head_layer(head):
        calls.remove(head)
        heads.append(head.operation)
        explained = head.inputs[0]
        head = producer_of(explained)
    activation = getattr(head.operation, "activation", None) if head is not None else None
    if activation is not None and activation_name(activation) in HEAD_ACTIVATIONS:
        heads.insert(0, activation)
    return calls, explained, heads
