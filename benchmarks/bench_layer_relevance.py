"""Relevance at hidden layers: ``explain(x)`` against ``explain(x, layers=[3 layers])``.

The layers' relevance is read from the same compiled backward pass, so the target is
≤ 1.05× plain ``explain``. Side by side in one process, timed round-robin (load from
other processes hits both alike), median of ``--repeats`` calls after a warm-up call that
traces both. Two rows per analyzer: through the public ``explain`` (input checks and the
conversion to numpy of the extra results included), and the compiled pass alone
(``analyzer.concrete_function`` against the analyzer's private per-layer-tuple function,
``_concrete_with``: what the backward pass itself pays).

Model: the MNIST-sized CNN of ``bench_engine.py`` (28×28×1: Conv32–Conv64–MaxPool–Conv64–
MaxPool–Dense128–Dense10, ReLU, softmax head; seeded random weights), ``--batch`` samples
uniform in [0, 1]; layers ``conv2``, ``conv3``, ``fc``. Analyzers: DTD (zᴮ/z⁺) and LRP-ε.

Usage::

    python benchmarks/bench_layer_relevance.py             # ~1 min on 2 busy cores
    python benchmarks/bench_layer_relevance.py --repeats 5 --batch 32
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("KERAS_HOME", tempfile.mkdtemp(prefix="bench_keras_home_"))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import dtd_keras as dk  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_neurons import round_robin  # noqa: E402  (timed round-robin, median)

L = keras.layers
LAYERS = ["conv2", "conv3", "fc"]


def mnist_cnn() -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((28, 28, 1)), L.Conv2D(32, 3, activation="relu", name="conv1"),
        L.Conv2D(64, 3, activation="relu", name="conv2"), L.MaxPooling2D(),
        L.Conv2D(64, 3, activation="relu", name="conv3"), L.MaxPooling2D(), L.Flatten(),
        L.Dense(128, activation="relu", name="fc"),
        L.Dense(10, activation="softmax", name="out")])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=31)
    parser.add_argument("--layers", nargs="+", default=LAYERS)
    args = parser.parse_args()
    layers = list(args.layers)
    model = mnist_cnn()
    x = np.random.default_rng(0).uniform(size=(args.batch, 28, 28, 1)).astype("float32")
    analyzers = {"DTD": dk.DTD(model, input_domain=dk.Box(0.0, 1.0)),
                 "LRP-ε(0.1)": dk.LRP(model, dk.rules.Epsilon(0.1))}
    print(f"MNIST-sized CNN, batch {args.batch}, median of {args.repeats}; layers={layers}")
    print(f"{'analyzer':12s} {'what':14s} {'plain s':>9s} {'+ layers s':>11s} {'ratio':>7s}")
    inputs, neuron = (tf.constant(x),), tf.constant(np.full(args.batch, -1, np.int32))
    for name, analyzer in analyzers.items():
        plain = analyzer.explain(x)
        with_layers = analyzer.explain(x, layers=layers)
        np.testing.assert_array_equal(plain.relevance, with_layers.relevance)
        compiled = (analyzer.concrete_function, analyzer._concrete_with(tuple(layers), False))
        median = round_robin({
            "explain": lambda a=analyzer: a.explain(x),
            "explain+": lambda a=analyzer: a.explain(x, layers=layers),
            "pass": lambda f=compiled[0]: f(inputs, neuron)[0][0].numpy(),
            "pass+": lambda f=compiled[1]: [m.numpy() for m in f(inputs, neuron)[0]],
        }, args.repeats)
        for what, key in (("explain", "explain"), ("compiled pass", "pass")):
            print(f"{name:12s} {what:14s} {median[key]:9.4f} {median[key + '+']:11.4f} "
                  f"{median[key + '+'] / median[key]:6.3f}x")


if __name__ == "__main__":
    main()
