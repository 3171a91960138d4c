"""pyproject.toml: what `pip install` reads (license metadata, core dependencies)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _requirement(requirements: list[str], name: str) -> str | None:
    return next((r for r in requirements if re.match(rf"{name}\b", r)), None)


def test_license_is_an_spdx_string_with_its_file():
    """A license table makes setuptools >= 77 print three deprecation warnings."""
    project = PROJECT["project"]
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    # license = "<SPDX>" and license-files need setuptools >= 77
    setuptools = _requirement(PROJECT["build-system"]["requires"], "setuptools")
    assert setuptools is not None
    assert int(re.search(r">=\s*(\d+)", setuptools).group(1)) >= 77


def test_the_command_lines_progress_bar_is_a_core_dependency():
    """`dtd-keras explain` uses tqdm; a plain `pip install dtd-keras[cpu]` must have it."""
    assert _requirement(PROJECT["project"]["dependencies"], "tqdm") is not None
    assert PROJECT["project"]["scripts"]["dtd-keras"] == "dtd_keras.cli:main"


def test_the_extra_named_for_pillow_installs_it():
    """Reading image files needs Pillow; the error and README name an extra that lists it
    itself (not only through matplotlib's own requirements)."""
    from dtd_keras.reading import PILLOW_EXTRA

    extras = PROJECT["project"]["optional-dependencies"]
    assert _requirement(extras[PILLOW_EXTRA], "pillow") is not None
    assert _requirement(extras["demo"], "pillow") is not None
    assert _requirement(PROJECT["project"]["dependencies"], "pillow") is None  # optional
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    command_line = readme.split("\n## Command line\n", 1)[1].split("\n## ", 1)[0]
    assert f"needs Pillow, which the `{PILLOW_EXTRA}` extra installs" in command_line
