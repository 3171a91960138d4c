"""The ``dtd-keras`` command line: explain a saved model's decisions, export an explainer,
run the demo.

    $ dtd-keras explain model.keras digits.npy photo.png --domain 0,1 --out explained
    $ dtd-keras export model.keras explainer --preset deep_taylor --domain 0,1
    $ dtd-keras demo --out demo_out

Every command has ``--help``. Errors (missing file, a model that does not load, inputs
that do not fit the model, an unsupported layer, inputs outside ``--domain``) end the
command with exit status 1 and one line on stderr, ``dtd-keras: error: …``; add
``--traceback`` to see the Python traceback instead. Usage mistakes exit with status 2.

Models are loaded with ``keras.models.load_model(path, safe_mode=True, compile=False)``:
a model file cannot run Python code (e.g. a ``Lambda`` layer's) unless ``--unsafe`` is
given. Only single-input models are supported here; use the Python API for others.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CLIError", "build_parser", "main"]

PROG = "dtd-keras"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
ARRAY_SUFFIXES = (".npy", ".npz")
_MESSAGE_LIMIT = 400


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 1."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr (exit status 2)."""

    def error(self, message: str):
        self.exit(2, f"{PROG}: error: {message} (see '{self.prog} --help')\n")


# --------------------------------------------------------------------------- domains
DOMAIN_HELP = (
    "the range of the model inputs: 'LOW,HIGH' (a box, e.g. 0,1 or 0,255; write "
    "--domain=-1,1 when LOW is negative), 'real' (any value) or 'positive' (>= 0). "
    "It selects the input rule: deep_taylor gets input_domain=Box(LOW, HIGH) (zB rule), "
    "'real' (w2 rule) or 'positive' (z+ rule); deep_taylor.bounded and lrp.composite get "
    "low=LOW, high=HIGH (deep_taylor.bounded needs a box; lrp.composite without a box uses "
    "w2 at the input); the other presets keep their own rules. Default: 0,1"
)


def parse_domain(text: str) -> Any:
    """``"real"``, ``"positive"`` or ``"LOW,HIGH"`` → ``"real"``, ``"positive"`` or a Box."""
    from .domains import Box

    value = text.strip().lower()
    if value in ("real", "positive"):
        return value
    parts = [p.strip() for p in value.replace(":", ",").split(",")]
    if len(parts) == 2:
        try:
            low, high = float(parts[0]), float(parts[1])
        except ValueError:
            low = high = None
        if low is not None and math.isfinite(low) and math.isfinite(high):
            if low > high:
                raise CLIError(f"--domain {text}: LOW must not exceed HIGH")
            return Box(low, high)
    raise CLIError(f"--domain {text!r} is not 'LOW,HIGH' (e.g. 0,1), 'real' or 'positive'")


def _describe_domain(domain: Any) -> str:
    if isinstance(domain, str):
        return domain
    return f"{float(domain.low):g},{float(domain.high):g}"


def analyzer_options(preset: str, domain: Any) -> dict[str, Any]:
    """The ``create_analyzer`` options that declare ``domain`` for ``preset``."""
    box = not isinstance(domain, str)
    if preset == "deep_taylor":
        return {"input_domain": domain}
    if preset in ("deep_taylor.bounded", "lrp.composite"):
        if box:
            return {"low": float(domain.low), "high": float(domain.high)}
        if preset == "deep_taylor.bounded":
            raise CLIError(f"the preset deep_taylor.bounded needs a box domain, e.g. "
                           f"--domain 0,1 (got --domain {domain})")
    return {}


def _check_domain(domain: Any, x: np.ndarray, what: str) -> None:
    from .domains import as_domain

    try:
        as_domain(domain).check(x, what)
    except ValueError as error:
        raise CLIError(f"{error} (declare the input range with --domain, e.g. --domain real)"
                       ) from None


