"""dk.report / dtd-keras report: the files the page reads (contract in the reporting
package's docstring), thumbnails written once, evaluations, concepts, attach, the CLI."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
import pytest

import dtd_keras as dk
from dtd_keras.cli import main
from dtd_keras.image import heatmap, reduce_channels, to_rgb
from dtd_keras.reporting import attach, attachments

REPO = Path(__file__).resolve().parent.parent
N, CLASSES = 30, 3


# ------------------------------------------------------------------- helpers
def read_js(path: Path, name: str) -> dict:
    text = path.read_text(encoding="utf-8")
    prefix = f"window.{name} = "
    assert text.startswith(prefix) and text.rstrip().endswith(";")
    return json.loads(text[len(prefix):].rstrip().rstrip(";"))


def read_png(path: Path) -> np.ndarray:
    """Decode an 8-bit RGB PNG without filters (what dk.image.png writes)."""
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, depth, kind = struct.unpack(">IIBB", raw[16:26])
    assert (depth, kind) == (8, 2)
    data, pos = b"", 8
    while pos < len(raw):
        length = struct.unpack(">I", raw[pos:pos + 4])[0]
        if raw[pos + 4:pos + 8] == b"IDAT":
            data += raw[pos + 8:pos + 8 + length]
        pos += 12 + length
    rows = np.frombuffer(zlib.decompress(data), np.uint8).reshape(height, 1 + width * 3)
    assert not rows[:, 0].any()
    return rows[:, 1:].reshape(height, width, 3)


def thumbs(out: Path) -> dict[str, int]:
    return {p.relative_to(out).as_posix(): p.stat().st_mtime_ns
            for p in (out / "thumbs").rglob("*.png")}


# ------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((N, 8, 8, 1)).astype("float32")
    y = rng.integers(0, CLASSES, N)
    model = keras.Sequential([keras.Input((8, 8, 1)),
                              keras.layers.Conv2D(2, 3, activation="relu", name="conv"),
                              keras.layers.Flatten(), keras.layers.Dense(CLASSES)])
    analyzer = dk.DTD(model, input_domain=dk.Box(0.0, 1.0))
    store = root / "labels.zarr"
    dk.analyze_dataset(analyzer, (x, y), store, neuron="label", chunk_size=8, progress=False)
    every = root / "all.zarr"
    dk.analyze_dataset(analyzer, (x, y), every, neuron="all", chunk_size=8, progress=False)
    np.save(root / "x.npy", x)
    return SimpleNamespace(root=root, x=x, y=y, model=model, analyzer=analyzer, store=store,
                           every=every)


@pytest.fixture
def store_copy(setup, tmp_path):
    copy = tmp_path / "copy.zarr"
    shutil.copytree(setup.store, copy)
    return copy


@pytest.fixture(scope="module")
def written(setup):
    out = setup.root / "out"
    dk.report(setup.store, out, data=setup.x, thumb_size=8, progress=False)
    return out


# ------------------------------------------------------------------- files
def test_items_and_report_data_match_the_store(setup, written):
    info = read_js(written / "data" / "report.js", "DTD_REPORT")
    items = read_js(written / "data" / "items.js", "DTD_ITEMS")
    results = dk.load_results(setup.store)
    assert info["count"] == N and info["thumbs"] == {
        "shard": 1000, "size": [8, 8], "input": True, "input_per": "sample",
        "rows_per_sample": 1}
    assert info["classes"] == {"count": CLASSES, "names": None}
    assert info["evaluations"] == [] and info["concepts"] == []
    keys = [f["key"] for f in info["fields"]]
    assert keys[:5] == ["label", "neuron", "logit", "relative_error", "negative_fraction"]
    assert {len(v) for v in items.values()} == {N}
    np.testing.assert_array_equal(items["row"], np.arange(N))
    np.testing.assert_array_equal(items["index"], results.index)
    np.testing.assert_array_equal(items["label"], setup.y)
    np.testing.assert_array_equal(items["neuron"], results.neuron)
    np.testing.assert_allclose(items["logit"], results.logit, rtol=1e-6)
    for key in ("relative_error", "negative_fraction", "total", "negative_mass"):
        np.testing.assert_allclose(items[key], results.properties[key], rtol=1e-6, atol=1e-30)
    for histogram in info["histograms"]:
        assert len(histogram["edges"]) == len(histogram["counts"]) + 1
        assert sum(histogram["counts"]) == N and histogram["y_label"] == "samples"
    assert "top" not in items and "top" not in keys
    counts = np.bincount(setup.y, minlength=CLASSES)
    assert [(m["class"], m["count"]) for m in info["class_means"]] == list(
        enumerate(counts.tolist()))
    assert {m["group"] for m in info["class_means"]} == {"label"}  # grouped by label


def test_thumbnails_are_the_heatmaps_and_inputs(setup, written):
    """Each thumbnail equals dk.image's picture of its row; a class's mean map is the
    heatmap of the mean relevance of that class's samples."""
    results = dk.load_results(setup.store)
    relevance = np.asarray(results.relevance)
    assert len(thumbs(written)) == 2 * N
    strongest = np.argsort(np.abs(relevance).reshape(N, -1).max(axis=1))[-3:]
    assert np.ptp(relevance[strongest], axis=(1, 2, 3)).min() > 0  # not uniform maps
    for row in strongest.tolist():
        got = read_png(written / "thumbs" / "0" / f"{row}-heatmap.png")
        np.testing.assert_array_equal(got, heatmap(relevance[row]))
        picture = read_png(written / "thumbs" / "0" / f"{row}-input.png")
        low, high = float(setup.x.min()), float(setup.x.max())
        np.testing.assert_array_equal(picture, to_rgb(setup.x[row], value_range=(low, high)))
    large = dk.report(setup.store, written.parent / "large", data=setup.x, progress=False)
    got = read_png(large.parent / "thumbs" / "0" / f"{row}-heatmap.png")  # 8×8 → 64×64
    np.testing.assert_array_equal(got, heatmap(relevance[row]).repeat(8, 0).repeat(8, 1))
    mean = reduce_channels(relevance[setup.y == 1]).mean(axis=0)
    assert np.abs(mean).max() > 0
    got = read_png(written / "means" / "1-heatmap.png")
    assert got.shape == (16, 16, 3)
    np.testing.assert_array_equal(got[::2, ::2], heatmap(mean, reduce=None))


