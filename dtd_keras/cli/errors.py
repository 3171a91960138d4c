"""The command line's own errors: each is printed as one line."""

from __future__ import annotations

__all__ = ["CLIError", "UsageError"]


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 1."""


class UsageError(CLIError):
    """A command line that asks for something that does not exist: exit status 2."""
