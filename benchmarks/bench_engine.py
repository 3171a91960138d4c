"""Engine benchmark: DTD / LRP against the plain gradient, side by side in one run.

For each model configuration (VGG16 at batch 1 and 8, a small MNIST-sized CNN at batch
256) and each method (forward pass, input gradient of the top logit, DTD, LRP-ε,
LRP-αβ(2,1)) this measures

- seconds per batch: the median (and the minimum) of ``--repeats`` timed calls after a
  warm-up call. All methods of one configuration are timed in ONE process, round-robin
  (gradient, forward, DTD, … , gradient, forward, …), so that load from other
  processes hits every method alike and the ratios stay meaningful on a busy machine;
- images per second (batch / median);
- first call: constructing the function (``tf.function`` / analyzer) plus its first
  call, tracing and graph optimisation included, in a fresh subprocess per method (so
  no method profits from another's warm TF runtime);
- peak memory, in the same fresh subprocess, over construction, first and second call:
  ``TF peak``: the peak of TensorFlow's CPU allocator
  (``tf.config.experimental.get_memory_info("CPU:0")``, reset after the model and the
  inputs are built) above what it held before: every tensor the method allocates,
  weights excluded. ``RSS peak``: the rise of the process's resident-set high-water mark
  (``VmHWM``, reset through ``/proc/self/clear_refs``). RSS under-counts: the allocator
  reuses memory that building the model freed but the process kept (about 0.8 GiB for
  VGG16), so the targets use the TF allocator's peak;

and the ratio of each to the gradient's. All methods explain the same logits: the input
of the model's final softmax (the analyzers strip it; forward and gradient apply the
last Dense layer without its activation). The chosen logit values are compared across
methods as a sanity check.

Targets (checked for DTD): time ≤ 1.5× gradient, first call ≤ 2× gradient, peak
memory ≤ 1.5× gradient.

Usage::

    python benchmarks/bench_engine.py            # full run (several minutes on 2 cores)
    python benchmarks/bench_engine.py --quick    # small CNN only, in-process, seconds
    python benchmarks/bench_engine.py --help
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

METHODS = ("forward", "gradient", "dtd", "lrp_eps", "lrp_ab")
METHOD_LABELS = {
    "forward": "forward",
    "gradient": "gradient",
    "dtd": "DTD",
    "lrp_eps": "LRP-ε(0.1)",
    "lrp_ab": "LRP-αβ(2,1)",
}
# name -> (model, batch, timed repeats, fresh processes for first call/memory) in a full run
CONFIGS = {
    "cnn-b256": ("cnn", 256, 7, 3),
    "vgg16-b1": ("vgg16", 1, 5, 1),
    "vgg16-b8": ("vgg16", 8, 3, 1),
    "resnet50-b8": ("resnet50", 8, 5, 1),
    # for an accelerator (not in the default run: minutes per call on a 2-core CPU)
    "vgg16-b64": ("vgg16", 64, 9, 1),
    "resnet50-b64": ("resnet50", 64, 9, 1),
}
DEFAULT_CONFIGS = ("cnn-b256", "vgg16-b1", "vgg16-b8", "resnet50-b8")
TARGETS = (("time", "seconds", 1.5), ("first call", "first", 2.0),
           ("memory", "tf_peak", 1.5))
CHILD_TAG = "@@bench@@"


# --------------------------------------------------------------------------- memory
def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as handle:
            match = re.search(rf"^{field}:\s+(\d+) kB", handle.read(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux ≥ 4.0); False where that is impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


class PeakMemory:
    """Peak rise (MiB) of the TF CPU allocator and of the RSS since :meth:`start`."""

    def start(self) -> None:
        import resource

        import tensorflow as tf

        tf.config.experimental.reset_memory_stats("CPU:0")
        self.tf_base = tf.config.experimental.get_memory_info("CPU:0")["current"]
        self.exact = _reset_peak() and _status_kib("VmHWM") is not None
        self.rss_base = _status_kib("VmRSS") if self.exact else None
        if self.rss_base is None:  # fallback: ru_maxrss (KiB on Linux), cannot be reset
            self.exact = False
            self.rss_base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def tf_peak_mib(self) -> float:
        import tensorflow as tf

        peak = tf.config.experimental.get_memory_info("CPU:0")["peak"]
        return max(0, peak - self.tf_base) / 2**20

    def rss_peak_mib(self) -> float:
        import resource

        if self.exact:
            peak = _status_kib("VmHWM")
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return max(0, peak - self.rss_base) / 1024.0


# --------------------------------------------------------------------------- models
def _setup_environment() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if "KERAS_HOME" not in os.environ:  # weights=None needs no download; keep ~ clean
        os.environ["KERAS_HOME"] = tempfile.mkdtemp(prefix="bench_keras_home_")


# model -> (input shape, input range: the DTD box and where the random inputs lie)
MODEL_INFO = {"vgg16": ((224, 224, 3), (0.0, 255.0)), "cnn": ((28, 28, 1), (0.0, 1.0)),
              # ResNet50's caffe preprocessing subtracts the channel means from 0…255
              "resnet50": ((224, 224, 3), (-124.0, 152.0))}


def build_model(name: str):
    """The model, seeded random weights (``weights=None``: nothing is downloaded)."""
    import keras

    keras.utils.set_random_seed(0)
    if name == "vgg16":
        return keras.applications.VGG16(weights=None)
    if name == "resnet50":
        return keras.applications.ResNet50(weights=None)
    if name == "cnn":
        L = keras.layers
        model = keras.Sequential([
            keras.Input((28, 28, 1)),
            L.Conv2D(32, 3, activation="relu"),
            L.Conv2D(64, 3, activation="relu"),
            L.MaxPooling2D(),
            L.Conv2D(64, 3, activation="relu"),
            L.MaxPooling2D(),
            L.Flatten(),
            L.Dense(128, activation="relu"),
            L.Dense(10, activation="softmax"),
        ], name="mnist_cnn")
        return model
    raise ValueError(f"unknown model {name!r}")


def make_inputs(model_name: str, batch: int):
    import numpy as np
    import tensorflow as tf

    shape, (low, high) = MODEL_INFO[model_name]
    rng = np.random.default_rng(1)
    x = tf.constant(rng.uniform(low, high, (batch, *shape)).astype(np.float32))
    return x, tf.constant(np.full((batch,), -1, dtype=np.int32))


def logits_function(model):
    """``x -> logits``: the model up to its last Dense layer, without the softmax."""
    import keras

    head = model.layers[-1]
    if not isinstance(head, keras.layers.Dense):
        raise ValueError("expected a model ending in a Dense layer")
    trunk = keras.Model(model.inputs, head.input)

    def logits(x):
        z = keras.ops.matmul(trunk(x, training=False), head.kernel)
        return z + head.bias if head.use_bias else z

    return logits


def _select(logits, neuron):
    """The analyzers' neuron selection: ``neuron < 0`` picks the top logit."""
    import tensorflow as tf

    best = tf.argmax(logits, axis=-1, output_type=tf.int32)
    chosen = tf.where(neuron < 0, best, neuron)
    return chosen, tf.gather(logits, chosen, batch_dims=1)