def test_rerun_keeps_thumbnails_another_store_rewrites_them(setup, tmp_path):
    out = tmp_path / "out"
    dk.report(setup.store, out, data=setup.x, thumb_size=8, progress=False)
    before = thumbs(out)
    means = (out / "means" / "0-heatmap.png").stat().st_mtime_ns
    dk.report(dk.load_results(setup.store), out, data=setup.x, thumb_size=8, page_size=5,
              progress=False)
    assert thumbs(out) == before
    assert (out / "means" / "0-heatmap.png").stat().st_mtime_ns == means
    assert read_js(out / "data" / "report.js", "DTD_REPORT")["page_size"] == 5
    with pytest.warns(UserWarning, match=r"has input thumbnails.*pass data= \(--data\)"):
        dk.report(setup.store, out, thumb_size=8, progress=False)  # no data: heatmaps only
    assert len(thumbs(out)) == N and not list((out / "thumbs").rglob("*-input.png"))
    assert read_js(out / "data" / "report.js", "DTD_REPORT")["thumbs"]["input"] is False
    dk.report(setup.every, out, thumb_size=8, progress=False)  # another store
    assert len(thumbs(out)) == N * CLASSES


def test_neuron_all_gives_one_row_per_sample_and_class(setup, tmp_path):
    out = tmp_path / "out"
    dk.report(setup.every, out, data=setup.x, thumb_size=8, progress=False)
    items = read_js(out / "data" / "items.js", "DTD_ITEMS")
    results = dk.load_results(setup.every)
    np.testing.assert_array_equal(items["row"], np.arange(N * CLASSES))
    np.testing.assert_array_equal(items["index"], np.repeat(np.arange(N), CLASSES))
    np.testing.assert_array_equal(items["neuron"], results.neuron.reshape(-1))
    np.testing.assert_allclose(items["logit"], results.logit.reshape(-1), rtol=1e-6)
    got = read_png(out / "thumbs" / "0" / "7-heatmap.png")  # sample 2, class 1
    np.testing.assert_array_equal(got, heatmap(np.asarray(results.relevance[2, 1])))
    # one input thumbnail per sample, at thumbs/<sample // 1000>/<sample>-input.png
    inputs = sorted(p.name for p in (out / "thumbs").rglob("*-input.png"))
    assert inputs == sorted(f"{s}-input.png" for s in range(N))
    low, high = float(setup.x.min()), float(setup.x.max())
    np.testing.assert_array_equal(read_png(out / "thumbs" / "0" / "2-input.png"),
                                  to_rgb(setup.x[2], value_range=(low, high)))
    info = read_js(out / "data" / "report.js", "DTD_REPORT")  # means: rows explaining labels
    assert info["thumbs"]["input_per"] == "sample"
    assert info["thumbs"]["rows_per_sample"] == CLASSES
    # the row explaining each sample's top logit, a category field; histograms count rows
    top = np.asarray(items["top"]).reshape(N, CLASSES)
    np.testing.assert_array_equal(top.argmax(axis=1), results.logit.argmax(axis=1))
    assert (top.sum(axis=1) == 1).all()
    field = next(f for f in info["fields"] if f["key"] == "top")
    assert field["kind"] == "category" and field["names"] == {"0": "no", "1": "yes"}
    assert {h["y_label"] for h in info["histograms"]} == {"explanations"}
    assert [m["count"] for m in info["class_means"]] == np.bincount(setup.y).tolist()


