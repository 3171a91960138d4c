"""dtd-keras explain's inputs: negative --domain values, --batch-size capped at the
sample count, --store zarr streaming the input files, and the on-demand reader behind it
(dtd_keras.reading.open_inputs)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_cli import SHAPE, make_files, run

from dtd_keras import cli


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """test_cli's model and input files."""
    return make_files(tmp_path_factory.mktemp("cli_inputs"))


# ------------------------------------------------------------- negative domains
def test_negative_domain_and_pixel_range(files, tmp_path, capsys):
    """`--domain -1,1` (and `--pixel-range -1,1`) are values, not options."""
    from dtd_keras.cli.run import join_negative_values

    assert join_negative_values(["explain", "m", "x", "--domain", "-1,1", "--dom", "-.5,1",
                                 "--pixel-range", "-1,0", "--", "--domain", "-1,1"]) == [
        "explain", "m", "x", "--domain=-1,1", "--dom=-.5,1", "--pixel-range=-1,0", "--",
        "--domain", "-1,1"]
    assert join_negative_values(["--domain", "-q"]) == ["--domain", "-q"]
    np.save(tmp_path / "signed.npy", np.linspace(-1, 1, 2 * 64, dtype=np.float32)
            .reshape(2, *SHAPE))
    out = tmp_path / "out"
    code, _, stderr = run(capsys, "explain", files / "tiny.keras", tmp_path / "signed.npy",
                          files / "white.png", "--domain", "-1,1", "--pixel-range", "-1,1",
                          "--out", out, "-q")
    assert code == 0, stderr
    report = json.loads((out / "properties.json").read_text())
    assert report["domain"] == "-1,1" and report["pixel_range"] == [-1.0, 1.0]
    assert report["analyzer"].count("ZBox(low=-1, high=1)") == 1
    code, _, stderr = run(capsys, "explain", files / "tiny.keras", tmp_path / "signed.npy",
                          "--domain", "-0.5,1", "--out", tmp_path / "o2")
    assert code == 1 and "outside the declared domain Box(-0.5, 1)" in stderr


# ------------------------------------------------------------- batch size, streaming
def _recording(monkeypatch):
    """Wrap dk.analyze_dataset: record its data and batch size, and every slice it reads."""
    import dtd_keras.datasets

    real = dtd_keras.datasets.analyze_dataset
    seen: dict = {"reads": []}

    class Recorder:
        def __init__(self, data):
            self.data, self.shape, self.dtype = data, data.shape, data.dtype

        def __len__(self):
            return len(self.data)

        def __getitem__(self, key):
            piece = self.data[key]
            seen["reads"].append(len(piece))
            return piece

    def analyze_dataset(analyzer, data, out, **options):
        seen.update(data=data, batch_size=options["batch_size"])
        return real(analyzer, Recorder(data), out, **options)

    monkeypatch.setattr(dtd_keras.datasets, "analyze_dataset", analyze_dataset)
    return seen


def test_batch_size_is_capped_at_the_sample_count(files, tmp_path, capsys, monkeypatch):
    seen = _recording(monkeypatch)
    code, _, stderr = run(capsys, "explain", files / "tiny.keras", files / "batch.npy",
                          "--store", "zarr", "--batch-size", 2 ** 24, "--out",
                          tmp_path / "out", "-q")
    assert code == 0, stderr
    assert seen["batch_size"] == 3  # the 3 samples, not 2**24


def test_zarr_streams_the_inputs(files, tmp_path, capsys, monkeypatch):
    """--store zarr reads the inputs chunk by chunk (.npy memory-mapped, images one by
    one) instead of all at once; the results equal the in-memory path's."""
    import dtd_keras.reading

    rng = np.random.default_rng(1)
    np.save(tmp_path / "many.npy", rng.random((150, *SHAPE), dtype=np.float32))
    inputs = [tmp_path / "many.npy", files / "folder", files / "photo.png", files / "one.npy"]
    small = tmp_path / "npy"
    code, _, stderr = run(capsys, "explain", files / "tiny.keras", *inputs, "--out", small,
                          "--batch-size", 2, "-q")
    assert code == 0, stderr

    loads = []
    real_load = np.load

    def load(path, *args, **options):
        loads.append((Path(path).suffix, options.get("mmap_mode")))
        return real_load(path, *args, **options)

    monkeypatch.setattr(dtd_keras.reading.np, "load", load)
    seen = _recording(monkeypatch)
    big = tmp_path / "zarr"
    code, _, stderr = run(capsys, "explain", files / "tiny.keras", *inputs, "--out", big,
                          "--store", "zarr", "--batch-size", 2, "-q")
    assert code == 0, stderr
    count = 150 + 3 + 1 + 1
    assert not isinstance(seen["data"], np.ndarray) and len(seen["data"]) == count
    assert 0 < max(seen["reads"]) < count  # chunk by chunk (128 samples a chunk here)
    assert sum(seen["reads"]) == count
    assert {mode for suffix, mode in loads if suffix == ".npy"} == {"r"}

    import dtd_keras as dk

    results = dk.load_results(big / "relevance.zarr")
    np.testing.assert_allclose(results.relevance[:], np.load(small / "relevance.npy"),
                               rtol=1e-5, atol=1e-7)
    streamed = json.loads((big / "properties.json").read_text())
    in_memory = json.loads((small / "properties.json").read_text())
    assert [(s["source"], s["source_index"], s["neuron"]) for s in streamed["samples"]] == [
        (s["source"], s["source_index"], s["neuron"]) for s in in_memory["samples"]]
    assert sorted(p.name for p in (big / "heatmaps").iterdir()) == sorted(
        p.name for p in (small / "heatmaps").iterdir())


def test_streamed_inputs_name_the_file_outside_the_domain(files, tmp_path, capsys):
    code, _, stderr = run(capsys, "explain", files / "tiny.keras", files / "batch.npy",
                          files / "negative.npy", "--store", "zarr", "--out", tmp_path / "o",
                          "-q")
    assert code == 1 and stderr.count("\n") == 1, stderr
    assert "negative.npy" in stderr and "outside the declared domain Box(0, 1)" in stderr
    assert "pass --resume to continue" in stderr


def test_open_inputs_reads_on_demand_what_read_inputs_reads(files):
    from dtd_keras.reading import open_inputs

    paths = [str(files / n) for n in ("batch.npy", "folder", "photo.png", "pair.npz",
                                      "none.npy", "one.npy")]
    x, sources = cli.read_inputs(paths, (None, *SHAPE), (0.0, 1.0))
    lazy = open_inputs(paths, (None, *SHAPE), (0.0, 1.0))
    assert lazy.shape == x.shape == (3 + 3 + 1 + 2 + 0 + 1, *SHAPE) and len(lazy) == len(x)
    assert lazy.sources == sources
    for start, stop in ((0, 10), (2, 7), (5, 6), (9, 10), (4, 4)):
        np.testing.assert_array_equal(lazy[start:stop], x[start:stop])
    np.testing.assert_array_equal(lazy[-1], x[-1])
    np.testing.assert_array_equal(np.asarray(lazy), x)
    checked = []
    checker = open_inputs(paths, (None, *SHAPE), (0.0, 1.0),
                          check=lambda piece, name: checked.append((Path(name).name,
                                                                    len(piece))))
    checker[2:7]
    assert checked == [("batch.npy", 1), ("a.npy", 1), ("b.npy", 2), ("photo.png", 1)]
