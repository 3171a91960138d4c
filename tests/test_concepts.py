"""dk.concepts.reference_samples (issue 15, item 2: relevance maximization): the top-k
per channel equals a brute-force numpy search over the layer relevance (and, for
activation maximization, over a Keras sub-model's activations); the heatmaps are the
conditional heatmaps and the crops follow the documented threshold box; a killed scoring
run resumes to the same result; save/load round-trips; bad arguments are named."""

import json

import keras
import numpy as np
import pytest
from test_dataset import Exploding

import dtd_keras as dk
from dtd_keras.datasets import store as store_module

N, K, LAYER = 40, 4, "conv2"


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(5)
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(4, 3, activation="relu", name="conv1"),
        keras.layers.Conv2D(6, 3, activation="relu", name="conv2"),
        keras.layers.Flatten(name="flat"),
        keras.layers.Dense(3, name="out"),
    ])


@pytest.fixture(scope="module")
def analyzer(model):
    return dk.DTD(model, input_domain=dk.Box(0.0, 1.0))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return rng.uniform(0, 1, (N, 8, 8, 1)).astype("float32"), rng.integers(0, 3, N)


def search(analyzer, data, out, **options):
    return dk.concepts.reference_samples(analyzer, data, LAYER, **{
        "channels": [0, 2, 5], "k": K, "out": out, "batch_size": 8, "chunk_size": 8,
        "progress": False, **options})


@pytest.fixture(scope="module")
def relmax(analyzer, data, tmp_path_factory):
    return search(analyzer, data, tmp_path_factory.mktemp("relmax") / "scores",
                  neuron="label")


def brute_force(values, reduce="sum", normalize=True):
    """[N, …, C] → per-channel score, written from zennit-crp's description: sum (or max)
    over the positions, then divided by the sample's summed |score| over channels."""
    flat = np.asarray(values, np.float64).reshape(len(values), -1, values.shape[-1])
    score = flat.sum(1) if reduce == "sum" else flat.max(1)
    return score / (np.abs(score).sum(1, keepdims=True) + 1e-10) if normalize else score


def assert_top_k(result, score, channels=(0, 2, 5)):
    expected = np.argsort(-score[:, channels], axis=0, kind="stable")[:K].T
    np.testing.assert_array_equal(result.indices, expected)
    np.testing.assert_allclose(result.scores, np.take_along_axis(
        score[:, channels].T, expected, 1), rtol=1e-5, atol=1e-7)


def test_relevance_top_k_equals_brute_force_with_conditional_heatmaps_and_crops(
        analyzer, data, relmax):
    x, y = data
    explained = analyzer.explain(x, y, layers=[LAYER])
    assert_top_k(relmax, brute_force(explained.layer_relevance[LAYER]))
    assert relmax.layer == LAYER and relmax.method == "relevance"
    np.testing.assert_array_equal(relmax.channels, [0, 2, 5])
    assert relmax.boxes.shape == (3, K, 4)
    assert np.all(np.diff(relmax.scores, axis=1) <= 0)
    for c, channel in enumerate(relmax.channels):
        rows = relmax.indices[c]
        maps = analyzer.explain(x[rows], y[rows], condition={LAYER: [int(channel)]}
                                ).relevance[:, 0]
        for j, (sample, heat) in enumerate(zip(x[rows], maps)):
            top, left, bottom, right = relmax.boxes[c, j]
            np.testing.assert_array_equal(relmax.crops[c][j], sample[top:bottom, left:right])
            np.testing.assert_allclose(relmax.heatmaps[c][j], heat[top:bottom, left:right],
                                       rtol=1e-6, atol=1e-9)
            plane = heat.sum(-1)
            hits = np.argwhere(plane >= 0.1 * plane.max())  # the documented box: tight
            assert (top, left) == tuple(hits.min(0)) and (bottom, right) == tuple(
                hits.max(0) + 1)


