"""Token inputs: which model input is the token input, and checks of what reaches an
embedding before anything runs.

The *token input* is the model input whose embedding lookup gives the token relevance
(the relevance map of that input). By default it is the integer input read directly by
the embedding with the largest vocabulary (BERT: ``token_ids``, not ``segment_ids``);
``token_input=`` (an input's name or index) chooses it. Other embeddings (segment ids,
positions) report their shares separately (``Explanation.embeddings``).

:func:`check_token_values` runs the model's integer branch (ids, positions computed with
``keras.ops``, masks) eagerly, which costs next to nothing, and refuses ids outside an
embedding's table, non-integer values fed to an embedding, sequences longer than a
position table and masks (integer inputs beside the token ids) shaped unlike the ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

__all__ = ["check_token_values", "choose_token_input", "empty_maps", "ragged_error"]


def ragged_error(item: Any, what: str) -> ValueError:
    """The error for a ragged batch (sequences of unequal lengths)."""
    lengths = None
    if isinstance(item, (list, tuple)):
        try:
            lengths = [len(s) for s in item]
        except TypeError:
            lengths = None
    shown = f" (lengths {sorted(set(lengths))[:8]})" if lengths else ""
    return ValueError(f"{what} is ragged: its sequences have unequal lengths{shown}; pad "
                      "every sequence to one length (and pass a padding mask, or use id 0 "
                      "with Embedding(mask_zero=True)) first")


def _input_index(graph: Any, token_input: int | str) -> int:
    names = list(graph.input_names)
    if isinstance(token_input, str):
        if token_input not in names:
            raise ValueError(f"token_input={token_input!r} names no model input; the inputs "
                             f"are {names}")
        return names.index(token_input)
    if isinstance(token_input, bool) or not isinstance(token_input, int):
        raise TypeError(f"token_input must be an input's name or index, got {token_input!r}")
    if not 0 <= token_input < len(names):
        raise ValueError(f"token_input={token_input} is out of range: the model has "
                         f"{len(names)} inputs {names}")
    return token_input


def choose_token_input(graph: Any, steps: Sequence[Any], token_input: int | str | None
                       ) -> int | None:
    """The graph key of the token input (None: the model has none), after marking the
    lookups that read it (``is_token``). See the module docstring."""
    from ..layers.embedding import EmbeddingLookup

    direct = [s for s in steps if isinstance(s, EmbeddingLookup) and s.ids_key in graph.inputs]
    if token_input is not None:
        index = _input_index(graph, token_input)
        key = graph.inputs[index]
        if not any(s.ids_key == key for s in direct):
            read = sorted({graph.input_names[graph.inputs.index(s.ids_key)] for s in direct})
            raise ValueError(
                f"token_input={token_input!r}: input '{graph.input_names[index]}' is read by "
                f"no embedding directly; the inputs read by an embedding are {read}")
    elif direct:
        key = max(direct, key=lambda s: s.vocabulary_size).ids_key  # first on ties
    else:
        return None
    for step in direct:
        step.is_token = step.ids_key == key
    return key


def _first(where: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(where)[0])


def _check_ids(step: Any, ids: np.ndarray, graph: Any, shapes: str) -> None:
    key = step.ids_key
    size = step.vocabulary_size
    where = (f"input {graph.inputs.index(key)} ('{graph.input_names[graph.inputs.index(key)]}')"
             if key in graph.inputs else None)
    layer = f"embedding {step.call.description}"
    if np.issubdtype(ids.dtype, np.floating):
        fractional = ids != np.round(ids)
        if np.any(fractional):
            at = _first(fractional)
            raise ValueError(
                f"{where or 'a tensor'} feeds {layer} float values that are not token ids: "
                f"{float(ids[at])} at position {at}; pass integer ids (an int32 keras.Input)")
    outside = (ids < 0) | (ids >= size)
    if not np.any(outside):
        return
    at = _first(outside)
    if where is not None:
        raise ValueError(
            f"{where} holds token id {int(ids[at])} at position {at}, outside the vocabulary "
            f"of {layer}: it has {size} rows (input_dim), so ids must lie in 0..{size - 1}")
    raise ValueError(
        f"{layer} receives id {int(ids[at])} at position {at}, computed inside the model from "
        f"inputs of shape {shapes} (e.g. a position), but its table has {size} rows "
        f"(input_dim={size}): the sequence is longer than this position table allows; pass "
        f"sequences of at most {size} positions")


def _check_masks(graph: Any, arrays: Sequence[np.ndarray], token_key: int) -> None:
    """Integer inputs beside the token ids declared like them (segment ids, padding
    masks) must be shaped like them."""
    index = graph.inputs.index(token_key)
    tokens = arrays[index]
    declared = graph.shapes[token_key]
    for i, (key, array) in enumerate(zip(graph.inputs, arrays)):
        if key == token_key or graph.is_float(key):
            continue
        shape = graph.shapes[key]
        alike = len(shape) == len(declared) and all(
            a is None or b is None or a == b for a, b in zip(shape[1:], declared[1:]))
        if alike and array.shape != tokens.shape:
            raise ValueError(
                f"input {i} ('{graph.input_names[i]}') has shape {array.shape}, but the token "
                f"ids (input {index}, '{graph.input_names[index]}') have shape {tokens.shape}: "
                "a mask or segment ids needs one value per token")


def _symbolic_shapes(graph: Any, shapes: Sequence[tuple]) -> dict[int, tuple]:
    """Every tensor's shape for model inputs of ``shapes`` (Keras' shape inference call
    by call; stops quietly where it is unavailable)."""
    import keras

    values: dict[int, Any] = {k: keras.KerasTensor(tuple(s), graph.dtypes.get(k, "float32"))
                              for k, s in zip(graph.inputs, shapes)}
    for call in graph.calls:
        try:
            inputs = [values[k] for k in call.inputs]
            args, kwargs = call.arguments(inputs)
            outputs = keras.tree.flatten(call.operation.compute_output_spec(*args, **kwargs))
        except Exception:  # noqa: BLE001 - shape inference unavailable
            break
        values.update(zip(call.outputs, outputs))
    return {k: tuple(v.shape) for k, v in values.items()}


def _check_positions(analyzer: Any, arrays: Sequence[np.ndarray], shown: str) -> None:
    from ..layers.embedding import PositionTable

    tables = [s for s, _ in analyzer._steps if isinstance(s, PositionTable)]
    if not tables:
        return
    graph = analyzer.graph
    static = all(d is not None for k in graph.inputs for d in graph.shapes[k][1:])
    checked = analyzer.__dict__.setdefault("_position_lengths_checked", set())
    if static or tuple(a.shape[1:] for a in arrays) in checked:
        return  # fixed shapes: the model's own shapes (Keras checked them); or seen before
    shapes = _symbolic_shapes(graph, [a.shape for a in arrays])
    for step in tables:
        length = step.sequence_length([shapes.get(k, ()) for k in step.call.inputs])
        if length is not None and length > step.table_length:
            raise ValueError(
                f"position table {step.call.description} holds {step.table_length} positions, "
                f"but inputs of shape {shown} give it a sequence of {length}: the sequence "
                f"is longer than the position table; pass at most {step.table_length} tokens")
    checked.add(tuple(a.shape[1:] for a in arrays))


def check_token_values(analyzer: Any, arrays: Sequence[np.ndarray]) -> None:
    """Refuse inputs that would give a wrong map at an embedding (see the module
    docstring); a ``ValueError`` naming the input, the embedding and the position."""
    from ..layers.base import NoRelevance
    from ..layers.embedding import EmbeddingLookup

    graph = analyzer.graph
    lookups = [s for s, _ in analyzer._steps if isinstance(s, EmbeddingLookup)]
    shown = ", ".join(str(a.shape) for a in arrays)
    if analyzer.token_key is not None:
        _check_masks(graph, arrays, analyzer.token_key)
    _check_positions(analyzer, arrays, shown)
    if not lookups:
        return
    known: dict[int, Any] = {k: a for k, a in zip(graph.inputs, arrays)
                             if not graph.is_float(k)}
    for step in lookups:  # float model inputs read directly by an embedding
        if step.ids_key in graph.inputs and graph.is_float(step.ids_key):
            known[step.ids_key] = arrays[graph.inputs.index(step.ids_key)]
    wanted = {s.ids_key for s in lookups}
    if wanted - set(known):  # ids computed inside the model: run its integer branch
        for step, _ in analyzer._steps:
            if not isinstance(step, NoRelevance) or not all(k in known for k in step.call.inputs):
                continue
            outputs = step.forward([tf.constant(known[k]) for k in step.call.inputs])
            known.update(zip(step.call.outputs, outputs))
    for step in lookups:
        if step.ids_key in known:
            _check_ids(step, np.asarray(known[step.ids_key]), graph, shown)


def empty_maps(analyzer: Any, arrays: Sequence[np.ndarray], lead: tuple) -> list[np.ndarray]:
    """All-zero maps, then shares, as the compiled function would return them for an
    empty batch or no neurons (``lead``: the batch axis, and the neuron axis for several
    neurons per sample)."""
    graph = analyzer.graph
    features = analyzer.token_relevance == "features"
    steps = [s for s, _ in analyzer._steps if getattr(s, "reports_share", False)]

    def dim(step: Any) -> tuple:
        return (graph.shapes[step.call.outputs[0]][-1],) if features else ()

    maps = []
    for key, array in zip(graph.inputs, arrays):
        token = [s for s in steps if s.is_token and s.ids_key == key]
        maps.append(np.zeros((*lead, *array.shape[1:], *(dim(token[0]) if token else ())),
                             np.float32))
    seq = {len(a.shape): a.shape for a in arrays}
    for step in steps:
        if step.share_name in analyzer.embedding_names:
            shape = graph.shapes[step.call.outputs[0]][1:-1]
            known = seq.get(len(shape) + 1, (0, *shape))[1:]
            shape = tuple(k if d is None else d for d, k in zip(shape, known))
            maps.append(np.zeros((*lead, *shape, *dim(step)), np.float32))
    return maps
