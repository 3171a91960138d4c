"""K concepts in one pass against K calls: ``explain(x, condition={layer: [K channels]})``
against K calls ``explain(x, condition={layer: [c]})``, one channel each.

The one-pass call carries one relevance set down to the conditioned layer and K copies
(copy-major, as for ``neuron="all"``) below it, sharing the rules' denominators, so the
forward pass and the denominators are computed once; the K calls compute them K times.
Issue 15's target: ≤ 0.5× the K calls. Timed side by side in one process, round-robin
(load from other processes hits both alike), median of ``--repeats`` after a warm-up
that traces both (one trace per (layer, K); the channels are an argument). The one-pass
maps are checked against the stacked single-channel maps first. For K above
``--per-pass`` (8), also the K channels in passes of 8 (``neurons_per_pass=8``): the
copies of large activations then stay smaller.

Model: the MNIST-sized CNN of ``bench_layer_relevance.py`` (Conv32–Conv64–MaxPool–Conv64–
MaxPool–Dense128–Dense10, ReLU, softmax head; seeded random weights), ``--batch`` samples
uniform in [0, 1]; concepts: the first K channels of ``conv2`` (64 channels). Analyzer:
DTD (zᴮ at the input, z⁺ above).

Usage::

    python benchmarks/bench_concepts.py               # ~40 s on 2 busy cores
    python benchmarks/bench_concepts.py --ks 8 32 64 --batch 16 --repeats 9
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

import numpy as np  # noqa: E402

import dtd_keras as dk  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_layer_relevance import mnist_cnn  # noqa: E402  (the same CNN)
from bench_neurons import round_robin  # noqa: E402  (timed round-robin, median)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--ks", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--per-pass", type=int, nargs="*", default=[8],
                        help="also time K channels in passes of this many (below K)")
    parser.add_argument("--layer", default="conv2")
    args = parser.parse_args()
    model = mnist_cnn()
    x = np.random.default_rng(0).uniform(size=(args.batch, 28, 28, 1)).astype("float32")
    analyzer = dk.DTD(model, input_domain=dk.Box(0.0, 1.0))
    layer = args.layer
    print(f"MNIST-sized CNN, DTD, batch {args.batch}, layer {layer}, median of "
          f"{args.repeats}\n")
    print("| K | channels per pass | passes | time (s) | K calls (s) | ratio |")
    print("|---:|---:|---:|---:|---:|---:|")
    for k in args.ks:
        channels = list(range(k))
        sizes = sorted({k, *(p for p in args.per_pass if p < k)}, reverse=True)

        def k_calls(c=channels):
            return [analyzer.explain(x, condition={layer: [j]}) for j in c]

        calls = {f"pass{p}": (lambda c=channels, p=p: analyzer.explain(
            x, condition={layer: c}, neurons_per_pass=p)) for p in sizes}
        apart = np.stack([e.relevance[:, 0] for e in k_calls()], axis=1)
        for call in calls.values():
            np.testing.assert_allclose(call().relevance, apart, rtol=1e-4,
                                       atol=1e-6 * float(np.abs(apart).max()))
        t = round_robin({**calls, "calls": k_calls}, args.repeats)
        for p in sizes:
            print(f"| {k} | {p} | {-(-k // p)} | {t[f'pass{p}']:.4f} | {t['calls']:.4f} | "
                  f"{t[f'pass{p}'] / t['calls']:.3f}x |")

if __name__ == "__main__":
    main()
