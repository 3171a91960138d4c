"""Several neurons per sample: one pass (``neuron="all"``) against K single-neuron calls.

Side by side in one process, timed round-robin (so load from other processes hits both
alike), median of ``--repeats`` after a warm-up call that traces both functions:

1. **digits CNN** (the demo's architecture: Conv8–Conv16–MaxPool–Dense32–Dense10 on 8×8×1,
   seeded random weights; ``--batch`` samples): all 10 classes in one call against ten
   ``neuron=k`` calls, for DTD (zᴮ/z⁺), LRP-ε and the gradient. Target: ≤ 0.4×.
2. **VGG16** (``weights=None``, ``--vgg-size``² input, batch 1): all 1000 classes, in chunks
   of ``analyzer.neurons_per_pass`` (the default that keeps the backward pass's activation
   copies under about 1 GiB), against single calls (a sample of ``--vgg-singles`` classes,
   extrapolated to 1000); with the TensorFlow CPU allocator's peak memory of each.

Usage::

    python benchmarks/bench_neurons.py            # both (~3 min on 2 busy cores)
    python benchmarks/bench_neurons.py --quick    # digits CNN only, few repeats
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("KERAS_HOME", tempfile.mkdtemp(prefix="bench_keras_home_"))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import dtd_keras as dk  # noqa: E402

L = keras.layers


def digits_cnn() -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((8, 8, 1)), L.Conv2D(8, 3, padding="same", activation="relu"),
        L.Conv2D(16, 3, padding="same", activation="relu"), L.MaxPooling2D(),
        L.Flatten(), L.Dense(32, activation="relu"), L.Dense(10, activation="softmax")])


def analyzers(model: keras.Model, low: float, high: float) -> dict[str, dk.Analyzer]:
    return {"DTD": dk.DTD(model, input_domain=dk.Box(low, high)),
            "LRP-ε(0.1)": dk.LRP(model, dk.rules.Epsilon(0.1)),
            "gradient": dk.create_analyzer("gradient", model)}


def round_robin(calls: dict[str, callable], repeats: int) -> dict[str, float]:
    for call in calls.values():  # warm-up: traces
        call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def bench_digits(batch: int, repeats: int) -> None:
    model = digits_cnn()
    x = np.random.default_rng(0).uniform(size=(batch, 8, 8, 1)).astype("float32")
    print(f"### digits CNN, batch {batch}, 10 classes\n")
    print("| method | all 10 in one call (s) | ten single calls (s) | ratio |")
    print("|---|---:|---:|---:|")
    for name, analyzer in analyzers(model, 0.0, 1.0).items():
        def all_at_once(a=analyzer):
            return a.explain(x, neuron="all")

        def one_by_one(a=analyzer):
            return [a.explain(x, neuron=k) for k in range(10)]

        t = round_robin({"all": all_at_once, "single": one_by_one}, repeats)
        print(f"| {name} | {t['all']:.4f} | {t['single']:.4f} | {t['all'] / t['single']:.2f} |")
    print()


def _peak_mib(call) -> tuple[float, float]:
    tf.config.experimental.reset_memory_stats("CPU:0")
    base = tf.config.experimental.get_memory_info("CPU:0")["current"]
    start = time.perf_counter()
    call()
    seconds = time.perf_counter() - start
    peak = tf.config.experimental.get_memory_info("CPU:0")["peak"]
    return seconds, (peak - base) / 2**20


def bench_vgg(size: int, singles: int) -> None:
    keras.utils.set_random_seed(0)
    model = keras.applications.VGG16(weights=None, input_shape=(size, size, 3))
    x = np.random.default_rng(0).uniform(0, 255, (1, size, size, 3)).astype("float32")
    analyzer = dk.DTD(model, input_domain=dk.Box(0.0, 255.0))
    per_pass = analyzer.neurons_per_pass(1)
    analyzer.explain(x, neuron=0)
    analyzer.explain(x, neuron=np.arange(per_pass)[None])  # trace both functions
    all_s, all_mib = _peak_mib(lambda: analyzer.explain(x, neuron="all"))
    one_s, one_mib = _peak_mib(lambda: [analyzer.explain(x, neuron=k) for k in range(singles)])
    print(f"### VGG16 {size}×{size}, batch 1, all 1000 classes (DTD, {per_pass} per pass)\n")
    print("| | time (s) | TF peak MiB |")
    print("|---|---:|---:|")
    print(f"| `neuron=\"all\"` ({-(-1000 // per_pass)} passes) | {all_s:.1f} | {all_mib:.0f} |")
    print(f"| 1000 single calls (extrapolated from {singles}) | {one_s * 1000 / singles:.1f} "
          f"| {one_mib:.0f} |")
    print(f"\nratio: {all_s / (one_s * 1000 / singles):.2f}\n")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"needs a whole number >= 1, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="digits CNN only, 3 repeats")
    parser.add_argument("--batch", type=_positive, default=256)
    parser.add_argument("--repeats", type=_positive, default=None)
    parser.add_argument("--vgg-size", type=_positive, default=64)
    parser.add_argument("--vgg-singles", type=_positive, default=20,
                        help="single calls timed to extrapolate 1000 from (default 20)")
    args = parser.parse_args(argv)
    repeats = args.repeats or (3 if args.quick else 9)
    print(f"- TensorFlow {tf.__version__}, {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}\n")
    bench_digits(args.batch, repeats)
    if not args.quick:
        bench_vgg(args.vgg_size, args.vgg_singles)
    return 0


if __name__ == "__main__":
    sys.exit(main())
