"""The examples and the demo run end to end with small settings, so they never rot.

Each example runs as a subprocess, as a user would run it; none needs the network
(imagenet_photo with ``--weights none`` on a tiny generated PNG).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
# this checkout's dtd_keras, also where another one is installed
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
SCRIPTS = ("digits_walkthrough.py", "imagenet_photo.py", "monitor_training.py",
           "export_and_serve.py")


def run_script(name: str, *args, cwd: Path, timeout: float = 300) -> str:
    env = {**ENV, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, str(EXAMPLES / name), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)
    assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.parametrize("name", SCRIPTS)
def test_example_help(name):
    done = subprocess.run([sys.executable, str(EXAMPLES / name), "--help"],
                          capture_output=True, text=True, timeout=60, env=ENV)
    assert done.returncode == 0 and done.stdout.startswith("usage:"), done.stderr


EXISTING = {  # script, its arguments, the output an earlier run left
    "digits_walkthrough.py": (["--out", "walk"], "walk/relevance.npy"),
    "imagenet_photo.py": (["photo.png", "--weights", "none", "--out", "heat.png"], "heat.png"),
    "monitor_training.py": (["--log-dir", "runs"], "runs/heatmaps/epoch_0001.png"),
    "export_and_serve.py": (["--out", "explainer"], "explainer/saved_model.pb"),
}


@pytest.mark.parametrize("name", SCRIPTS)
def test_a_second_run_refuses_to_overwrite_in_one_line(name, tmp_path):
    """Run twice into the same place: one line naming --overwrite, exit 1, no traceback,
    the earlier output untouched."""
    arguments, earlier = EXISTING[name]
    (tmp_path / earlier).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / earlier).write_bytes(b"an earlier run")
    (tmp_path / "photo.png").write_bytes(b"")
    done = subprocess.run([sys.executable, str(EXAMPLES / name), *arguments],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, env=ENV)
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert "error:" in done.stderr and "pass --overwrite" in done.stderr
    assert "overwrite=True" not in done.stderr
    assert (tmp_path / earlier).read_bytes() == b"an earlier run"


def test_digits_walkthrough(tmp_path):
    stdout = run_script("digits_walkthrough.py", "--epochs", 1, "--samples", 3, "--out",
                        tmp_path / "walk", cwd=tmp_path)
    assert "all consistent: True" in stdout and "ZBox(low=0, high=1)" in stdout
    assert (tmp_path / "walk" / "digits_walkthrough.png").is_file()
    assert np.load(tmp_path / "walk" / "relevance.npy").shape == (3, 8, 8, 1)


def test_imagenet_photo_offline(tmp_path):
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 50, 3), np.uint8)).save(photo)
    stdout = run_script("imagenet_photo.py", photo, "--weights", "none", "--image-size", 32,
                        "--out", tmp_path / "heatmap.png", cwd=tmp_path)
    assert "explained class" in stdout and "relative conservation error" in stdout
    assert Image.open(tmp_path / "heatmap.png").mode in ("RGB", "RGBA")


def test_monitor_training(tmp_path):
    log_dir = tmp_path / "runs"
    stdout = run_script("monitor_training.py", "--epochs", 2, "--train-size", 200,
                        "--samples", 2, "--log-dir", log_dir, cwd=tmp_path)
    assert "conservation error" in stdout
    assert sorted(p.name for p in (log_dir / "heatmaps").glob("*.png")) == [
        "epoch_0001.png", "epoch_0002.png"]
    assert list((log_dir / "relevance").glob("events.out.tfevents.*"))


def test_monitor_training_without_tensorboard(tmp_path):
    """`pip install -e ".[cpu,demo]"` has no TensorBoard: the example still runs."""
    script = EXAMPLES / "monitor_training.py"
    code = ("import runpy, sys\n"
            "sys.modules['tensorboard'] = None  # not installed\n"
            f"sys.argv = [{str(script)!r}, '--epochs', '1', '--train-size', '100',"
            " '--samples', '2', '--log-dir', 'runs']\n"
            "runpy.run_path(sys.argv[0], run_name='__main__')")
    env = {**ENV, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert "TensorBoard is not installed" in done.stderr and "TensorBoard:" not in done.stdout
    assert [p.name for p in (tmp_path / "runs" / "heatmaps").glob("*.png")] == ["epoch_0001.png"]
    assert not (tmp_path / "runs" / "relevance").exists()


def test_export_and_serve(tmp_path):
    stdout = run_script("export_and_serve.py", "--epochs", 1, "--out", tmp_path / "explainer",
                        cwd=tmp_path)
    assert "signatures ['analyze_neuron', 'serving_default']" in stdout
    assert "max |served − analyzer.analyze| = 0" in stdout
    assert (tmp_path / "explainer" / "saved_model.pb").is_file()


def test_demo_quick(tmp_path):
    import warnings

    from dtd_keras.cli import main as cli_main
    from dtd_keras.demo import METHODS, run_demo

    result = run_demo(tmp_path / "demo", quick=True, verbose=False)
    for name in ("demo.png", "results.json", "results.md", "model.keras", "digits.npy",
                 "heldout.npy"):
        assert (tmp_path / "demo" / name).is_file(), name
    # the HTML report of the 60 DTD zB explanations (tests/test_report_browser.py opens one)
    assert result["paths"]["report"] == str(tmp_path / "demo" / "report" / "index.html")
    assert '"count": 60,' in (tmp_path / "demo" / "report" / "data" / "report.js").read_text()
    # heldout.npy is the store's data: the report is written again with its input thumbnails
    # (found through the store, without --data), none drawn again and no warning
    assert np.load(tmp_path / "demo" / "heldout.npy").shape == (60, 8, 8, 1)
    kept = sorted((p.name, p.stat().st_mtime_ns)
                  for p in (tmp_path / "demo" / "report" / "thumbs").rglob("*.png"))
    assert len(kept) == 120
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cli_main(["report", str(tmp_path / "demo" / "explained.zarr"), "--out",
                         str(tmp_path / "demo" / "report"), "-q"]) == 0
    assert kept == sorted((p.name, p.stat().st_mtime_ns)
                          for p in (tmp_path / "demo" / "report" / "thumbs").rglob("*.png"))
    assert '"input": true' in (tmp_path / "demo" / "report" / "data" / "report.js").read_text()
    saved = json.loads((tmp_path / "demo" / "results.json").read_text(encoding="utf-8"))
    assert saved == {k: v for k, v in result.items() if k not in ("paths", "runtime_s")}
    assert 0.0 <= saved["test_accuracy"] <= 1.0 and saved["quick"] is True
    methods = {m["key"]: m for m in saved["methods"]}
    assert list(methods) == [m.key for m in METHODS]
    for key in ("dtd_w2", "dtd_zbox"):  # DTD is conservative and positive
        assert methods[key]["mean_relative_conservation_error"] < 1e-3
        assert methods[key]["fraction_positive"] == 1.0
        assert methods[key]["mean_negative_fraction"] == 0.0
    assert methods["lrp_epsilon"]["mean_negative_fraction"] > 0.0  # LRP-ε is not positive
    table = (tmp_path / "demo" / "results.md").read_text(encoding="utf-8")
    # --quick explains 60 of the 450 held-out digits, and says so
    assert saved["n_explained"] == 60 < saved["n_test"] == 450
    assert "The predicted class of 60 of the 450 held-out digits is explained" in table
    assert "every" not in table.split("\n\n")[1].lower()
    assert table.count("\n| ") == 1 + len(METHODS)  # header and one row per method
    assert Image.open(tmp_path / "demo" / "demo.png").size[0] > 500


def test_imagenet_photo_falls_back_at_the_requested_size(tmp_path, monkeypatch, capsys):
    """--weights imagenet --image-size 32 where the download fails: random weights at
    32x32, as said, and never a claim of 224."""
    import importlib.util

    import keras

    built = []

    def vgg16(weights=None, input_shape=None):
        if weights == "imagenet":
            raise OSError("URL fetch failure (no network in this test)")
        built.append(input_shape)
        keras.utils.set_random_seed(0)
        return keras.Sequential([keras.Input(input_shape), keras.layers.Conv2D(4, 3),
                                 keras.layers.ReLU(), keras.layers.GlobalAveragePooling2D(),
                                 keras.layers.Dense(10)])

    monkeypatch.setattr(keras.applications, "VGG16", vgg16)
    spec = importlib.util.spec_from_file_location("imagenet_photo",
                                                  EXAMPLES / "imagenet_photo.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 50, 3), np.uint8)).save(photo)
    with pytest.warns(UserWarning, match="RANDOM weights"):
        assert example.main([str(photo), "--image-size", "32", "--out",
                             str(tmp_path / "heat.png")]) == 0
    captured = capsys.readouterr()
    assert built == [(32, 32, 3)]
    assert "Falling back to random weights at 32x32 (--image-size)" in captured.err
    assert "vgg16 (random weights), input 32x32" in captured.out
    assert "224" not in captured.out + captured.err
    assert (tmp_path / "heat.png").is_file()
