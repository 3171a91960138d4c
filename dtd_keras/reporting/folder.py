"""The report's folder ``out``: checks before writing, the report's own files, and the
manifest that says which thumbnails a rerun keeps.

Layout of ``out/`` (the contract with the page, ``assets/``)::

    index.html, assets/…            the page, copied from dtd_keras/reporting/assets/
    data/report.js                  window.DTD_REPORT = {...};  (everything but the rows)
    data/items.js                   window.DTD_ITEMS = {...};   (columnar: one list per field)
    data/manifest.json              what the thumbnails were made from (reruns keep them)
    thumbs/<row // 1000>/<row>-heatmap.png
    thumbs/<sample // 1000>/<sample>-input.png   (one per sample: row // K with neuron="all")
    means/<class>-heatmap.png, means/<class>-input.png
    concepts/<layer>/<channel>-<j>.png

Thumbnails are written once: a rerun into the same ``out`` rewrites only the shards of
1,000 rows whose chunks changed (a resumed partial store), and none for the same store;
another store (or other data, thumbnail size) rewrites them all.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from . import tables

__all__ = ["FORMAT", "SHARD", "VERSION", "Manifest", "check_out", "copy_assets", "digest",
           "read_manifest", "remove_ours", "shard_states"]

SHARD = 1000
"""Thumbnails per folder ``thumbs/<shard>/``."""
FORMAT = "dtd_keras.report"
"""The manifest's ``format``: a folder whose manifest has it holds an earlier report."""
VERSION = 1
"""The version of the folder layout (in the manifest and ``data/report.js``)."""
_OURS = ("index.html", "assets", "data", "thumbs", "means", "concepts")
_ASSETS = Path(__file__).resolve().parent / "assets"


def digest(value: Any) -> str:
    """A SHA-256 hex digest of ``value`` as sorted JSON (other objects as ``str``)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def read_manifest(out: Path) -> dict | None:
    """The manifest of the earlier report in ``out``, or ``None`` when there is none."""
    try:
        found = json.loads((out / "data" / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) and found.get("format") == FORMAT else None


def check_out(out: Path, store: Path, overwrite: bool) -> None:
    """Raise unless the report may be written to ``out``: not inside or around the store,
    not a file, and new, empty, an earlier report, or ``overwrite``."""
    real, home = Path(os.path.realpath(out)), Path(os.path.realpath(store))
    if real == home or home in real.parents:
        raise ValueError(f"out {out} lies inside the results store {store}; write the report "
                         "outside it (the store holds only its own files)")
    if real in home.parents:
        raise ValueError(f"out {out} contains the results store {store}; choose a folder "
                         "outside it (e.g. next to the store)")
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"out {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and read_manifest(out) is None:
        if not overwrite:
            raise FileExistsError(f"out {out} is not empty and holds no earlier report; "
                                  "choose a new or empty folder, or pass overwrite=True "
                                  "(--overwrite) to write the report's files there (other "
                                  "files stay)")
        taken = [name for name in _OURS if (out / name).exists() or (out / name).is_symlink()]
        if taken:
            raise FileExistsError(f"out {out} holds {', '.join(taken)}, which no report wrote "
                                  f"(there is no report's data/manifest.json), and the report "
                                  f"writes {', '.join(_OURS)} there; overwrite=True replaces "
                                  "only an earlier report's files: choose another folder")


def remove_ours(out: Path) -> None:
    """Remove the report's own files and folders from ``out`` (other files stay)."""
    for name in _OURS:
        entry = out / name
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        elif entry.exists() or entry.is_symlink():
            entry.unlink()


def copy_assets(out: Path) -> None:
    """Copy the page into ``out``: ``index.html`` at the top, the rest under ``assets/``."""
    if not _ASSETS.is_dir():
        return
    for source in sorted(_ASSETS.rglob("*")):
        if not source.is_file() or source.name.startswith(".") or source.suffix == ".py":
            continue
        relative = source.relative_to(_ASSETS)
        target = out / relative if relative.as_posix() == "index.html" else (
            out / "assets" / relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)


def shard_states(results: Any, shards: np.ndarray) -> dict[str, str]:
    """Per shard, a hash of its chunks' commit digests (None for chunks not done)."""
    done = results._checked[0]
    per = results.classes or 1
    chunk = results.layout.chunk_size
    states = {}
    for shard in shards.tolist():
        first = shard * SHARD // per
        last = min((shard + 1) * SHARD - 1, len(results) * per - 1) // per
        states[str(shard)] = digest([done.get(c) for c in range(first // chunk,
                                                                last // chunk + 1)])
    return states


class Manifest:
    """The manifest of the report being written to ``out``: which thumbnail shards are
    kept from the earlier report (``previous``) and which are redrawn (``todo``), and
    whether the class means are (``redo_means``).

    ``base`` is what every thumbnail is made from (format, store identity, size, data,
    value range): when any of it differs from ``previous``, nothing is kept and the
    folders ``thumbs/`` and ``means/`` are removed here. ``states`` are the shards'
    :func:`shard_states`; ``group`` is the column the class means group rows by.
    """

    def __init__(self, out: Path, previous: dict, base: dict, states: dict[str, str], *,
                 store: str, names: list[str], group: str) -> None:
        if any(previous.get(k) != v for k, v in base.items()):
            previous = {}
            for name in ("thumbs", "means"):
                shutil.rmtree(out / name, ignore_errors=True)
        kept = previous.get("shards", {})
        self.out = out
        self.states = states
        self.todo = {int(s) for s, state in states.items() if kept.get(s) != state}
        self.means_state = digest(states)
        self.redo_means = (previous.get("means_state") != self.means_state
                           or previous.get("class_names") != names
                           or any(m.get("group") != group
                                  for m in previous.get("class_means", [])))
        self.previous_means: list = previous.get("class_means", [])
        self.data: dict = {**base, "store": store, "shards": dict(kept), "class_names": names}
        for shard in self.todo:
            self.data["shards"].pop(str(shard), None)
        self.data.pop("means_state", None)
        self._written = 0

    def shard_done(self, shard: int) -> None:
        """Record that ``shard``'s thumbnails are written (saved every 10 shards)."""
        self.data["shards"][str(shard)] = self.states[str(shard)]
        self._written += 1
        if self._written % 10 == 0:
            self.save()

    def means_done(self, class_means: list) -> None:
        """Record the class means the page shows (kept or redrawn)."""
        self.data.update(means_state=self.means_state, class_means=class_means)

    def save(self) -> None:
        """Write ``data/manifest.json`` atomically."""
        tables.write_atomic(self.out / "data" / "manifest.json",
                            json.dumps(tables.clean(self.data), indent=1))
