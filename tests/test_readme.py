"""README.md stays true: every ```python block runs, in order, in one namespace, in a
folder holding the demo's outputs (``dtd-keras demo --out demo_out --quick``), as a
reader who follows the quick start would run them. Every ``dtd-keras`` command line in
README uses options that exist, and its first concrete ``explain`` command runs.

A block that truly cannot run here (say, it needs a download) is marked by an HTML
comment on the line before its fence: ``<!-- not run: the reason -->``. Such blocks are
counted: changing their number means changing NOT_RUN below, so none is skipped
silently. New blocks need nothing: they are found and run.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

from dtd_keras.cli import build_parser, main

README = Path(__file__).resolve().parent.parent / "README.md"
NOT_RUN = 1  # blocks marked <!-- not run: … --> (each needs its reason)

_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)
_NOT_RUN = re.compile(r"<!--\s*not run:\s*(.*?)\s*-->\s*$")


def blocks(text: str) -> list[dict]:
    """Every fenced block: language, code, line number, and the not-run reason if any."""
    found = []
    for match in _FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        reason = _NOT_RUN.search(before)
        found.append({"language": match.group(1), "code": match.group(2), "line": line,
                      "not_run": reason.group(1) if reason else None})
    return found


TEXT = README.read_text(encoding="utf-8")
PYTHON = [b for b in blocks(TEXT) if b["language"] == "python"]
RUN = [b for b in PYTHON if b["not_run"] is None]


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory):
    """A folder with the demo's outputs in demo_out/, made by the command README names."""
    folder = tmp_path_factory.mktemp("readme")
    assert main(["demo", "--out", str(folder / "demo_out"), "--quick", "-q"]) == 0
    return folder


@pytest.fixture(scope="module")
def namespace(demo_folder):
    """One namespace for all blocks, run in the demo's folder (cwd restored after)."""
    previous = Path.cwd()
    os.chdir(demo_folder)
    state = {"names": {"__name__": "readme"}, "failed": None}
    yield state
    os.chdir(previous)


def test_readme_has_python_blocks_and_marks_the_ones_not_run():
    assert len(RUN) >= 6, "README's Python blocks were not found"
    skipped = [b for b in PYTHON if b["not_run"] is not None]
    for block in skipped:
        assert block["not_run"], f"README line {block['line']}: 'not run' needs a reason"
    assert len(skipped) == NOT_RUN, (
        f"README marks {len(skipped)} Python block(s) as not run (lines "
        f"{[b['line'] for b in skipped]}), the test expects {NOT_RUN}: make the block run, "
        "or check it truly cannot and update NOT_RUN")


@pytest.mark.parametrize("block", RUN, ids=[f"line{b['line']}" for b in RUN])
def test_python_block_runs(block, namespace):
    if namespace["failed"] is not None:
        pytest.fail(f"an earlier README block (line {namespace['failed']}) failed")
    try:
        exec(compile(block["code"], f"README.md:{block['line']}", "exec"), namespace["names"])
    except BaseException:
        namespace["failed"] = block["line"]
        raise


_COMMAND = re.compile(r"dtd-keras (explain|export|demo)\b(.*)")
_PLACEHOLDER = re.compile(r"\[|\.\.\.|…|\b[A-Z][A-Z_]{2,}\b|\|")


def commands() -> list[tuple[str, str]]:
    """Every ``dtd-keras COMMAND …`` in README: lines of code blocks and inline code
    spans (which may wrap across lines)."""
    lines = [line for b in blocks(TEXT) for line in b["code"].splitlines()]
    prose = _FENCE.sub("", TEXT)
    lines += [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", prose)]
    found = []
    for line in lines:
        for match in _COMMAND.finditer(line):
            found.append((match.group(1), match.group(2).split("#")[0].strip()))
    return found


def test_readme_command_lines_use_real_options():
    parser = build_parser()
    found = commands()
    assert {c for c, _ in found} == {"explain", "export", "demo"}
    subparsers = parser._subparsers._group_actions[0].choices
    for command, rest in found:
        known = {s for a in subparsers[command]._actions for s in a.option_strings}
        for flag in re.findall(r"(?<![\w-])--[a-z][\w-]*", rest):
            assert flag.split("=")[0] in known, f"README: dtd-keras {command} {rest}: {flag}"
        if rest and not _PLACEHOLDER.search(rest):  # a concrete command: it must parse
            try:
                parser.parse_args([command, *shlex.split(rest)])
            except SystemExit:
                pytest.fail(f"README: 'dtd-keras {command} {rest}' does not parse")


def test_readme_explain_command_runs_on_the_demos_outputs(demo_folder, capsys):
    concrete = [rest for command, rest in commands()
                if command == "explain" and rest and not _PLACEHOLDER.search(rest)]
    assert concrete, "README shows no concrete dtd-keras explain command"
    argv = ["explain", *shlex.split(concrete[0]), "-q"]
    if "--out" not in argv:
        argv += ["--out", "readme_explained"]
    previous = Path.cwd()
    os.chdir(demo_folder)
    try:
        code = main(argv)
    finally:
        os.chdir(previous)
    assert code == 0, capsys.readouterr().err
