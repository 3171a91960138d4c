"""``dtd-keras explain``: relevance, heatmaps and properties for input files."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputFileError
from ..reading import expand_inputs, open_inputs
from .errors import CLIError
from .models import check_model_file, input_shape, load_model
from .options import check_domain, check_preset, describe_domain, make_analyzer, parse_domain
from .parser import ZARR_ABOVE
from .run import import_tensorflow

__all__ = ["cmd_explain", "heatmap_picture", "prepare_out"]

RESULT_FILES = ("relevance.npy", "properties.json")
STORE = "relevance.zarr"
_HEATMAP_NAME = re.compile(r"^\d{4,}_.*\.png$")  # heatmaps/0003_digits.png
_HEATMAP_BLOCK = 256  # samples of relevance read at once to draw their heatmaps


def heatmap_picture(relevance: np.ndarray, cmap: str = "bwr", min_size: int = 128
                    ) -> np.ndarray:
    """One sample's relevance as a uint8 RGB heatmap, enlarged (nearest) to ``min_size``."""
    from .. import image

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


def prepare_out(out: Path, overwrite: bool, check_only: bool = False,
                resume: bool = False) -> None:
    """Refuse an ``--out`` that is a file, or a folder that is not empty, unless
    ``overwrite`` (or ``resume`` where it holds a relevance.zarr run to continue); with
    ``overwrite`` (and not ``check_only``) remove the results of an earlier run there
    (``relevance.npy``, ``relevance.zarr``, ``properties.json``, ``heatmaps/NNNN_*.png``),
    so that none is left stale. Other files are never touched."""
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out} is a file; give a folder")
    if resume:
        if overwrite:
            raise CLIError("--resume continues an earlier run, --overwrite replaces it: "
                           "pass one of them")
        if not (out / STORE).is_dir():
            raise CLIError(f"--resume: {out / STORE} does not exist; nothing to continue")
        return
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not overwrite:
        raise CLIError(f"--out {out} already exists and is not empty; pass --overwrite to "
                       "replace an earlier result there, --resume to continue an "
                       "interrupted one, or give a new folder")
    if check_only:
        return
    for name in RESULT_FILES:
        if (out / name).is_file():
            (out / name).unlink()
    if (out / STORE).is_dir():
        import shutil

        shutil.rmtree(out / STORE)
    if (out / "heatmaps").is_dir():
        for picture in (out / "heatmaps").iterdir():
            if picture.is_file() and _HEATMAP_NAME.match(picture.name):
                picture.unlink()


def _pixel_range(args: argparse.Namespace, domain: Any) -> tuple[float, float] | None:
    if args.pixel_range is not None:
        pixel_range = parse_domain(args.pixel_range)
        if isinstance(pixel_range, str):
            raise CLIError("--pixel-range needs LOW,HIGH, e.g. 0,1")
        return float(pixel_range.low), float(pixel_range.high)
    return None if isinstance(domain, str) else (float(domain.low), float(domain.high))