def make_method(method: str, model, low: float, high: float, dtd_domain: str = "box",
                jit_compile: bool = False):
    """Construct ``method`` (traced): a callable ``(x, neuron) -> (output, logits)``."""
    import tensorflow as tf

    import dtd_keras as dk

    shape = (None, *model.input_shape[1:])
    specs = (tf.TensorSpec(shape, tf.float32), tf.TensorSpec((None,), tf.int32))
    if method in ("forward", "gradient"):
        logits_of = logits_function(model)

        def forward(x, neuron):
            logits = logits_of(x)
            return logits, _select(logits, neuron)[1]

        def gradient(x, neuron):
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(x)
                _, explained = _select(logits_of(x), neuron)
            return tape.gradient(explained, x), explained

        fn = forward if method == "forward" else gradient
        return tf.function(fn, autograph=False, jit_compile=jit_compile
                           ).get_concrete_function(*specs)

    options = {"jit_compile": jit_compile}
    if method == "dtd":
        domain = dk.Box(low, high) if dtd_domain == "box" else dtd_domain
        analyzer = dk.DTD(model, input_domain=domain, **options)
    elif method == "lrp_eps":
        analyzer = dk.LRP(model, rule=dk.rules.Epsilon(0.1), **options)
    elif method == "lrp_ab":
        analyzer = dk.LRP(model, rule=dk.rules.AlphaBeta(2, 1), **options)
    else:
        raise ValueError(f"unknown method {method!r}")
    concrete = analyzer.concrete_function

    def call(x, neuron):
        maps, _, explained = concrete((x,), neuron)
        return maps[0], explained

    return call


