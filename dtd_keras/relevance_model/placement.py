"""Where min-max relevance models go: the layers to model, checks that they can be
modelled, the layer above them (whose relevance is the context), and each model's shape."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..layers.base import LayerRelevance
from ..layers.linear import ConvLinear, DenseLinear
from .layer import MinMaxRelevance

__all__ = ["check_layer", "context_size", "default_layers", "make_model", "upper_step"]


def context_size(shape: Sequence[Any]) -> int:
    """The number of context relevances: one per neuron of the layer above."""
    return int(np.prod(shape[1:], dtype=np.int64))


def default_layers(producers: dict[int, LayerRelevance], explained: int) -> list[str]:
    """The rule-taking layers feeding the top rule-taking layer through non-rule steps
    (the default layers to model)."""
    head = producers.get(explained)
    while head is not None and not head.needs_rule:
        head = producers.get(head.call.inputs[0]) if head.call.inputs else None
    if head is None:
        return []
    found, frontier = [], list(head.call.inputs)
    while frontier:
        step = producers.get(frontier.pop())
        if step is None:
            continue
        if step.needs_rule:
            found.append(step.call.name)
        else:
            frontier.extend(step.call.inputs)
    return found[::-1]

def check_layer(step: LayerRelevance) -> None:
    what = step.call.description
    if type(step) not in (DenseLinear, ConvLinear):
        raise ValueError(f"MinMaxDTD models Dense and Conv layers; {what} is not one")
    if getattr(step, "activation", None) != "relu":
        raise ValueError(f"MinMaxDTD models ReLU neurons; {what} has activation "
                         f"{getattr(step, 'activation', None)!r}")
    layer = step.layer
    if isinstance(step, ConvLinear):
        if layer.data_format != "channels_last" or layer.groups != 1 or \
                layer.padding == "causal":
            raise ValueError(f"MinMaxDTD supports channels_last, ungrouped, non-causal "
                             f"convolutions; {what} is not one")

def upper_step(step: LayerRelevance, consumers: Any) -> LayerRelevance:
    key, current = step.call.outputs[0], step
    while True:
        readers = consumers(key)
        if len(readers) != 1:
            raise ValueError(
                f"MinMaxDTD needs one path from {current.call.description} to the next "
                f"Dense/Conv layer above (for the context relevance); its output is read "
                f"by {len(readers)} layers")
        current = readers[0]
        if current.needs_rule:
            return current
        key = current.call.outputs[0]

def make_model(step: LayerRelevance, shapes: dict, context: int, pool_size: int, seed: int
           ) -> MinMaxRelevance:
    layer = step.layer
    shape = shapes[step.call.inputs[0]][1:]
    out_shape = shapes[step.call.outputs[0]][1:]
    if isinstance(step, DenseLinear):
        if len(shape) != 1:
            raise ValueError(f"MinMaxDTD models Dense layers on flat inputs; "
                             f"{step.call.description} reads shape {shape}")
        return MinMaxRelevance("dense", out_shape[-1], shape, context, out_shape,
                               pool_size, seed=seed, name=f"minmax_{layer.name}")
    if step.padding is not None:
        shape = tuple(step.padding.compute_output_shape((None, *shape))[1:])
    conv = {"strides": list(layer.strides), "padding": layer.padding,
            "dilation_rate": list(layer.dilation_rate)}
    return MinMaxRelevance("conv", out_shape[-1], shape, context, out_shape,
                           pool_size, kernel_size=layer.kernel_size, conv=conv, seed=seed,
                           name=f"minmax_{layer.name}")
