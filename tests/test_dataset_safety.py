"""dk.analyze_dataset never deletes or overwrites the user's data, never mixes two runs in
one store, and refuses what it cannot explain with a message (issue 13, items 1–3)."""

import os
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_dataset import Exploding, digits_model

import dtd_keras as dk
from dtd_keras.datasets import create as create_module
from dtd_keras.datasets import store as store_module
from dtd_keras.datasets.store import Store

N = 40


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).uniform(0, 1, (N, 8, 8, 1)).astype("float32")


@pytest.fixture(scope="module")
def model():
    return digits_model(seed=7)


@pytest.fixture(scope="module")
def analyzer(model):
    return dk.DTD(model, input_domain=dk.Box(0.0, 1.0))


def run(analyzer, data, out, **options):
    return dk.analyze_dataset(analyzer, data, out, **{"batch_size": 8, "chunk_size": 8,
                                                      "progress": False, **options})


@pytest.fixture
def photos(x, tmp_path):
    """A folder of 6 PNGs (one in a subfolder)."""
    image = pytest.importorskip("PIL.Image")
    folder = tmp_path / "photos"
    (folder / "b").mkdir(parents=True)
    for i in range(6):
        path = folder / ("b" if i == 1 else "") / f"digit_{i}.png"
        image.fromarray((x[i, ..., 0] * 255).astype(np.uint8)).save(path)
    return folder


def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


# ------------------------------------------------------------------ item 1: user data
def test_a_store_on_or_in_the_data_is_refused_and_the_data_kept(analyzer, photos, x, tmp_path):
    before = snapshot(photos)
    with pytest.raises(ValueError, match=rf"out {photos} is the data {photos}: the results "
                                         "store must lie outside"):
        run(analyzer, photos, photos, overwrite=True)
    with pytest.raises(ValueError, match=rf"lies inside the data {photos}"):
        run(analyzer, photos, photos / "b" / "r.zarr", overwrite=True)
    with pytest.raises(ValueError, match=rf"out {tmp_path} contains the data {photos}"):
        run(analyzer, photos, tmp_path, overwrite=True)
    (tmp_path / "link").symlink_to(photos)
    with pytest.raises(ValueError, match="is the data"):
        run(analyzer, photos, tmp_path / "link", overwrite=True)
    assert snapshot(photos) == before
    # a memory-mapped array is data too
    np.save(tmp_path / "x.npy", x)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    with pytest.raises(ValueError, match=r"x\.npy is the data .*x\.npy"):
        run(analyzer, mapped, tmp_path / "x.npy", overwrite=True)
    np.testing.assert_array_equal(np.load(tmp_path / "x.npy"), x)


def test_overwrite_replaces_only_a_store_holding_nothing_else(analyzer, x, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a dtd_keras results store .* also not "
                                              "with overwrite=True"):
        run(analyzer, x, mine, overwrite=True)
    assert (mine / "notes.txt").read_text() == "keep me"
    (tmp_path / "file").write_text("keep me too")
    with pytest.raises(FileExistsError, match="not a dtd_keras results store"):
        run(analyzer, x, tmp_path / "file", overwrite=True)
    assert (tmp_path / "file").read_text() == "keep me too"

    store = tmp_path / "r.zarr"
    run(analyzer, x, store)
    (store / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"also holds \['notes.txt'\], which "
                                              "analyze_dataset did not write"):
        run(analyzer, x, store, neuron=2, overwrite=True)
    assert (store / "notes.txt").read_text() == "mine" and dk.load_results(store).complete
    (store / "notes.txt").unlink()
    assert (run(analyzer, x, store, neuron=2, overwrite=True).neuron == 2).all()


