"""``dtd-keras export`` and ``dtd-keras demo``."""

from __future__ import annotations

import argparse
from pathlib import Path

from .errors import CLIError
from .models import check_model_file, load_model
from .options import check_preset, describe_domain, make_analyzer, parse_domain
from .run import import_tensorflow

__all__ = ["cmd_demo", "cmd_export"]


def cmd_export(args: argparse.Namespace) -> int:
    """Write the analyzer of MODEL as a SavedModel (arguments and files are checked before
    TensorFlow is imported)."""
    domain = parse_domain(args.domain)
    check_preset(args.preset)
    target = Path(args.out_dir)
    if target.exists() and not args.overwrite and (
            target.is_file() or any(target.iterdir())):
        raise CLIError(f"{args.out_dir} exists and is not an empty folder; give a new folder "
                       "or pass --overwrite (replaces an existing SavedModel)")
    check_model_file(args.model)
    import_tensorflow(args.verbose)
    model = load_model(args.model, args.unsafe)
    analyzer = make_analyzer(model, args.preset, domain)
    written = analyzer.export(target, overwrite=args.overwrite)
    if not args.quiet:
        print(f"exported {args.preset} (domain {describe_domain(domain)}) for "
              f"{args.model} to {written}")
        print("signatures: serving_default(input) and analyze_neuron(input, neuron) -> "
              "relevance, logit, neuron; load with tf.saved_model.load")
        print(f"inspect: saved_model_cli show --dir {written} --all")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Train the digits CNN, explain it, write the figure and tables (--out and the
    optional dependencies are checked before TensorFlow is imported)."""
    import importlib.util

    from ..demo import check_out

    if args.epochs is not None and args.epochs < 1:
        raise CLIError(f"--epochs must be at least 1, got {args.epochs}")
    missing = []
    for module, name in (("sklearn", "scikit-learn"), ("matplotlib", "matplotlib")):
        try:
            found = importlib.util.find_spec(module) is not None
        except ValueError:  # a module set to None in sys.modules
            found = False
        if not found:
            missing.append(name)
    if missing:
        raise CLIError(f"the demo needs {' and '.join(missing)}: pip install "
                       "'dtd-keras[demo]'")
    try:
        check_out(args.out, args.overwrite, option="--overwrite")
    except ValueError as error:
        raise CLIError(str(error)) from None
    import_tensorflow(args.verbose)
    from ..demo import run_demo

    result = run_demo(args.out, epochs=args.epochs, seed=args.seed, quick=args.quick,
                      verbose=not args.quiet, overwrite=args.overwrite)
    if not args.quiet:
        print()
        print(Path(result["paths"]["markdown"]).read_text(encoding="utf-8"))
    return 0
