"""``main``: parse, keep TensorFlow's start-up log lines off the terminal, run the command,
turn errors into one line."""

from __future__ import annotations

import os
import re
import sys
import tempfile

from .errors import CLIError, UsageError
from .parser import PROG, build_parser

__all__ = ["import_tensorflow", "main"]

_MESSAGE_LIMIT = 400
# TensorFlow's C++ start-up lines: absl's notice and glog-style lines such as
# "I0000 00:00:1796082537.471832    3667 port.cc:153] oneDNN custom operations are on …"
_TF_LOG_LINE = re.compile(r"^(WARNING: All log messages before absl::InitializeLog\(\)"
                          r"|[IWEF]\d{4} \d\d:\d\d:[\d.]+\s+\d+ \S+:\d+\])")


def import_tensorflow(verbose: bool = False) -> None:
    """Import TensorFlow, its C++ log lines hidden unless ``verbose``.

    Sets ``TF_CPP_MIN_LOG_LEVEL=3`` (unless already set) for TensorFlow's later C++
    logging, and sends file descriptor 2 to a temporary file during the import: the
    lines TensorFlow prints there before its logging starts (oneDNN, CPU features,
    CUDA probing) ignore that variable. Everything else written meanwhile is replayed
    on stderr. Nothing happens when TensorFlow is already imported.
    """
    if "tensorflow" in sys.modules:
        return
    if verbose:
        import tensorflow  # noqa: F401
        return
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
            kept = [line for line in captured.read().decode(errors="replace").splitlines()
                    if not _TF_LOG_LINE.match(line)]
            if kept:
                print("\n".join(kept), file=sys.stderr)


def _one_line(error: BaseException | str) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    if len(text) > _MESSAGE_LIMIT:
        text = text[:_MESSAGE_LIMIT - 1] + "…"
    return text


def _message(error: Exception) -> str:
    """The one line printed for ``error``."""
    from ..errors import DomainError, UnsupportedLayerError

    if isinstance(error, CLIError):
        return _one_line(error)
    if isinstance(error, UnsupportedLayerError):
        # drop the list of supported layers: the line names the layer and the fix
        text = re.sub(r"\s*Supported: [^.]*\.", "", " ".join(str(error).split()))
        return f"unsupported layer: {_one_line(text)}"
    if isinstance(error, DomainError):
        return f"input outside the domain: {_one_line(error)}"
    if isinstance(error, (ValueError, TypeError, OSError, ImportError)):
        return _one_line(error)
    return (f"unexpected {type(error).__name__}: {_one_line(error)} (rerun with "
            "--traceback for details)")


def _run(args) -> int:
    import_tensorflow(args.verbose)
    if args.command == "explain":
        from .explain import cmd_explain
        from .options import check_preset

        check_preset(args.preset)
        return cmd_explain(args)
    if args.command == "export":
        from .commands import cmd_export
        from .options import check_preset

        check_preset(args.preset)
        return cmd_export(args)
    from .commands import cmd_demo

    return cmd_demo(args)


def main(argv: list[str] | None = None) -> int:
    """Run the ``dtd-keras`` command line; returns the exit status.

    ``--help`` and ``--version`` answer without importing TensorFlow."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:  # --help, --version and usage errors
        return int(done.code or 0) if not isinstance(done.code, str) else 2
    try:
        return int(_run(args) or 0)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if args.traceback:
            raise
        if isinstance(error, UsageError):
            print(f"{PROG}: error: {_one_line(error)} (see '{PROG} {args.command} --help')",
                  file=sys.stderr)
            return 2
        print(f"{PROG}: error: {_message(error)}", file=sys.stderr)
        return 1