# --------------------------------------------------------------------------- models
def load_model(path: str, unsafe: bool = False):
    """``keras.models.load_model`` in safe mode (unless ``unsafe``), with one-line errors."""
    target = Path(path)
    if not target.exists():
        raise CLIError(f"model file not found: {path}")
    if target.is_dir():
        raise CLIError(f"{path} is a folder; give a Keras model file (.keras or .h5)")
    if target.suffix == ".keras" and not zipfile.is_zipfile(target):
        raise CLIError(f"cannot load the model {path}: not a Keras .keras file (no zip archive)")
    import keras

    try:
        model = keras.models.load_model(target, safe_mode=not unsafe, compile=False)
    except Exception as error:  # Keras raises many types for bad files
        text = " ".join(str(error).split())
        if "safe_mode" in text or "arbitrary code" in text:
            raise CLIError(
                f"refusing to load {path} in safe mode: it contains Python code (e.g. a "
                "Lambda layer) that would run on loading; if you trust the file, pass "
                "--unsafe") from None
        raise CLIError(f"cannot load the model {path}: {type(error).__name__}: {text}"
                       ) from None
    if not isinstance(model, keras.Model):
        raise CLIError(f"{path} does not hold a Keras model")
    if len(model.inputs) != 1:
        raise CLIError(f"{path} has {len(model.inputs)} inputs; the command line explains "
                       "single-input models (use the Python API, dk.create_analyzer)")
    return model


def _input_shape(model) -> tuple:
    return tuple(None if d is None else int(d) for d in model.inputs[0].shape)


def _show_shape(shape: tuple) -> str:
    return "(" + ", ".join("batch" if i == 0 else str(d) for i, d in enumerate(shape)) + ")"


# --------------------------------------------------------------------------- inputs
def _fits(sample: tuple, expected: tuple) -> bool:
    return len(sample) == len(expected) and all(
        e is None or e == s for s, e in zip(sample, expected))


def _read_array(path: Path, npz_key: str | None) -> np.ndarray:
    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as error:
        raise CLIError(f"cannot read {path}: {' '.join(str(error).split())}") from None
    except OSError as error:
        raise CLIError(f"cannot read {path}: {error}") from None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            keys = list(loaded.files)
            if npz_key is not None:
                if npz_key not in keys:
                    raise CLIError(f"{path} has no array {npz_key!r}; it holds {keys}")
                key = npz_key
            elif len(keys) == 1:
                key = keys[0]
            elif "x" in keys:
                key = "x"
            else:
                raise CLIError(f"{path} holds several arrays {keys}; choose one with --npz-key")
            array = loaded[key]
    else:
        array = loaded
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise CLIError(f"{path} holds a {array.dtype} array, not numbers")
    return array


def _image_size(image_shape: tuple, path: Path) -> tuple[int | None, int | None, int | None]:
    """(height, width, channels or None for (batch, H, W) models) for image files."""
    if len(image_shape) == 4 and image_shape[3] in (1, 3, 4):
        return image_shape[1], image_shape[2], image_shape[3]
    if len(image_shape) == 3:
        return image_shape[1], image_shape[2], None
    raise CLIError(f"{path} is an image, but the model input {_show_shape(image_shape)} is "
                   "not an image (batch, height, width[, 1|3|4 channels]); give a .npy array")


def _read_image(path: Path, shape: tuple, pixel_range: tuple[float, float] | None
                ) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    height, width, channels = _image_size(shape, path)
    try:
        with Image.open(path) as opened:
            mode = {None: "L", 1: "L", 3: "RGB", 4: "RGBA"}[channels]
            picture = opened.convert(mode)
            size = (width or picture.width, height or picture.height)
            if picture.size != size:
                picture = picture.resize(size, Image.Resampling.BILINEAR)
            pixels = np.asarray(picture, dtype=np.float32)
    except (UnidentifiedImageError, OSError) as error:
        raise CLIError(f"cannot read the image {path}: {error}") from None
    if channels == 1:
        pixels = pixels[..., None]
    if pixel_range is not None:
        low, high = pixel_range
        pixels = low + (high - low) * (pixels / 255.0)
    return pixels[None]


