"""The report's optional sections: ``dk.evaluate`` results and concept reference samples,
and :func:`attach`, which stores evaluation results with a results store.

Attachments live in ``<store>/attachments/<name>.json`` (written atomically). A results
store counts that folder as its own (``analyze_dataset(..., overwrite=True)`` removes it
with the results it described; resuming and the lost-chunk checks ignore it).
"""

from __future__ import annotations

import datetime
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .tables import clean, write_atomic
from .thumbnails import crop_pixels, heatmap_pixels, to_maps, write_pngs

__all__ = ["ATTACHMENTS", "as_list", "attach", "attachments", "concept_sections",
           "evaluation_sections", "load_concepts"]

ATTACHMENTS = "attachments"
_FORMAT = "dtd_keras.attachment"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def _to_dict(result: Any, what: str) -> dict:
    to_dict = getattr(result, "to_dict", None)
    if not callable(to_dict):
        raise TypeError(f"{what}: expected a dk.evaluate result (PixelFlipping, "
                        f"Randomization, TokenDeletion, Continuity, Summary: an object with "
                        f"to_dict()), got {type(result).__name__}")
    return clean(to_dict())


def attach(store: str | os.PathLike, result: Any, name: str | None = None) -> Path:
    """Store a ``dk.evaluate`` result with the results store ``store``, so that
    :func:`dtd_keras.report` (and ``dtd-keras report``) shows it.

    ``name`` (letters, digits, ``_ . -``; default: the result's class name in lower case)
    names the file ``<store>/attachments/<name>.json``; attaching again under the same
    name replaces it. Returns that path.
    """
    from ..datasets.store import is_store

    path = Path(store)
    if not is_store(path):
        raise ValueError(f"{path} is not a dtd_keras results store (dk.analyze_dataset "
                         "writes one); attach evaluation results to a store")
    data = _to_dict(result, "attach")
    kind = type(result).__name__
    name = kind.lower() if name is None else str(name)
    if not _NAME.fullmatch(name):
        raise ValueError(f"attachment name {name!r}: use letters, digits, '_', '.' and '-' "
                         "(starting with a letter or digit)")
    folder = path / ATTACHMENTS
    folder.mkdir(exist_ok=True)
    record = {"format": _FORMAT, "version": 1, "kind": kind, "name": name,
              "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
              "data": data}
    target = folder / f"{name}.json"
    write_atomic(target, json.dumps(record, allow_nan=False, default=str))
    return target


def attachments(store: str | os.PathLike) -> list[dict]:
    """The attachments of ``store`` (sorted by name): ``{"kind", "name", "created",
    "data"}`` each; files that are not attachments are skipped."""
    folder = Path(store) / ATTACHMENTS
    found = []
    for file in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            record = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and record.get("format") == _FORMAT:
            found.append(record)
    return found


def as_list(given: Any, what: str) -> list:
    """``concepts=`` / ``evaluations=`` as a list: one object (or one path, or one
    attachment record) is a list of one; ``None`` is none."""
    if given is None:
        return []
    if (isinstance(given, (str, os.PathLike, dict)) or callable(getattr(given, "to_dict", None))
            or hasattr(given, "channels")):
        return [given]
    try:
        return list(given)
    except TypeError:
        raise TypeError(f"{what}: expected one result or a list of them, got "
                        f"{type(given).__name__}") from None


# ------------------------------------------------------------------- evaluations
_TITLES = {
    "PixelFlipping": ("Pixel flipping (AOPC)", "patches removed"),
    "TokenDeletion": ("Token deletion (AOPC)", "tokens replaced"),
    "Randomization": ("Model randomisation (cascading, top layer first)",
                      "layers randomised (top first)"),
    "Continuity": ("Continuity", ""),
    "Summary": ("Conservation and positivity (seed section 3)", ""),
}


def _numbers(data: dict) -> dict:
    return {k: v for k, v in data.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) or v is None}


def _evaluation(kind: str, data: dict, name: str | None) -> dict:
    title, x_label = _TITLES.get(kind, (kind, ""))
    series: list[dict] = []
    y_label = ""
    numbers = _numbers(data)
    if kind in ("PixelFlipping", "TokenDeletion") and "curve" in data:
        steps = list(range(len(data["curve"])))
        series = [{"label": "most relevant first", "x": steps, "y": data["curve"]},
                  {"label": "random order", "x": steps, "y": data.get("random_curve", [])}]
        numbers = {"AOPC": data.get("aopc"), "AOPC random": data.get("aopc_random"),
                   **{k: v for k, v in numbers.items() if k not in ("aopc", "aopc_random")}}
        y_label = "explained logit (mean)"
    elif kind == "Randomization" and "layers" in data:
        layers = list(data["layers"])
        series = [{"label": label, "x": layers, "y": data.get(key, [])}
                  for key, label in (("similarity", "Spearman |R|"),
                                     ("spearman_signed", "Spearman R"), ("ssim", "SSIM |R|"))]
        y_label = "similarity to the trained model"
    if name and name != kind.lower():
        title = f"{title}: {name}"
    return {"kind": kind, "title": title, "x_label": x_label, "y_label": y_label,
            "series": series, "numbers": numbers}


