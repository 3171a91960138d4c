"""``dtd-keras report``: a results store as a static HTML site (:func:`dtd_keras.report`).

Needs neither TensorFlow nor Keras: the store is read with Zarr, the pictures are drawn
with numpy. Only ``--concepts`` (saved reference samples, read by dtd_keras.concepts)
imports TensorFlow, its start-up lines hidden unless ``--verbose``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .errors import CLIError

__all__ = ["cmd_report", "read_data"]


def read_data(path: str) -> Any:
    """``--data``: a folder of images (given as is), or a .npy / .npz array of samples
    (memory-mapped; an .npz's only array, or its ``x``)."""
    import numpy as np

    where = Path(path)
    if where.is_dir():
        return where
    if not where.exists():
        raise CLIError(f"--data {path}: no such file or folder")
    if where.suffix == ".npy":
        return np.load(where, mmap_mode="r")
    if where.suffix == ".npz":
        with np.load(where) as archive:
            names = list(archive.files)
            name = names[0] if len(names) == 1 else "x" if "x" in names else None
            if name is None:
                raise CLIError(f"--data {path} holds {names}; which are the samples? Save "
                               "them alone or as 'x'")
            return archive[name]
    raise CLIError(f"--data {path}: expected a folder of images, a .npy or an .npz file")


def cmd_report(args: argparse.Namespace) -> int:
    """Write the report of STORE to --out."""
    from ..datasets.store import is_store

    store = Path(args.store)
    if not store.exists():
        raise CLIError(f"no results store at {store}")
    if not is_store(store):
        raise CLIError(f"{store} is not a dtd_keras results store (dk.analyze_dataset or "
                       "'dtd-keras explain --store zarr' writes one)")
    if args.page_size < 1:
        raise CLIError(f"--page-size must be at least 1, got {args.page_size}")
    data = None if args.data is None else read_data(args.data)
    if args.concepts:
        from .run import import_tensorflow

        import_tensorflow(args.verbose)  # dtd_keras.concepts needs it; start-up lines quiet
    from ..reporting import report

    index = report(store, args.out, data=data, concepts=list(args.concepts or ()),
                   page_size=args.page_size, thumb_size=args.thumb_size,
                   allow_partial=args.allow_partial, overwrite=args.overwrite,
                   progress=not args.quiet)
    if not args.quiet:
        print(f"wrote the report of {store} to {index.parent}; open {index} in a browser")
    return 0