def read_inputs(paths: list[str], shape: tuple, pixel_range: tuple[float, float] | None,
                npz_key: str | None = None) -> tuple[np.ndarray, list[dict]]:
    """Load the input files as one float32 batch shaped like the model input.

    ``.npy``/``.npz`` arrays are one sample (shaped like the model input without the
    batch axis) or a batch; images are resized to the model's height and width (kept if
    the model leaves them free) and converted to its channel count, pixel values
    0..255 mapped linearly onto ``pixel_range`` (left raw when None). Returns the batch
    and, per sample, ``{"source": path, "source_index": i}``.
    """
    batches, sources = [], []
    sample_shape = shape[1:]
    for name in paths:
        path = Path(name)
        if not path.is_file():
            raise CLIError(f"input file not found: {name}" if not path.exists()
                           else f"input {name} is not a file")
        suffix = path.suffix.lower()
        if suffix in ARRAY_SUFFIXES:
            array = _read_array(path, npz_key)
            if _fits(array.shape, sample_shape):
                array = array[None]
            elif not (array.ndim == len(shape) and _fits(array.shape[1:], sample_shape)):
                raise CLIError(f"{name}: array of shape {array.shape} does not fit the model "
                               f"input {_show_shape(shape)} (give one sample or a batch)")
        elif suffix in IMAGE_SUFFIXES:
            array = _read_image(path, shape, pixel_range)
        else:
            raise CLIError(f"{name}: unknown input type {suffix or '(no suffix)'}; give .npy, "
                           f".npz or an image ({', '.join(IMAGE_SUFFIXES)})")
        if array.shape[0] == 0:
            raise CLIError(f"{name} holds no samples")
        batches.append(array.astype(np.float32))
        sources += [{"source": name, "source_index": i} for i in range(array.shape[0])]
    shapes = {b.shape[1:] for b in batches}
    if len(shapes) > 1:
        raise CLIError(f"the inputs have different shapes {sorted(shapes)}; the model input is "
                       f"{_show_shape(shape)} (give images of one size or a model with a fixed "
                       "input size)")
    return np.concatenate(batches, axis=0), sources


