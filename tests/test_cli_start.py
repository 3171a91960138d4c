"""Before TensorFlow loads: the command line and ``import dtd_keras`` without TensorFlow
installed, mistakes reported before it is imported, and its start-up lines kept quiet.

Each check runs in a fresh interpreter (this test process has imported TensorFlow long
ago). A missing TensorFlow is simulated by hiding it from every import finder, so that
``importlib.util.find_spec("tensorflow")`` is None and ``import tensorflow`` raises
ModuleNotFoundError, as in an environment where it was never installed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from dtd_keras import _tensorflow

REPO = Path(__file__).resolve().parent.parent

HIDE_TENSORFLOW = '''
import sys


class _Hidden:
    """Wraps an import finder; tensorflow (and its submodules) are not found."""

    def __init__(self, finder):
        self._finder = finder

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("tensorflow", "tensorflow_cpu"):
            return None
        find = getattr(self._finder, "find_spec", None)
        return None if find is None else find(name, path, target)

    def __getattr__(self, name):
        return getattr(self._finder, name)


sys.meta_path[:] = [_Hidden(finder) for finder in sys.meta_path]
'''


def _python(*args, cwd, env=None, hide_tensorflow=False, timeout=300):
    """This checkout's Python in a fresh process, as a user's shell would run it (no
    TF_CPP_MIN_LOG_LEVEL unless ``env`` sets it)."""
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("TF_CPP_MIN_LOG_LEVEL", _tensorflow.VERBOSE_VARIABLE)}
    path = [str(REPO)]
    if hide_tensorflow:
        site = Path(cwd) / "_site"
        site.mkdir(exist_ok=True)
        (site / "sitecustomize.py").write_text(HIDE_TENSORFLOW)
        path.insert(0, str(site))
    environment.update({"PYTHONPATH": os.pathsep.join(path), **(env or {})})
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=environment)


@pytest.fixture()
def inputs(tmp_path):
    """A file that passes as a .keras model until it is loaded (a zip archive), an input
    array, and a folder with the user's own files."""
    with zipfile.ZipFile(tmp_path / "model.keras", "w") as archive:
        archive.writestr("config.json", "{}")
    np.save(tmp_path / "x.npy", np.zeros((2, 8, 8, 1), np.float32))
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("the user's")
    (tmp_path / "mine" / "model.keras").write_text("the user's model")
    return tmp_path


# ------------------------------------------------------------- without TensorFlow
def test_without_tensorflow_help_works_and_commands_name_the_extras(inputs):
    """A core install (`pip install dtd-keras`, no TensorFlow): --help and --version
    answer; every command that needs TensorFlow ends with one line naming the extras."""
    probe = _python("-c", "import importlib.util, sys; "
                          "print(importlib.util.find_spec('tensorflow'))",
                    cwd=inputs, hide_tensorflow=True)
    assert probe.stdout.strip() == "None", probe.stderr  # the simulation holds

    done = _python("-m", "dtd_keras", "--help", cwd=inputs, hide_tensorflow=True)
    assert done.returncode == 0 and done.stdout.startswith("usage: dtd-keras"), done.stderr
    done = _python("-m", "dtd_keras", "--version", cwd=inputs, hide_tensorflow=True)
    assert done.returncode == 0 and done.stdout.startswith("dtd-keras "), done.stderr
    for command in (["explain", "model.keras", "x.npy", "--out", "new"],
                    ["export", "model.keras", "explainer"],
                    ["demo", "--out", "demo_out", "--quick"]):
        done = _python("-m", "dtd_keras", *command, cwd=inputs, hide_tensorflow=True)
        assert done.returncode == 1, (command, done.stderr)
        assert done.stderr == f"dtd-keras: error: {_tensorflow.MISSING}\n", (command,
                                                                             done.stderr)
        assert 'pip install "dtd-keras[cpu]"' in done.stderr
    done = _python("-m", "dtd_keras.demo", "--out", "demo_out", "--quick", cwd=inputs,
                   hide_tensorflow=True)
    assert done.returncode == 1
    assert done.stderr == f"python -m dtd_keras.demo: error: {_tensorflow.MISSING}\n"
    assert sorted(p.name for p in inputs.iterdir()) == ["_site", "mine", "model.keras",
                                                         "x.npy"]  # nothing written


