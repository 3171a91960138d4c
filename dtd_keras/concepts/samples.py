"""The result of relevance maximization: :class:`ReferenceSamples`, its crops, and its
files (:meth:`ReferenceSamples.save`, :func:`load_reference_samples`).

**Crop box.** For a reference sample, the box is the bounding box of the positions where
the concept's conditional heatmap (summed over the input's channel axis when the sample
has 3 or more axes) is at least ``crop_threshold`` (default 0.1) times its largest value;
it spans every axis but that channel axis (rows and columns of an image). A heatmap with
no positive value gives the whole sample. This is zennit-crp's threshold crop
(``get_crop_range``: relevance above ``crop_th = 0.1`` of the maximum) without its
Gaussian blur and applied to the whole conditional heatmap of the explained neuron
rather than to the heatmap of the layer's single most relevant neuron.

**Found.** A reference sample is one whose score is not exactly 0: a channel that is 0 on
every sample (a dead ReLU channel, or one no relevance reaches) has no reference samples,
and one that is nonzero on fewer than ``k`` samples has fewer than ``k``. An entry that is
not one (``found`` False) has index -1, score 0, an all-zero (empty) box, and an empty crop
and heatmap (no position along the boxed axes).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ReferenceSamples", "crop", "crop_box", "empty_box", "load_reference_samples"]

FORMAT = "dtd_keras.reference_samples"
FORMAT_VERSION = 1
_JSON, _ARRAYS = "reference_samples.json", "arrays.npz"


def _spatial(heatmap: np.ndarray) -> np.ndarray:
    """The heatmap over the boxed axes: summed over the channel axis (the last) of a
    sample with 3 or more axes."""
    return heatmap.sum(axis=-1) if heatmap.ndim >= 3 else heatmap


def crop_box(heatmap: np.ndarray, threshold: float = 0.1) -> np.ndarray:
    """The crop box of one sample's conditional heatmap (the sample's shape): int64
    ``[starts…, stops…]`` (half-open; ``[top, left, bottom, right]`` for an image) over
    every axis but a trailing channel axis (see the module's docstring)."""
    plane = _spatial(np.asarray(heatmap, np.float64))
    shape = plane.shape
    largest = plane.max() if plane.size else 0.0
    if not np.isfinite(largest) or largest <= 0:
        return np.array([*(0,) * len(shape), *shape], np.int64)
    mask = plane >= threshold * largest
    starts, stops = [], []
    for axis in range(len(shape)):
        hits = np.flatnonzero(mask.any(axis=tuple(a for a in range(len(shape)) if a != axis)))
        starts.append(int(hits[0]))
        stops.append(int(hits[-1]) + 1)
    return np.array([*starts, *stops], np.int64)


def empty_box(sample_shape: tuple) -> np.ndarray:
    """The all-zero box of a not-found entry for samples of ``sample_shape``: it crops to
    nothing along the boxed axes (e.g. ``0×0×channels``)."""
    boxed = len(sample_shape) - 1 if len(sample_shape) >= 3 else len(sample_shape)
    return np.zeros(2 * boxed, np.int64)


def crop(sample: np.ndarray, box: np.ndarray) -> np.ndarray:
    """``sample`` cut to ``box`` (its leading axes; a channel axis is kept whole)."""
    half = len(box) // 2
    return np.asarray(sample)[tuple(slice(int(a), int(b)) for a, b in zip(box[:half],
                                                                         box[half:]))]


@dataclass(frozen=True, eq=False)
class ReferenceSamples:
    """Reference samples of the concepts (channels) of one layer.

    Row ``c`` belongs to ``channels[c]``; column ``j`` is its ``j``-th best sample
    (descending score). Where ``found[c, j]`` is False the channel has fewer than ``k``
    samples of nonzero score and the entry is no sample: index -1, score 0, an all-zero
    box, an empty crop and heatmap (the module's docstring).
    """

    layer: str
    """The layer whose channels are the concepts."""
    method: str
    """``"relevance"`` (relevance maximization) or ``"activation"`` (activation
    maximization)."""
    channels: np.ndarray
    """``[C]`` the channels."""
    indices: np.ndarray
    """``[C, k]`` the reference samples' positions in the data (-1: not found)."""
    scores: np.ndarray
    """``[C, k]`` their scores (descending along each row's found entries; 0: not
    found)."""
    boxes: np.ndarray
    """``[C, k, 2·s]`` the crop boxes in input coordinates: starts then stops (half-open)
    over the sample's ``s`` boxed axes; ``[top, left, bottom, right]`` for images."""
    crops: list[list[np.ndarray]]
    """``crops[c][j]``: the input inside the box (e.g. ``h×w×channels``), in the values
    the analyzer received (for an image folder: after its pixel range, not the files'
    pixels)."""
    heatmaps: list[list[np.ndarray]]
    """``heatmaps[c][j]``: the concept's conditional relevance inside the same box (the
    crop's shape; sum its last axis for a 2-D map of an image)."""
    found: np.ndarray | None = None
    """``[C, k]`` bool: True where the entry is a reference sample (a nonzero score); the
    found entries of a row come first. Not given (as in files saved before it existed):
    ``indices >= 0`` and ``scores != 0``."""

    def __post_init__(self) -> None:
        indices, scores = np.asarray(self.indices), np.asarray(self.scores)
        found = ((indices >= 0) & (scores != 0) if self.found is None
                 else np.asarray(self.found, bool))
        if found.shape != indices.shape:
            raise ValueError(f"found has shape {found.shape}; indices have {indices.shape}")
        object.__setattr__(self, "found", found)

    def to_dict(self) -> dict[str, Any]:
        """Everything as JSON-ready values (nested lists)."""
        return {"layer": self.layer, "method": self.method,
                "channels": self.channels.tolist(), "indices": self.indices.tolist(),
                "scores": self.scores.tolist(), "found": self.found.tolist(),
                "boxes": self.boxes.tolist(),
                "crops": [[c.tolist() for c in row] for row in self.crops],
                "heatmaps": [[h.tolist() for h in row] for row in self.heatmaps]}

    def save(self, path: str | Path) -> Path:
        """Write a folder ``path`` holding ``reference_samples.json`` (layer, method,
        shapes) and ``arrays.npz`` (the arrays, one entry per crop and heatmap); read it
        back with :func:`load_reference_samples`.

        ``path`` must be new, empty or an earlier save (a ``FileExistsError`` otherwise:
        files it did not write are never replaced). Each file goes through a temporary
        file renamed into place, so a killed save leaves the old file or the new one."""
        path = Path(path)
        _check_save_folder(path)
        path.mkdir(parents=True, exist_ok=True)
        arrays = {"channels": self.channels, "indices": self.indices, "scores": self.scores,
                  "found": self.found, "boxes": self.boxes}
        for c, (row, maps) in enumerate(zip(self.crops, self.heatmaps)):
            for j, (piece, heat) in enumerate(zip(row, maps)):
                arrays[f"crop_{c}_{j}"] = piece
                arrays[f"heatmap_{c}_{j}"] = heat
        partial = path / f".{_ARRAYS}.{os.getpid()}.partial"
        with open(partial, "wb") as file:
            np.savez_compressed(file, **arrays)
        os.replace(partial, path / _ARRAYS)
        partial = path / f".{_JSON}.{os.getpid()}.partial"
        partial.write_text(json.dumps({
            "format": FORMAT, "format_version": FORMAT_VERSION, "layer": self.layer,
            "method": self.method, "channels": len(self.channels), "k": int(self.indices.shape[1]),
            "arrays": _ARRAYS}, indent=1), encoding="utf-8")
        os.replace(partial, path / _JSON)
        return path

    def plot(self, *, heatmaps: bool = True, size: float = 1.2) -> Any:
        """A matplotlib figure: per channel a row of its crops (and, with ``heatmaps``, a
        row of their conditional heatmaps, red positive, blue negative); entries not
        found stay blank."""
        import matplotlib.pyplot as plt

        per = 2 if heatmaps else 1
        rows, cols = len(self.channels) * per, int(self.indices.shape[1])
        figure, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows),
                                    squeeze=False)
        for c, channel in enumerate(self.channels):
            for j in range(cols):
                axis = axes[c * per, j]
                if not self.found[c, j]:
                    continue
                axis.imshow(_displayable(self.crops[c][j]), cmap="gray")
                axis.set_title(f"#{self.indices[c, j]}: {self.scores[c, j]:.2g}", fontsize=6)
                if heatmaps:
                    plane = _spatial(self.heatmaps[c][j])
                    limit = float(np.abs(plane).max()) or 1.0
                    axes[c * per + 1, j].imshow(plane, cmap="bwr", vmin=-limit, vmax=limit)
            axes[c * per, 0].set_ylabel(f"{self.layer}\n{channel}", fontsize=7)
        for axis in axes.flat:
            axis.set_xticks([])
            axis.set_yticks([])
        figure.suptitle(f"{self.method} maximization: {self.layer}", fontsize=9)
        return figure

    def __repr__(self) -> str:
        return (f"ReferenceSamples(layer={self.layer!r}, method={self.method!r}, "
                f"channels={self.channels.tolist()}, k={self.indices.shape[1]})")