def test_max_reduction_without_normalizing(analyzer, data, tmp_path):
    x, _ = data
    result = search(analyzer, x, tmp_path / "s", reduce="max", normalize=False)
    explained = analyzer.explain(x, layers=[LAYER])  # neuron=None: each top logit
    assert_top_k(result, brute_force(explained.layer_relevance[LAYER], "max", False))


def test_activation_top_k_equals_a_keras_sub_model(model, analyzer, data, tmp_path):
    x, y = data
    result = search(analyzer, (x, y), tmp_path / "s", method="activation")
    sub = keras.Model(model.inputs, model.get_layer(LAYER).output)
    assert_top_k(result, brute_force(sub.predict(x, verbose=0)))
    assert result.method == "activation"


def test_a_killed_run_resumes_to_the_same_result(analyzer, data, relmax, tmp_path,
                                                monkeypatch):
    x, y = data
    out = tmp_path / "scores"
    with pytest.raises(OSError, match="disk gone"):
        search(analyzer, (Exploding(x, 24), y), out, neuron="label")
    with pytest.raises(ValueError, match="not relevance"):
        dk.load_results(out)  # a score store is not a results store of relevance
    assert sorted(store_module.Store(out).done()) == [0, 1, 2]
    commits = []
    original = store_module.Store.commit
    monkeypatch.setattr(store_module.Store, "commit",
                        lambda self, i, *a: (commits.append(i), original(self, i, *a)))
    resumed = search(analyzer, (x, y), out, neuron="label")
    assert commits == [3, 4]
    for field in ("channels", "indices", "scores", "boxes"):
        np.testing.assert_array_equal(getattr(resumed, field), getattr(relmax, field))
    for mine, theirs in zip(resumed.heatmaps + resumed.crops, relmax.heatmaps + relmax.crops):
        for a, b in zip(mine, theirs):
            np.testing.assert_array_equal(a, b)
    commits.clear()
    again = search(analyzer, (x, y), out, neuron="label", channels=[1], k=2)
    assert commits == [] and again.indices.shape == (1, 2)  # other channels: no rescoring
    # another batch size (chunk_size defaulted: the store's chunks are kept) reuses it too
    again = search(analyzer, (x, y), out, neuron="label", batch_size=16, chunk_size=None)
    assert commits == [] and np.array_equal(again.indices, relmax.indices)
    with pytest.raises(FileExistsError, match=r"holds a store of scores \(reference_samples' "
                                              r"stage 1\); this run writes the relevance "
                                              r"maps.*never replaces another kind of store, "
                                              r"also not with overwrite=True"):
        dk.analyze_dataset(analyzer, x, out, overwrite=True, progress=False)
    assert sorted(store_module.Store(out).done()) == [0, 1, 2, 3, 4]  # untouched
    with pytest.raises(ValueError, match=r"arguments\.reference_samples\.method: stored "
                                         r"'relevance', now 'activation'"):
        search(analyzer, (x, y), out, neuron="label", method="activation")
    with pytest.raises(ValueError, match=r"arguments\.neuron: stored 'label', now null"):
        search(analyzer, (x, y), out)


def test_an_analyze_dataset_store_is_never_replaced_by_scores(analyzer, data, tmp_path):
    x, y = data
    out = tmp_path / "explained.zarr"
    dk.analyze_dataset(analyzer, x[:4], out, progress=False)
    (out / "attachments").mkdir()
    before = sorted(p.name for p in out.iterdir())
    for overwrite in (False, True):
        with pytest.raises(FileExistsError, match="holds the relevance maps and properties of "
                                                  "analyze_dataset; this run writes a store "
                                                  "of scores") as refused:
            search(analyzer, (x, y), out, overwrite=overwrite)
        assert "pass overwrite=True" not in str(refused.value)
    assert sorted(p.name for p in out.iterdir()) == before
    assert dk.load_results(out).relevance.shape == (4, 8, 8, 1)


