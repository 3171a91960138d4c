"""Model-parameter randomisation sanity check (Adebayo et al. 2018), cascading from the top.

J. Adebayo, J. Gilmer, M. Muelly, I. Goodfellow, M. Hardt, B. Kim, "Sanity checks for
saliency maps", NeurIPS 2018. A *clone* of the model is randomised layer by layer from
the output down (cascading: each state keeps the layers above randomised too); after each
layer the inputs are explained again and compared with the trained model's maps:
Spearman rank correlation of the absolute maps (``similarity``), of the signed maps, and
SSIM of the absolute maps scaled to [0, 1] per map. The user's model is never touched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from ._common import as_batch, explain_with, figure, reduce_maps
from .similarity import spearman, ssim

__all__ = ["Randomization", "randomization", "randomize_layer"]


@dataclass(frozen=True)
class Randomization:
    """Similarity of each randomised model's maps to the trained model's, top layer first.

    ``layers[i]`` is the layer randomised at step ``i`` (with all layers before it in the
    list). ``similarity``: mean over samples of the Spearman rank correlation of the
    absolute maps (channels summed); ``spearman_signed`` the same on signed maps;
    ``ssim`` the mean SSIM of the absolute maps scaled to [0, 1]; ``per_sample`` the
    Spearman values ``(layers, N)``. ``maps`` holds the first sample's map for the
    trained model and after each step (for :meth:`plot`).
    """

    layers: tuple[str, ...]
    similarity: np.ndarray
    spearman_signed: np.ndarray
    ssim: np.ndarray
    per_sample: np.ndarray
    maps: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        """The per-layer numbers (JSON-ready)."""
        return {"layers": list(self.layers), "similarity": self.similarity.tolist(),
                "spearman_signed": self.spearman_signed.tolist(), "ssim": self.ssim.tolist()}

    def plot(self) -> Any:
        """Similarity against the cascade (top layer first), with the first sample's maps."""
        steps = len(self.layers)
        fig = figure(max(6.0, 1.3 * (steps + 1)), 5)
        grid = fig.add_gridspec(2, steps + 1, height_ratios=[2, 1])
        ax = fig.add_subplot(grid[0, :])
        positions = np.arange(1, steps + 1)
        ax.plot(positions, self.similarity, "o-", label="Spearman |R|")
        ax.plot(positions, self.spearman_signed, "s--", label="Spearman R")
        ax.plot(positions, self.ssim, "^:", label="SSIM |R|")
        ax.set_xticks(positions, self.layers, rotation=30, ha="right")
        ax.set_ylim(-1.05, 1.05)
        ax.axhline(0, color="gray", linewidth=0.5)
        ax.set_ylabel("similarity to trained")
        ax.set_xlabel("randomised down to layer")
        ax.legend()
        maps = self.maps
        if maps.ndim == 3:  # (states, H, W): draw them
            for i, m in enumerate(maps):
                panel = fig.add_subplot(grid[1, i])
                scale = np.abs(m).max() or 1.0
                panel.imshow(m, cmap="bwr", vmin=-scale, vmax=scale)
                panel.set_xticks([])
                panel.set_yticks([])
                panel.set_title("trained" if i == 0 else self.layers[i - 1], fontsize=8)
        return fig


def clone(model: keras.Model) -> keras.Model:
    """A copy of ``model`` with its own variables, holding the same weights."""
    try:
        copy = keras.models.clone_model(model)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"randomization works on a clone of model '{model.name}', and Keras cannot clone "
            f"it: {error}. Register custom layers/constraints with "
            "@keras.saving.register_keras_serializable") from error
    copy.set_weights(model.get_weights())
    return copy


def randomize_layer(layer: Any, seed: int) -> None:
    """Re-draw the layer's trainable weights from their initialisers (seeded).

    A weight ``name`` uses the layer's ``name_initializer`` where it has one (Keras
    layers do: kernel, bias, gamma, …); otherwise a normal distribution with the
    weight's standard deviation (0.05 where that is 0).
    """
    for i, variable in enumerate(layer.trainable_weights):
        base = variable.path.split("/")[-1]
        initializer = getattr(layer, f"{base}_initializer", None)
        shape = tuple(variable.shape)
        if isinstance(initializer, keras.initializers.Initializer):
            config = initializer.get_config()
            if "seed" in config:
                config["seed"] = seed * 1000 + i
            value = type(initializer).from_config(config)(shape, dtype=variable.dtype)
        else:
            current = keras.ops.convert_to_numpy(variable)
            scale = float(np.std(current)) or 0.05
            value = np.random.default_rng(seed * 1000 + i).normal(0.0, scale, shape)
        variable.assign(keras.ops.cast(value, variable.dtype))