# --------------------------------------------------------------------------- pictures
def heatmap_picture(relevance: np.ndarray, cmap: str = "bwr", min_size: int = 128
                    ) -> np.ndarray:
    """One sample's relevance as a uint8 RGB heatmap, enlarged (nearest) to ``min_size``."""
    from . import image

    r = np.asarray(relevance, dtype=np.float32)
    if r.ndim == 3:
        rgb = image.heatmap(r, cmap=cmap)
    elif r.ndim == 2:
        rgb = image.heatmap(r, cmap=cmap, reduce=None)
    else:  # a vector (or higher rank): a strip
        flat = r.reshape(1, -1)
        rgb = np.repeat(image.heatmap(flat, cmap=cmap, reduce=None),
                        max(1, flat.shape[1] // 16), axis=0)
    factor = max(1, min_size // max(rgb.shape[:2]))
    if factor > 1:
        rgb = np.repeat(np.repeat(rgb, factor, axis=0), factor, axis=1)
    return rgb


def _safe_stem(name: str) -> str:
    stem = Path(name).stem
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)[:60] or "input"


# --------------------------------------------------------------------------- commands
def _make_analyzer(model, preset: str, domain: Any):
    import dtd_keras as dk

    return dk.create_analyzer(preset, model, **analyzer_options(preset, domain))


def cmd_explain(args: argparse.Namespace) -> int:
    domain = parse_domain(args.domain)
    if args.batch_size < 1:
        raise CLIError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.pixel_range is not None:
        pixel_range = parse_domain(args.pixel_range)
        if isinstance(pixel_range, str):
            raise CLIError("--pixel-range needs LOW,HIGH, e.g. 0,1")
        pixel_range = (float(pixel_range.low), float(pixel_range.high))
    else:
        pixel_range = (None if isinstance(domain, str)
                       else (float(domain.low), float(domain.high)))
    for name in args.inputs:
        if not Path(name).exists():
            raise CLIError(f"input file not found: {name}")
    model = load_model(args.model, args.unsafe)
    shape = _input_shape(model)
    x, sources = read_inputs(args.inputs, shape, pixel_range, args.npz_key)
    for name in dict.fromkeys(s["source"] for s in sources):
        rows = [i for i, s in enumerate(sources) if s["source"] == name]
        _check_domain(domain, x[rows[0]:rows[-1] + 1], name)
    analyzer = _make_analyzer(model, args.preset, domain)
    size = analyzer.output_size
    if args.neuron is not None and (args.neuron < 0 or (size is not None and args.neuron >= size)):
        raise CLIError(f"--neuron {args.neuron} is out of range: the explained output has "
                       f"{size} neurons (0 … {size - 1 if size else '?'})")

    from tqdm import tqdm

    out = Path(args.out)
    count = len(x)
    relevance = np.zeros_like(x)
    neurons = np.zeros((count,), np.int64)
    logits = np.zeros((count,), np.float64)
    steps = range(0, count, args.batch_size)
    with tqdm(total=count, unit="sample", desc="explaining", file=sys.stderr,
              disable=args.quiet or len(steps) <= 1) as bar:
        for start in steps:
            stop = min(start + args.batch_size, count)
            explanation = analyzer.explain(x[start:stop], neuron=args.neuron)
            relevance[start:stop] = explanation.relevance
            neurons[start:stop] = explanation.neuron
            logits[start:stop] = explanation.explained
            bar.update(stop - start)

    from .explanation import Explanation

    props = Explanation(relevance, neurons, logits.astype(np.float32)).properties()
    out.mkdir(parents=True, exist_ok=True)
    (out / "heatmaps").mkdir(exist_ok=True)
    np.save(out / "relevance.npy", relevance)
    from . import image

    samples = []
    for i, (source, p) in enumerate(zip(sources, props.to_dicts())):
        picture = Path("heatmaps") / f"{i:04d}_{_safe_stem(source['source'])}.png"
        image.save_png(heatmap_picture(relevance[i], args.cmap), out / picture)
        samples.append({
            "index": i, **source, "heatmap": picture.as_posix(),
            "neuron": int(neurons[i]),
            "explained_logit": p["explained"],
            "relevance_sum": p["total"],
            "conservation_error": p["conservation_error"],
            "relative_conservation_error": p["relative_error"],
            "negative_relevance": p["negative_mass"],
            "negative_fraction": p["negative_fraction"],
            "positive": p["positive"],
            "consistent": p["consistent"],
        })
    summary = {
        "mean_relative_conservation_error": float(np.mean(np.abs(props.relative_error))),
        "fraction_positive": float(np.mean(props.positive)),
        "mean_negative_fraction": float(np.mean(props.negative_fraction)),
    }
    report = {
        "model": str(args.model), "preset": args.preset, "domain": _describe_domain(domain),
        "pixel_range": list(pixel_range) if pixel_range is not None else None,
        "analyzer": repr(analyzer), "input_shape": list(shape[1:]),
        "relevance": "relevance.npy", "n_samples": count, "summary": summary,
        "samples": samples,
    }
    (out / "properties.json").write_text(json.dumps(report, indent=2) + "\n",
                                         encoding="utf-8")
    if not args.quiet:
        print(f"explained {count} sample(s) with {args.preset} (domain "
              f"{_describe_domain(domain)}): mean |ΣR − logit|/|logit| "
              f"{summary['mean_relative_conservation_error']:.2e}, "
              f"{summary['fraction_positive']:.0%} positive, mean negative fraction "
              f"{summary['mean_negative_fraction']:.3f}")
        print(f"wrote {out / 'relevance.npy'}, {out / 'properties.json'} and {count} "
              f"heatmap(s) in {out / 'heatmaps'}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    domain = parse_domain(args.domain)
    target = Path(args.out_dir)
    if target.exists() and not args.overwrite and (
            target.is_file() or any(target.iterdir())):
        raise CLIError(f"{args.out_dir} exists and is not an empty folder; give a new folder "
                       "or pass --overwrite (replaces an existing SavedModel)")
    model = load_model(args.model, args.unsafe)
    analyzer = _make_analyzer(model, args.preset, domain)
    written = analyzer.export(target, overwrite=args.overwrite)
    if not args.quiet:
        print(f"exported {args.preset} (domain {_describe_domain(domain)}) for "
              f"{args.model} to {written}")
        print("signatures: serving_default(input) and analyze_neuron(input, neuron) -> "
              "relevance, logit, neuron; load with tf.saved_model.load")
        print(f"inspect: saved_model_cli show --dir {written} --all")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    if args.epochs is not None and args.epochs < 1:
        raise CLIError(f"--epochs must be at least 1, got {args.epochs}")
    result = run_demo(args.out, epochs=args.epochs, seed=args.seed, quick=args.quick,
                      verbose=not args.quiet)
    if not args.quiet:
        print()
        print(Path(result["paths"]["markdown"]).read_text(encoding="utf-8"))
    return 0


# --------------------------------------------------------------------------- parser
def _model_arguments(parser: argparse.ArgumentParser, presets: list[str], domain_note: str,
                     positional: tuple[str, dict]) -> None:
    """MODEL, the command's second positional, --preset, --domain and --unsafe."""
    parser.add_argument("model", metavar="MODEL", help="a Keras model file (.keras or .h5)")
    parser.add_argument(positional[0], **positional[1])
    parser.add_argument("--preset", default="deep_taylor", choices=presets, metavar="NAME",
                        help=f"the analyzer (default deep_taylor); one of {', '.join(presets)}")
    parser.add_argument("--domain", default="0,1", help=DOMAIN_HELP + domain_note)
    parser.add_argument("--unsafe", action="store_true",
                        help="load models that contain Python code (Lambda layers); only "
                             "for files you trust")


def build_parser() -> argparse.ArgumentParser:
    """The ``dtd-keras`` argument parser (subcommands explain, export, demo)."""
    from .presets import PRESETS

    presets = sorted(PRESETS)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--traceback", action="store_true",
                        help="on errors, show the Python traceback instead of one line")
    common.add_argument("-q", "--quiet", action="store_true",
                        help="print nothing but errors (no progress bar)")

    parser = _Parser(
        prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Deep Taylor decomposition / LRP explanations of Keras models.",
        epilog="Start with 'dtd-keras demo --out demo_out', then 'dtd-keras explain "
               "demo_out/model.keras demo_out/digits.npy --out explained'.\n"
               "'dtd-keras COMMAND --help' describes each command.")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                     parser_class=_Parser)

    explain = commands.add_parser(
        "explain", parents=[common], help="explain a saved model's decisions on input files",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Explain MODEL's output for each sample of INPUTS and write, to --out:\n"
                    "  relevance.npy        relevance, float32, shaped (samples, *input)\n"
                    "  heatmaps/NNNN_*.png  one heatmap per sample (red +, blue -)\n"
                    "  properties.json      per sample: neuron, explained_logit,\n"
                    "                       relevance_sum, conservation_error,\n"
                    "                       relative_conservation_error, negative_fraction,\n"
                    "                       negative_relevance, positive, consistent,\n"
                    "                       source file; plus a summary.\n\n"
                    "INPUTS are .npy/.npz arrays (one sample shaped like the model input, "
                    "or a batch)\nor images (png, jpg, ...), resized to the model's input "
                    "size and converted to its\nchannel count (1: grey, 3: RGB). Image "
                    "pixels 0..255 are scaled linearly onto the\n--domain box (e.g. 0,1), "
                    "or onto --pixel-range; with --domain real/positive and no\n"
                    "--pixel-range they are left raw (0..255).",
        epilog="example: dtd-keras explain model.keras x.npy cat.png --domain 0,1 --out out")
    _model_arguments(explain, presets, ". Inputs outside the domain are an error for every "
                                       "preset.",
                     ("inputs", dict(metavar="INPUTS", nargs="+",
                                     help="input files: .npy, .npz or images")))
    explain.add_argument("--neuron", type=int, default=None, metavar="K",
                         help="explain output neuron K for every sample (default: each "
                              "sample's top logit)")
    explain.add_argument("--batch-size", type=int, default=32, metavar="N",
                         help="samples per batch (default 32); a progress bar shows for "
                              "more than one batch")
    explain.add_argument("--out", default="dtd_explanations", metavar="DIR",
                         help="output folder (default dtd_explanations)")
    explain.add_argument("--pixel-range", default=None, metavar="LOW,HIGH",
                         help="scale image pixels 0..255 onto LOW,HIGH (default: the "
                              "--domain box; raw for real/positive)")
    explain.add_argument("--npz-key", default=None, metavar="KEY",
                         help="the array to use from .npz files holding several (default: "
                              "the only one, or 'x')")
    explain.add_argument("--cmap", default="bwr", choices=("bwr", "cold_hot"),
                         help="heatmap colours (default bwr)")
    explain.set_defaults(func=cmd_explain)

    export = commands.add_parser(
        "export", parents=[common], help="export an explainer as a TensorFlow SavedModel",
        description="Build the analyzer for MODEL and write it as a SavedModel to OUT_DIR "
                    "(signatures serving_default and analyze_neuron; loads with plain "
                    "tf.saved_model.load, no dtd_keras needed).",
        epilog="example: dtd-keras export model.keras explainer --domain 0,1")
    _model_arguments(export, presets, ". The SavedModel rejects inputs outside the domain "
                                      "its analyzer declares.",
                     ("out_dir", dict(metavar="OUT_DIR", help="the SavedModel folder to write")))
    export.add_argument("--overwrite", action="store_true",
                        help="replace an existing SavedModel in OUT_DIR")
    export.set_defaults(func=cmd_export)

    demo = commands.add_parser(
        "demo", parents=[common], help="train a digits CNN and compare DTD with LRP",
        description="Train a small CNN on scikit-learn's 8x8 digits (no download), explain "
                    "the held-out digits with DTD (w2, z+, zB input rules), LRP-epsilon and "
                    "LRP-alpha2beta1, and write demo.png, results.json, results.md, "
                    "model.keras and digits.npy to --out.")
    demo.add_argument("--out", default="demo_out", metavar="DIR",
                      help="output folder (default demo_out)")
    demo.add_argument("--epochs", type=int, default=None, metavar="N",
                      help="training epochs (default 20; 2 with --quick)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument("--quick", action="store_true",
                      help="a few seconds, for tests: 2 epochs, 60 digits explained, 3 rows")
    demo.set_defaults(func=cmd_demo)
    return parser


def _one_line(error: BaseException | str) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    if len(text) > _MESSAGE_LIMIT:
        text = text[:_MESSAGE_LIMIT - 1] + "…"
    return text


def main(argv: list[str] | None = None) -> int:
    """Run the ``dtd-keras`` command line; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help, --version and usage errors
        return int(done.code or 0) if not isinstance(done.code, str) else 2
    from .errors import DomainError, UnsupportedLayerError

    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if args.traceback:
            raise
        if isinstance(error, CLIError):
            message = _one_line(error)
        elif isinstance(error, UnsupportedLayerError):
            # drop the list of supported layers: the line names the layer and the fix
            text = re.sub(r"\s*Supported: [^.]*\.", "", " ".join(str(error).split()))
            message = f"unsupported layer: {_one_line(text)}"
        elif isinstance(error, DomainError):
            message = f"input outside the domain: {_one_line(error)}"
        elif isinstance(error, (ValueError, TypeError, OSError, ImportError)):
            message = _one_line(error)
        else:
            message = (f"unexpected {type(error).__name__}: {_one_line(error)} (rerun with "
                       "--traceback for details)")
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