def test_ctrl_c_says_what_is_committed_and_how_to_resume(analyzer, data, tmp_path,
                                                         monkeypatch):
    from dtd_keras.concepts.scores import Scorer

    calls, original = [], Scorer._batch

    def interrupted(self, *args):
        calls.append(1)
        if len(calls) == 3:  # while scoring chunk 2 (a chunk is one batch of 8)
            raise KeyboardInterrupt
        return original(self, *args)

    monkeypatch.setattr(Scorer, "_batch", interrupted)
    out = tmp_path / "scores"
    with pytest.raises(KeyboardInterrupt, match=f"^16 of {N} samples committed in {out}; "
                                                "run the same call again to resume$"):
        search(analyzer, data, out)
    assert sorted(store_module.Store(out).done()) == [0, 1]


def test_save_and_load_round_trip(relmax, tmp_path):
    loaded = dk.concepts.load_reference_samples(relmax.save(tmp_path / "refs"))
    assert (loaded.layer, loaded.method) == (relmax.layer, relmax.method)
    for field in ("channels", "indices", "scores", "boxes"):
        np.testing.assert_array_equal(getattr(loaded, field), getattr(relmax, field))
    for mine, theirs in zip(loaded.crops + loaded.heatmaps, relmax.crops + relmax.heatmaps):
        assert all(np.array_equal(a, b) for a, b in zip(mine, theirs))
    as_dict = json.loads(json.dumps(relmax.to_dict()))
    assert as_dict["indices"] == relmax.indices.tolist()
    assert np.array_equal(as_dict["crops"][1][2], relmax.crops[1][2])
    with pytest.raises(ValueError, match="not dtd_keras.reference_samples"):
        (tmp_path / "refs" / "reference_samples.json").write_text('{"format": "other"}')
        dk.concepts.load_reference_samples(tmp_path / "refs")


def test_save_never_replaces_files_it_did_not_write(relmax, tmp_path):
    """save() writes into a new or empty folder or an earlier save (again: same result),
    and refuses a folder holding other files, which stay untouched."""
    first = relmax.save(tmp_path / "refs")
    (first / ".arrays.npz.123.partial").write_bytes(b"killed")  # a killed save's leftover
    relmax.save(first)
    assert dk.concepts.load_reference_samples(first).layer == relmax.layer
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "arrays.npz").write_bytes(b"mine")
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="holds notes.txt, which ReferenceSamples.save"):
        relmax.save(mine)
    assert (mine / "arrays.npz").read_bytes() == b"mine"


def test_bad_arguments_are_named(model, analyzer, data, tmp_path):
    x, y = data
    out = tmp_path / "never"
    cases = [
        ({"layer": "conv9"}, r"reference_samples' layer names 'conv9', which is no layer.*"
                             r"did you mean 'conv2' or 'conv1'.*known layers are \['conv1', "),
        ({"channels": [0, 6]}, r"channels \[0, 6\]: layer 'conv2' \(Conv2D\) has 6 channels"),
        ({"k": 0}, "k must be a positive int"),
        ({"k": N + 1}, f"k={N + 1} reference samples asked for, but the data holds {N}"),
        ({"method": "gradient"}, r"method must be one of \('relevance', 'activation'\)"),
        ({"reduce": "mean"}, "reduce must be one of"),
        ({"crop_threshold": 1.0}, r"crop_threshold must be a number in \[0, 1\)"),
        ({"neuron": "all"}, "neuron='all' is not available"),
    ]
    for options, message in cases:
        layer = options.pop("layer", LAYER)
        with pytest.raises(ValueError, match=message):
            dk.concepts.reference_samples(analyzer, (x, y), layer, **{
                "channels": 0, "out": out, "progress": False, **options})
    gradient = dk.create_analyzer("gradient", model)
    with pytest.raises(ValueError, match="Gradient computes no relevance at hidden layers"):
        dk.concepts.reference_samples(gradient, x, LAYER, 0, out=out)
    inputs = keras.Input((8, 8, 1))
    flat = keras.layers.Flatten(name="flat")(keras.layers.Conv2D(2, 3, name="conv")(inputs))
    single = keras.ops.expand_dims(flat[:, 0], -1)  # the get_item output: shape (batch,)
    no_channels = keras.Model(inputs, keras.layers.Dense(2)(single))
    lrp = dk.LRP(no_channels, rule=dk.rules.Epsilon(0.1))
    with pytest.raises(ValueError, match=r"'get_item' \(GetItem\) outputs shape \(None,\), "
                                         "with no channel axis"):
        dk.concepts.reference_samples(lrp, x, "get_item", 0, out=out)
    assert not out.exists()  # every refusal before anything is written