def _displayable(piece: np.ndarray) -> np.ndarray:
    """A crop scaled to 0…1 for ``imshow`` (one channel: 2-D)."""
    image = np.asarray(piece, np.float64)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    elif image.ndim == 3 and image.shape[-1] != 3:
        image = image.mean(axis=-1)
    low, high = (image.min(), image.max()) if image.size else (0.0, 1.0)
    return (image - low) / (high - low) if high > low else np.zeros_like(image)


def _check_save_folder(path: Path) -> None:
    """``FileExistsError`` unless ``path`` is absent, an empty folder, or holds only what
    :meth:`ReferenceSamples.save` writes (its JSON, if there, of this format; leftovers of
    a killed save are its own temporary files)."""
    if not path.exists():
        return
    if not path.is_dir():
        raise FileExistsError(f"{path} exists and is not a folder")
    ours = (_JSON, _ARRAYS)
    foreign = sorted(entry.name for entry in path.iterdir() if entry.name not in ours and not (
        entry.name.startswith(tuple(f".{name}." for name in ours))
        and entry.name.endswith(".partial")))
    written = (path / _JSON).is_file() and _format(path / _JSON) == FORMAT
    if foreign or ((path / _JSON).exists() and not written):
        raise FileExistsError(
            f"{path} holds {', '.join(foreign) or _JSON}, which ReferenceSamples.save did not "
            "write; save into a new or empty folder, or an earlier save's folder")


def _format(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("format")
    except (OSError, ValueError, AttributeError):
        return None


def load_reference_samples(path: str | Path) -> ReferenceSamples:
    """Read what :meth:`ReferenceSamples.save` wrote to the folder ``path`` (a folder
    saved before ``found`` existed gets ``found = scores != 0``)."""
    path = Path(path)
    try:
        meta = json.loads((path / _JSON).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"no reference samples at {path} (no {_JSON})") from None
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path / _JSON} is not {FORMAT} version {FORMAT_VERSION}: "
                         f"{meta.get('format')!r} version {meta.get('format_version')!r}")
    with np.load(path / meta["arrays"]) as arrays:
        count, k = int(meta["channels"]), int(meta["k"])
        return ReferenceSamples(
            layer=meta["layer"], method=meta["method"], channels=arrays["channels"],
            indices=arrays["indices"], scores=arrays["scores"], boxes=arrays["boxes"],
            crops=[[arrays[f"crop_{c}_{j}"] for j in range(k)] for c in range(count)],
            heatmaps=[[arrays[f"heatmap_{c}_{j}"] for j in range(k)] for c in range(count)],
            found=arrays["found"] if "found" in arrays.files else None)
