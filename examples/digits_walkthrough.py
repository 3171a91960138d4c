"""Walkthrough: train a small CNN on scikit-learn's digits, explain it with deep Taylor
decomposition, check the explanation's properties, draw a picture.

    python examples/digits_walkthrough.py                 # ~20 s on a laptop CPU
    python examples/digits_walkthrough.py --epochs 1 --samples 4 --out /tmp/walk
    python examples/digits_walkthrough.py --overwrite          # run again into the same --out

Needs ``pip install 'dtd-keras[cpu,demo]'`` (scikit-learn, matplotlib); no download.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=15, help="training epochs (default 15)")
    parser.add_argument("--samples", type=int, default=8,
                        help="held-out digits to explain and draw (default 8)")
    parser.add_argument("--out", default="digits_walkthrough",
                        help="output folder (default digits_walkthrough)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the picture and relevance.npy of an earlier run in --out")
    args = parser.parse_args(argv)
    outputs = [Path(args.out) / "digits_walkthrough.png", Path(args.out) / "relevance.npy"]
    existing = [str(p) for p in outputs if p.exists()]
    if existing and not args.overwrite:
        parser.exit(1, f"{parser.prog}: error: {' and '.join(existing)} already exist(s) from "
                       "an earlier run; pass --overwrite to replace them, or choose another "
                       "--out\n")

    # Importing TensorFlow takes a few seconds: after parsing, so --help is instant.
    import keras
    import numpy as np
    from sklearn.datasets import load_digits

    import dtd_keras as dk
    from dtd_keras import image

    # 1. Data: 1797 8x8 grey digits with levels 0..16, scaled to [0, 1].
    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]  # (N, 8, 8, 1)
    y = digits.target
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(x))
    x, y = x[order], y[order]
    x_train, y_train, x_test, y_test = x[:1400], y[:1400], x[1400:], y[1400:]

    # 2. A ReLU CNN, the kind of network deep Taylor decomposition is derived for.
    keras.utils.set_random_seed(args.seed)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),  # stripped: the logit is explained
    ])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=32, verbose=0)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"test accuracy after {args.epochs} epoch(s): {accuracy:.3f}")

    # 3. The analyzer. Pixels lie in the box [0, 1], so DTD uses the zB rule at the
    #    first layer and z+ above (every layer's input after it is a ReLU output).
    analyzer = dk.DTD(model, input_domain=dk.Box(0.0, 1.0))
    print("rules per layer:")
    for layer, rule in analyzer.rules.items():
        print(f"  {layer:12s} {rule!r}  (input domain {analyzer.domains[layer]!r})")

    # 4. Explain the predicted class of a few held-out digits.
    samples = x_test[: args.samples]
    explanation = analyzer.explain(samples)
    print(f"explained neurons (predicted digits): {explanation.neuron.tolist()}")
    print(f"true digits:                          {y_test[: args.samples].tolist()}")

    # 5. Properties (DTD supplement, Definitions 1-3): the relevance sums to the logit
    #    (conservative) and is nowhere negative (positive), so it is consistent.
    properties = explanation.properties()
    print(properties)
    print(f"all consistent: {bool(np.all(properties.consistent))}")

    # Another neuron: why would each sample be a "3"?
    why_three = analyzer.explain(samples, neuron=3)
    print(f"relevance sums for neuron 3: {np.round(why_three.properties().total, 3).tolist()}")

    # 6. A picture: inputs and heatmaps (red: relevance for the class).
    out = Path(args.out)
    rows = [[image.to_rgb(s, value_range=(0.0, 1.0)), r, image.overlay(s, r, alpha=0.6,
                                                                       value_range=(0, 1))]
            for s, r in zip(samples, explanation.relevance)]
    labels = [f"pred. {n}" for n in explanation.neuron]
    figure = image.grid(rows, titles=["input", "DTD relevance", "overlay"],
                        row_labels=labels, panel_size=1.6)
    path = image.save_png(figure, out / "digits_walkthrough.png")
    np.save(out / "relevance.npy", explanation.relevance)
    print(f"wrote {path} and {out / 'relevance.npy'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
