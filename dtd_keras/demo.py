"""The demo: train a small CNN on scikit-learn's digits and compare DTD with LRP.

    $ dtd-keras demo --out demo_out          # about a minute on a 2-core CPU
    $ python -m dtd_keras.demo --out demo_out --quick

:func:`run_demo` trains a small convolutional network (Conv2D+ReLU, max pooling, Dense,
softmax output) on the 8×8 digits bundled with scikit-learn (``load_digits``: no
download; pixels scaled to [0, 1]), explains every held-out digit's predicted class
(the first 60 with ``--quick``; ``results.md`` says how many) with

* deep Taylor decomposition with the three input rules of the DTD supplement (section
  1): w² (input domain ℝ, ``input_domain="real"``), z⁺ (ℝ₊, ``"positive"``) and zᴮ
  (the pixel box, ``dk.Box(0, 1)``) — z⁺ in every layer above the input;
* the LRP presets ``lrp.epsilon`` and ``lrp.alpha_2_beta_1`` (same rule in all layers);

and writes, in the spirit of Figure 2 of the supplement:

``demo.png``
    rows: a few held-out digits; columns: the input, then one heatmap per method (red
    positive, blue negative relevance), with each method's mean relative conservation
    error (mean over the held-out set of ``|Σ R − logit| / |logit|``) and mean negative
    fraction (share of ``Σ|R|`` that is negative) in its column title.
``results.json`` / ``results.md``
    per method: the model's test accuracy, the mean relative conservation error, the
    fraction of samples whose heatmap is positive (Definition 2 of the supplement, up to
    float rounding) and the mean negative fraction.
``model.keras`` / ``digits.npy``
    the trained model and the digits shown, to try the command line on:
    ``dtd-keras explain demo_out/model.keras demo_out/digits.npy --out explained``.
``heldout.npy``
    the explained held-out digits (all 450, or 60 with ``--quick``), the data of
    ``explained.zarr``.
``explained.zarr/`` / ``report/``
    the DTD zᴮ explanations of the explained digits as a results store
    (``dk.analyze_dataset`` reading ``heldout.npy`` memory-mapped, so the store records
    where its data is; with a pixel-flipping result attached) and the HTML report of it
    (``dk.report``): open ``demo_out/report/index.html`` in a browser. ``dtd-keras report
    demo_out/explained.zarr --out demo_out/report`` writes it again, input thumbnails
    included (found through the store; ``--data demo_out/heldout.npy`` says it).

DTD w² and zᴮ come out conservative and positive (Definitions 1-2 of the supplement, to
float rounding); DTD z⁺ is positive but loses about 1% of the relevance at the input,
where first-layer neurons with a positive bias fire on black pixels that have no
positive contribution to receive it (Proposition 2 assumes biases ≤ 0); the LRP rules
put the bias into the denominator (not conservative) and produce negative relevance.

The run is deterministic for a given ``seed`` (same split, weights and numbers on the
same machine and TensorFlow build). The output folder must be new or empty; with
``overwrite`` it may hold an earlier demo's outputs, which are replaced, never files of
the same names that the demo did not write (:func:`check_out`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .demo_folder import FILES, FOLDERS, MODEL_NAME, check_out

__all__ = ["FILES", "FOLDERS", "METHODS", "Method", "build_model", "check_out", "load_data",
           "run_demo"]


@dataclass(frozen=True)
class Method:
    """One column of the demo figure: a preset and its options."""

    key: str
    label: str  # plain text (results.md, results.json)
    title: str  # matplotlib mathtext (figure)
    preset: str
    domain: str | None  # "real", "positive", "box" or None (the preset's own)


METHODS: tuple[Method, ...] = (
    Method("dtd_w2", "DTD w²", r"DTD $w^2$", "deep_taylor", "real"),
    Method("dtd_zplus", "DTD z⁺", r"DTD $z^+$", "deep_taylor", "positive"),
    Method("dtd_zbox", "DTD zᴮ", r"DTD $z^{\mathcal{B}}$", "deep_taylor", "box"),
    Method("lrp_epsilon", "LRP-ε", r"LRP-$\epsilon$", "lrp.epsilon", None),
    Method("lrp_alpha2beta1", "LRP-α2β1", r"LRP-$\alpha_2\beta_1$", "lrp.alpha_2_beta_1",
           None),
)
"""The compared methods, in column order."""

DEFAULT_EPOCHS = 20
QUICK_EPOCHS = 2


def load_data(seed: int = 0, test_size: float = 0.25):
    """scikit-learn's digits as ``(x_train, y_train, x_test, y_test)``.

    Images are ``(N, 8, 8, 1)`` float32 in [0, 1] (the raw 0..16 grey levels / 16);
    the split is stratified and fixed by ``seed``.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_size, stratify=y, random_state=seed)
    return x_train, y_train, x_test, y_test


