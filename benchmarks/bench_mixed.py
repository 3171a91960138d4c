"""Mixed precision: explaining a ``mixed_float16`` model against its float32 twin.

The same CNN (the engine benchmark's MNIST-sized one, seeded weights copied across) is
built under the ``float32`` and the ``mixed_float16`` policy. Timed round-robin in one
process (median of ``--repeats`` after a warm-up): the model's own forward pass and
``DTD(...).explain`` for each. The analyzer computes in float32 either way (relevance is
float32-exact), so the explanation should cost about the same; the table also gives how
far the mixed model's own logits are from the float32 ones (its float16 rounding) and the
DTD conservation error of each.

Usage::

    python benchmarks/bench_mixed.py [--batch 256] [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("KERAS_HOME", tempfile.mkdtemp(prefix="bench_keras_home_"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from bench_engine import build_model  # noqa: E402

import dtd_keras as dk  # noqa: E402


def twins() -> tuple[keras.Model, keras.Model]:
    keras.utils.set_random_seed(0)
    full = build_model("cnn")
    keras.config.set_dtype_policy("mixed_float16")
    try:
        mixed = build_model("cnn")
    finally:
        keras.config.set_dtype_policy("float32")
    mixed.set_weights(full.get_weights())
    return full, mixed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    full, mixed = twins()
    x = np.random.default_rng(0).uniform(size=(args.batch, 28, 28, 1)).astype("float32")
    calls, results = {}, {}
    for name, model in (("float32", full), ("mixed_float16", mixed)):
        analyzer = dk.DTD(model, input_domain=dk.Box(0.0, 1.0))
        forward = tf.function(lambda t, m=model: m(t, training=False))
        calls[f"{name} forward"] = lambda f=forward: f(tf.constant(x)).numpy()
        calls[f"{name} DTD"] = lambda a=analyzer: a.explain(x)
        results[name] = (analyzer.explain(x), np.asarray(forward(tf.constant(x)), np.float32))
    for call in calls.values():
        call()
    times: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(args.repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    median = {k: statistics.median(v) for k, v in times.items()}
    print(f"### mixed precision, engine CNN, batch {args.batch} "
          f"(load average {os.getloadavg()[0]:.2f})\n")
    print("| policy | model forward s | DTD explain s | ×float32 DTD | DTD max rel. "
          "conservation error | max rel. logit difference to float32 |")
    print("|---|---:|---:|---:|---:|---:|")
    reference = results["float32"][1]
    for name in ("float32", "mixed_float16"):
        e, out = results[name]
        error = np.abs(e.properties().relative_error).max()
        diff = np.abs(out - reference).max() / np.abs(reference).max()
        print(f"| {name} | {median[f'{name} forward']:.4f} | {median[f'{name} DTD']:.4f} | "
              f"{median[f'{name} DTD'] / median['float32 DTD']:.2f} | {error:.1e} | "
              f"{diff:.1e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