def evaluation_sections(stored: Iterable[dict], given: Iterable[Any]) -> list[dict]:
    """``DTD_REPORT.evaluations``: the stored attachments, then the results given (each a
    ``dk.evaluate`` result, or an attachment record as :func:`attachments` returns)."""
    found = [_evaluation(r["kind"], r.get("data") or {}, r.get("name")) for r in stored]
    for i, item in enumerate(given):
        if isinstance(item, dict) and "kind" in item and "data" in item:
            found.append(_evaluation(str(item["kind"]), clean(item["data"]), item.get("name")))
        else:
            found.append(_evaluation(type(item).__name__, _to_dict(item, f"evaluations[{i}]"),
                                     None))
    return found


# ------------------------------------------------------------------- concepts
_CONCEPT_ATTRIBUTES = ("layer", "method", "channels", "indices", "scores", "crops")


def _load_concepts(item: Any, i: int) -> Any:
    if not isinstance(item, (str, os.PathLike)):
        return item
    from .._tensorflow import import_tensorflow

    import_tensorflow()  # before dtd_keras.concepts (it needs TensorFlow): start-up lines quiet
    from ..concepts import load_reference_samples

    return load_reference_samples(item)


def load_concepts(concepts: Iterable[Any]) -> list[Any]:
    """The reference samples of ``concepts=`` (paths loaded), each checked to have what the
    report shows; ``TypeError`` (or the loader's error) naming the item otherwise."""
    found = []
    for i, item in enumerate(concepts):
        samples = _load_concepts(item, i)
        missing = [a for a in _CONCEPT_ATTRIBUTES if not hasattr(samples, a)]
        if missing:
            raise TypeError(f"concepts[{i}] ({type(samples).__name__}) lacks {missing}: "
                            "expected dk.concepts.reference_samples' result")
        found.append(samples)
    return found


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "layer"


def concept_sections(concepts: Iterable[Any], out: Path, size: int,
                     value_range: tuple[float, float] | None = None) -> list[dict]:
    """``DTD_REPORT.concepts``: for each reference-samples object (``dk.concepts.
    reference_samples``' result, as :func:`load_concepts` gives), its channels' top samples
    with their crops written to ``out/concepts/<layer>/<channel>-<j>.png`` (the crops hold
    the analyzer's input values, as the data reached the model: for an image folder after
    its pixel range, not the files' pixels; drawn on the report inputs' ``value_range``,
    read the same way, when known, else each crop stretched by itself) and, when the object
    has ``heatmaps`` (the conditional relevance inside each crop), those to
    ``…/<channel>-<j>-heatmap.png``. Entries that are no reference sample (``found``
    False; without ``found``: index < 0 or score 0) are left out, and such a channel gets
    a ``note`` ("no relevance on any sample", "nonzero relevance on only 2 of k=4
    samples"; null when it has all ``k``)."""
    found: list[dict] = []
    used: set[str] = set()
    for samples in concepts:
        layer = str(samples.layer)
        slug = base = _slug(layer)
        if slug in used:
            slug = _slug(f"{base}-{samples.method}")
        number = 2
        while slug in used:
            slug, number = f"{base}-{number}", number + 1
        used.add(slug)
        folder = out / "concepts" / slug
        folder.mkdir(parents=True, exist_ok=True)
        indices, scores = np.asarray(samples.indices), np.asarray(samples.scores)
        real = getattr(samples, "found", None)
        real = (indices >= 0) & (scores != 0) if real is None else np.asarray(real, bool)
        what = "activation" if samples.method == "activation" else "relevance"
        channels = []
        maps = getattr(samples, "heatmaps", None)
        for c, channel in enumerate(np.asarray(samples.channels).tolist()):
            shown = [j for j in range(len(samples.crops[c])) if real[c, j]]
            paths = [folder / f"{channel}-{j}.png" for j in shown]
            write_pngs([crop_pixels(samples.crops[c][j], size, value_range) for j in shown],
                       paths)
            heat = [None] * len(shown)
            if maps is not None:
                heat = [folder / f"{channel}-{j}-heatmap.png" for j in shown]
                write_pngs([heatmap_pixels(to_maps(np.asarray(maps[c][j], np.float32)[None]),
                                           size)[0] for j in shown], heat)
            k = real.shape[1]
            note = (None if len(shown) == k else f"no {what} on any sample" if not shown
                    else f"nonzero {what} on only {len(shown)} of k={k} samples")
            channels.append({"channel": channel, "note": note, "samples": [
                {"image": p.relative_to(out).as_posix(), "index": int(indices[c, j]),
                 "score": float(scores[c, j]), "found": True,
                 "heatmap": None if h is None else h.relative_to(out).as_posix()}
                for j, p, h in zip(shown, paths, heat)]})
        found.append({"layer": layer, "method": str(samples.method), "channels": channels})
    return found