def build_model(seed: int = 0):
    """The demo CNN: 2 × (Conv2D 3×3 + ReLU, 2×2 max pooling), Dense+ReLU, Dense+softmax."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((8, 8, 1), name="digit"),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1"),
        keras.layers.MaxPooling2D(2, name="pool1"),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2"),
        keras.layers.MaxPooling2D(2, name="pool2"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(64, activation="relu", name="dense"),
        keras.layers.Dense(10, activation="softmax", name="output"),
    ], name=MODEL_NAME)
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def _analyzer(method: Method, model):
    import dtd_keras as dk

    options: dict[str, Any] = {}
    if method.domain == "box":
        options["input_domain"] = dk.Box(0.0, 1.0)
    elif method.domain is not None:
        options["input_domain"] = method.domain
    return dk.create_analyzer(method.preset, model, **options)


def _pick_rows(y: np.ndarray, count: int) -> list[int]:
    """The first held-out sample of each of the first ``count`` classes."""
    rows = []
    for digit in range(10):
        hits = np.flatnonzero(y == digit)
        if hits.size:
            rows.append(int(hits[0]))
        if len(rows) == count:
            break
    return rows


def _markdown(results: dict) -> str:
    explained, held_out = results["n_explained"], results["n_test"]
    if explained == held_out:
        scope = (f"The predicted class of every one of the {held_out} held-out digits is "
                 "explained.")
    else:
        scope = (f"The predicted class of {explained} of the {held_out} held-out digits is "
                 f"explained (--quick); the means below are over those {explained}.")
    lines = [
        "# dtd_keras demo: DTD vs LRP on scikit-learn digits",
        "",
        f"Model `{results['model']}`: test accuracy **{results['test_accuracy']:.4f}** on "
        f"{held_out} held-out digits (trained {results['epochs']} epochs on "
        f"{results['n_train']}, seed {results['seed']}). {scope}",
        "",
        "| method | preset | input rule | test accuracy | mean rel. conservation error "
        "| fraction of samples positive | mean negative fraction |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for m in results["methods"]:
        lines.append(
            f"| {m['label']} | `{m['preset']}` | {m['input_rule']} | "
            f"{results['test_accuracy']:.4f} | {m['mean_relative_conservation_error']:.2e} | "
            f"{m['fraction_positive']:.3f} | {m['mean_negative_fraction']:.4f} |")
    lines += [
        "",
        "- *mean rel. conservation error*: mean over samples of |Σ R − logit| / |logit| "
        "(0: conservative, Definition 1 of the DTD supplement).",
        "- *fraction of samples positive*: share of samples whose heatmap has no negative "
        "value beyond float rounding (Definition 2).",
        "- *mean negative fraction*: mean share of Σ|R| carried by negative relevance.",
    ]
    zplus = next((m for m in results["methods"] if m["key"] == "dtd_zplus"), None)
    if zplus is not None and zplus["mean_relative_conservation_error"] > 1e-4:
        lines.append(
            "- DTD z⁺ is not exactly conservative here: a first-layer neuron that fires on "
            "black (zero) pixels through its positive bias alone has no positive input "
            "contribution to pass its relevance to (Proposition 2 of the supplement assumes "
            "biases ≤ 0); w² and zᴮ redistribute all of it.")
    lines += ["", "Figure: `demo.png` (red: positive relevance, blue: negative).", ""]
    return "\n".join(lines)


def _figure(x_rows: np.ndarray, labels: list[str], maps: dict[str, np.ndarray],
            results: dict, path: Path) -> None:
    from . import image

    columns = ["input"]
    for m in results["methods"]:
        method = next(mm for mm in METHODS if mm.key == m["key"])
        columns.append(f"{method.title}\ncons. {m['mean_relative_conservation_error']:.1e}"
                       f"\nneg. {m['mean_negative_fraction']:.3f}")
    rows = []
    for i in range(len(x_rows)):
        panels: list[Any] = [image.to_rgb(x_rows[i], value_range=(0.0, 1.0))]
        panels += [maps[m["key"]][i] for m in results["methods"]]
        rows.append(panels)
    fig = image.grid(rows, titles=columns, row_labels=labels, panel_size=1.7, dpi=100,
                     suptitle=f"DTD vs LRP on held-out digits (test accuracy "
                              f"{results['test_accuracy']:.3f}); cons.: mean |ΣR − logit| / "
                              "logit, neg.: mean negative fraction")
    image.save_png(fig, path)


def run_demo(out_dir: str | os.PathLike[str], epochs: int | None = None, seed: int = 0,
             quick: bool = False, verbose: bool = True, overwrite: bool = False) -> dict:
    """Train, explain, and write ``demo.png``, ``results.json``, ``results.md``,
    ``model.keras``, ``digits.npy``, ``heldout.npy`` (the explained digits), the results
    store ``explained.zarr`` of their DTD zᴮ explanations and its HTML report ``report/``
    to ``out_dir``.

    ``out_dir`` must be a new or empty folder; with ``overwrite=True`` it may hold an
    earlier demo's outputs, which are replaced (other files stay; see :func:`check_out`,
    which raises ValueError before any work otherwise).

    ``epochs`` defaults to 20 (2 with ``quick=True``). ``quick`` also explains only
    the first 60 held-out digits and shows 3 rows instead of 6: it is meant for tests.
    Returns the contents of ``results.json`` plus ``paths`` (the files written) and
    ``runtime_s`` (wall time of the run; kept out of the files so that reruns with the
    same seed write identical results).
    """
    start = time.perf_counter()
    epochs = (QUICK_EPOCHS if quick else DEFAULT_EPOCHS) if epochs is None else int(epochs)
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    check_out(out_dir, overwrite)
    from ._tensorflow import import_tensorflow

    import_tensorflow()  # start-up lines quiet; an ImportError naming the extras if missing
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    def say(message: str) -> None:
        if verbose:
            print(message, flush=True)

    x_train, y_train, x_test, y_test = load_data(seed)
    model = build_model(seed)
    say(f"training {model.name} on {len(x_train)} digits for {epochs} epochs ...")
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, shuffle=True, verbose=0)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    accuracy = float(accuracy)
    say(f"test accuracy {accuracy:.4f} on {len(x_test)} held-out digits")

    n_explain = min(len(x_test), 60) if quick else len(x_test)
    x_explain, y_explain = x_test[:n_explain], y_test[:n_explain]
    row_index = _pick_rows(y_explain, 3 if quick else 6)

    method_results = []
    maps: dict[str, np.ndarray] = {}
    for method in METHODS:
        analyzer = _analyzer(method, model)
        explanation = analyzer.explain(x_explain)
        props = explanation.properties()
        input_rule = next(iter(analyzer.rules.values()))
        method_results.append({
            "key": method.key,
            "label": method.label,
            "preset": method.preset,
            "input_domain": method.domain,
            "input_rule": repr(input_rule),
            "rules": {k: repr(v) for k, v in analyzer.rules.items()},
            "mean_relative_conservation_error": float(np.mean(np.abs(props.relative_error))),
            "max_relative_conservation_error": float(np.max(np.abs(props.relative_error))),
            "fraction_positive": float(np.mean(props.positive)),
            "mean_negative_fraction": float(np.mean(props.negative_fraction)),
        })
        maps[method.key] = explanation.relevance[row_index]
        say(f"  {method.label:10s} conservation error "
            f"{method_results[-1]['mean_relative_conservation_error']:.2e}, negative "
            f"fraction {method_results[-1]['mean_negative_fraction']:.4f}")

    predicted = np.argmax(model.predict(x_explain[row_index], verbose=0), axis=-1)
    results = {
        "model": model.name,
        "seed": seed,
        "epochs": epochs,
        "quick": bool(quick),
        "n_train": int(len(x_train)),
        "n_test": int(len(x_test)),
        "n_explained": int(n_explain),
        "test_accuracy": accuracy,
        "rows": [{"test_index": int(i), "label": int(y_explain[i]), "predicted": int(p)}
                 for i, p in zip(row_index, predicted)],
        "methods": method_results,
    }
    labels = [f"digit {r['label']}\n(pred. {r['predicted']})" for r in results["rows"]]

    paths = {key: out / name for key, name in FILES.items()}
    _figure(x_explain[row_index], labels, maps, results, paths["figure"])
    paths["json"].write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n",
                             encoding="utf-8")
    paths["markdown"].write_text(_markdown(results), encoding="utf-8")
    model.save(paths["model"])
    np.save(paths["digits"], x_explain[row_index])
    np.save(paths["heldout"], x_explain)
    say("writing the HTML report of the DTD zᴮ explanations ...")
    paths["report"] = _report(model, paths["heldout"], y_explain, out, overwrite)
    runtime = time.perf_counter() - start
    say(f"wrote {', '.join(str(p) for p in paths.values())} in {runtime:.1f} s")
    return {**results, "paths": {k: str(v) for k, v in paths.items()}, "runtime_s": runtime}


def _report(model, heldout: Path, y: np.ndarray, out: Path, overwrite: bool) -> Path:
    """The DTD zᴮ explanations of the digits saved in ``heldout`` as a results store with
    a pixel-flipping result attached, and its HTML report; returns the report's
    index.html. The store reads them memory-mapped, so it records their file (its
    ``data_paths``) and ``dtd-keras report`` finds the inputs again without ``--data``."""
    import dtd_keras as dk

    store = out / FOLDERS["store"]
    x = np.load(heldout, mmap_mode="r")
    analyzer = _analyzer(next(m for m in METHODS if m.key == "dtd_zbox"), model)
    results = dk.analyze_dataset(analyzer, (x, y), store, batch_size=len(x), progress=False,
                                 overwrite=overwrite)
    flipping = dk.evaluate.pixel_flipping(model, np.asarray(x), np.asarray(results.relevance),
                                          neuron=results.neuron, steps=16)
    dk.reporting.attach(store, flipping)
    return dk.report(results, out / FOLDERS["report"], data=(x, y), thumb_size=64,
                     progress=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dtd_keras.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"training epochs (default {DEFAULT_EPOCHS}, {QUICK_EPOCHS} "
                             "with --quick)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--quick", action="store_true",
                        help="a few seconds: 2 epochs, 60 digits explained, 3 rows")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier demo's outputs in --out (other files stay)")
    args = parser.parse_args(argv)
    try:
        check_out(args.out, args.overwrite, option="--overwrite")
        run_demo(args.out, epochs=args.epochs, seed=args.seed, quick=args.quick,
                 overwrite=args.overwrite)
    except (ValueError, ImportError) as error:
        parser.exit(1, f"{parser.prog}: error: {error}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