def test_partial_store_leaves_out_the_rows_not_done(store_copy, setup, tmp_path):
    (store_copy / "done" / "c" / "1").unlink()  # samples 8 … 15
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="incomplete.*allow_partial"):
        dk.report(store_copy, out, progress=False)
    dk.report(store_copy, out, allow_partial=True, thumb_size=8, progress=False)
    items = read_js(out / "data" / "items.js", "DTD_ITEMS")
    expected = np.r_[0:8, 16:N]
    np.testing.assert_array_equal(items["index"], expected)
    assert {int(p.stem.split("-")[0]) for p in (out / "thumbs").rglob("*.png")} == set(
        expected.tolist())
    dk.analyze_dataset(setup.analyzer, (setup.x, setup.y), store_copy, neuron="label",
                       chunk_size=8, resume=True, progress=False)
    kept = thumbs(out)
    dk.report(store_copy, out, thumb_size=8, progress=False)  # finished: shard rewritten
    assert len(thumbs(out)) == N and thumbs(out)["thumbs/0/0-heatmap.png"] != kept[
        "thumbs/0/0-heatmap.png"]


def test_resize_averages_areas_and_repeats_pixels():
    from dtd_keras.reporting.thumbnails import fit_size, resize

    values = np.arange(24, dtype=np.float64).reshape(1, 4, 6)
    np.testing.assert_array_equal(resize(values, 2, 3)[0],
                                  values[0].reshape(2, 2, 3, 2).mean(axis=(1, 3)))
    np.testing.assert_array_equal(resize(values, 8, 12)[0], values[0].repeat(2, 0).repeat(2, 1))
    assert fit_size((28, 14), 64) == (64, 32) and fit_size((1, 300), 64) == (16, 64)


def test_recorded_data_gives_input_thumbnails_without_data(setup, tmp_path):
    """A store remembers where its data was read from (an image folder, a memory-mapped
    .npy): the report draws the inputs from there while they still fit."""
    image = pytest.importorskip("PIL.Image")
    from dtd_keras.reading import read_inputs

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(6):
        image.fromarray((setup.x[i, ..., 0] * 255).astype(np.uint8)).save(folder / f"{i}.png")
    dk.analyze_dataset(setup.analyzer, folder, tmp_path / "f.zarr", progress=False)
    mapped = dk.analyze_dataset(setup.analyzer, np.load(setup.root / "x.npy", mmap_mode="r"),
                                tmp_path / "m.zarr", progress=False)
    assert mapped.metadata["data_paths"] == [os.path.realpath(setup.root / "x.npy")]
    for store, count in (("f.zarr", 6), ("m.zarr", N)):
        dk.report(tmp_path / store, tmp_path / f"out-{store}", thumb_size=8, progress=False)
        info = read_js(tmp_path / f"out-{store}" / "data" / "report.js", "DTD_REPORT")
        assert info["thumbs"]["input"] and info["count"] == count
    batch, _ = read_inputs([str(folder / f"{i}.png") for i in range(6)], (None, 8, 8, 1),
                           (0.0, 1.0))
    got = read_png(tmp_path / "out-f.zarr" / "thumbs" / "0" / "4-input.png")
    low, high = float(batch.min()), float(batch.max())
    np.testing.assert_array_equal(got, to_rgb(batch[4], value_range=(low, high)))
    # the folder given as data=: thumbnails of the images' own 8×8, enlarged to 64×64
    dk.report(tmp_path / "f.zarr", tmp_path / "given", data=folder, progress=False)
    info = read_js(tmp_path / "given" / "data" / "report.js", "DTD_REPORT")
    assert info["thumbs"]["size"] == [64, 64] and info["thumbs"]["input"]
    got = read_png(tmp_path / "given" / "thumbs" / "0" / "4-input.png")
    np.testing.assert_array_equal(got, to_rgb(batch[4], value_range=(low, high)).repeat(
        8, 0).repeat(8, 1))
    # no labels: the mean maps group the rows by explained neuron, and say so
    info = read_js(tmp_path / "out-m.zarr" / "data" / "report.js", "DTD_REPORT")
    assert {m["group"] for m in info["class_means"]} == {"neuron"}
    assert sum(m["count"] for m in info["class_means"]) == N
    image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "9.png")  # another folder now
    with pytest.warns(UserWarning, match="has input thumbnails, but this one has none"):
        with pytest.warns(UserWarning, match="does not fit it any more"):
            dk.report(tmp_path / "f.zarr", tmp_path / "out-f.zarr", thumb_size=8,
                      progress=False)
    info = read_js(tmp_path / "out-f.zarr" / "data" / "report.js", "DTD_REPORT")
    assert info["thumbs"]["input"] is False


