""":func:`report`: a results store → a static HTML site that opens from disk.

It opens the store, checks everything given, draws the thumbnails of the shards that
:class:`~dtd_keras.reporting.folder.Manifest` says are not kept (and the per-class means),
then writes the data files and copies the page. The folder's layout, its checks and what
a rerun keeps: :mod:`dtd_keras.reporting.folder`.
"""

from __future__ import annotations

import datetime
import os
import shutil
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import tables, thumbnails
from .folder import (
    FORMAT,
    SHARD,
    VERSION,
    Manifest,
    check_out,
    copy_assets,
    digest,
    read_manifest,
    remove_ours,
    shard_states,
)
from .inputs import open_inputs
from .sections import (
    as_list,
    attachments,
    concept_sections,
    evaluation_sections,
    load_concepts,
)

__all__ = ["SHARD", "report"]


# ------------------------------------------------------------------- opening
def _open(results: Any, allow_partial: bool) -> Any:
    from ..datasets import load_results
    from ..datasets.results import Results

    if isinstance(results, Results):
        opened = results
    elif isinstance(results, (str, os.PathLike)):
        from ..datasets.store import is_store

        if not is_store(Path(results)):
            raise ValueError(f"{results} is not a dtd_keras results store (no "
                             "'dtd_keras.dataset' metadata in its zarr.json; "
                             "dk.analyze_dataset writes one)")
        opened = load_results(results, allow_partial=True)
    else:
        raise TypeError(f"results must be dk.load_results' Results or a store path, got "
                        f"{type(results).__name__}")
    if not allow_partial and not opened.complete:
        raise ValueError(f"{opened.path} is incomplete ({int(opened.done.sum())} of "
                         f"{len(opened)} samples done); finish it with analyze_dataset, or "
                         "pass allow_partial=True (--allow-partial) to report the done ones")
    return opened


def _class_keys(results: Any, table: dict[str, np.ndarray]) -> np.ndarray:
    """Per row, the class its mean map averages it into (−1: none): with ``neuron="all"``
    the explained class (only rows that explain the label, when there are labels), else
    the label, else the explained neuron."""
    if results.classes is not None:
        keys = table["neuron"].astype(np.int64)
        if "label" in table:
            keys = np.where(table["label"] == keys, keys, -1)
        return keys
    return (table["label"] if "label" in table else table["neuron"]).astype(np.int64)


# ------------------------------------------------------------------- thumbnails and means
class _Means:
    """Per-class sums of the reduced relevance maps and of the inputs."""

    def __init__(self) -> None:
        self.maps: dict[int, np.ndarray] = {}
        self.inputs: dict[int, np.ndarray] = {}
        self.counts: dict[int, int] = {}

    def add(self, keys: np.ndarray, maps: np.ndarray, images: np.ndarray | None) -> None:
        for key in np.unique(keys[keys >= 0]).tolist():
            pick = keys == key
            self.counts[key] = self.counts.get(key, 0) + int(pick.sum())
            self.maps[key] = self.maps.get(key, 0.0) + maps[pick].sum(axis=0, dtype=np.float64)
            if images is not None:
                self.inputs[key] = self.inputs.get(key, 0.0) + images[pick].sum(
                    axis=0, dtype=np.float64)

    def write(self, out: Path, size: int, names: Sequence[str] | None,
              value_range: Any, group: str) -> list[dict]:
        folder = out / "means"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        found = []
        for key in sorted(self.counts):
            count = self.counts[key]
            heat = folder / f"{key}-heatmap.png"
            thumbnails.write_pngs(thumbnails.heatmap_pixels(
                thumbnails.to_maps(self.maps[key][None] / count), size), [heat])
            picture = None
            if key in self.inputs:
                picture = folder / f"{key}-input.png"
                thumbnails.write_pngs(thumbnails.input_pixels(
                    self.inputs[key][None] / count, size, value_range), [picture])
            name = names[key] if names is not None and key < len(names) else str(key)
            found.append({"class": key, "group": group, "name": name, "count": count,
                          "heatmap": heat.relative_to(out).as_posix(),
                          "input": None if picture is None else picture.relative_to(
                              out).as_posix()})
        return found


