"""Dataset benchmark: ``dk.analyze_dataset`` against a plain ``analyze`` loop, side by side.

Data: scikit-learn's bundled 8×8 digits (1,797 images, pixels / 16 → [0, 1]) tiled to
``--samples`` images (10,000 by default: the 1,797 repeated in order). Two models, seeded
random weights, DTD with ``input_domain=dk.Box(0, 1)``:

- ``digits8``: Conv2D(16, 3)–Flatten–Dense(64)–Dense(10) on the 8×8 images: explaining is
  so cheap (tens of thousands of images/s) that the store's own cost is at its most visible;
- ``cnn28``: the engine benchmark's MNIST-sized CNN (``bench_engine.build_model("cnn")``) on
  the digits upsampled bilinearly to 28×28 (``tf.image.resize``): explaining dominates.

Three measurements per model, each a table:

1. **Throughput** (images/s, median of ``--repeats``, methods timed round-robin in one
   process so that load from other processes hits them alike): a plain loop of
   ``analyzer.analyze(x[i:i + batch])`` into a preallocated array (no store, no
   properties), against ``analyze_dataset`` into a fresh Zarr store from numpy arrays and
   from ``tf.data.Dataset.from_tensor_slices`` (store, properties, commit markers, input
   checks and digests included).
2. **Resume after a kill**: a subprocess runs ``analyze_dataset`` and is killed with
   SIGKILL once half of the chunks are committed; the resumed run (in this process) is
   timed and compared with what the remaining samples cost at the uninterrupted rate.
   Also the fixed cost of resuming: ``analyze_dataset`` on a finished store (identity,
   weights fingerprint, markers, input digests of every chunk; nothing to explain).
3. **All classes**: ``neuron="all"`` against ten runs with ``neuron=k`` over
   ``--all-samples`` images (the ratio the engine's one-pass multi-neuron backward pass
   should push down; until then ``"all"`` is a per-class loop, so expect about 1.0).

Usage::

    python benchmarks/bench_dataset.py              # both models, 10,000 images (~3 min)
    python benchmarks/bench_dataset.py --quick      # digits8, 2,000 images, one repeat
    python benchmarks/bench_dataset.py --help
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
if "KERAS_HOME" not in os.environ:
    os.environ["KERAS_HOME"] = tempfile.mkdtemp(prefix="bench_keras_home_")

MODELS = ("digits8", "cnn28")

KILLED_RUN = """
import sys, numpy as np, keras, dtd_keras as dk
work, out, batch, chunk = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
model = keras.models.load_model(f"{work}/model.keras")
analyzer = dk.DTD(model, input_domain=dk.Box(0.0, 1.0))
dk.analyze_dataset(analyzer, np.load(f"{work}/x.npy"), out, batch_size=batch,
                   chunk_size=chunk, progress=False)
