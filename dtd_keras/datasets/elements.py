"""What one element of the data is: ``inputs`` or ``(inputs, labels)``, and whether its
inputs can be a model's (real numbers, one sample or a batch of the model input's shape).

Shared by the sources of :mod:`.sources`; every check here runs before a store is written.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = ["as_float32", "check_dtype", "check_sample_shapes", "class_labels", "is_batched",
           "split_element"]


def split_element(element: Any, n_inputs: int) -> tuple[list[Any], Any]:
    """``inputs`` or ``(inputs, labels[, weights])`` → (list of inputs, labels or None)."""
    if isinstance(element, dict):
        raise TypeError("data elements that are dicts are not supported; give inputs or "
                        "(inputs, labels) tuples (e.g. dataset.map(lambda d: (d['image'], "
                        "d['label'])))")
    if not isinstance(element, (tuple, list)):
        if n_inputs != 1:
            raise ValueError(f"the model has {n_inputs} inputs; give a tuple of {n_inputs} "
                             "arrays, or ((x_1, …), labels)")
        return [element], None
    parts = list(element)
    if not parts:
        raise ValueError("data elements are empty tuples")
    if isinstance(parts[0], (tuple, list)):
        inputs, rest = list(parts[0]), parts[1:]
    elif n_inputs == 1:
        inputs, rest = [parts[0]], parts[1:]
    else:
        inputs, rest = parts, []
    if len(inputs) != n_inputs or len(rest) > 2:
        raise ValueError(f"cannot read data elements made of {len(parts)} parts for a model "
                         f"with {n_inputs} input(s); give inputs or (inputs, labels), where "
                         "inputs is an array or, for several model inputs, a tuple of arrays")
    return inputs, (rest[0] if rest else None)


def class_labels(labels: Any, count: int) -> tuple[np.ndarray | None, str]:
    """Integer class labels of shape ``(count,)`` (``(count, 1)`` is flattened), or None
    and the reason why not."""
    if labels is None:
        return None, "the data has no labels; give (inputs, labels)"
    array = np.asarray(labels)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if not np.issubdtype(array.dtype, np.integer) or array.shape != (count,):
        return None, (f"the labels are {array.dtype} of shape {array.shape[1:]} per sample, "
                      "not integer class indices (one-hot? give np.argmax(y, axis=-1))")
    return array.astype(np.int64), ""


def check_dtype(dtype: Any, what: str) -> None:
    """Refuse complex and non-numeric inputs (as ``analyze`` does), instead of a silent
    cast to the real part."""
    dtype = np.dtype(getattr(dtype, "as_numpy_dtype", dtype))
    if np.issubdtype(dtype, np.complexfloating):
        raise ValueError(f"{what} holds complex numbers ({dtype}); models take real "
                         "numbers: pass its real part (x.real) or magnitude (np.abs(x))")
    if not (np.issubdtype(dtype, np.number) or dtype == np.bool_):
        raise ValueError(f"{what} holds {dtype} values, not numbers")


def as_float32(array: Any, what: str) -> np.ndarray:
    """``array`` as a contiguous float32 numpy array (complex and non-numbers refused)."""
    array = np.asarray(array)
    check_dtype(array.dtype, what)
    return np.ascontiguousarray(array, dtype=np.float32)


def is_batched(spec_shapes: Iterable[tuple], model_shapes: Sequence[tuple]) -> bool:
    """True when the elements are batches (rank of the model input), False when samples."""
    ranks = set()
    for got, want in zip(spec_shapes, model_shapes):
        if len(got) == len(want):
            ranks.add(True)
        elif len(got) == len(want) - 1:
            ranks.add(False)
        else:
            raise ValueError(f"data elements of shape {tuple(got)} fit neither one sample nor "
                             f"a batch of the model input {('batch', *want[1:])}")
    if len(ranks) != 1:
        raise ValueError("some inputs are batched and some are not")
    return ranks.pop()


def check_sample_shapes(sample_shapes: Iterable[tuple], model_shapes: Sequence[tuple]
                        ) -> None:
    """Refuse samples whose shape the model input cannot take (also for 0 samples, which
    are never explained and so never checked by the analyzer)."""
    for i, (got, want) in enumerate(zip(sample_shapes, model_shapes)):
        got = tuple(got)
        if len(got) != len(want) - 1 or any(
                g is not None and w is not None and int(g) != int(w)
                for g, w in zip(got, want[1:])):
            raise ValueError(f"input {i}: samples of shape {got} do not fit the model input "
                             f"{('batch', *want[1:])}")
