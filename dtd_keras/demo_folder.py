"""The demo's output folder: which files and folders it writes, and :func:`check_out`,
which refuses a folder where the demo would replace what it did not write (used by
:mod:`dtd_keras.demo` and by ``dtd-keras demo`` before anything is trained)."""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["FILES", "FOLDERS", "MODEL_NAME", "check_out"]

MODEL_NAME = "digits_cnn"

FILES = {"figure": "demo.png", "json": "results.json", "markdown": "results.md",
         "model": "model.keras", "digits": "digits.npy", "heldout": "heldout.npy"}
"""The files the demo writes into its folder."""
FOLDERS = {"store": "explained.zarr", "report": "report"}
"""The folders the demo writes there (a results store and its HTML report)."""


def _written_by_the_demo(results: Path) -> bool:
    """Whether ``results`` is the results.json of an earlier demo run."""
    try:
        saved = json.loads(results.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return (isinstance(saved, dict) and saved.get("model") == MODEL_NAME
            and isinstance(saved.get("methods"), list)
            and {"test_accuracy", "n_explained", "seed"} <= set(saved))


def check_out(out_dir: str | os.PathLike[str], overwrite: bool = False,
              option: str = "overwrite=True") -> None:
    """Refuse an output folder where the demo would replace what it did not write.

    A new or empty folder is fine. A folder that is not empty is refused unless
    ``overwrite``; then the demo's files (:data:`FILES`) there are replaced only if they
    are an earlier demo's (its ``results.json`` says so), and its folders (:data:`FOLDERS`)
    only if they are a results store and a report; other files are never touched.
    ``option`` names the switch in the message (``--overwrite`` on the command line).

    Raises
    ------
    ValueError
        ``out_dir`` is a file, or a folder the demo may not write into; the message says
        why and what to do.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} is a file; give a folder for the demo's outputs")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not overwrite:
        raise ValueError(f"{out} already exists and is not empty; pass {option} to replace "
                         "an earlier demo's outputs there, or give a new folder")
    present = [name for name in (*FOLDERS.values(), *FILES.values()) if (out / name).exists()]
    if present and not _written_by_the_demo(out / FILES["json"]):
        raise ValueError(f"{out} holds {', '.join(present)}, which the demo did not write "
                         f"(no results.json of an earlier demo there); {option} replaces "
                         "only an earlier demo's outputs: give a new folder")
    folders = [name for name in present if name in FILES.values() and not (out / name).is_file()]
    if folders:
        raise ValueError(f"{out / folders[0]} is a folder, not a file the demo wrote; give "
                         "a new folder")
    if not _folders_by_the_demo(out):
        raise ValueError(f"{out} holds {FOLDERS['store']} or {FOLDERS['report']}, which is not "
                         "a results store / report the demo wrote; give a new folder")


def _folders_by_the_demo(out: Path) -> bool:
    """Whether the demo's folders in ``out``, if any, are a results store and a report."""
    from .datasets.store import is_store

    store, report = out / FOLDERS["store"], out / FOLDERS["report"]
    if store.exists() and not (store.is_dir() and is_store(store)):
        return False
    return not report.exists() or (report / "data" / "manifest.json").is_file()