# ------------------------------------------------------------------- evaluations, attach
def test_attached_and_given_evaluations(store_copy, setup, tmp_path):
    x = setup.x[:4]
    flipping = dk.evaluate.pixel_flipping(setup.model, x, setup.analyzer.analyze(x),
                                          patch_size=2)
    cascade = dk.evaluate.Randomization(
        layers=("dense", "conv2d"), similarity=np.array([0.5, 0.1]),
        spearman_signed=np.array([0.4, np.nan]), ssim=np.array([0.3, 0.2]),
        per_sample=np.zeros((2, 4)), maps=np.zeros((3, 8, 8)))
    path = attach(store_copy, flipping)
    assert path == store_copy / "attachments" / "pixelflipping.json"
    assert [a["kind"] for a in attachments(store_copy)] == ["PixelFlipping"]
    out = tmp_path / "out"
    dk.report(store_copy, out, evaluations=cascade, thumb_size=8, progress=False)  # one
    found = read_js(out / "data" / "report.js", "DTD_REPORT")["evaluations"]
    assert [e["kind"] for e in found] == ["PixelFlipping", "Randomization"]
    np.testing.assert_allclose(found[0]["series"][0]["y"], flipping.curve, rtol=1e-6)
    np.testing.assert_allclose(found[0]["series"][1]["y"], flipping.random_curve, rtol=1e-6)
    assert found[0]["numbers"]["AOPC"] == pytest.approx(flipping.aopc)
    assert found[1]["series"][0]["x"] == ["dense", "conv2d"]
    assert found[1]["series"][1]["y"] == [0.4, None]  # NaN → null


def test_attachments_never_break_resume_overwrite_or_lost_chunks(store_copy, setup):
    attach(store_copy, dk.evaluate.summary(dk.load_results(store_copy)), name="seed")
    before = np.asarray(dk.load_results(store_copy).relevance)
    results = dk.analyze_dataset(setup.analyzer, (setup.x, setup.y), store_copy,
                                 neuron="label", chunk_size=8, resume=True, progress=False)
    assert results.complete and not results.lost
    np.testing.assert_array_equal(np.asarray(results.relevance), before)
    assert [a["name"] for a in attachments(store_copy)] == ["seed"]
    os.remove(store_copy / "logit" / "c" / "2")  # a lost chunk is still seen
    assert list(dk.load_results(store_copy, allow_partial=True).lost) == [2]
    dk.analyze_dataset(setup.analyzer, (setup.x, setup.y), store_copy, neuron="label",
                       chunk_size=8, overwrite=True, progress=False)
    assert attachments(store_copy) == [] and dk.load_results(store_copy).complete


def test_attach_errors(store_copy, tmp_path):
    with pytest.raises(ValueError, match="not a dtd_keras results store"):
        attach(tmp_path, SimpleNamespace(to_dict=dict))
    with pytest.raises(TypeError, match="to_dict"):
        attach(store_copy, object())
    with pytest.raises(ValueError, match="attachment name"):
        attach(store_copy, SimpleNamespace(to_dict=dict), name="../x")


