"""The monitor's picture: one row per sample, its input and its relevance heatmap."""

from __future__ import annotations

import io

import numpy as np

__all__ = ["figure_png", "panels"]

_PANEL_SIZE = 1.6
_DPI = 80


def panels(x: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One sample's input and relevance as uint8 RGB pictures."""
    from .. import image

    if x.ndim == 3 and x.shape[-1] in (1, 3, 4):
        return image.to_rgb(x), image.heatmap(r)
    if x.ndim == 3:  # many channels: the mean input, the channel-summed relevance
        return image.to_rgb(x.mean(axis=-1)), image.heatmap(r)
    if x.ndim == 2:
        return image.to_rgb(x), image.heatmap(r, reduce=None)
    x, r = x.reshape(1, -1), r.reshape(1, -1)  # a vector: a strip, a few pixels high
    height = max(1, x.shape[1] // 8)
    return (np.repeat(image.to_rgb(x), height, axis=0),
            np.repeat(image.heatmap(r, reduce=None), height, axis=0))


def figure_png(inputs: list[np.ndarray], explanation, title: str
               ) -> tuple[bytes, list[np.ndarray]]:
    """The grid of inputs and heatmaps as PNG bytes, and the heatmaps (one uint8 batch
    per model input)."""
    from .. import image

    maps = explanation.relevance
    maps = maps if isinstance(maps, list) else [maps]
    count = len(maps)
    rows, heat = [], [[] for _ in maps]
    for i in range(inputs[0].shape[0]):
        row = []
        for k in range(count):
            picture, relevance = panels(inputs[k][i], maps[k][i])
            row += [picture, relevance]
            heat[k].append(relevance)
        rows.append(row)
    titles = (["input", "relevance"] if count == 1 else
              [t for k in range(count) for t in (f"input {k}", f"relevance {k}")])
    labels = [f"#{i} → {int(n)} ({float(v):.3g})"
              for i, (n, v) in enumerate(zip(explanation.neuron, explanation.explained))]
    figure = image.grid(rows, titles=titles, row_labels=labels, panel_size=_PANEL_SIZE,
                        dpi=_DPI, suptitle=title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")  # a pyplot-free Figure: freed with its last ref
    return buffer.getvalue(), [np.stack(h) for h in heat]
