"""Checking what users pass as model inputs: count, dtype, shape, finiteness, domain."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .tokens import ragged_error

__all__ = ["check_inputs"]


def _as_array(item: Any, what: str) -> np.ndarray:
    """``item`` as a numpy array; a named error for a ragged batch."""
    if hasattr(item, "numpy") and not isinstance(item, np.ndarray):
        item = item.numpy()  # a tf.Tensor
    try:
        array = np.asarray(item)
    except ValueError:  # numpy refuses inhomogeneous nested lists
        raise ragged_error(item, what) from None
    if array.dtype == object:
        raise ragged_error(item, what)
    return array


def _as_float32(item: Any, what: str) -> np.ndarray:
    array = _as_array(item, what)
    if np.iscomplexobj(array):
        raise ValueError(f"{what} holds complex numbers ({array.dtype}); models take real "
                         "numbers: pass its real part (x.real) or magnitude (np.abs(x))")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ValueError(f"{what} holds {array.dtype} values, not numbers")
    return array.astype(np.float32, copy=False)


def _as_integers(item: Any, what: str, dtype: str) -> np.ndarray:
    """An integer/boolean model input (token ids, a mask) as ``dtype``: integer values
    only, never floats silently truncated."""
    array = _as_array(item, what)
    if not (np.issubdtype(array.dtype, np.integer) or array.dtype == bool):
        raise ValueError(f"{what} takes {dtype} values (token ids, positions or a mask), got "
                         f"{array.dtype}: float inputs are not ids; pass integers")
    return array.astype(dtype, copy=False)


def check_inputs(graph: Any, domains: Sequence[Any], x: Any) -> list[np.ndarray]:
    """``x`` (an array, a list of arrays in the model's input order, or a dict keyed by input
    names) validated against the model ``graph`` and the declared ``domains``: one
    array per model input, float32 (or the input's integer/boolean dtype, for token ids
    and masks). Errors name the input and what is wrong."""
    n = len(graph.inputs)
    if isinstance(x, Mapping):  # {input name: array}, as keras-hub models take them
        names = list(graph.input_names)
        missing = [k for k in names if k not in x]
        unknown = sorted(str(k) for k in x if k not in names)
        if missing or unknown:
            raise ValueError(f"the model's inputs are {names}; the dict given "
                             + (f"lacks {missing}" if missing else "")
                             + (" and " if missing and unknown else "")
                             + (f"has unknown keys {unknown}" if unknown else ""))
        x = [x[k] for k in names] if n > 1 else x[names[0]]
    items = list(x) if (n > 1 and isinstance(x, (list, tuple))) else [x]
    if len(items) != n:
        raise ValueError(f"the model has {n} inputs; pass a list of {n} arrays, "
                         f"got {len(items)}")
    arrays = []
    for i, (key, name, item, domain) in enumerate(zip(graph.inputs, graph.input_names, items,
                                                     domains)):
        what = f"input {i} ('{name}')"
        integer = not graph.is_float(key) if hasattr(graph, "is_float") else False
        array = (_as_integers(item, what, graph.dtypes[key]) if integer
                 else _as_float32(item, what))
        expected = graph.shapes[key]
        ok = array.ndim == len(expected) and all(
            e is None or e == a for e, a in zip(expected[1:], array.shape[1:]))
        if not ok:
            raise ValueError(f"{what} has shape {array.shape}; the model expects "
                             f"{('batch',) + tuple(expected[1:])}")
        if integer:
            arrays.append(array)
            continue
        if not np.all(np.isfinite(array)):
            bad = np.count_nonzero(~np.isfinite(array))
            raise ValueError(f"{what} contains {bad} NaN or infinite values")
        domain.check(array, what)
        arrays.append(array)
    sizes = {a.shape[0] for a in arrays}
    if len(sizes) != 1:
        raise ValueError(f"inputs have different batch sizes: {sorted(sizes)}")
    return arrays