# ------------------------------------------------------------------- concepts
def test_concept_reference_samples(setup, tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    empty = np.zeros((0, 0, 1))  # the crop of an entry that is no reference sample
    samples = SimpleNamespace(
        layer="conv2d", method="relevance", channels=np.array([1, 0, 2]),
        indices=np.array([[4, 2], [7, -1], [-1, -1]]),
        scores=np.array([[0.9, 0.5], [0.3, 0], [0, 0]]),
        found=np.array([[True, True], [True, False], [False, False]]),
        crops=[[rng.random((3, 3, 1)), rng.random((4, 3, 1))],
               [rng.random((3, 3, 1)), empty], [empty, empty]])
    out = tmp_path / "out"
    dk.report(setup.store, out, concepts=samples, thumb_size=8, progress=False)  # one
    (concept,) = read_js(out / "data" / "report.js", "DTD_REPORT")["concepts"]
    assert concept["layer"] == "conv2d" and concept["method"] == "relevance"
    assert [c["channel"] for c in concept["channels"]] == [1, 0, 2]
    first = concept["channels"][0]["samples"][1]
    assert first == {"image": "concepts/conv2d/1-1.png", "index": 2, "score": 0.5,
                     "found": True, "heatmap": None}
    # entries not found are left out (no picture), and their channel says why
    assert [(c["note"], [s["index"] for s in c["samples"]]) for c in concept["channels"]] == [
        (None, [4, 2]), ("nonzero relevance on only 1 of k=2 samples", [7]),
        ("no relevance on any sample", [])]
    assert sorted(p.name for p in (out / "concepts" / "conv2d").iterdir()) == [
        "0-0.png", "1-0.png", "1-1.png"]
    assert read_png(out / first["image"]).shape == (8, 6, 3)  # 4×3 crop fit into 8
    with pytest.raises(TypeError, match="lacks"):
        dk.report(setup.store, out, concepts=[SimpleNamespace(layer="x")], progress=False)
    if importlib.util.find_spec("dtd_keras.concepts") is None:
        with pytest.raises(ValueError, match="load_reference_samples"):
            dk.report(setup.store, out, concepts=[tmp_path / "saved"], progress=False)
        return
    refs = dk.concepts.reference_samples(setup.analyzer, (setup.x, setup.y), "conv",
                                         [0, 1], k=2, out=tmp_path / "scores", progress=False)
    refs.save(tmp_path / "refs")  # given as the saved folder (--concepts PATH)
    dk.report(setup.store, out, concepts=[tmp_path / "refs"], thumb_size=8, progress=False)
    (concept,) = read_js(out / "data" / "report.js", "DTD_REPORT")["concepts"]
    shown = concept["channels"][1]["samples"][0]
    assert (shown["index"], shown["score"]) == (int(refs.indices[1, 0]),
                                                pytest.approx(float(refs.scores[1, 0])))
    from dtd_keras.reporting.thumbnails import fit_size, resize

    crop, relevance = refs.crops[1][0], refs.heatmaps[1][0]
    size = fit_size(crop.shape[:2], 8)  # enlarged to 8 px on the longer side
    assert read_png(out / shown["image"]).shape[:2] == size
    np.testing.assert_array_equal(read_png(out / shown["heatmap"]),
                                  resize(heatmap(relevance)[None], *size)[0])
    # --concepts imports TensorFlow through dtd_keras' quiet import (no start-up lines)
    import dtd_keras._tensorflow

    calls = []
    monkeypatch.setattr(dtd_keras._tensorflow, "import_tensorflow",
                        lambda verbose=None: calls.append(verbose))
    assert main(["report", str(setup.store), "--out", str(tmp_path / "cli"), "--concepts",
                 str(tmp_path / "refs"), "-q"]) == 0
    assert calls == [None, None]  # the command, then the loader of a saved folder
    info = read_js(tmp_path / "cli" / "data" / "report.js", "DTD_REPORT")
    assert [c["layer"] for c in info["concepts"]] == ["conv"]


# ------------------------------------------------------------------- errors, CLI
def test_report_errors(setup, store_copy, tmp_path):
    with pytest.raises(ValueError, match="not a dtd_keras results store"):
        dk.report(tmp_path, tmp_path / "out", progress=False)
    with pytest.raises(ValueError, match="lies inside the results store"):
        dk.report(setup.store, setup.store / "report", progress=False)
    with pytest.raises(ValueError, match="contains the results store"):
        dk.report(store_copy, tmp_path, progress=False)
    with pytest.raises(ValueError, match="29 samples, but the store"):
        dk.report(setup.store, tmp_path / "out", data=setup.x[:29], progress=False)
    with pytest.raises(ValueError, match=r"list of 30 arrays shaped \(8, 8, 1\), one "
                                         r"sample each; give the samples as one array"):
        dk.report(setup.store, tmp_path / "out", data=list(setup.x), progress=False)
    with pytest.raises(ValueError, match="data: cannot read data elements made of 4 parts"):
        dk.report(setup.store, tmp_path / "out", data=[setup.x] * 4, progress=False)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        dk.report(setup.store, busy, progress=False)
    dk.report(setup.store, busy, overwrite=True, thumb_size=8, progress=False)
    assert (busy / "notes.txt").read_text() == "mine" and (busy / "data" / "items.js").exists()


def test_bad_options_are_refused_before_anything_is_written(setup, tmp_path):
    """concepts=, evaluations=, class_names= and data= are checked (concepts loaded) before
    the first file is written: an error leaves out as it was."""
    out = tmp_path / "out"
    for options, error, message in (
            ({"concepts": [tmp_path / "nope_refs"]}, FileNotFoundError, "no reference samples"),
            ({"concepts": 3}, TypeError, "concepts: expected one result or a list"),
            ({"evaluations": [object()]}, TypeError, r"evaluations\[0\].*to_dict"),
            ({"class_names": ["a", "b"]}, ValueError, "2 names for the 3 classes"),
            ({"class_names": {5: "five"}}, ValueError, "key 5 is not a class number"),
            ({"data": tmp_path / "none"}, ValueError, "no such folder")):
        with pytest.raises(error, match=message):
            dk.report(setup.store, out, progress=False, **options)
        assert not out.exists(), options
    dk.report(setup.store, out, thumb_size=8, progress=False, class_names={1: "one"})
    info = read_js(out / "data" / "report.js", "DTD_REPORT")
    assert info["classes"]["names"] == ["0", "one", "2"]
    assert [m["name"] for m in info["class_means"]] == ["0", "one", "2"]
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    with pytest.raises(ValueError, match="2 names"):  # an earlier report stays as it was
        dk.report(setup.store, out, overwrite=True, class_names=["a", "b"], progress=False)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before


def test_cli_report_without_tensorflow(setup, store_copy, tmp_path, capsys):
    out = tmp_path / "out"
    code = ("import sys; from dtd_keras.cli import main\n"
            f"assert main(['report', {str(setup.store)!r}, '--out', {str(out)!r}, '--data',"
            f" {str(setup.root / 'x.npy')!r}, '--page-size', '7', '-q']) == 0\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert done.returncode == 0, done.stderr
    info = read_js(out / "data" / "report.js", "DTD_REPORT")
    assert info["page_size"] == 7 and info["thumbs"]["input"] and info["count"] == N
    (store_copy / "done" / "c" / "0").unlink()
    for argv, message in (
            ([str(tmp_path / "nope"), "--out", str(out)], "no results store"),
            ([str(tmp_path), "--out", str(out)], "not a dtd_keras results store"),
            ([str(store_copy), "--out", str(tmp_path / "o2")], "--allow-partial"),
            ([str(setup.store), "--out", str(setup.root)], "contains the results store")):
        assert main(["report", *argv]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    assert main(["report", str(store_copy), "--out", str(tmp_path / "o2"), "-q",
                 "--allow-partial"]) == 0
    assert read_js(tmp_path / "o2" / "data" / "report.js", "DTD_REPORT")["count"] == N - 8


def test_data_with_nan_is_refused_and_the_next_run_is_not_blocked(setup, tmp_path):
    """Data holding NaN cannot be what the store explained (analyze_dataset refuses it):
    refused by name, and the folder left behind is an earlier report that a run with the
    right data completes."""
    out = tmp_path / "out"
    bad = setup.x.copy()
    bad[N - 1, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=f"sample {N - 1} holds NaN or infinite values"):
        dk.report(setup.store, out, data=bad, thumb_size=8, progress=False)
    dk.report(setup.store, out, data=setup.x, thumb_size=8, progress=False)
    assert sum(name.endswith("-input.png") for name in thumbs(out)) == N


def test_overwrite_never_replaces_files_no_report_wrote(setup, tmp_path):
    """overwrite=True writes into a folder that is not a report only where none of the
    report's names (data/, index.html, …) is taken: a user's data/ stays untouched."""
    mine = tmp_path / "mine"
    (mine / "data").mkdir(parents=True)
    (mine / "data" / "precious.csv").write_text("1,2,3")
    with pytest.raises(FileExistsError, match="holds data, which no report wrote"):
        dk.report(setup.store, mine, thumb_size=8, overwrite=True, progress=False)
    assert (mine / "data" / "precious.csv").read_text() == "1,2,3"
    assert sorted(p.name for p in mine.iterdir()) == ["data"]