def _factory(explainer: Any, options: dict) -> Callable[[keras.Model], Any]:
    from ..analyzers import Analyzer
    from ..presets import create_analyzer

    if isinstance(explainer, str):
        return lambda m: create_analyzer(explainer, m, **options)
    if isinstance(explainer, Analyzer) or hasattr(explainer, "explain") and not callable(
            explainer):
        raise TypeError(
            "randomization rebuilds the explainer on a randomised clone of the model, so "
            "it needs a preset name or a factory such as `lambda m: dk.DTD(m, "
            "input_domain=dk.Box(0, 1))`, not an analyzer bound to the original model")
    if not callable(explainer):
        raise TypeError(f"explainer must be a preset name or a factory model -> analyzer, "
                        f"got {explainer!r}")
    if options:
        raise TypeError("options are for preset names; put them into the factory")
    return explainer


def _weighted_layers(model: keras.Model) -> list[Any]:
    return [layer for layer in model.layers if layer.trainable_weights]


def randomization(explainer: str | Callable[[keras.Model], Any], model: keras.Model, x: Any,
                  *, neuron: Any = None, layers: Sequence[str] | None = None, seed: int = 0,
                  rebuild: bool = False, channels_last: bool | None = None,
                  **options: Any) -> Randomization:
    """Cascading model-parameter randomisation (module docstring).

    Parameters
    ----------
    explainer:
        A preset name (``options`` go to :func:`~dtd_keras.create_analyzer`) or a factory
        ``model -> analyzer`` (any analyzer, :class:`~dtd_keras.MinMaxDTD`, a baseline).
    model, x:
        The trained model and the inputs to explain (single-input models).
    neuron:
        What to explain; default each sample's top logit *of the trained model*, kept
        fixed for every randomised model.
    layers:
        Layer names to randomise, in cascade order (default: every top-level layer with
        trainable weights, output layer first; a nested model counts as one layer).
    rebuild:
        ``False`` (default): the explainer is built once on the clone; analyzers read
        the live weights, so it explains each randomised state. ``True``: the factory is
        called again for each state (for explainers fitted at build time).
    channels_last:
        Sum the last axis (channels) before comparing; default for inputs with 4 or
        more axes.
    """
    data = as_batch(x, against=model)
    factory = _factory(explainer, options)
    copy = clone(model)
    weighted = {layer.name: layer for layer in _weighted_layers(copy)}
    names = list(weighted)[::-1] if layers is None else list(layers)
    unknown = [n for n in names if n not in weighted]
    if unknown:
        raise ValueError(f"layers {unknown} have no trainable weights in the model; "
                         f"choose from {list(weighted)}")
    if not names:
        raise ValueError("the model has no layer with trainable weights to randomise")
    channels = data.ndim >= 4 if channels_last is None else bool(channels_last)
    current = factory(copy)
    trained = explain_with(current, data, neuron)
    chosen = trained.neuron if neuron is None else neuron
    base = reduce_maps(trained.relevance, channels)
    maps = [trained.relevance[0].sum(axis=-1) if channels else trained.relevance[0]]
    rho, rho_signed, structural = [], [], []
    for step, name in enumerate(names):
        randomize_layer(weighted[name], seed + step + 1)
        if rebuild:
            current = factory(copy)
        relevance = explain_with(current, data, chosen).relevance
        other = reduce_maps(relevance, channels)
        maps.append(relevance[0].sum(axis=-1) if channels else relevance[0])
        rho.append([spearman(np.abs(a), np.abs(b)) for a, b in zip(base, other)])
        rho_signed.append([spearman(a, b) for a, b in zip(base, other)])
        shape = maps[0].shape
        structural.append([ssim(_unit(np.abs(a)).reshape(shape), _unit(np.abs(b)).reshape(shape))
                           for a, b in zip(base, other)])
    per_sample = np.asarray(rho)
    return Randomization(tuple(names), per_sample.mean(axis=1),
                         np.asarray(rho_signed).mean(axis=1),
                         np.asarray(structural).mean(axis=1), per_sample, np.stack(maps))


def _unit(m: np.ndarray) -> np.ndarray:
    top = m.max()
    return m / top if top > 0 else m
