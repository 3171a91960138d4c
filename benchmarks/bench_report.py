"""HTML report benchmark: how long ``dk.report`` takes to write, and what it leaves on disk.

A synthetic results store of ``--samples`` 28×28×1 samples (10 classes, labels, chunks
of 1,000) is written through the store API directly (``datasets.create.prepare`` and
``Store.commit``: no model, so that making it takes seconds): relevance and inputs are
random 7×7 patterns upsampled ×4 (blocky, so that the PNGs compress about as well as real
heatmaps of a small CNN, not as badly as noise). Then, each timed:

1. ``dk.report(store, out, data=x)``: the first write, input and heatmap thumbnails
   (64 px), class means, histograms, ``items.js``;
2. the same call again into the same ``out`` (the thumbnails are kept: only the data
   files are written again);

and the size of ``out`` (all files, and ``data/items.js`` alone) and its file count.
Single process; wall-clock and CPU seconds (this process's user + system time: on a
shared machine the wall clock also counts waiting for a core and for the disk).

Usage::

    python benchmarks/bench_report.py                    # 10,000 samples (~1 min)
    python benchmarks/bench_report.py --samples 100000   # (~10 min on 2 cores)
    python benchmarks/bench_report.py --json result.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402

SHAPE = (28, 28, 1)
CLASSES = 10
CHUNK = 1000


def blocky(rng: np.random.Generator, n: int, signed: bool) -> np.ndarray:
    small = rng.random((n, 7, 7, 1), dtype=np.float32)
    if signed:
        small = small - 0.3
    return np.repeat(np.repeat(small, 4, axis=1), 4, axis=2)


def make_store(path: Path, count: int, seed: int = 0) -> np.ndarray:
    """Write a finished synthetic store of ``count`` samples at ``path``; returns x."""
    from dtd_keras.datasets.create import prepare
    from dtd_keras.datasets.store import PROPERTY_FIELDS, Layout

    rng = np.random.default_rng(seed)
    layout = Layout(count=count, chunk_size=CHUNK, inputs=[list(SHAPE)], classes=None,
                    dtype="float32", labels=True)
    identity = {"library_version": "bench", "model": {"name": "synthetic"},
                "weights": "none", "analyzer": {"type": "dtd_keras.analyzers.dtd.DTD",
                                                "input_domains": ["Box(0, 1)"],
                                                "output_size": CLASSES},
                "arguments": {"neuron": "label", "chunk_size": CHUNK},
                "data": {"kind": "arrays", "count": count, "shapes": [list(SHAPE)]}}
    store = prepare(path, identity, layout, resume=False, overwrite=True)
    x = blocky(rng, count, signed=False)
    for chunk in range(layout.n_chunks):
        start, stop = layout.chunk_range(chunk)
        n = stop - start
        relevance = blocky(rng, n, signed=True)
        label = rng.integers(0, CLASSES, n)
        total = relevance.reshape(n, -1).sum(axis=1).astype(np.float64)
        logit = (total * (1 + rng.normal(0, 1e-6, n))).astype(np.float32)
        negative = np.minimum(relevance, 0).reshape(n, -1).sum(axis=1).astype(np.float64)
        absolute = np.abs(relevance).reshape(n, -1).sum(axis=1).astype(np.float64)
        values = {"relevance": relevance, "neuron": label.astype(np.int32), "logit": logit,
                  "index": np.arange(start, stop, dtype=np.int64), "label": label}
        fields = {"total": total, "explained": logit.astype(np.float64),
                  "conservation_error": total - logit,
                  "relative_error": (total - logit) / np.abs(logit),
                  "negative_mass": negative, "negative_fraction": -negative / absolute,
                  "positive": negative == 0, "consistent": np.zeros(n, bool)}
        values.update({f"properties/{k}": fields[k] for k in PROPERTY_FIELDS})
        store.commit(chunk, values, digest=chunk + 1)
    return x


def size_of(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), len(files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the store and report")
    args = parser.parse_args()

    import dtd_keras.reporting as reporting

    root = Path(tempfile.mkdtemp(prefix="bench_report_"))
    try:
        started = time.perf_counter()
        x = make_store(root / "store.zarr", args.samples)
        made = time.perf_counter() - started
        out = root / "report"
        started, cpu = time.perf_counter(), time.process_time()
        reporting.report(root / "store.zarr", out, data=x, progress=False)
        first, first_cpu = time.perf_counter() - started, time.process_time() - cpu
        started, cpu = time.perf_counter(), time.process_time()
        reporting.report(root / "store.zarr", out, data=x, progress=False)
        rerun, rerun_cpu = time.perf_counter() - started, time.process_time() - cpu
        total, files = size_of(out)
        items = (out / "data" / "items.js").stat().st_size
        per = 10_000 / args.samples
        result = {"samples": args.samples, "store_s": round(made, 2),
                  "first_s": round(first, 2), "rerun_s": round(rerun, 2),
                  "first_s_per_10k": round(first * per, 2),
                  "rerun_s_per_10k": round(rerun * per, 2),
                  "first_cpu_s": round(first_cpu, 2), "rerun_cpu_s": round(rerun_cpu, 2),
                  "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
                  "report_mb": round(total / 1e6, 1), "files": files,
                  "items_js_mb": round(items / 1e6, 2),
                  "machine": f"{platform.processor() or platform.machine()}, "
                             f"{os.cpu_count()} cores"}
        print(f"{args.samples:,} samples (store made in {made:.1f} s)")
        print(f"first write: {first:.1f} s ({first * per:.1f} s per 10,000 samples), "
              f"CPU {first_cpu:.1f} s")
        print(f"rerun:       {rerun:.2f} s ({rerun * per:.2f} s per 10,000 samples), "
              f"CPU {rerun_cpu:.2f} s")
        print(f"on disk: {total / 1e6:.1f} MB in {files:,} files; data/items.js "
              f"{items / 1e6:.2f} MB")
        if args.json:
            args.json.write_text(json.dumps(result, indent=1))
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
