"""``main``: parse, run the command (TensorFlow's start-up log lines kept off the terminal),
turn errors into one line."""

from __future__ import annotations

import re
import sys

from .errors import CLIError, UsageError
from .parser import PROG, build_parser

__all__ = ["import_tensorflow", "main"]

_MESSAGE_LIMIT = 400
# options whose value may start with "-" (a negative LOW: --domain -1,1)
_RANGE_OPTIONS = ("--domain", "--pixel-range")
_NEGATIVE_VALUE = re.compile(r"^-(\d|\.\d|inf)", re.IGNORECASE)


def import_tensorflow(verbose: bool = False) -> None:
    """Import TensorFlow, its start-up lines hidden unless ``verbose`` (or the environment
    asks for them: :func:`dtd_keras._tensorflow.import_tensorflow`); an ImportError naming
    the extras when it is not installed."""
    from .._tensorflow import import_tensorflow as load

    load(True if verbose else None)


def join_negative_values(argv: list[str]) -> list[str]:
    """``--domain -1,1`` → ``--domain=-1,1`` (also for ``--pixel-range`` and unambiguous
    abbreviations), which argparse would otherwise read as an option ``-1,1``."""
    joined: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--":
            return joined + argv[i:]
        if (len(token) > 2 and "=" not in token and i + 1 < len(argv)
                and any(option.startswith(token) for option in _RANGE_OPTIONS)
                and _NEGATIVE_VALUE.match(argv[i + 1])):
            joined.append(f"{token}={argv[i + 1]}")
            i += 2
            continue
        joined.append(token)
        i += 1
    return joined


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
    """Run the command: each checks its arguments and files first, then imports
    TensorFlow (so that those mistakes are reported at once)."""
    if args.command == "explain":
        from .explain import cmd_explain

        return cmd_explain(args)
    if args.command == "report":
        from .report import cmd_report

        return cmd_report(args)
    if args.command == "export":
        from .commands import cmd_export

        return cmd_export(args)
    from .commands import cmd_demo

    return cmd_demo(args)


def main(argv: list[str] | None = None) -> int:
    """Run the ``dtd-keras`` command line; returns the exit status.

    ``--help`` and ``--version`` answer without importing TensorFlow."""
    parser = build_parser()
    argv = join_negative_values(list(sys.argv[1:] if argv is None else argv))
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