def _explain_batches(analyzer, x: np.ndarray, neuron: int | None, batch_size: int,
                     quiet: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Relevance, neuron and explained logit for every sample, a batch at a time."""
    from tqdm import tqdm

    count = len(x)
    relevance = np.zeros_like(x)
    neurons = np.zeros((count,), np.int64)
    logits = np.zeros((count,), np.float32)
    steps = range(0, count, batch_size)
    with tqdm(total=count, unit="sample", desc="explaining", file=sys.stderr,
              disable=quiet or len(steps) <= 1) as bar:
        for start in steps:
            stop = min(start + batch_size, count)
            explanation = analyzer.explain(x[start:stop], neuron=neuron)
            relevance[start:stop] = explanation.relevance
            neurons[start:stop] = explanation.neuron
            logits[start:stop] = explanation.explained
            bar.update(stop - start)
    return relevance, neurons, logits


def _sample_records(relevance, neurons, properties: list[dict], sources, out: Path,
                    cmap: str) -> list[dict]:
    """Write one heatmap per sample (``relevance`` may be a lazy array); their
    properties.json entries."""
    from .. import image

    samples = []
    block, first = None, 0
    for i, (source, p) in enumerate(zip(sources, properties)):
        if block is None or i >= first + len(block):  # a lazy store is read block-wise
            block, first = np.asarray(relevance[i:i + _HEATMAP_BLOCK]), i
        picture = Path("heatmaps") / f"{i:04d}_{_safe_stem(source['source'])}.png"
        image.save_png(heatmap_picture(block[i - first], cmap), out / picture)
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
    return samples


def _as_dicts(properties: dict[str, np.ndarray]) -> list[dict]:
    """Per-sample dicts from a store's property columns."""
    count = len(next(iter(properties.values()))) if properties else 0
    return [{k: v[i].item() for k, v in properties.items()} for i in range(count)]


def _summary(samples: list[dict]) -> dict[str, float | None]:
    """Means over the samples (None for no samples)."""
    def mean(values: list[float]) -> float | None:
        return float(np.mean(values)) if values else None

    return {
        "mean_relative_conservation_error": mean(
            [abs(s["relative_conservation_error"]) for s in samples]),
        "fraction_positive": mean([float(s["positive"]) for s in samples]),
        "mean_negative_fraction": mean([s["negative_fraction"] for s in samples]),
    }


def _check_arguments(args: argparse.Namespace) -> tuple[Any, tuple[float, float] | None]:
    """Every check that needs no TensorFlow: options, --out, the input and model files.
    Returns the domain and the pixel range."""
    domain = parse_domain(args.domain)
    check_preset(args.preset)
    if args.batch_size < 1:
        raise CLIError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.neuron is not None and args.neuron < 0:
        raise CLIError(f"--neuron {args.neuron} is out of range: output neurons count from 0")
    pixel_range = _pixel_range(args, domain)
    prepare_out(Path(args.out), args.overwrite, check_only=True, resume=args.resume)
    expand_inputs(args.inputs)  # missing inputs
    check_model_file(args.model)
    return domain, pixel_range


def cmd_explain(args: argparse.Namespace) -> int:
    """Explain every sample of the inputs; write relevance (.npy or .zarr), heatmaps and
    properties.json. Arguments and files are checked before TensorFlow is imported."""
    domain, pixel_range = _check_arguments(args)
    out = Path(args.out)
    import_tensorflow(args.verbose)
    model = load_model(args.model, args.unsafe)
    shape = input_shape(model)
    inputs = open_inputs(args.inputs, shape, pixel_range, args.npz_key,
                         check=lambda piece, name: check_domain(domain, piece, name))
    count = len(inputs)
    zarr = args.store == "zarr" or (args.store == "auto" and count > ZARR_ABOVE) or args.resume
    x = None if zarr else inputs[:]  # in memory: read (and checked) before anything is written
    analyzer = make_analyzer(model, args.preset, domain)
    size = analyzer.output_size
    if args.neuron is not None and size is not None and args.neuron >= size:
        raise CLIError(f"--neuron {args.neuron} is out of range: the explained output has "
                       f"{size} neurons (0 … {size - 1})")
    batch_size = max(1, min(args.batch_size, count))  # no larger than the inputs

    prepare_out(out, args.overwrite, resume=args.resume)
    out.mkdir(parents=True, exist_ok=True)
    if zarr:  # streamed: chunks read, explained and committed in turn (--resume continues)
        from ..datasets import analyze_dataset

        try:
            results = analyze_dataset(analyzer, inputs, out / STORE, neuron=args.neuron,
                                      batch_size=batch_size, progress=not args.quiet)
        except (CLIError, InputFileError) as error:  # an input found wrong as it was read
            if not (out / STORE).is_dir():
                raise
            text = " ".join(str(error).split())
            raise CLIError(f"{text}; the samples explained before it are kept in "
                           f"{out / STORE}: fix the input and pass --resume to continue, or "
                           "--overwrite to start again") from None
        relevance, neurons = results.relevance, results.neuron
        properties = _as_dicts(results.properties)
    else:
        from ..explanation import Explanation

        if count:
            relevance, neurons, logits = _explain_batches(analyzer, x, args.neuron,
                                                          batch_size, args.quiet)
        else:  # nothing to explain: empty results (TensorFlow is not asked about 0 samples)
            relevance, neurons, logits = x.copy(), np.zeros((0,), np.int64), np.zeros((0,))
        np.save(out / "relevance.npy", relevance)
        properties = Explanation(relevance, neurons, logits).properties().to_dicts()
    sources = inputs.sources
    (out / "heatmaps").mkdir(parents=True, exist_ok=True)
    samples = _sample_records(relevance, neurons, properties, sources, out, args.cmap)
    summary = _summary(samples)
    report = {
        "model": str(args.model), "preset": args.preset, "domain": describe_domain(domain),
        "pixel_range": list(pixel_range) if pixel_range is not None else None,
        "analyzer": repr(analyzer), "input_shape": list(shape[1:]),
        "relevance": STORE if zarr else "relevance.npy", "n_samples": count,
        "summary": summary,
        "samples": samples,
    }
    (out / "properties.json").write_text(json.dumps(report, indent=2) + "\n",
                                         encoding="utf-8")
    if not args.quiet:
        if count:
            print(f"explained {count} sample(s) with {args.preset} (domain "
                  f"{describe_domain(domain)}): mean |ΣR − logit|/|logit| "
                  f"{summary['mean_relative_conservation_error']:.2e}, "
                  f"{summary['fraction_positive']:.0%} positive, mean negative fraction "
                  f"{summary['mean_negative_fraction']:.3f}")
        else:
            print(f"the inputs hold no samples: nothing to explain (empty results, "
                  f"relevance of shape {relevance.shape})")
        print(f"wrote {out / (STORE if zarr else 'relevance.npy')}, "
              f"{out / 'properties.json'} and {count} heatmap(s) in {out / 'heatmaps'}")
    return 0
