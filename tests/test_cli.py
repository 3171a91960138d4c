"""The dtd-keras command line: outputs of explain/export, one-line errors, safe mode."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from dtd_keras import cli
from dtd_keras.cli import main
from dtd_keras.engine.domains import Box

REPO = Path(__file__).resolve().parent.parent
SHAPE = (8, 8, 1)
PROPERTY_KEYS = {
    "index", "source", "source_index", "heatmap", "neuron", "explained_logit",
    "relevance_sum", "conservation_error", "relative_conservation_error",
    "negative_relevance", "negative_fraction", "positive", "consistent",
}


def make_files(root: Path) -> Path:
    """A tiny saved CNN, models that must fail, and input files, in ``root``."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input(SHAPE),
        keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(3, activation="softmax"),
    ])
    model.save(root / "tiny.keras")
    lam = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda t: 2.0 * t),
                            keras.layers.Dense(2)])
    lam.save(root / "lambda.keras")
    lstm = keras.Sequential([keras.Input((5, 3)), keras.layers.LSTM(2), keras.layers.Dense(2)])
    lstm.save(root / "lstm.keras")
    (root / "broken.keras").write_bytes(b"not a zip archive")

    rng = np.random.default_rng(0)
    np.save(root / "batch.npy", rng.random((3, *SHAPE), dtype=np.float32))
    np.save(root / "one.npy", rng.random(SHAPE, dtype=np.float32))
    np.savez(root / "pair.npz", x=rng.random((2, *SHAPE), dtype=np.float32),
             y=np.arange(2))
    np.save(root / "wrong.npy", np.zeros((2, 7, 7, 1), np.float32))
    np.save(root / "negative.npy", -np.ones((2, *SHAPE), np.float32))
    np.save(root / "four.npy", rng.random((2, 4), dtype=np.float32))
    np.save(root / "seq.npy", rng.random((2, 5, 3), dtype=np.float32))
    np.save(root / "complex.npy", np.ones((2, *SHAPE), np.complex64))
    np.savez(root / "complex.npz", x=np.ones((2, *SHAPE), np.complex128))
    np.save(root / "none.npy", np.zeros((0, *SHAPE), np.float32))
    (root / "empty_folder").mkdir()
    (root / "folder").mkdir()
    np.save(root / "folder" / "b.npy", rng.random((2, *SHAPE), dtype=np.float32))
    np.save(root / "folder" / "a.npy", rng.random(SHAPE, dtype=np.float32))
    (root / "folder" / "notes.txt").write_text("not an input")
    picture = (rng.random((20, 30, 3)) * 255).astype(np.uint8)
    Image.fromarray(picture).save(root / "photo.png")
    Image.fromarray(np.full((5, 5, 3), 255, np.uint8)).save(root / "white.png")
    return root


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """:func:`make_files`."""
    return make_files(tmp_path_factory.mktemp("cli"))


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_explain_npy_and_png(files, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, stderr = run(capsys, "explain", files / "tiny.keras", files / "batch.npy",
                               files / "photo.png", files / "one.npy", "--out", out,
                               "--batch-size", "2")
    assert code == 0, stderr
    assert "explaining" in stderr  # the progress bar: 3 batches
    assert "explained 5 sample(s)" in stdout

    relevance = np.load(out / "relevance.npy")
    assert relevance.shape == (5, *SHAPE) and relevance.dtype == np.float32
    report = json.loads((out / "properties.json").read_text())
    assert report["n_samples"] == 5 and report["input_shape"] == list(SHAPE)
    assert report["preset"] == "deep_taylor" and report["domain"] == "0,1"
    assert set(report["summary"]) == {"mean_relative_conservation_error",
                                      "fraction_positive", "mean_negative_fraction"}
    samples = report["samples"]
    assert [s["source_index"] for s in samples] == [0, 1, 2, 0, 0]
    assert samples[3]["source"].endswith("photo.png")
    for sample, r in zip(samples, relevance):
        assert set(sample) == PROPERTY_KEYS
        assert sample["relevance_sum"] == pytest.approx(float(r.sum()), rel=1e-4, abs=1e-6)
        assert abs(sample["relative_conservation_error"]) < 1e-4  # DTD zB conserves
        assert 0 <= sample["neuron"] < 3
        heatmap = Image.open(out / sample["heatmap"])
        assert heatmap.mode == "RGB" and heatmap.size == (128, 128)
    assert len(list((out / "heatmaps").glob("*.png"))) == 5


def test_explain_npz_neuron_and_lrp_preset(files, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, stderr = run(capsys, "explain", files / "tiny.keras", files / "pair.npz",
                          "--neuron", 2, "--preset", "lrp.epsilon", "--domain", "real",
                          "--out", out, "-q")
    assert code == 0, stderr
    assert stderr == ""  # --quiet: no progress bar
    report = json.loads((out / "properties.json").read_text())
    assert [s["neuron"] for s in report["samples"]] == [2, 2]
    assert report["domain"] == "real" and report["preset"] == "lrp.epsilon"
    assert np.load(out / "relevance.npy").shape == (2, *SHAPE)


def test_images_are_scaled_to_the_domain_box_or_left_raw(files):
    shape = (None, *SHAPE)
    x, sources = cli.read_inputs([str(files / "white.png")], shape, (0.0, 1.0))
    assert x.shape == (1, *SHAPE) and np.allclose(x, 1.0)
    x, _ = cli.read_inputs([str(files / "white.png")], shape, None)
    assert np.allclose(x, 255.0)
    x, _ = cli.read_inputs([str(files / "white.png")], (None, 6, 4, 3), (-1.0, 1.0))
    assert x.shape == (1, 6, 4, 3) and np.allclose(x, 1.0)
    assert sources == [{"source": str(files / "white.png"), "source_index": 0}]


def test_domain_parsing_and_preset_options():
    assert cli.parse_domain("real") == "real"
    assert cli.parse_domain("Positive") == "positive"
    box = cli.parse_domain("-1,1")
    assert isinstance(box, Box) and float(box.low) == -1.0 and float(box.high) == 1.0
    for bad in ("1,0", "0,1,2", "nope", "0,inf"):
        with pytest.raises(cli.CLIError):
            cli.parse_domain(bad)
    assert cli.analyzer_options("deep_taylor", "positive") == {"input_domain": "positive"}
    assert cli.analyzer_options("deep_taylor.bounded", box) == {"low": -1.0, "high": 1.0}
    assert cli.analyzer_options("lrp.composite", "real") == {}
    assert cli.analyzer_options("lrp.epsilon", box) == {}
    with pytest.raises(cli.CLIError, match="needs a box"):
        cli.analyzer_options("deep_taylor.bounded", "real")


ERRORS = {
    "missing model": (["explain", "{root}/nope.keras", "{root}/one.npy"], "not found"),
    "missing input": (["explain", "{root}/tiny.keras", "{root}/nope.npy"], "not found"),
    "broken model": (["explain", "{root}/broken.keras", "{root}/one.npy"], "cannot load"),
    "shape mismatch": (["explain", "{root}/tiny.keras", "{root}/wrong.npy"],
                       "does not fit the model input"),
    "image for a vector model": (["explain", "{root}/lambda.keras", "{root}/photo.png",
                                  "--unsafe"], "not an image"),
    "unsupported layer": (["explain", "{root}/lstm.keras", "{root}/seq.npy"],
                          "unsupported layer: layer 'lstm' (LSTM)"),
    "outside the box": (["explain", "{root}/tiny.keras", "{root}/negative.npy"],
                        "outside the declared domain Box(0, 1)"),
    "not positive": (["explain", "{root}/tiny.keras", "{root}/negative.npy", "--domain",
                      "positive"], "outside the declared domain 'positive'"),
    "bounded preset needs a box": (["explain", "{root}/tiny.keras", "{root}/one.npy",
                                    "--preset", "deep_taylor.bounded", "--domain", "real"],
                                   "needs a box domain"),
    "bad domain": (["explain", "{root}/tiny.keras", "{root}/one.npy", "--domain", "big"],
                   "is not 'LOW,HIGH'"),
    "neuron out of range": (["explain", "{root}/tiny.keras", "{root}/one.npy", "--neuron",
                             "7"], "out of range"),
    "export into a non-empty folder": (["export", "{root}/tiny.keras", "{root}"],
                                       "not an empty folder"),
    "complex array": (["explain", "{root}/tiny.keras", "{root}/complex.npy"],
                      "holds a complex array (complex64); models take real numbers"),
    "complex array in npz": (["explain", "{root}/tiny.keras", "{root}/complex.npz"],
                             "holds a complex array (complex128)"),
    "explain into a non-empty folder": (["explain", "{root}/tiny.keras", "{root}/one.npy",
                                         "--out", "{root}"],
                                        "already exists and is not empty; pass --overwrite"),
    "explain into a file": (["explain", "{root}/tiny.keras", "{root}/one.npy", "--out",
                             "{root}/one.npy", "--overwrite"], "is a file; give a folder"),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_errors_are_one_line(case, files, tmp_path, capsys):
    argv, expected = ERRORS[case]
    argv = [a.format(root=files) for a in argv]
    if argv[0] == "explain" and "--out" not in argv:
        argv += ["--out", str(tmp_path / "out")]
    before = sorted(p.name for p in files.iterdir())
    code, _, stderr = run(capsys, *argv)
    assert code == 1
    assert stderr.count("\n") == 1 and stderr.startswith("dtd-keras: error: "), stderr
    assert expected in stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "out").exists()  # nothing written on failure
    assert sorted(p.name for p in files.iterdir()) == before


def test_usage_errors_exit_2_with_one_line(files, capsys):
    code, _, stderr = run(capsys, "explain", "--nope", "m.keras", "x.npy")
    assert code == 2 and stderr.count("\n") == 1 and "unrecognized arguments" in stderr
    code, _, stderr = run(capsys, "explain", "--preset", "nope", files / "tiny.keras",
                          files / "one.npy")
    assert code == 2 and stderr.count("\n") == 1 and "invalid choice: 'nope'" in stderr
    assert "lrp.epsilon" in stderr


def test_help_lists_every_preset():
    import dtd_keras as dk

    assert set(cli.parser.PRESET_NAMES) == set(dk.PRESETS)


def test_safe_mode_refuses_lambda_layers(files, tmp_path, capsys):
    argv = ["explain", files / "lambda.keras", files / "four.npy", "--domain", "real",
            "--out", tmp_path / "out"]
    code, _, stderr = run(capsys, *argv)
    assert code == 1 and stderr.count("\n") == 1
    assert "safe mode" in stderr and "--unsafe" in stderr
    # With --unsafe the model loads, and the analyzer sees inside the Lambda (2·t).
    code, _, stderr = run(capsys, *argv, "--unsafe")
    assert code == 0, stderr
    assert "safe mode" not in stderr


def test_export_writes_a_servable_savedmodel(files, tmp_path, capsys):
    import tensorflow as tf

    target = tmp_path / "explainer"
    code, stdout, stderr = run(capsys, "export", files / "tiny.keras", target, "--domain",
                               "0,1")
    assert code == 0, stderr
    assert (target / "saved_model.pb").is_file() and "exported" in stdout
    explainer = tf.saved_model.load(str(target))
    x = np.load(files / "batch.npy")
    served = explainer.signatures["serving_default"](input=tf.constant(x))
    assert served["relevance"].shape == x.shape
    code, _, stderr = run(capsys, "export", files / "tiny.keras", target)
    assert code == 1 and "--overwrite" in stderr
    code, _, stderr = run(capsys, "export", files / "tiny.keras", target, "--overwrite", "-q")
    assert code == 0, stderr


def test_demo_command_passes_its_options(monkeypatch, tmp_path, capsys):
    import dtd_keras.demo

    calls = []

    def fake(out_dir, epochs=None, seed=0, quick=False, verbose=True, overwrite=False):
        calls.append((out_dir, epochs, seed, quick, verbose, overwrite))
        (tmp_path / "results.md").write_text("| table |\n")
        return {"paths": {"markdown": str(tmp_path / "results.md")}}

    monkeypatch.setattr(dtd_keras.demo, "run_demo", fake)
    code, stdout, _ = run(capsys, "demo", "--out", tmp_path / "demo", "--epochs", 3,
                          "--seed", 1, "--quick")
    assert code == 0 and calls == [(str(tmp_path / "demo"), 3, 1, True, True, False)]
    assert "| table |" in stdout
    code, _, stderr = run(capsys, "demo", "--epochs", 0)
    assert code == 1 and "--epochs must be at least 1" in stderr
    monkeypatch.setitem(sys.modules, "sklearn", None)  # `pip install dtd-keras[cpu]`
    code, _, stderr = run(capsys, "demo", "--out", tmp_path)
    assert code == 1 and stderr == ("dtd-keras: error: the demo needs scikit-learn: pip "
                                    "install 'dtd-keras[demo]'\n")


@pytest.mark.parametrize("command", [[], ["explain"], ["export"], ["demo"]])
def test_help(command, capsys):
    code, stdout, _ = run(capsys, *command, "--help")
    assert code == 0 and stdout.startswith("usage: dtd-keras")


def test_console_script_help():
    script = shutil.which("dtd-keras")
    assert script is not None, "the dtd-keras console script is missing: pip install -e ."
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=120,
                          env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: dtd-keras")
    for command in ("explain", "export", "demo"):
        assert command in done.stdout


def test_empty_inputs_give_empty_results(files, tmp_path, capsys):
    """0 samples (an array of shape (0, ...), an empty folder) → empty results, exit 0."""
    for inputs in (["none.npy"], ["empty_folder"], ["none.npy", "empty_folder"]):
        out = tmp_path / "_".join(inputs)
        code, stdout, stderr = run(capsys, "explain", files / "tiny.keras",
                                   *[files / i for i in inputs], "--out", out)
        assert code == 0, stderr
        assert "no samples" in stdout
        relevance = np.load(out / "relevance.npy")
        assert relevance.shape == (0, *SHAPE) and relevance.dtype == np.float32
        report = json.loads((out / "properties.json").read_text())
        assert report["n_samples"] == 0 and report["samples"] == []
        assert set(report["summary"].values()) == {None}
        assert not list((out / "heatmaps").iterdir())


def test_folders_and_empty_arrays_next_to_samples(files, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, stderr = run(capsys, "explain", files / "tiny.keras", files / "folder",
                          files / "none.npy", files / "one.npy", "--out", out, "-q")
    assert code == 0, stderr
    report = json.loads((out / "properties.json").read_text())
    assert [(Path(s["source"]).name, s["source_index"]) for s in report["samples"]] == [
        ("a.npy", 0), ("b.npy", 0), ("b.npy", 1), ("one.npy", 0)]
    assert np.load(out / "relevance.npy").shape == (4, *SHAPE)


def test_out_is_never_overwritten_without_overwrite(files, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, stderr = run(capsys, "explain", files / "tiny.keras", files / "batch.npy",
                          files / "one.npy", "--out", out, "-q")
    assert code == 0, stderr
    first = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert len(first) == 2 + 4  # relevance.npy, properties.json, 4 heatmaps

    code, _, stderr = run(capsys, "explain", files / "tiny.keras", files / "pair.npz",
                          "--out", out)
    assert code == 1 and stderr.count("\n") == 1
    assert f"--out {out} already exists and is not empty; pass --overwrite" in stderr
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == first

    (out / "notes.txt").write_text("mine")  # the user's own file in the folder
    (out / "heatmaps" / "keep.png").write_bytes(b"mine too")
    code, _, stderr = run(capsys, "explain", files / "tiny.keras", files / "pair.npz",
                          "--out", out, "--overwrite", "-q")
    assert code == 0, stderr
    report = json.loads((out / "properties.json").read_text())
    assert report["n_samples"] == 2 and np.load(out / "relevance.npy").shape == (2, *SHAPE)
    assert sorted(p.name for p in (out / "heatmaps").iterdir()) == [
        "0000_pair.png", "0001_pair.png", "keep.png"]  # no stale heatmap of the 4 before
    assert (out / "notes.txt").read_text() == "mine"


def _python(*args, cwd, env=None, timeout=300):
    """Run this checkout's Python, as a user's shell would, in a fresh process."""
    environment = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    environment.update({"PYTHONPATH": str(REPO), **(env or {})})
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=environment)


def test_help_and_version_do_not_import_tensorflow(tmp_path):
    done = _python("-X", "importtime", "-m", "dtd_keras", "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: dtd-keras") and "explain" in done.stdout
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:")]
    assert "dtd_keras.cli" in imported
    assert not [m for m in imported if m.split(".")[0] in ("tensorflow", "keras")]
    code = ("import sys; from dtd_keras.cli import main\n"
            "for argv in (['--version'], ['explain', '--help'], ['export', '--help'],"
            " ['explain', '--nope']):\n"
            "    try: main(argv)\n"
            "    except SystemExit: raise AssertionError(argv)\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
            "print('ok')")
    done = _python("-c", code, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "dtd-keras 0.1.0" in done.stdout and done.stdout.endswith("ok\n")


def test_plain_install_explains_quietly(files, tmp_path):
    """`pip install dtd-keras[cpu]`: no matplotlib, Pillow, scikit-learn or TensorBoard.
    explain still writes heatmaps, and TensorFlow's log lines stay off the terminal."""
    code = ("import sys\n"
            "for name in ('matplotlib', 'PIL', 'sklearn', 'tensorboard'):\n"
            "    sys.modules[name] = None  # not installed\n"
            "from dtd_keras.cli import main\n"
            "sys.exit(main(sys.argv[1:]))")
    out = tmp_path / "out"
    done = _python("-c", code, "explain", files / "tiny.keras", files / "batch.npy",
                   "--out", out, "--batch-size", 2, "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and done.stdout == ""
    assert len(list((out / "heatmaps").glob("*.png"))) == 3
    with Image.open(out / "heatmaps" / "0000_batch.png") as picture:
        assert picture.size == (128, 128) and picture.mode == "RGB"
    # reading an image file needs Pillow: one line that says so
    done = _python("-c", code, "explain", files / "tiny.keras", files / "photo.png",
                   "--out", tmp_path / "photo", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("dtd-keras: error: reading the image")
    assert "needs Pillow: pip install 'dtd-keras[viz]'" in done.stderr
    assert done.stderr.count("\n") == 1


def test_verbose_shows_tensorflows_log_lines(files, tmp_path):
    own = _python("-c", "import tensorflow", cwd=tmp_path).stderr.strip().splitlines()
    done = _python("-m", "dtd_keras", "explain", files / "tiny.keras", files / "one.npy",
                   "--out", tmp_path / "out", "--verbose", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    shown = done.stderr.splitlines()
    # what TensorFlow prints on import (e.g. the oneDNN notice) shows with --verbose
    for line in own:
        assert any(line.split("]", 1)[-1] in s for s in shown), (line, shown)


def test_large_inputs_go_to_a_resumable_zarr_store(files, tmp_path, capsys, monkeypatch):
    """--store zarr (automatic above ZARR_ABOVE samples) writes relevance.zarr through
    dk.analyze_dataset: same numbers as relevance.npy; --resume continues it."""
    import dtd_keras as dk
    from dtd_keras.cli import parser

    small, big = tmp_path / "npy", tmp_path / "zarr"
    assert run(capsys, "explain", files / "tiny.keras", files / "batch.npy", "--out", small)[0] == 0
    monkeypatch.setattr(parser, "ZARR_ABOVE", 2)  # 3 samples count as large now
    monkeypatch.setattr("dtd_keras.cli.explain.ZARR_ABOVE", 2)
    code, stdout, stderr = run(capsys, "explain", files / "tiny.keras", files / "batch.npy",
                               "--out", big, "-q")
    assert code == 0, stderr
    assert not (big / "relevance.npy").exists()
    results = dk.load_results(big / "relevance.zarr")
    np.testing.assert_allclose(results.relevance[:], np.load(small / "relevance.npy"),
                               rtol=1e-5, atol=1e-7)
    report = json.loads((big / "properties.json").read_text())
    assert report["relevance"] == "relevance.zarr" and report["n_samples"] == 3
    assert len(list((big / "heatmaps").glob("*.png"))) == 3
    # a finished run resumes to the same store; --resume and --overwrite exclude each other
    code, _, stderr = run(capsys, "explain", files / "tiny.keras", files / "batch.npy",
                          "--out", big, "--resume", "-q")
    assert code == 0, stderr
    code, _, stderr = run(capsys, "explain", files / "tiny.keras", files / "batch.npy",
                          "--out", big, "--resume", "--overwrite")
    assert code != 0 and "pass one of them" in stderr
    code, _, stderr = run(capsys, "explain", files / "tiny.keras", files / "batch.npy",
                          "--out", small, "--resume")
    assert code != 0 and "nothing to continue" in stderr


# ------------------------------------------------------------- the demo's --out
def _demo_outputs(folder: Path) -> None:
    """What an earlier `dtd-keras demo` left in ``folder`` (its results.json)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps({
        "model": "digits_cnn", "seed": 0, "test_accuracy": 0.9, "n_explained": 60,
        "methods": []}))
    for name in ("results.md", "demo.png", "model.keras", "digits.npy", "heldout.npy"):
        (folder / name).write_text("an earlier demo's")


def test_demo_never_replaces_files_it_did_not_write(monkeypatch, tmp_path, capsys):
    """`demo --out` is a new or empty folder; --overwrite replaces an earlier demo's
    outputs only; the user's model.keras or results.md are never replaced."""
    import dtd_keras.demo

    calls = []

    def fake(out_dir, epochs=None, seed=0, quick=False, verbose=True, overwrite=False):
        dtd_keras.demo.check_out(out_dir, overwrite)
        calls.append(Path(out_dir).name)
        (tmp_path / "table.md").write_text("| table |\n")
        return {"paths": {"markdown": str(tmp_path / "table.md")}}

    monkeypatch.setattr(dtd_keras.demo, "run_demo", fake)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "model.keras").write_text("the user's model")
    (mine / "results.md").write_text("the user's notes")
    for extra in ([], ["--overwrite"]):
        code, _, stderr = run(capsys, "demo", "--out", mine, "--quick", *extra)
        assert code == 1 and stderr.count("\n") == 1, stderr
    assert "already exists and is not empty; pass --overwrite" in run(
        capsys, "demo", "--out", mine)[2]
    assert (f"{mine} holds results.md, model.keras, which the demo did not write"
            in run(capsys, "demo", "--out", mine, "--overwrite")[2])
    assert (mine / "model.keras").read_text() == "the user's model"
    assert (mine / "results.md").read_text() == "the user's notes"
    code, _, stderr = run(capsys, "demo", "--out", mine / "model.keras")
    assert code == 1 and "is a file; give a folder" in stderr
    # the Python API refuses the same, before any training
    with pytest.raises(ValueError, match="pass overwrite=True"):
        dtd_keras.demo.check_out(mine)
    data = tmp_path / "data"  # the user's heldout.npy (the demo's store's data)
    data.mkdir()
    (data / "heldout.npy").write_text("the user's data")
    with pytest.raises(ValueError, match="holds heldout.npy, which the demo did not write"):
        dtd_keras.demo.check_out(data, overwrite=True)
    assert calls == []

    # a new folder; an earlier demo's folder with --overwrite (the user's other files stay);
    # a folder of the user's files of other names with --overwrite
    earlier = tmp_path / "earlier"
    _demo_outputs(earlier)
    (earlier / "notes.txt").write_text("mine")
    others = tmp_path / "others"
    others.mkdir()
    (others / "notes.txt").write_text("mine")
    assert run(capsys, "demo", "--out", tmp_path / "new", "-q")[0] == 0
    assert run(capsys, "demo", "--out", earlier, "-q")[0] == 1
    assert run(capsys, "demo", "--out", earlier, "--overwrite", "-q")[0] == 0
    assert run(capsys, "demo", "--out", others, "--overwrite", "-q")[0] == 0
    assert calls == ["new", "earlier", "others"]
    assert (earlier / "notes.txt").read_text() == "mine"


def test_demo_never_replaces_a_report_or_store_it_did_not_write(tmp_path):
    """The demo's report/ and explained.zarr/ are replaced only when they are a report and
    a results store (an earlier demo's); a folder of the user's under those names is not."""
    from dtd_keras.demo import check_out

    for name in ("report", "explained.zarr"):
        out = tmp_path / name.replace(".", "_")
        _demo_outputs(out)
        (out / name).mkdir()
        (out / name / "notes.txt").write_text("mine")
        with pytest.raises(ValueError, match="not a results store / report the demo wrote"):
            check_out(out, overwrite=True)
    (tmp_path / "report" / "report" / "data").mkdir()
    (tmp_path / "report" / "report" / "data" / "manifest.json").write_text("{}")
    check_out(tmp_path / "report", overwrite=True)  # an earlier report


def test_demo_overwrites_its_own_outputs(tmp_path):
    """run_demo itself: refuses the user's folder before training; an earlier demo's
    outputs are recognised as such."""
    from dtd_keras.demo import check_out, run_demo

    out = tmp_path / "demo"
    out.mkdir()
    (out / "results.md").write_text("the user's")
    with pytest.raises(ValueError, match="did not write"):
        run_demo(out, epochs=1, quick=True, verbose=False, overwrite=True)
    assert (out / "results.md").read_text() == "the user's"
    (out / "results.md").unlink()
    run_demo(out, epochs=1, quick=True, verbose=False)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="overwrite=True"):
        run_demo(out, epochs=1, quick=True, verbose=False)
    check_out(out, overwrite=True)  # its own outputs: a rerun may replace them
    (out / "model.keras").unlink()
    check_out(out, overwrite=True)
    (out / "results.json").write_text("{}")  # not the demo's results.json any more
    with pytest.raises(ValueError, match="digits.npy, heldout.npy, which the demo did not"):
        check_out(out, overwrite=True)


# ------------------------------------------------------------- help and README
def _options(parser) -> dict[str, set[str]]:
    """Every option string of every command (and of dtd-keras itself, under "")."""
    import argparse

    found = {"": set()}
    for action in parser._actions:
        found[""].update(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = {o for a in sub._actions for o in a.option_strings}
    return found


def test_readme_synopsis_lists_every_option():
    """README's "Command line" synopsis names every option build_parser() has, under
    its command (the line "every command:" lists the shared ones)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Command line\n", 1)[1].split("\n## ", 1)[0]
    synopsis = section.split("```", 2)[1]
    blocks: dict[str, str] = {}
    current = None
    for line in synopsis.splitlines():
        words = line.split()
        if line.startswith("dtd-keras ") and len(words) > 1:
            current = words[1] if not words[1].startswith("-") else ""
        elif line.startswith("every command:"):
            current = "every"
        if current is not None:
            blocks[current] = blocks.get(current, "") + " " + line
    shared = blocks.get("every", "")
    for command, options in _options(cli.build_parser()).items():
        text = blocks.get(command, "") + shared
        missing = [o for o in sorted(options)
                   if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", text)]
        assert not missing, f"README's synopsis of '{command or 'dtd-keras'}' lacks {missing}"


def test_explain_help_names_both_relevance_files(capsys):
    """The description's list of what explain writes names relevance.zarr too."""
    code, stdout, _ = run(capsys, "explain", "--help")
    assert code == 0
    written = stdout.split("write, to --out:", 1)[1].split("\n\n", 1)[0]
    assert "relevance.npy" in written and "relevance.zarr" in written