def test_without_tensorflow_import_works_and_first_use_names_the_extras(tmp_path):
    code = ("import numpy as np\n"
            "import dtd_keras as dk\n"
            "print(dk.image.heatmap(np.ones((2, 2))).shape)  # numpy only\n"
            "try:\n"
            "    dk.DTD\n"
            "except ImportError as error:\n"
            "    print('ImportError:', error)\n")
    done = _python("-c", code, cwd=tmp_path, hide_tensorflow=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"(2, 2, 3)\nImportError: {_tensorflow.MISSING}\n"


# ------------------------------------------------------------- before TensorFlow
def test_mistakes_are_reported_before_tensorflow_is_imported(inputs):
    """A refused --out, a bad --domain or --preset, a missing input or model file: the
    error comes without importing TensorFlow (or Keras)."""
    cases = {
        "explain into a non-empty folder": (
            ["explain", "model.keras", "x.npy", "--out", "mine"], 1, "already exists"),
        "bad domain": (["explain", "model.keras", "x.npy", "--domain", "big", "--out", "o"],
                       1, "is not 'LOW,HIGH'"),
        "bad preset": (["explain", "model.keras", "x.npy", "--preset", "nope", "--out", "o"],
                       2, "invalid choice: 'nope'"),
        "missing input": (["explain", "model.keras", "nope.npy", "--out", "o"], 1,
                          "input file not found: nope.npy"),
        "missing model": (["explain", "nope.keras", "x.npy", "--out", "o"], 1,
                          "model file not found: nope.keras"),
        "negative neuron": (["explain", "model.keras", "x.npy", "--neuron", "-1", "--out",
                             "o"], 1, "--neuron -1 is out of range"),
        "batch size 0": (["explain", "model.keras", "x.npy", "--batch-size", "0", "--out",
                          "o"], 1, "--batch-size must be at least 1"),
        "export into a non-empty folder": (["export", "model.keras", "mine"], 1,
                                           "not an empty folder"),
        "export a missing model": (["export", "nope.keras", "explainer"], 1,
                                   "model file not found"),
        "demo into the user's folder": (["demo", "--out", "mine"], 1, "already exists"),
        "demo over the user's model": (["demo", "--out", "mine", "--overwrite"], 1,
                                       "which the demo did not write"),
    }
    code = ("import contextlib, io, json, sys\n"
            "from dtd_keras.cli import main\n"
            "found = {}\n"
            "for name, argv in json.loads(sys.argv[1]).items():\n"
            "    err = io.StringIO()\n"
            "    with contextlib.redirect_stderr(err):\n"
            "        status = main(argv)\n"
            "    found[name] = [status, err.getvalue()]\n"
            "found['imported'] = sorted(m for m in ('tensorflow', 'keras') if m in sys.modules)\n"
            "print(json.dumps(found))\n")
    done = _python("-c", code, json.dumps({k: v[0] for k, v in cases.items()}), cwd=inputs)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found.pop("imported") == []
    for name, (_, status, message) in cases.items():
        assert found[name][0] == status, (name, found[name])
        assert message in found[name][1] and found[name][1].count("\n") == 1, (name, found[name])
    assert (inputs / "mine" / "model.keras").read_text() == "the user's model"


# ------------------------------------------------------------- start-up lines
def test_log_lines_are_filtered_by_the_users_level():
    lines = ["WARNING: All log messages before absl::InitializeLog() is called are written "
             "to STDERR",
             "I0000 00:00:1796082537.471832    3667 port.cc:153] oneDNN custom operations",
             "W0000 00:00:1796082537.471832    3667 cpu.cc:1] a warning",
             "something else the user printed"]
    assert _tensorflow._kept(lines, 4) == [lines[3]]  # the default: none of TensorFlow's
    assert _tensorflow._kept(lines, 3) == [lines[3]]
    assert _tensorflow._kept(lines, 1) == [lines[0], lines[2], lines[3]]
    assert _tensorflow._kept(lines, 0) == lines


_TF_LINE = re.compile(r"^(WARNING: All log messages before absl|[IWEF]\d{4} \d\d:\d\d:)")


def test_python_api_keeps_tensorflows_start_up_lines_quiet(tmp_path):
    """`dk.DTD` imports TensorFlow with its start-up lines hidden (as the command line
    does); DTD_KERAS_VERBOSE=1 or the user's TF_CPP_MIN_LOG_LEVEL=0 shows them."""
    own = [line for line in _python("-c", "import tensorflow", cwd=tmp_path).stderr
           .splitlines() if _TF_LINE.match(line)]
    if not own:
        pytest.skip("TensorFlow prints no start-up lines on this machine")
    use = "import dtd_keras as dk; dk.DTD; print('ok')"
    quiet = _python("-c", use, cwd=tmp_path)
    assert quiet.returncode == 0 and quiet.stdout == "ok\n", quiet.stderr
    assert not [line for line in quiet.stderr.splitlines() if _TF_LINE.match(line)], \
        quiet.stderr
    verbose = _python("-c", use, cwd=tmp_path, env={"DTD_KERAS_VERBOSE": "1"})
    assert verbose.returncode == 0, verbose.stderr
    shown = verbose.stderr.splitlines()
    for line in own:
        assert any(line.split("]", 1)[-1] in s for s in shown), (line, shown)