def test_dead_and_rare_channels_get_no_made_up_reference_samples(tmp_path):
    """Channel 2 is dead (zero kernel, negative bias: ReLU output 0 everywhere), channel 1
    fires only on the 2 nonzero images: they get found=False entries (index -1, score 0,
    empty crops), one warning, and the flags survive save/load; an old file without them
    loads with found = scores != 0."""
    keras.utils.set_random_seed(3)
    dead = keras.Sequential([keras.Input((4, 4, 1)),
                             keras.layers.Conv2D(3, 2, activation="relu", name="conv"),
                             keras.layers.Flatten(), keras.layers.Dense(2, name="out")])
    kernel = np.zeros((2, 2, 1, 3), "float32")
    kernel[..., 0], kernel[..., 1] = 0.5, 1.0
    dead.get_layer("conv").set_weights([kernel, np.array([1.0, 0.0, -1.0], "float32")])
    dead.get_layer("out").set_weights([np.ones((27, 2), "float32"), np.zeros(2, "float32")])
    x = np.zeros((6, 4, 4, 1), "float32")
    x[[1, 4]] = np.random.default_rng(0).uniform(0.5, 1, (2, 4, 4, 1))
    lrp = dk.LRP(dead, rule=dk.rules.Epsilon(0.01))
    for method in ("relevance", "activation"):
        with pytest.warns(UserWarning) as caught:
            refs = dk.concepts.reference_samples(
                lrp, x, "conv", [0, 1, 2], k=4, out=tmp_path / method, method=method,
                progress=False)
        assert [str(w.message) for w in caught] == [
            f"channels [2] of conv have no {method} on any of the 6 samples (dead?); "
            f"channels [1] of conv have nonzero {method} on only 2 of k=4 samples: their "
            "missing reference samples are marked found=False (index -1, score 0)"]
        np.testing.assert_array_equal(refs.found, [[1, 1, 1, 1], [1, 1, 0, 0], [0, 0, 0, 0]])
        assert refs.indices[1].tolist() == [4, 1, -1, -1] or refs.indices[1].tolist() == [
            1, 4, -1, -1]
        assert np.all(refs.scores[0] > 0) and np.all(refs.scores[1, :2] > 0)
        assert np.all(refs.indices[2] == -1) and np.all(refs.scores[2] == 0)
        assert refs.crops[2][0].shape == (0, 0, 1) and refs.heatmaps[1][3].shape == (0, 0, 1)
        assert np.all(refs.boxes[~refs.found] == 0)
    loaded = dk.concepts.load_reference_samples(refs.save(tmp_path / "refs"))
    np.testing.assert_array_equal(loaded.found, refs.found)
    np.testing.assert_array_equal(loaded.indices, refs.indices)
    assert loaded.to_dict()["found"] == refs.found.tolist()
    with np.load(tmp_path / "refs" / "arrays.npz") as stored:  # as saved before `found`
        old = {name: stored[name] for name in stored.files if name != "found"}
    np.savez_compressed(tmp_path / "refs" / "arrays.npz", **old)
    np.testing.assert_array_equal(
        dk.concepts.load_reference_samples(tmp_path / "refs").found, refs.found)
