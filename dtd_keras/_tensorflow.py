"""Importing TensorFlow: a one-line error naming the extras when it is not installed, and
its C++ start-up lines kept off the terminal unless asked for.

Used by ``import dtd_keras`` (on first use of a name that needs TensorFlow) and by the
command line; imports nothing of dtd_keras.

TensorFlow prints its start-up lines (absl's notice, oneDNN, CPU features, CUDA probing)
straight to file descriptor 2 while it is imported, twice over for some of them, and
``TF_CPP_MIN_LOG_LEVEL=3`` does not silence them all (the oneDNN notice ignores it). So
:func:`import_tensorflow` sends descriptor 2 to a temporary file during the import, then
replays what was written there except those lines. They are shown when

* ``verbose=True`` (the command line's ``--verbose``), or the environment variable
  ``DTD_KERAS_VERBOSE`` is ``1`` (``true``, ``yes``, ``on``): everything, untouched;
* ``TF_CPP_MIN_LOG_LEVEL`` was set by the user: the lines of at least that severity
  (0: all, 1: warnings and errors, 2: errors, 3: fatal only), as TensorFlow's own
  logging would.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import tempfile

__all__ = ["MISSING", "import_tensorflow", "tensorflow_installed"]

MISSING = ('dtd_keras needs TensorFlow 2.21, which is not installed: pip install '
           '"dtd-keras[cpu]" (CPU only), "dtd-keras[gpu]" (NVIDIA GPU) or '
           '"dtd-keras[tensorflow]" (the plain tensorflow wheel)')
"""The one-line error when TensorFlow is missing."""

VERBOSE_VARIABLE = "DTD_KERAS_VERBOSE"

# absl's notice, and glog-style lines such as
# "I0000 00:00:1796082537.471832    3667 port.cc:153] oneDNN custom operations are on …"
_ABSL_NOTICE = re.compile(r"^WARNING: All log messages before absl::InitializeLog\(\)")
_LOG_LINE = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:[\d.]+\s+\d+ \S+:\d+\]")
_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}


def tensorflow_installed() -> bool:
    """Whether ``import tensorflow`` can find TensorFlow (without importing it)."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"] is not None
    try:
        return importlib.util.find_spec("tensorflow") is not None
    except (ImportError, ValueError):
        return False


def _verbose_from_environment() -> bool:
    return os.environ.get(VERBOSE_VARIABLE, "").strip().lower() in ("1", "true", "yes", "on")


def _shown_level() -> int:
    """The lowest severity shown: the user's ``TF_CPP_MIN_LOG_LEVEL``, else none (4)."""
    try:
        return max(0, int(os.environ["TF_CPP_MIN_LOG_LEVEL"]))
    except (KeyError, ValueError):
        return 4


def _shown(line: str, level: int) -> bool:
    """Whether ``line`` passes: not a TensorFlow log line, or one of at least ``level``."""
    match = _LOG_LINE.match(line)
    return match is None or _SEVERITY[match.group(1)] >= level


def _kept(lines: list[str], level: int) -> list[str]:
    """``lines`` without TensorFlow's log lines below ``level``; absl's notice is kept
    only when a log line is (it introduces them)."""
    logged = any(_LOG_LINE.match(line) and _shown(line, level) for line in lines)
    return [line for line in lines
            if (logged if _ABSL_NOTICE.match(line) else _shown(line, level))]


def import_tensorflow(verbose: bool | None = None) -> None:
    """Import TensorFlow once, its C++ start-up lines hidden unless asked for.

    ``verbose``: True shows everything; None (the default) follows the environment
    (``DTD_KERAS_VERBOSE``, ``TF_CPP_MIN_LOG_LEVEL``; see the module's docstring).
    Sets ``TF_CPP_MIN_LOG_LEVEL=3`` when the user has not set it, for TensorFlow's later
    C++ logging. Nothing happens when TensorFlow is already imported.

    Raises
    ------
    ImportError
        TensorFlow is not installed: one line naming the extras that install it.
    """
    if sys.modules.get("tensorflow") is not None:
        return
    if not tensorflow_installed():
        raise ImportError(MISSING)
    if verbose or (verbose is None and _verbose_from_environment()):
        import tensorflow  # noqa: F401
        return
    level = _shown_level()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 (some embedded interpreters)
        import tensorflow  # noqa: F401
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines()
            kept = _kept(lines, level)
            if kept:
                print("\n".join(kept), file=sys.stderr)
