"""The report's tables: which rows the gallery shows, its columns (``DTD_ITEMS``), the
field list, histograms of the section-3 properties, and writing them as ``window.X = …;``;
also the checked ``class_names`` and the analyzer's one-line description.

A row is one explanation: sample ``i`` (row ``i``), or with ``neuron="all"`` sample ``i``
and class ``k`` (row ``i·K + k``). Row numbers are stable: the rows of samples not done in
a partial store are left out, and their numbers stay free.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["NUMBER_FIELDS", "class_names", "columns", "describe_analyzer", "fields",
           "histograms", "rows", "write_atomic", "write_js"]

NUMBER_FIELDS = (
    ("logit", "explained logit"),
    ("relative_error", "conservation error (relative)"),
    ("negative_fraction", "negative fraction"),
    ("total", "Σ relevance"),
    ("conservation_error", "conservation error (Σ R − logit)"),
    ("negative_mass", "negative relevance (sum)"),
)
"""The number columns of the gallery, in display order: the explained logit and the
section-3 properties (``Explanation.properties()``)."""
_HISTOGRAMS = ("relative_error", "negative_fraction", "logit", "total", "conservation_error",
               "negative_mass")
_BINS = 30


def rows(results: Any) -> np.ndarray:
    """The gallery's row numbers (int64, ascending): every done sample, times K classes
    with ``neuron="all"``."""
    done = np.flatnonzero(results.done).astype(np.int64)
    classes = results.classes
    if classes is None:
        return done
    return (done[:, None] * classes + np.arange(classes)).reshape(-1)


def _per_row(values: np.ndarray, row: np.ndarray, classes: int | None) -> np.ndarray:
    """The per-sample (``(N,)``) or per-sample-and-class (``(N, K)``) array at the rows."""
    if classes is None:
        return values[row]
    if values.ndim == 1:  # per sample only (index, label)
        return values[row // classes]
    return values.reshape(-1)[row]


def _top(logit: np.ndarray, row: np.ndarray, classes: int) -> np.ndarray:
    """Per row of a ``neuron="all"`` store, 1 when its class is the sample's top logit
    (the first, on ties; non-finite logits never are), else 0."""
    finite = np.where(np.isfinite(logit), logit, -np.inf)
    top = np.argmax(finite, axis=1)
    return (top[row // classes] == row % classes).astype(np.int64)


def columns(results: Any, row: np.ndarray) -> dict[str, np.ndarray]:
    """``DTD_ITEMS``' columns: row, index, label (when the store has labels), neuron, top
    (``neuron="all"`` only: 1 for the row that explains the sample's top logit) and the
    number fields, one value per row."""
    classes = results.classes
    out = {"row": row, "index": _per_row(results.index, row, classes)}
    if results.label is not None:
        out["label"] = _per_row(results.label, row, classes)
    out["neuron"] = _per_row(results.neuron, row, classes)
    if classes is not None:
        out["top"] = _top(np.asarray(results.logit, dtype=np.float64), row, classes)
    properties = results.properties
    for key, _ in NUMBER_FIELDS:
        source = results.logit if key == "logit" else properties[key]
        out[key] = _per_row(source, row, classes).astype(np.float64)
    return out


def fields(has_labels: bool, has_top: bool = False) -> list[dict]:
    """``DTD_REPORT.fields``: the sortable and filterable columns, in display order
    (``has_top``: the ``neuron="all"`` column ``top``, whose values 0/1 the page names
    by the field's ``names``)."""
    found = [{"key": "label", "label": "class", "kind": "category"}] if has_labels else []
    found.append({"key": "neuron", "label": "explained neuron", "kind": "category"})
    if has_top:
        found.append({"key": "top", "label": "explains the top logit", "kind": "category",
                      "short": "top logit", "names": {"0": "no", "1": "yes"}})
    return found + [{"key": k, "label": label, "kind": "number"} for k, label in NUMBER_FIELDS]


def histograms(table: dict[str, np.ndarray], bins: int = _BINS,
               counted: str = "samples") -> list[dict]:
    """``DTD_REPORT.histograms``: counts of the finite values of each property over the
    gallery's rows, on ``bins`` equal bins from min to max; ``counted`` names what a row
    is (the y-axis: "samples", or "explanations" when rows are samples × classes)."""
    labels = dict(NUMBER_FIELDS)
    found = []
    for key in _HISTOGRAMS:
        values = table[key][np.isfinite(table[key])]
        if not values.size:
            counts, edges = np.zeros(0, np.int64), np.zeros(0)
        else:
            low, high = float(values.min()), float(values.max())
            if low == high:
                low, high = low - 0.5, high + 0.5
            counts, edges = np.histogram(values, bins=bins, range=(low, high))
        found.append({"key": key, "label": labels[key], "edges": edges.tolist(),
                      "counts": counts.tolist(), "y_label": counted})
    return found


# ------------------------------------------------------------------- JavaScript files
def _number_list(values: np.ndarray) -> str:
    """A JSON list of numbers: integers as such, floats with 7 significant digits,
    NaN and infinities as null."""
    array = np.asarray(values)
    if array.dtype.kind in "iub":
        return "[" + ",".join(map(str, array.astype(np.int64).tolist())) + "]"
    finite = np.isfinite(array)
    text = np.char.mod("%.7g", np.where(finite, array, 0.0))
    text = np.where(finite, text, "null")
    return "[" + ",".join(text.tolist()) + "]"


def clean(value: Any) -> Any:
    """``value`` made JSON-ready: numpy types to Python, NaN and infinities to None."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return clean(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file beside it that is
    renamed into place: a killed run leaves the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def write_js(path: Path, name: str, value: dict | None = None,
             table: dict[str, np.ndarray] | None = None) -> None:
    """Write ``window.<name> = {...};`` to ``path`` (atomically): ``value`` as JSON, or
    ``table``'s columns as JSON lists of numbers."""
    if table is not None:
        body = "{\n" + ",\n".join(f"{json.dumps(key)}: {_number_list(column)}"
                                  for key, column in table.items()) + "\n}"
    else:
        body = json.dumps(clean(value), indent=1, allow_nan=False, ensure_ascii=False)
    write_atomic(path, f"window.{name} = {body};\n")


def class_names(given: Any, classes: int) -> list[str] | None:
    """``class_names`` as one name per class: a sequence of exactly ``classes`` names, or
    a mapping ``{class: name}`` naming some of them (the others keep their numbers)."""
    if given is None:
        return None
    if isinstance(given, Mapping):
        found = [str(c) for c in range(classes)]
        for key, name in given.items():
            if (isinstance(key, bool) or not isinstance(key, (int, np.integer))
                    or not 0 <= key < classes):
                raise ValueError(f"class_names: key {key!r} is not a class number from 0 to "
                                 f"{classes - 1} (the store explains {classes} classes)")
            found[int(key)] = str(name)
        return found
    if isinstance(given, (str, bytes)) or not isinstance(given, Iterable):
        raise TypeError(f"class_names must be a list of names (one per class) or a dict "
                        f"{{class: name}}, got {type(given).__name__}")
    found = [str(name) for name in given]
    if classes and len(found) != classes:
        raise ValueError(f"class_names: {len(found)} names for the {classes} classes the "
                         "store explains; give one name per class, or a dict {class: name} to "
                         "name some of them")
    return found


def describe_analyzer(identity: dict) -> str:
    """A short description of the analyzer from a store identity ("" if unknown)."""
    analyzer = identity.get("analyzer") or {}
    kind = str(analyzer.get("type") or "").rsplit(".", 1)[-1]
    if not kind:
        return ""
    domains = analyzer.get("input_domains") or []
    neuron = (identity.get("arguments") or {}).get("neuron")
    text = f"{kind}({', '.join(map(str, domains))})"
    return f"{text}, neuron={neuron}" if neuron is not None else text