def _run(fn, x, neuron):
    out, explained = fn(x, neuron)
    out.numpy()
    return explained


# --------------------------------------------------------------------------- measuring
def measure_first(model_name: str, batch: int, method: str, dtd_domain: str,
                  jit_compile: bool = False, model=None) -> dict:
    """First call (construction + trace + call) and peak memory of one method."""
    if model is None:
        model = build_model(model_name)
    x, neuron = make_inputs(model_name, batch)
    _, (low, high) = MODEL_INFO[model_name]
    memory = PeakMemory()
    memory.start()
    start = time.perf_counter()
    fn = make_method(method, model, low, high, dtd_domain, jit_compile)
    explained = _run(fn, x, neuron)
    first = time.perf_counter() - start
    _run(fn, x, neuron)  # a second call: steady-state temporaries count too
    return {"method": method, "first": first, "tf_peak": memory.tf_peak_mib(),
            "rss_peak": memory.rss_peak_mib(), "rss_exact": memory.exact,
            "logits": [float(v) for v in explained.numpy()[:4]]}


def measure_times(model_name: str, batch: int, methods: list[str], repeats: int,
                  dtd_domain: str, jit_compile: bool = False, model=None) -> dict:
    """Steady-state seconds per batch of every method, timed round-robin in one process."""
    if model is None:
        model = build_model(model_name)
    x, neuron = make_inputs(model_name, batch)
    _, (low, high) = MODEL_INFO[model_name]
    functions = {}
    for method in methods:
        functions[method] = make_method(method, model, low, high, dtd_domain, jit_compile)
        _run(functions[method], x, neuron)  # trace + warm-up
    times: dict[str, list[float]] = {m: [] for m in methods}
    for _ in range(repeats):
        for method, fn in functions.items():
            start = time.perf_counter()
            _run(fn, x, neuron)
            times[method].append(time.perf_counter() - start)
    return times


def run_child(args: list[str]) -> object:
    """Run this script with ``args`` in a fresh interpreter; return its JSON result."""
    command = [sys.executable, os.path.abspath(__file__), *args]
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
    for line in done.stdout.splitlines():
        if line.startswith(CHILD_TAG):
            return json.loads(line[len(CHILD_TAG):])
    raise RuntimeError(f"{' '.join(args)} failed (exit {done.returncode}):\n"
                       f"{done.stderr[-3000:]}")


# --------------------------------------------------------------------------- reporting
def _ratio(value: float, reference: float | None) -> float | None:
    return value / reference if reference else None


