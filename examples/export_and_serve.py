"""Export a deep Taylor explainer as a TensorFlow SavedModel, then serve it with plain
TensorFlow (no dtd_keras, no Keras model code needed to load it).

    python examples/export_and_serve.py                      # train, export, load, call
    python examples/export_and_serve.py --epochs 1 --out /tmp/explainer --overwrite
    python examples/export_and_serve.py --serve-only /tmp/explainer   # TensorFlow only

The SavedModel has two signatures (batch size free): ``serving_default(input)`` explains
each sample's top class, ``analyze_neuron(input, neuron)`` the given class per sample;
both return ``relevance`` (shaped like the input), ``logit`` and ``neuron``. The same
folder works with TensorFlow Serving and ``saved_model_cli``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def serve(path: str, x) -> None:
    """Load the explainer with plain TensorFlow and call both signatures on ``x``."""
    import numpy as np
    import tensorflow as tf

    explainer = tf.saved_model.load(path)
    print(f"loaded {path}: signatures {sorted(explainer.signatures)}")
    print(f"analyzer: {explainer.description().numpy().decode()}")

    top = explainer.signatures["serving_default"](input=tf.constant(x))
    relevance, logit = top["relevance"].numpy(), top["logit"].numpy()
    print(f"serving_default: relevance {relevance.shape}, neurons {top['neuron'].numpy()}")
    sums = relevance.reshape(len(x), -1).sum(axis=1)
    print(f"  Σ relevance {np.round(sums, 4)}\n  logits      {np.round(logit, 4)}")

    zeros = tf.zeros([len(x)], tf.int32)  # "why class 0?" for every sample
    chosen = explainer.signatures["analyze_neuron"](input=tf.constant(x), neuron=zeros)
    print(f"analyze_neuron(neuron=0): logits {np.round(chosen['logit'].numpy(), 4)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="digits_explainer",
                        help="SavedModel folder to write (default digits_explainer)")
    parser.add_argument("--epochs", type=int, default=5, help="training epochs (default 5)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing SavedModel in --out")
    parser.add_argument("--serve-only", metavar="DIR", default=None,
                        help="only load DIR with TensorFlow and explain a few random 8x8 "
                             "images (imports no dtd_keras)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if (args.serve_only is None and out.exists() and not args.overwrite
            and (out.is_file() or any(out.iterdir()))):
        parser.exit(1, f"{parser.prog}: error: {args.out} already exists and is not empty "
                       "(an earlier export?); pass --overwrite to replace it, or choose "
                       "another --out\n")

    import numpy as np

    if args.serve_only is not None:
        rng = np.random.default_rng(args.seed)
        serve(args.serve_only, rng.random((3, 8, 8, 1), dtype=np.float32))
        print(f"dtd_keras imported: {'dtd_keras' in sys.modules}")
        return 0

    import keras
    from sklearn.datasets import load_digits

    import dtd_keras as dk

    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]
    y = digits.target
    keras.utils.set_random_seed(args.seed)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[:1500], y[:1500], epochs=args.epochs, batch_size=32, verbose=0)

    analyzer = dk.DTD(model, input_domain=dk.Box(0.0, 1.0))
    path = analyzer.export(args.out, overwrite=args.overwrite)
    print(f"exported {analyzer!r} to {path}")

    samples = x[1500:1504]
    serve(str(path), samples)  # what a TensorFlow-only process does

    expected = analyzer.analyze(samples)
    import tensorflow as tf

    served = tf.saved_model.load(str(path)).signatures["serving_default"](
        input=tf.constant(samples))["relevance"].numpy()
    print(f"max |served − analyzer.analyze| = {np.max(np.abs(served - expected)):.2e}")
    print(f"inspect: saved_model_cli show --dir {path} --all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