def test_a_failed_creation_names_out_and_leaves_nothing(analyzer, x, tmp_path, monkeypatch):
    original = create_module._create_arrays

    def disk_full(path, metadata, layout):
        original(path, metadata, layout)
        raise OSError(28, "No space left on device", str(path / "relevance"))

    monkeypatch.setattr(create_module, "_create_arrays", disk_full)
    out = tmp_path / "r.zarr"
    with pytest.raises(OSError, match=rf"cannot create the results store {out}: .*No space "
                                      rf"left on device: '{out}/relevance'") as failed:
        run(analyzer, x, out)
    assert ".creating-" not in str(failed.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def dead_pid():
    process = subprocess.Popen([sys.executable, "-c", ""])
    process.wait()
    return process.pid


def test_leftovers_of_killed_creations_are_removed(analyzer, x, tmp_path):
    """What a creation killed before its rename leaves next to out: removed by the next
    run when its process is gone or it is old; a live run's and unknown things are kept."""
    host = create_module._host()
    name = "r.zarr"
    dead = tmp_path / f".{name}.creating-{host}.{dead_pid()}.0a1b"
    old = tmp_path / f".{name}.creating-{'f' * 32}"  # no owner recorded, an hour old
    live = tmp_path / f".{name}.creating-{host}.{os.getpid()}.0c2d"
    fresh = tmp_path / f".{name}.creating-{'e' * 32}"
    strange = tmp_path / f".{name}.creating-{host}.{dead_pid()}.0e3f"
    for folder in (dead, old, live, fresh, strange):
        (folder / "done").mkdir(parents=True)
        (folder / "zarr.json").write_text("{}")
    (strange / "holiday.jpg").write_bytes(b"not ours")
    hour_ago = time.time() - 3600
    os.utime(old, (hour_ago, hour_ago))
    assert run(analyzer, x, tmp_path / name).complete
    assert not dead.exists() and not old.exists()
    assert live.exists() and fresh.exists() and (strange / "holiday.jpg").exists()


# ------------------------------------------------------------------ item 2: one run per store
@pytest.fixture(scope="module")
def minmax_pair(model, x, tmp_path_factory):
    """A fitted MinMaxDTD, and a copy whose relevance model differs in one weight."""
    first = dk.MinMaxDTD(model, input_domain=dk.Box(0.0, 1.0))
    first.fit(x, epochs=1, verbose=0)
    second = dk.MinMaxDTD.load(first.save(tmp_path_factory.mktemp("minmax") / "m"), model)
    relevance_model = second.relevance_models[second.layers[0]]
    weights = relevance_model.get_weights()
    weights[0] = weights[0] * 1.01
    relevance_model.set_weights(weights)
    return first, second


def test_resuming_with_a_differently_fitted_minmax_is_refused(minmax_pair, model, x,
                                                             tmp_path):
    first, second = minmax_pair
    assert first.state_fingerprint() != second.state_fingerprint()
    out = tmp_path / "r.zarr"
    with pytest.raises(OSError, match="disk gone"):
        run(first, Exploding(x, 16), out)
    with pytest.raises(ValueError, match=r"analyzer\.state: stored '[0-9a-f]{8}"):
        run(second, x, out)
    loaded = dk.MinMaxDTD.load(first.save(tmp_path / "first"), model)
    assert loaded.state_fingerprint() == first.state_fingerprint()
    results = run(loaded, x, out)
    np.testing.assert_allclose(np.asarray(results.relevance), first.explain(x).relevance,
                               rtol=1e-5, atol=1e-7)
    with pytest.raises(dk.relevance_model.NotFittedError, match="call .fit"):
        run(dk.MinMaxDTD(model, input_domain=dk.Box(0.0, 1.0)), x, tmp_path / "unfitted")


def test_a_changed_image_is_named_on_resume(analyzer, photos, x, tmp_path):
    image = pytest.importorskip("PIL.Image")
    out = tmp_path / "r.zarr"
    run(analyzer, photos, out, chunk_size=2)
    changed = photos / "b" / "digit_1.png"
    stat = changed.stat()
    os.utime(changed, (stat.st_atime, stat.st_mtime + 100))  # touched, same bytes: fine
    assert run(analyzer, photos, out, chunk_size=2).complete
    (out / "done" / "c" / "2").unlink()  # an interrupted run: chunk 2 still to do
    image.fromarray((x[7, ..., 0] * 255).astype(np.uint8)).save(changed)
    os.utime(changed, (stat.st_atime, stat.st_mtime))  # even with the old time stamp
    with pytest.raises(ValueError, match=rf"cannot resume {out}: {changed} changed after "
                                         r"chunk 0 \(samples 0…1\) was explained from it"):
        run(analyzer, photos, out, chunk_size=2)


def test_a_deleted_chunk_file_is_noticed_and_explained_again(analyzer, x, tmp_path,
                                                            monkeypatch):
    out = tmp_path / "r.zarr"
    labels = np.full(N, -1)  # a label chunk that holds only the fill value: still a file
    reference = run(analyzer, (x, labels), out)
    expected = np.asarray(reference.relevance)
    store = Store(out)
    assert all((out / f).is_file() for i in range(5) for f in store.chunk_files(i))
    (out / "relevance" / "c" / "3" / "0" / "0" / "0").unlink()
    (out / "properties" / "positive" / "c" / "1").unlink()
    with pytest.raises(ValueError, match=r"chunk 1 \(samples 8…15\) was committed, but its "
                                         r"file properties/positive/c/1 is missing \(deleted"
                                         r"\?\); 1 other chunk\(s\) too"):
        dk.load_results(out)
    partial = dk.load_results(out, allow_partial=True)
    assert partial.lost == {1: "properties/positive/c/1", 3: "relevance/c/3/0/0/0"}
    assert partial.done.tolist() == [True] * 8 + [False] * 8 + [True] * 8 + [False] * 8 \
        + [True] * 8
    commits = []
    original = store_module.Store.commit
    monkeypatch.setattr(store_module.Store, "commit",
                        lambda self, i, *a: (commits.append(i), original(self, i, *a)))
    with pytest.warns(UserWarning, match=r"chunk 1 \(samples 8…15\): properties/positive/c/1, "
                                         r"chunk 3 \(samples 24…31\): relevance/c/3/0/0/0; "
                                         "explaining them again"):
        results = run(analyzer, (x, labels), out)
    assert commits == [1, 3]
    np.testing.assert_array_equal(np.asarray(dk.load_results(out).relevance), expected)
    assert results.complete and not results.lost


# ------------------------------------------------------------------ item 3: refusals
def test_generators_and_iterators_are_refused_by_name(analyzer, x, tmp_path):
    for data, kind in [((s for s in x), "generator"), (iter(x), "iterator"),
                       (((s for s in x), np.zeros(N, int)), "generator")]:
        with pytest.raises(TypeError, match=rf"data is a Python {kind} .*"
                                            r"tf\.data\.Dataset\.from_generator.*np\.stack"):
            run(analyzer, data, tmp_path / "r.zarr")
    assert not (tmp_path / "r.zarr").exists()


def varying(x, counts):
    """A tf.data pipeline of unknown length yielding counts[k] samples on pass k."""
    passes = []

    def samples():
        passes.append(1)
        yield from x[:counts[min(len(passes), len(counts)) - 1]]

    return tf.data.Dataset.from_generator(
        samples, output_signature=tf.TensorSpec((8, 8, 1), tf.float32))


@pytest.mark.parametrize("counts, message", [
    ((20, 14), r"chunk 1 \(samples 8…15\) got 6 samples where 8 were counted at the start "
               r"\(fewer"),
    ((20, 26), r"chunk 2 \(samples 16…19\) got 8 samples where 4 were counted .*\(more"),
    ((16, 24), r"it yielded more than the 16 samples counted at the start"),
    ((20, 16), r"it ended before chunk 2 \(sample 16\)"),
])
def test_a_pipeline_that_changes_between_passes_is_named(analyzer, x, tmp_path, counts,
                                                         message):
    with pytest.raises(ValueError, match=rf"the data changed between passes: {message}"):
        run(analyzer, varying(x, counts), tmp_path / "r.zarr")


def test_complex_and_non_numeric_data_is_refused_before_writing(analyzer, x, tmp_path):
    out = tmp_path / "r.zarr"
    for data in [x.astype(np.complex64), tf.data.Dataset.from_tensor_slices(
            x.astype(np.complex64))]:
        with pytest.raises(ValueError, match=r"input 0 holds complex numbers \(complex64\); "
                                             r"models take real numbers"):
            run(analyzer, data, out)
    with pytest.raises(ValueError, match="holds <U1 values, not numbers"):
        run(analyzer, np.full((2, 8, 8, 1), "a"), out)
    assert not out.exists()


@pytest.mark.parametrize("rtol", [-1, float("nan"), float("inf"), "1e-4", True, None])
def test_bad_rtol_is_refused_before_writing(analyzer, x, tmp_path, rtol):
    with pytest.raises(ValueError, match="rtol must be a finite number >= 0"):
        run(analyzer, x, tmp_path / "r.zarr", rtol=rtol)
    assert not (tmp_path / "r.zarr").exists()


def test_batch_and_chunk_sizes_are_capped_at_the_sample_count(analyzer, x, tmp_path):
    results = dk.analyze_dataset(analyzer, x[:20], tmp_path / "r.zarr", batch_size=2**24,
                                 progress=False)
    arguments = results.metadata["identity"]["arguments"]
    assert (arguments["batch_size"], arguments["chunk_size"]) == (20, 20)
    assert results.relevance.chunks == (20, 8, 8, 1)
    np.testing.assert_array_equal(np.asarray(results.relevance),
                                  analyzer.explain(x[:20]).relevance)
    for bad in [0, -3, 2.5, True, "8", None]:
        with pytest.raises(ValueError, match="batch_size must be a positive int"):
            dk.analyze_dataset(analyzer, x, tmp_path / "b.zarr", batch_size=bad,
                               progress=False)
    assert not (tmp_path / "b.zarr").exists()


def test_zero_samples_give_an_empty_store_from_every_source(analyzer, x, tmp_path):
    (tmp_path / "no_images").mkdir()
    for name, data in [("arrays", x[:0]), ("tf.data", tf.data.Dataset.from_tensor_slices(
            x[:0]).batch(4)), ("folder", tmp_path / "no_images")]:
        results = run(analyzer, data, tmp_path / f"{name}.zarr", neuron="all")
        assert results.complete and results.relevance.shape == (0, 10, 8, 8, 1), name
    with pytest.raises(ValueError, match=r"samples of shape \(4, 4, 1\) do not fit the "
                                         r"model input \('batch', 8, 8, 1\)"):
        run(analyzer, np.zeros((0, 4, 4, 1)), tmp_path / "bad.zarr")


def test_a_model_with_free_dimensions_is_refused(tmp_path, x):
    keras.utils.set_random_seed(0)
    free = keras.Sequential([keras.Input((None, None, 1)), keras.layers.Conv2D(2, 3),
                             keras.layers.GlobalMaxPooling2D(), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match=r"model input 0 has free dimensions \('batch', None, "
                                         r"None, 1\)"):
        run(dk.DTD(free), x, tmp_path / "r.zarr")