def report(config: str, rows: list[dict]) -> list[tuple[str, float | None, bool]]:
    """Print one config's table; return ``(target, ratio, passed)`` for DTD."""
    by_method = {r["method"]: r for r in rows}
    grad = by_method.get("gradient")
    model, batch, *_ = CONFIGS[config]
    print(f"\n### {config}: {model}, batch {batch}\n")
    columns = ["method", "s/batch", "best s", "img/s", "first call s", "TF peak MiB",
               "RSS peak MiB", "×grad time", "×grad best", "×grad first", "×grad mem"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(columns))) + "|")

    def fmt(value: float | None, spec: str) -> str:
        return "—" if value is None else format(value, spec)

    for r in rows:
        ratios = [_ratio(r[k], grad[k]) if grad else None
                  for k in ("seconds", "best", "first", "tf_peak")]
        cells = [METHOD_LABELS[r["method"]], f"{r['seconds']:.4f}", f"{r['best']:.4f}",
                 f"{r['batch'] / r['seconds']:.1f}", f"{r['first']:.2f}",
                 f"{r['tf_peak']:.0f}", f"{r['rss_peak']:.0f}",
                 *(fmt(v, ".2f") for v in ratios)]
        print("| " + " | ".join(cells) + " |")
    reference = rows[0]["logits"]
    spread = max(max(abs(a - b) for a, b in zip(r["logits"], reference)) for r in rows)
    scale = max(1e-12, max(abs(v) for v in reference))
    print(f"\nexplained logits agree across methods: max |Δ| = {spread:.3g} "
          f"(relative {spread / scale:.2g}); first values {[round(v, 4) for v in reference]}")
    checks: list[tuple[str, float | None, bool]] = []
    dtd = by_method.get("dtd")
    if dtd and grad:
        for target, key, limit in TARGETS:
            ratio = _ratio(dtd[key], grad[key])
            ok = ratio is not None and ratio <= limit
            checks.append((f"{config} {target}", ratio, ok))
            print(f"- DTD {target} ≤ {limit}× gradient: {fmt(ratio, '.2f')}× "
                  f"**{'PASS' if ok else 'FAIL'}**")
    return checks