def _thumbnails(results: Any, inputs: Any, table: dict[str, np.ndarray], out: Path,
                size: int, todo: set[int], means: _Means | None, value_range: Any,
                progress: bool, on_shard: Any) -> None:
    """Write the thumbnails of the shards in ``todo``; add every shard to ``means``."""
    from tqdm.auto import tqdm

    row = table["row"]
    per = results.classes or 1
    keys = _class_keys(results, table) if means is not None else None
    relevance = results.relevance[0] if isinstance(results.relevance, list) else (
        results.relevance)
    shard_of = row // SHARD
    bounds = np.flatnonzero(np.diff(shard_of)) + 1
    starts, stops = np.r_[0, bounds], np.r_[bounds, len(row)]
    wanted = [(a, b) for a, b in zip(starts.tolist(), stops.tolist())
              if len(row) and (means is not None or int(shard_of[a]) in todo)]
    last_input = -1  # the last sample whose input was drawn (rows ascend)
    for a, b in tqdm(wanted, desc="report", unit="shard", disable=not progress or not wanted):
        shard = int(shard_of[a])
        rows = row[a:b]
        samples = rows // per
        first, last = int(samples[0]), int(samples[-1]) + 1
        block = np.asarray(relevance[first:last])
        if results.classes is not None:
            block = block[samples - first, rows % per]
        else:
            block = block[samples - first]
        maps = thumbnails.to_maps(block)
        images = None
        if inputs is not None:
            images = inputs.read(first, last)[samples - first]
        if shard in todo:
            folder = out / "thumbs" / str(shard)
            folder.mkdir(parents=True, exist_ok=True)
            heat = thumbnails.heatmap_pixels(maps, size)
            thumbnails.write_pngs(heat, [folder / f"{r}-heatmap.png" for r in rows.tolist()],
                                  atomic=False)
            if images is not None:  # once per sample: thumbs/<sample // 1000>/<sample>-…
                unique, where = np.unique(samples, return_index=True)
                keep = unique > last_input
                unique, where = unique[keep], where[keep]
                pictures = thumbnails.input_pixels(images[where], size, value_range)
                paths = [out / "thumbs" / str(s // SHARD) / f"{s}-input.png"
                         for s in unique.tolist()]
                for path in {p.parent for p in paths}:
                    path.mkdir(parents=True, exist_ok=True)
                thumbnails.write_pngs(pictures, paths, atomic=False)
                if len(unique):
                    last_input = int(unique[-1])
            on_shard(shard)
        if means is not None:
            shaped = images
            if images is not None:
                shaped = thumbnails.as_images(images)
            means.add(keys[a:b], maps, shaped)


# ------------------------------------------------------------------- report
def report(results: Any, out: str | os.PathLike, *, data: Any = None,
           evaluations: Any = (), concepts: Any = (), page_size: int = 48,
           thumb_size: int = 64, class_names: Sequence[str] | Mapping[int, str] | None = None,
           allow_partial: bool = False, overwrite: bool = False,
           progress: bool = True) -> Path:
    """Write a static HTML report of a results store to the folder ``out``; returns
    ``out/index.html``. It opens from disk (no server, nothing fetched from the internet).

    Parameters
    ----------
    results:
        :func:`~dtd_keras.load_results`' Results, or the store's path.
    out:
        A new or empty folder, or an earlier report (whose thumbnails are kept when they
        were made from the same store, data and ``thumb_size``).
    data:
        The data the store explained (arrays, or the image folder), for input thumbnails
        and per-class mean inputs; without it the data the store records (an image
        folder, a memory-mapped ``.npy``) while it still fits, else heatmaps only (with a
        warning when ``out`` is an earlier report that had input thumbnails).
    evaluations:
        ``dk.evaluate`` results to show, after those stored with :func:`attach`: one, or
        a list.
    concepts:
        ``dk.concepts.reference_samples`` results (or paths they were saved to): one, or
        a list.
    page_size, thumb_size:
        Gallery items per page; thumbnail size in pixels (the longer side).
    class_names:
        Names of the classes (default: their numbers): one per class the store's model
        outputs, or a dict ``{class: name}`` naming some of them.
    allow_partial:
        Report an unfinished store: its done samples only.
    overwrite:
        Write into a non-empty folder that is not a report (other files stay; refused
        where one of the report's names, e.g. ``data/``, is taken), and make every
        thumbnail again.
    progress:
        Show a progress bar over the thumbnail shards.

    Everything given (``data``, ``concepts``, ``evaluations``, ``class_names``) is checked
    before anything is written: an error leaves ``out`` as it was.
    """
    if not isinstance(page_size, int) or page_size < 1:
        raise ValueError(f"page_size must be a positive integer, got {page_size!r}")
    if not isinstance(thumb_size, int) or not 8 <= thumb_size <= 1024:
        raise ValueError(f"thumb_size must be an integer from 8 to 1024, got {thumb_size!r}")
    opened = _open(results, allow_partial)
    out = Path(out)
    check_out(out, opened.path, overwrite)
    # everything given is checked (and concepts loaded) before anything is written
    inputs = open_inputs(data, opened)
    concepts = load_concepts(as_list(concepts, "concepts"))
    stored = attachments(opened.path)
    evaluation_list = evaluation_sections(stored, as_list(evaluations, "evaluations"))
    metadata = opened.metadata
    identity = metadata.get("identity") or {}
    row = tables.rows(opened)
    table = tables.columns(opened, row)
    classes = (identity.get("analyzer") or {}).get("output_size") or opened.classes
    if not classes and len(row):
        classes = int(np.nanmax(table["neuron"])) + 1
    names = tables.class_names(class_names, int(classes or 0))

    previous = read_manifest(out) or {}
    if inputs is None and previous.get("inputs"):
        warnings.warn(f"the earlier report in {out} has input thumbnails, but this one has "
                      "none: no data= (--data) was given and the store records no data "
                      "that still fits it, so they are removed; pass data= (--data) with "
                      "the data the store explained to keep them", stacklevel=2)
    if overwrite:
        remove_ours(out)
        previous = {}
    out.mkdir(parents=True, exist_ok=True)

    shards = np.unique(row // SHARD)
    states = shard_states(opened, shards)
    value_range = None
    if inputs is not None:
        value_range = (previous.get("value_range") if previous.get("inputs")
                       == inputs.signature else None)
        value_range = value_range or thumbnails.value_range(inputs.read(0, min(
            SHARD, len(opened))))
    base = {"format": FORMAT, "version": VERSION, "created": metadata.get("created"),
            "identity": digest(identity), "thumb_size": thumb_size, "shard": SHARD,
            "inputs": None if inputs is None else inputs.signature, "input_per": "sample",
            "value_range": None if value_range is None else list(value_range)}
    group = "label" if "label" in table else "neuron"
    manifest = Manifest(out, previous, base, states, store=str(opened.path.resolve()),
                        names=names, group=group)

    (out / "data").mkdir(exist_ok=True)
    manifest.save()
    means = _Means() if manifest.redo_means else None
    _thumbnails(opened, inputs, table, out, thumb_size, manifest.todo, means, value_range,
                progress, manifest.shard_done)
    class_means = (means.write(out, 2 * thumb_size, names, value_range, group) if means
                   else manifest.previous_means)
    manifest.means_done(class_means)

    shutil.rmtree(out / "concepts", ignore_errors=True)
    concept_list = concept_sections(concepts, out, thumb_size, value_range)
    heat_shape = thumbnails.fit_size(thumbnails.to_maps(np.zeros(
        (1, *opened.layout.inputs[0]), np.float32)).shape[1:], thumb_size)
    info = {
        "version": VERSION,
        "title": f"dtd_keras report: {opened.path.name}",
        "created": datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%SZ"),
        "store": str(opened.path.resolve()),
        "analyzer": tables.describe_analyzer(identity),
        "model": str((identity.get("model") or {}).get("name") or ""),
        "count": int(len(row)),
        "page_size": page_size,
        "thumbs": {"shard": SHARD, "size": list(heat_shape), "input": inputs is not None,
                   "input_per": "sample", "rows_per_sample": int(opened.classes or 1)},
        "classes": {"count": int(classes or 0), "names": names},
        "fields": tables.fields("label" in table, "top" in table),
        "class_means": class_means,
        "histograms": tables.histograms(table, counted="explanations" if opened.classes
                                        else "samples"),
        "evaluations": evaluation_list,
        "concepts": concept_list,
    }
    tables.write_js(out / "data" / "items.js", "DTD_ITEMS", table=table)
    tables.write_js(out / "data" / "report.js", "DTD_REPORT", info)
    copy_assets(out)
    manifest.save()
    return out / "index.html"