"""


def load_data(model_name: str, samples: int):
    import numpy as np
    from sklearn.datasets import load_digits

    images = (load_digits().images / 16.0).astype("float32")[..., None]
    x = np.resize(images, (samples, 8, 8, 1))
    if model_name == "cnn28":
        import tensorflow as tf

        x = np.clip(tf.image.resize(x, (28, 28), method="bilinear").numpy(), 0.0, 1.0)
    return np.ascontiguousarray(x, dtype=np.float32)


def build(model_name: str):
    import keras

    if model_name == "cnn28":
        from bench_engine import build_model

        return build_model("cnn")
    keras.utils.set_random_seed(0)
    L = keras.layers
    return keras.Sequential([
        keras.Input((8, 8, 1)), L.Conv2D(16, 3, activation="relu"), L.Flatten(),
        L.Dense(64, activation="relu"), L.Dense(10, activation="softmax")], name="digits8")


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def fresh(root: Path) -> Path:
    path = root / "store"
    if path.exists():
        shutil.rmtree(path)
    return path


def markers(out: Path) -> int:
    try:
        return sum(n.isdigit() for n in os.listdir(out / "done" / "c"))
    except FileNotFoundError:
        return 0


def throughput(analyzer, x, batch: int, repeats: int, root: Path) -> dict:
    import numpy as np
    import tensorflow as tf

    import dtd_keras as dk

    def loop():
        relevance = np.empty_like(x)
        for start in range(0, len(x), batch):
            relevance[start:start + batch] = analyzer.analyze(x[start:start + batch])

    methods = {
        "analyze loop": loop,
        "analyze_dataset (arrays)": lambda: dk.analyze_dataset(
            analyzer, x, fresh(root), batch_size=batch, progress=False),
        "analyze_dataset (tf.data)": lambda: dk.analyze_dataset(
            analyzer, tf.data.Dataset.from_tensor_slices(x), fresh(root), batch_size=batch,
            progress=False),
    }
    analyzer.analyze(x[:batch])  # trace once, outside the timings
    dk.analyze_dataset(analyzer, x[:batch], fresh(root), progress=False)  # import zarr &c.
    times = {name: [] for name in methods}
    for _ in range(repeats):
        for name, method in methods.items():
            times[name].append(timed(method))
    return {name: statistics.median(t) for name, t in times.items()}


def resume_after_kill(model, analyzer, x, batch: int, root: Path) -> dict:
    import numpy as np

    import dtd_keras as dk

    work = root / "work"
    work.mkdir(exist_ok=True)
    model.save(work / "model.keras")
    np.save(work / "x.npy", x)
    chunk = batch * max(1, len(x) // (20 * batch))  # about 20 chunks
    n_chunks = -(-len(x) // chunk)
    full = timed(lambda: dk.analyze_dataset(analyzer, x, fresh(root), batch_size=batch,
                                            chunk_size=chunk, progress=False))
    finished = timed(lambda: dk.analyze_dataset(analyzer, x, root / "store", batch_size=batch,
                                                chunk_size=chunk, progress=False))
    out = fresh(root)
    process = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(work), str(out),
                                str(batch), str(chunk)], env={**os.environ,
                               "PYTHONPATH": str(HERE.parent)}, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600
    while markers(out) < n_chunks // 2 and process.poll() is None and (
            time.monotonic() < deadline):
        time.sleep(0.002)
    process.kill()
    process.wait()
    at_kill = markers(out)
    resumed = timed(lambda: dk.analyze_dataset(analyzer, x, out, batch_size=batch,
                                               chunk_size=chunk, progress=False))
    remaining = (n_chunks - at_kill) / n_chunks
    equal = np.array_equal(np.asarray(dk.load_results(out).relevance), analyzer.analyze(x))
    return {"chunks": n_chunks, "chunk_size": chunk, "killed_at": at_kill,
            "killed": process.returncode == -9, "full_s": full, "resume_s": resumed,
            "expected_s": full * remaining, "finished_store_s": finished,
            "equal_to_analyze": bool(equal)}


def all_classes(analyzer, x, batch: int, repeats: int, root: Path) -> dict:
    import dtd_keras as dk

    def separately():
        for k in range(analyzer.output_size):
            dk.analyze_dataset(analyzer, x, fresh(root), neuron=k, batch_size=batch,
                               progress=False)

    def plain():
        for k in range(analyzer.output_size):
            for start in range(0, len(x), batch):
                analyzer.analyze(x[start:start + batch], neuron=k)

    def together():
        dk.analyze_dataset(analyzer, x, fresh(root), neuron="all", batch_size=batch,
                           progress=False)

    methods = {"ten runs, neuron=k": separately, 'one run, neuron="all"': together,
               "ten analyze loops, neuron=k (no store)": plain}
    times = {name: [] for name in methods}
    for _ in range(repeats):
        for name, method in methods.items():
            times[name].append(timed(method))
    return {name: statistics.median(t) for name, t in times.items()}


def run_model(name: str, args: argparse.Namespace) -> dict:
    import dtd_keras as dk

    x = load_data(name, args.samples)
    model = build(name)
    analyzer = dk.DTD(model, input_domain=dk.Box(0.0, 1.0))
    with tempfile.TemporaryDirectory(prefix="bench_dataset_") as tmp:
        root = Path(tmp)
        result = {"model": name, "samples": len(x), "batch": args.batch,
                  "input": list(x.shape[1:]),
                  "throughput_s": throughput(analyzer, x, args.batch, args.repeats, root)}
        result["resume"] = resume_after_kill(model, analyzer, x, args.batch, root)
        result["all_classes_s"] = all_classes(analyzer, x[:args.all_samples], args.batch,
                                              args.repeats, root)
        result["all_samples"] = min(args.all_samples, len(x))
    return result


def report(result: dict) -> str:
    n = result["samples"]
    lines = [f"### {result['model']}: {n} images {tuple(result['input'])}, batch "
             f"{result['batch']}", "",
             "| method | s | images/s | × loop time |", "|---|---:|---:|---:|"]
    base = result["throughput_s"]["analyze loop"]
    for name, seconds in result["throughput_s"].items():
        lines.append(f"| {name} | {seconds:.3f} | {n / seconds:,.0f} | {seconds / base:.2f} |")
    r = result["resume"]
    lines += ["", f"Resume after SIGKILL (chunks of {r['chunk_size']}, killed with "
              f"{r['killed_at']} of {r['chunks']} committed"
              + ("" if r["killed"] else "; the run had ended before the kill") + "):", "",
              "| uninterrupted run s | resumed run s | remaining work at the uninterrupted "
              "rate s | resume overhead s | resuming a finished store s | equal to analyze |",
              "|---:|---:|---:|---:|---:|---|",
              f"| {r['full_s']:.3f} | {r['resume_s']:.3f} | {r['expected_s']:.3f} | "
              f"{r['resume_s'] - r['expected_s']:+.3f} | {r['finished_store_s']:.3f} | "
              f"{r['equal_to_analyze']} |"]
    a = result["all_classes_s"]
    separate = a["ten runs, neuron=k"]
    lines += ["", f"All 10 classes of {result['all_samples']} images (analyze_dataset unless "
              "said otherwise):", "", "| method | s | × ten runs |", "|---|---:|---:|"]
    lines += [f"| {name} | {seconds:.3f} | {seconds / separate:.2f} |"
              for name, seconds in a.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--all-samples", type=int, default=1_000,
                        help="images for the all-classes comparison (default 1000)")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true",
                        help="digits8 only, 2,000 images, one repeat")
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.models, args.samples, args.repeats = ["digits8"], 2_000, 1
    import tensorflow as tf

    import dtd_keras as dk

    print(f"# bench_dataset: dtd_keras {dk.__version__}, TensorFlow {tf.__version__}, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}\n")
    results = []
    for name in args.models:
        results.append(run_model(name, args))
        print(report(results[-1]) + "\n", flush=True)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