def _git_commit(package_dir: str) -> str:
    """The git commit of the checkout ``package_dir`` lies in (and whether it is dirty)."""
    here = os.path.dirname(package_dir)
    try:
        done = subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", here, "status", "--porcelain", package_dir],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if done.returncode:
        return "unknown (not a git checkout)"
    return done.stdout.strip() + (" (dtd_keras has uncommitted changes)"
                                  if dirty.stdout.strip() else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="DTD/LRP engine benchmark: time, first call and peak memory of each "
                    "method against the plain input gradient of the top logit, measured "
                    "side by side in one run. Targets for DTD: time ≤ 1.5×, first call "
                    "≤ 2×, peak memory ≤ 1.5× the gradient's.")
    parser.add_argument("--quick", action="store_true",
                        help="small CNN only, 3 repeats, everything in one process "
                             "(a smoke run of a few seconds)")
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS),
                        help=f"configurations to run (default: {', '.join(DEFAULT_CONFIGS)}; "
                             "vgg16-b64 and resnet50-b64 are for a GPU)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS),
                        help="methods to run (default: all; the gradient is the reference)")
    parser.add_argument("--repeats", type=int,
                        help="timed calls per method (default: 7 CNN, 5 VGG16 b1, 3 b8)")
    parser.add_argument("--first-runs", type=int,
                        help="fresh processes measuring first call and memory per method; "
                             "the median is reported (default: 3 CNN, 1 VGG16)")
    parser.add_argument("--dtd-domain", choices=("box", "real", "positive"), default="box",
                        help="DTD input domain: box = dk.Box(0, 255) for VGG16 and "
                             "dk.Box(0, 1) for the CNN (default), or real / positive")
    parser.add_argument("--xla", action="store_true",
                        help="compile every method with jit_compile=True")
    isolation = parser.add_mutually_exclusive_group()
    isolation.add_argument("--isolate", dest="isolate", action="store_true", default=None,
                           help="first call and memory in a fresh subprocess per method, "
                                "times in one subprocess per configuration (default, "
                                "except with --quick)")
    isolation.add_argument("--in-process", dest="isolate", action="store_false",
                           help="everything in this process: faster, but first calls "
                                "after the first method profit from a warm runtime")
    parser.add_argument("--json", metavar="PATH", help="also write the raw results here")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    _setup_environment()

    if args.child:  # ["first", CONFIG, METHOD] or ["times", CONFIG, METHOD...]
        kind, config, *methods = args.child
        model_name, batch, repeats, _ = CONFIGS[config]
        if kind == "first":
            result = measure_first(model_name, batch, methods[0], args.dtd_domain, args.xla)
        else:
            result = measure_times(model_name, batch, methods, args.repeats or repeats,
                                   args.dtd_domain, args.xla)
        print(CHILD_TAG + json.dumps(result), flush=True)
        return 0

    configs = args.configs or (["cnn-b256"] if args.quick else list(DEFAULT_CONFIGS))
    isolate = (not args.quick) if args.isolate is None else args.isolate
    methods = list(dict.fromkeys(args.methods))
    if "gradient" in methods:  # the reference goes first
        methods.remove("gradient")
        methods.insert(0, "gradient")

    import platform

    import tensorflow as tf

    import dtd_keras

    print("## dtd_keras engine benchmark\n")
    package_dir = os.path.dirname(os.path.abspath(dtd_keras.__file__))
    print(f"- dtd_keras {dtd_keras.__version__} from {package_dir}, "
          f"commit {_git_commit(package_dir)}")
    print(f"- TensorFlow {tf.__version__}, Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()})")
    layout = ("first call/memory: fresh subprocess per method; times: one subprocess per "
              "configuration, round-robin" if isolate else "everything in one process")
    print(f"- {layout}; DTD input domain: {args.dtd_domain}; XLA: {args.xla}")
    print(f"- load average at start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}",
          flush=True)
    shared = ["--dtd-domain", args.dtd_domain] + (["--xla"] if args.xla else [])
    cache: dict = {}
    all_checks: list[tuple[str, float | None, bool]] = []
    all_rows: list[dict] = []
    started = time.perf_counter()
    for config in configs:
        model_name, batch, repeats, first_runs = CONFIGS[config]
        repeats = args.repeats or (3 if args.quick else repeats)
        first_runs = args.first_runs or (first_runs if isolate else 1)
        rows = []
        for method in methods:
            runs = []
            for _ in range(first_runs):
                if isolate:
                    runs.append(run_child(["--child", "first", config, method, *shared]))
                else:
                    if model_name not in cache:  # build, and pay TF's one-time costs
                        cache[model_name] = build_model(model_name)
                        x, neuron = make_inputs(model_name, batch)
                        _, (low, high) = MODEL_INFO[model_name]
                        _run(make_method("forward", cache[model_name], low, high), x, neuron)
                    runs.append(measure_first(model_name, batch, method, args.dtd_domain,
                                              args.xla, cache[model_name]))
            row = dict(runs[0])
            for key in ("first", "tf_peak", "rss_peak"):
                row[f"{key}_runs"] = [r[key] for r in runs]
                row[key] = statistics.median(row[f"{key}_runs"])
            rows.append(row)
        if isolate:
            times = run_child(["--child", "times", config, *methods, "--repeats",
                               str(repeats), *shared])
        else:
            times = measure_times(model_name, batch, methods, repeats, args.dtd_domain,
                                  args.xla, cache[model_name])
        for row in rows:
            samples = times[row["method"]]
            row.update(config=config, model=model_name, batch=batch, times=samples,
                       seconds=statistics.median(samples), best=min(samples))
        all_checks += report(config, rows)
        all_rows += rows
    print(f"\n- total {time.perf_counter() - started:.0f} s; load average at end: "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if not all(r["rss_exact"] for r in all_rows):
        print("- note: RSS peak from ru_maxrss (VmHWM could not be reset): not per method")
    if all_checks:
        passed = sum(ok for *_, ok in all_checks)
        print(f"- DTD targets: {passed}/{len(all_checks)} PASS")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"rows": all_rows, "checks": all_checks}, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
