"""dk.analyze_dataset / dk.load_results in one process: what the store holds equals
``analyzer.explain`` sample for sample, for every data source and neuron mode; resuming
finishes exactly the missing chunks; runs that differ are refused with what differs."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import dtd_keras as dk
from dtd_keras.datasets import store as store_module
from dtd_keras.explanation import Explanation

N = 100


def digits_model(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(10, activation="softmax"),
    ])


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images[:N] / 16.0).astype("float32")[..., None], d.target[:N].astype("int64")


@pytest.fixture(scope="module")
def model():
    return digits_model()


@pytest.fixture(scope="module")
def analyzer(model):
    return dk.DTD(model, input_domain=dk.Box(0.0, 1.0))


def assert_store_equals(results, explanation, labels=None):
    np.testing.assert_array_equal(np.asarray(results.relevance), explanation.relevance)
    np.testing.assert_array_equal(results.neuron, explanation.neuron)
    np.testing.assert_array_equal(results.logit, explanation.explained)
    expected = explanation.properties()
    for field, values in results.properties.items():
        np.testing.assert_array_equal(values, getattr(expected, field), err_msg=field)
    np.testing.assert_array_equal(results.index, np.arange(len(explanation.neuron)))
    if labels is not None:
        np.testing.assert_array_equal(results.label, labels)


def test_arrays_equal_explain_with_one_trace(model, digits, tmp_path):
    x, y = digits
    analyzer = dk.DTD(model, input_domain=dk.Box(0.0, 1.0))
    results = dk.analyze_dataset(analyzer, (x, y), tmp_path / "r.zarr", batch_size=7,
                                 chunk_size=30, progress=False)
    assert analyzer.trace_count == 1  # 4 chunks, ragged batches: one trace
    assert results.complete and len(results) == N
    assert results.relevance.shape == (N, 8, 8, 1)
    assert results.relevance.chunks == (30, 8, 8, 1)  # chunked along samples
    assert_store_equals(results, analyzer.explain(x), labels=y)
    reopened = dk.load_results(tmp_path / "r.zarr")
    np.testing.assert_array_equal(reopened.relevance[10:20], results.relevance[10:20])
    identity = reopened.metadata["identity"]
    assert identity["library_version"] == dk.__version__
    assert len(identity["weights"]) == 64
    assert identity["analyzer"]["rules"] == {k: repr(v) for k, v in analyzer.rules.items()}
    assert identity["analyzer"]["input_domains"] == ["Box(0, 1)"]
    assert identity["arguments"]["batch_size"] == 7
    table = reopened.table()
    assert set(table) >= {"index", "neuron", "logit", "label", "total", "consistent"}
    assert all(len(v) == N for v in table.values())


def test_neuron_modes(analyzer, digits, tmp_path):
    x, y = digits
    per_sample = (np.arange(N) * 7) % 10
    for name, neuron, expected in [("fixed", 3, 3), ("per_sample", per_sample, per_sample),
                                   ("label", "label", y)]:
        results = dk.analyze_dataset(analyzer, (x, y), tmp_path / name, neuron=neuron,
                                     batch_size=16, chunk_size=40, progress=False)
        assert_store_equals(results, analyzer.explain(x, neuron=expected))


def test_all_neurons_get_a_class_axis(analyzer, digits, tmp_path):
    x, _ = digits
    x = x[:20]
    results = dk.analyze_dataset(analyzer, x, tmp_path / "all", neuron="all", batch_size=8,
                                 chunk_size=8, progress=False)
    assert results.relevance.shape == (20, 10, 8, 8, 1)
    assert results.neuron.shape == results.logit.shape == (20, 10)
    for k in range(10):
        single = analyzer.explain(x, neuron=k)
        np.testing.assert_array_equal(results.relevance[:, k], single.relevance)
        np.testing.assert_array_equal(results.neuron[:, k], k)
        np.testing.assert_array_equal(results.logit[:, k], single.explained)
        np.testing.assert_array_equal(results.properties["total"][:, k],
                                      single.properties().total)


def test_tf_data_sources_give_the_same_store(analyzer, digits, tmp_path):
    x, y = digits
    reference = dk.analyze_dataset(analyzer, (x, y), tmp_path / "np", batch_size=16,
                                   chunk_size=32, progress=False)
    samples = tf.data.Dataset.from_tensor_slices((x, y))
    for name, dataset in [("samples", samples), ("batches", samples.batch(9)),
                          ("unknown_length", samples.filter(lambda a, b: True))]:
        results = dk.analyze_dataset(analyzer, dataset, tmp_path / name, batch_size=16,
                                     chunk_size=32, progress=False)
        assert len(results) == N, name
        np.testing.assert_array_equal(np.asarray(results.relevance),
                                      np.asarray(reference.relevance))
        np.testing.assert_array_equal(results.label, y)
    inputs_only = dk.analyze_dataset(analyzer, tf.data.Dataset.from_tensor_slices(x),
                                     tmp_path / "x", batch_size=16, progress=False)
    assert inputs_only.label is None
    np.testing.assert_array_equal(inputs_only.neuron, reference.neuron)


def test_folder_of_images_reads_like_the_cli(analyzer, digits, tmp_path):
    image = pytest.importorskip("PIL.Image")
    from dtd_keras.cli import read_inputs

    x, _ = digits
    folder = tmp_path / "images"
    (folder / "b").mkdir(parents=True)
    paths = []
    for i in range(5):
        path = folder / ("b" if i % 2 else "") / f"digit_{i}.png"
        image.fromarray((x[i, ..., 0] * 255).astype(np.uint8)).save(path)
        paths.append(path)
    results = dk.analyze_dataset(analyzer, folder, tmp_path / "r", batch_size=8,
                                 progress=False)
    ordered = sorted(paths, key=lambda p: p.relative_to(folder).as_posix())
    batch, _ = read_inputs([str(p) for p in ordered], (None, 8, 8, 1), (0.0, 1.0))
    assert_store_equals(results, analyzer.explain(batch))


def test_float16_relevance(analyzer, digits, tmp_path):
    x, _ = digits
    results = dk.analyze_dataset(analyzer, x, tmp_path / "r", dtype="float16", progress=False)
    assert results.relevance.dtype == np.float16
    explanation = analyzer.explain(x)
    np.testing.assert_array_equal(np.asarray(results.relevance),
                                  explanation.relevance.astype(np.float16))
    np.testing.assert_array_equal(results.properties["total"], explanation.properties().total)


def test_empty_data_gives_an_empty_store(analyzer, digits, tmp_path):
    x, _ = digits
    results = dk.analyze_dataset(analyzer, x[:0], tmp_path / "r", progress=False)
    assert len(results) == 0 and results.complete
    assert results.relevance.shape == (0, 8, 8, 1) and results.neuron.shape == (0,)
    assert len(dk.load_results(tmp_path / "r")) == 0


def test_multi_input_model(tmp_path):
    keras.utils.set_random_seed(1)
    a, b = keras.Input((5,)), keras.Input((3,))
    hidden = keras.layers.Dense(6, activation="relu")(keras.layers.Concatenate()([a, b]))
    model = keras.Model([a, b], keras.layers.Dense(4)(hidden))
    analyzer = dk.DTD(model, input_domain="positive")
    rng = np.random.default_rng(0)
    x1, x2 = rng.uniform(0, 1, (11, 5)), rng.uniform(0, 1, (11, 3))
    results = dk.analyze_dataset(analyzer, ((x1, x2), np.arange(11) % 4), tmp_path / "r",
                                 neuron="label", batch_size=4, chunk_size=4, progress=False)
    explanation = analyzer.explain([x1, x2], neuron=np.arange(11) % 4)
    assert [r.shape for r in results.relevance] == [(11, 5), (11, 3)]
    for stored, expected in zip(results.relevance, explanation.relevance):
        np.testing.assert_array_equal(stored[:], expected)
    np.testing.assert_array_equal(results.properties["total"], explanation.properties().total)


class Exploding:
    """An array that fails when a slice starting at ``fail_at`` or later is read."""

    def __init__(self, array, fail_at):
        self.array, self.fail_at, self.shape = array, fail_at, array.shape

    def __getitem__(self, item):
        if item.start >= self.fail_at:
            raise OSError("disk gone")
        return self.array[item]


def test_interrupted_run_resumes_the_missing_chunks(analyzer, digits, tmp_path, monkeypatch):
    x, y = digits
    out = tmp_path / "r"
    reference = dk.analyze_dataset(analyzer, (x, y), tmp_path / "ref", batch_size=8,
                                   chunk_size=16, progress=False)
    with pytest.raises(OSError, match="disk gone"):
        dk.analyze_dataset(analyzer, (Exploding(x, 48), y), out, batch_size=8, chunk_size=16,
                           progress=False)
    with pytest.raises(ValueError, match=r"3 of 7 chunks \(48 of 100 samples\) are done"):
        dk.load_results(out)
    partial = dk.load_results(out, allow_partial=True)
    assert partial.done.tolist() == [True] * 48 + [False] * 52
    assert np.isnan(partial.logit[48:]).all() and (partial.neuron[48:] == -1).all()
    commits = []
    original = store_module.Store.commit
    monkeypatch.setattr(store_module.Store, "commit",
                        lambda self, i, *a: (commits.append(i), original(self, i, *a)))
    results = dk.analyze_dataset(analyzer, (x, y), out, batch_size=8, chunk_size=16,
                                 progress=False)
    assert commits == [3, 4, 5, 6]
    assert_store_equals(results, reference_explanation(reference), labels=y)


def reference_explanation(results):
    return Explanation(np.asarray(results.relevance), results.neuron, results.logit)


def test_chunk_without_marker_is_recomputed(analyzer, digits, tmp_path):
    x, y = digits
    out = tmp_path / "r"
    dk.analyze_dataset(analyzer, (x, y), out, batch_size=8, chunk_size=16, progress=False)
    expected = analyzer.explain(x)
    # what a kill between writing chunk 2's arrays and its marker leaves behind
    import zarr

    group = zarr.open_group(out, mode="r+")
    group["relevance"][32:48] = 123.0
    group["logit"][32:48] = -5.0
    (out / "done" / "c" / "2").unlink()
    with pytest.raises(ValueError, match="incomplete"):
        dk.load_results(out)
    results = dk.analyze_dataset(analyzer, (x, y), out, batch_size=8, chunk_size=16,
                                 progress=False)
    assert_store_equals(results, expected, labels=y)


def test_resuming_a_different_run_is_refused(digits, tmp_path):
    x, y = digits
    model = digits_model(seed=3)
    analyzer = dk.DTD(model, input_domain=dk.Box(0.0, 1.0))
    out = tmp_path / "r"
    dk.analyze_dataset(analyzer, (x, y), out, batch_size=8, chunk_size=16, progress=False)

    kernel = model.layers[0].kernel
    original = kernel.numpy()
    kernel.assign(original * 1.5)
    with pytest.raises(ValueError, match="weights: stored") as refused:
        dk.analyze_dataset(analyzer, (x, y), out, batch_size=8, chunk_size=16, progress=False)
    differing = [line for line in str(refused.value).splitlines() if line.startswith("  ")]
    assert len(differing) == 1, differing  # only the weights
    kernel.assign(original)

    lrp = dk.LRP(model, rule=dk.rules.Epsilon(0.1))
    with pytest.raises(ValueError, match=r"analyzer\.type: stored 'dtd_keras\.analyzers\.DTD'"):
        dk.analyze_dataset(lrp, (x, y), out, batch_size=8, chunk_size=16, progress=False)
    other_box = dk.DTD(model, input_domain=dk.Box(np.zeros((8, 8, 1)), 1.0))
    with pytest.raises(ValueError, match=r"analyzer\.parameters"):
        dk.analyze_dataset(other_box, (x, y), out, batch_size=8, chunk_size=16, progress=False)
    with pytest.raises(ValueError, match=r"arguments\.neuron: stored null, now 'label'"):
        dk.analyze_dataset(analyzer, (x, y), out, neuron="label", batch_size=8, chunk_size=16,
                           progress=False)
    changed = x.copy()
    changed[20, 3, 3, 0] = 0.5
    with pytest.raises(ValueError, match=r"chunk 1 \(samples 16…31\) was explained from other"):
        dk.analyze_dataset(analyzer, (changed, y), out, batch_size=8, chunk_size=16,
                           progress=False)
    with pytest.raises(FileExistsError, match="resume=True"):
        dk.analyze_dataset(analyzer, (x, y), out, batch_size=8, chunk_size=16, resume=False,
                           progress=False)
    results = dk.analyze_dataset(analyzer, (x, y), out, neuron=2, batch_size=8, overwrite=True,
                                 progress=False)
    assert (results.neuron == 2).all()


def test_a_folder_that_is_not_a_store_is_refused(analyzer, digits, tmp_path):
    x, _ = digits
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a dtd_keras results store"):
        dk.analyze_dataset(analyzer, x, tmp_path / "mine", progress=False)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match="not a dtd_keras results store"):
        dk.load_results(tmp_path / "mine")
    (tmp_path / "empty").mkdir()
    assert dk.analyze_dataset(analyzer, x[:3], tmp_path / "empty", progress=False).complete


def test_clear_errors(analyzer, digits, tmp_path):
    x, y = digits
    with pytest.raises(ValueError, match="neuron='label' needs class labels: the data has no"):
        dk.analyze_dataset(analyzer, x, tmp_path / "a", neuron="label", progress=False)
    with pytest.raises(ValueError, match="not integer class indices"):
        dk.analyze_dataset(analyzer, (x, np.eye(10)[y]), tmp_path / "b", neuron="label",
                           progress=False)
    with pytest.raises(ValueError, match="neuron 10 is out of range"):
        dk.analyze_dataset(analyzer, x, tmp_path / "c", neuron=10, progress=False)
    with pytest.raises(ValueError, match="dtype must be one of"):
        dk.analyze_dataset(analyzer, x, tmp_path / "d", dtype="int8", progress=False)
    with pytest.raises(ValueError, match="infinite"):
        dk.analyze_dataset(analyzer, tf.data.Dataset.from_tensor_slices(x).repeat(),
                           tmp_path / "e", progress=False)
    bad = x.copy()
    bad[37, 0, 0, 0] = 2.0
    with pytest.raises(dk.DomainError, match=r"samples 32…63: input 0 .* outside"):
        dk.analyze_dataset(analyzer, bad, tmp_path / "f", batch_size=8, chunk_size=32,
                           progress=False)


def test_overflow_is_an_error_naming_the_layer_not_nan_in_the_store(tmp_path):
    """x = 3e38: the forward pass holds, the logits layer's z⁺ sums do not (the model of
    test_bad_input). The run stops with explain's error; nothing non-finite is stored."""
    keras.utils.set_random_seed(3)
    cnn = keras.Sequential([keras.Input((8, 8, 1)),
                            keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
                            keras.layers.Flatten(), keras.layers.Dense(10, name="logits")])
    x = np.full((4, 8, 8, 1), 3e38, np.float32)
    with pytest.raises(dk.NumericalError, match=r"relevance is not finite below layer "
                                                r"'logits' \(Dense\)"):
        dk.analyze_dataset(dk.DTD(cnn), x, tmp_path / "s", progress=False)
    with pytest.raises(dk.NumericalError, match="'logits'"):
        dk.analyze_dataset(dk.DTD(cnn), x, tmp_path / "all", neuron="all", progress=False)


def test_progress_bar_shows_rate(analyzer, digits, tmp_path, capsys):
    x, _ = digits
    dk.analyze_dataset(analyzer, x, tmp_path / "r", batch_size=8, chunk_size=16)
    err = capsys.readouterr().err
    assert "explaining" in err and "100/100" in err and "sample/s" in err
