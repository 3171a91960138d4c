"""RelevanceMonitor: PNGs, TensorBoard summaries, one trace, training left unchanged."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import sys
import warnings
from collections import defaultdict

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import dtd_keras as dk
from dtd_keras.callbacks import SCALARS, RelevanceMonitor

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def conv_model(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((6, 6, 1)),
        keras.layers.Conv2D(2, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(3),
    ])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def dense_model(seed=0, dropout=0.0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((6,)),
        keras.layers.Dense(5, activation="relu"),
        keras.layers.Dropout(dropout),
        keras.layers.Dense(3),
    ])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return {
        "image": rng.random((16, 6, 6, 1), dtype=np.float32),
        "vector": rng.normal(size=(16, 6)).astype(np.float32),
        "labels": rng.integers(0, 3, 16),
    }


def events(folder):
    """``{tag: {step: value}}`` read back from the TensorBoard event files."""
    found = defaultdict(dict)
    for name in sorted(os.listdir(folder)):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(folder, name)):
            for value in event.summary.value:
                found[value.tag][event.step] = tf.make_ndarray(value.tensor)
    return found


def pngs(folder):
    return sorted(p.name for p in folder.glob("*.png"))


def check_png(path):
    assert path.read_bytes()[:8] == PNG_MAGIC
    with Image.open(path) as picture:
        picture.verify()
    with Image.open(path) as picture:
        assert picture.format == "PNG" and min(picture.size) > 50


def test_defaults_write_pngs_and_tensorboard_and_trace_once(data, tmp_path):
    model = conv_model()
    monitor = RelevanceMonitor(data["image"][:4], log_dir=tmp_path / "run")
    model.fit(data["image"], data["labels"], epochs=3, batch_size=8, verbose=0,
              callbacks=[monitor])

    assert isinstance(monitor.analyzer, dk.DTD)
    assert monitor.analyzer.trace_count == 1
    assert monitor.analyzer.function.experimental_get_tracing_count() == 1

    heatmaps = tmp_path / "run" / "heatmaps"
    assert pngs(heatmaps) == ["epoch_0001.png", "epoch_0002.png", "epoch_0003.png"]
    for name in pngs(heatmaps):
        check_png(heatmaps / name)
    assert [(r["epoch"], r["batch"], r["step"]) for r in monitor.records] == [
        (1, None, 0), (2, None, 1), (3, None, 2)]

    found = events(tmp_path / "run" / "relevance")
    for name in SCALARS:
        assert sorted(found[f"relevance/{name}"]) == [0, 1, 2]
    for record in monitor.records:
        step = record["epoch"] - 1
        for name in SCALARS:
            assert float(found[f"relevance/{name}"][step]) == pytest.approx(record[name])
    # DTD on a ReLU net is conservative (seed Definition 1)
    assert all(r["conservation_error"] < 1e-4 for r in monitor.records)
    assert all(0 <= r[k] <= 1 for r in monitor.records
               for k in ("fraction_positive", "negative_fraction"))
    heat = found["relevance/heatmaps"][2]  # [width, height, 4 encoded PNGs]
    assert len(heat) == 2 + 4 and all(png[:8] == PNG_MAGIC for png in heat[2:])
    assert found["relevance/grid"][2][2][:8] == PNG_MAGIC


def test_training_unchanged_and_every_n_batches(data, tmp_path):
    def train(callbacks):
        model = dense_model(seed=7, dropout=0.3)
        history = model.fit(data["vector"], data["labels"], epochs=2, batch_size=4,
                            shuffle=True, verbose=0, callbacks=callbacks)
        return history.history, model.get_weights()

    plain_history, plain_weights = train([])
    monitor = RelevanceMonitor(data["vector"][:3], log_dir=tmp_path, analyzer="lrp.epsilon",
                               every_n_batches=2, every_n_epochs=2)
    history, weights = train([monitor])
    assert history == plain_history
    for a, b in zip(weights, plain_weights):
        np.testing.assert_array_equal(a, b)

    # 4 batches per epoch: after batches 2 and 4 of each epoch, and after epoch 2
    assert pngs(tmp_path / "heatmaps") == [
        "epoch_0001_batch_00002.png", "epoch_0001_batch_00004.png",
        "epoch_0002.png", "epoch_0002_batch_00002.png", "epoch_0002_batch_00004.png"]
    check_png(tmp_path / "heatmaps" / "epoch_0001_batch_00002.png")
    found = events(tmp_path / "relevance")
    for name in SCALARS:
        assert sorted(found[f"relevance_batch/{name}"]) == [2, 4, 6, 8]  # optimizer steps
        assert sorted(found[f"relevance/{name}"]) == [1]  # Keras' 0-based epoch index
    assert monitor.analyzer.trace_count == 1


def test_never_overwrites_unless_asked(data, tmp_path):
    model = dense_model()
    x, y = data["vector"], data["labels"]
    monitor = RelevanceMonitor(x[:2], log_dir=tmp_path, tensorboard=False)
    model.fit(x, y, epochs=2, verbose=0, callbacks=[monitor])
    first = (tmp_path / "heatmaps" / "epoch_0001.png").read_bytes()
    before = model.get_weights()

    # the same fit again would write epoch_0001.png and epoch_0002.png: refused up front
    with pytest.raises(FileExistsError, match="epoch_0001.png.*overwrite=True"):
        model.fit(x, y, epochs=2, verbose=0, callbacks=[monitor])
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)  # refused before any training step

    # continuing the numbering is fine
    model.fit(x, y, epochs=3, initial_epoch=2, verbose=0, callbacks=[monitor])
    assert pngs(tmp_path / "heatmaps") == [f"epoch_000{i}.png" for i in (1, 2, 3)]
    assert monitor.analyzer.trace_count == 1  # built once for the model, across fits

    again = RelevanceMonitor(x[:2], log_dir=tmp_path, tensorboard=False, overwrite=True)
    model.fit(x, y, epochs=1, verbose=0, callbacks=[again])
    assert (tmp_path / "heatmaps" / "epoch_0001.png").read_bytes() != first


def test_analyzer_choices(data, tmp_path):
    model = dense_model()
    x = data["vector"][:2]

    def started(**kwargs):
        monitor = RelevanceMonitor(x, log_dir=tmp_path, tensorboard=False, **kwargs)
        monitor.set_model(model)
        monitor.on_train_begin()
        return monitor

    monitor = started(analyzer="lrp.epsilon", epsilon=0.5)
    assert isinstance(monitor.analyzer, dk.LRP)
    assert set(monitor.analyzer.rules.values()) == {dk.rules.Epsilon(0.5)}
    monitor = started(analyzer="lrp.alpha_2_beta_1")
    assert set(monitor.analyzer.rules.values()) == {dk.rules.AlphaBeta(2, 1)}
    monitor = started(analyzer="deep_taylor", input_domain="real")
    assert isinstance(monitor.analyzer, dk.DTD)

    built = dk.LRP(model, dk.rules.ZPlus())
    assert started(analyzer=built).analyzer is built
    monitor = started(analyzer=lambda m: dk.LRP(m, dk.rules.Epsilon(0.25)))
    assert set(monitor.analyzer.rules.values()) == {dk.rules.Epsilon(0.25)}

    monitor.on_epoch_end(0)  # explains, draws and records without a fit
    assert monitor.records[0]["path"].name == "epoch_0001.png"
    explanation = monitor.explain()
    np.testing.assert_allclose(explanation.relevance, monitor.analyzer.analyze(x))

    with pytest.raises(ValueError, match="not those of the trained model"):
        started(analyzer=dk.LRP(dense_model(seed=1)))
    with pytest.raises(TypeError, match="returned int"):
        started(analyzer=lambda m: 3)


def test_multi_input_and_image_sample_shapes(tmp_path):
    keras.utils.set_random_seed(0)
    a, b = keras.Input((4, 4)), keras.Input((3,))
    model = keras.Model([a, b], keras.layers.Dense(2)(keras.layers.Flatten()(a)))
    rng = np.random.default_rng(1)
    samples = [rng.random((2, 4, 4), dtype=np.float32), rng.random((2, 3), dtype=np.float32)]
    monitor = RelevanceMonitor(samples, log_dir=tmp_path, analyzer="lrp.z")
    monitor.set_model(model)
    monitor.on_train_begin()
    monitor.on_epoch_end(4)
    monitor.on_train_end()
    check_png(tmp_path / "heatmaps" / "epoch_0005.png")
    found = events(tmp_path / "relevance")
    assert {"relevance/heatmaps_0", "relevance/heatmaps_1"} <= set(found)


def test_wrong_sample_shape_fails_at_train_begin(data, tmp_path):
    model = dense_model()
    before = model.get_weights()
    monitor = RelevanceMonitor(np.zeros((4, 7)), log_dir=tmp_path, tensorboard=False)
    with pytest.raises(ValueError, match=r"\(4, 7\).*expects"):
        model.fit(data["vector"], data["labels"], epochs=1, verbose=0, callbacks=[monitor])
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    assert not (tmp_path / "heatmaps").exists()


@pytest.mark.parametrize("kwargs, error, match", [
    ({"every_n_epochs": 0}, ValueError, "every_n_epochs must be a positive int"),
    ({"every_n_epochs": 1.5}, ValueError, "every_n_epochs"),
    ({"every_n_epochs": True}, ValueError, "every_n_epochs"),
    ({"every_n_batches": 0}, ValueError, "every_n_batches"),
    ({"every_n_epochs": None}, ValueError, "never run"),
    ({"analyzer": "lrp.nonsense"}, ValueError, "unknown analyzer 'lrp.nonsense'.*deep_taylor"),
    ({"analyzer": 42}, TypeError, "analyzer must be"),
    ({"analyzer": lambda m: m, "epsilon": 1.0}, TypeError, "apply only to an analyzer given"),
    ({"log_dir": None}, TypeError, "log_dir"),
    ({"samples": np.zeros((0, 6))}, ValueError, "at least one sample"),
    ({"samples": []}, ValueError, "samples is empty"),
    ({"samples": [np.zeros((2, 6)), np.zeros((3, 2))]}, ValueError, "batch sizes"),
])
def test_bad_arguments(tmp_path, kwargs, error, match):
    arguments = {"samples": np.zeros((2, 6)), "log_dir": tmp_path, **kwargs}
    with pytest.raises(error, match=match):
        RelevanceMonitor(**arguments)


def test_without_tensorboard_it_says_so_once_and_writes_pngs(data, tmp_path, monkeypatch):
    """`pip install dtd-keras[cpu,demo]` has no TensorBoard: the monitor (and README's
    snippet) must still run, saying once that it logs PNGs only."""
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard fails
    model = conv_model()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        monitor = RelevanceMonitor(data["image"][:2], log_dir=tmp_path)
        model.fit(data["image"], data["labels"], epochs=2, verbose=0, callbacks=[monitor])
    said = [w for w in caught if "TensorBoard is not installed" in str(w.message)]
    assert len(said) == 1 and said[0].category is UserWarning
    assert "pip install 'dtd-keras[tensorboard]'" in str(said[0].message)
    assert monitor.tensorboard is False
    assert pngs(tmp_path / "heatmaps") == ["epoch_0001.png", "epoch_0002.png"]
    assert not (tmp_path / "relevance").exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # tensorboard=False: asked for, no warning
        RelevanceMonitor(np.zeros((2, 6)), log_dir=tmp_path, tensorboard=False)


def _untouched(model, before):
    assert int(model.optimizer.iterations) == 0
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_unwritable_log_dir_fails_before_the_first_step(data, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    model = dense_model()
    model.build((None, 6))
    before = model.get_weights()
    monitor = RelevanceMonitor(data["vector"][:2], log_dir=blocker / "run", tensorboard=False)
    with pytest.raises(OSError, match="RelevanceMonitor cannot write to log_dir '.*a_file/run'"):
        model.fit(data["vector"], data["labels"], epochs=1, verbose=0, callbacks=[monitor])
    _untouched(model, before)
    # the check leaves nothing behind where it succeeds
    fresh = tmp_path / "new" / "run"
    monitor = RelevanceMonitor(data["vector"][:2], log_dir=fresh, tensorboard=False)
    monitor.set_model(model)
    monitor.on_train_begin()
    assert not (tmp_path / "new").exists()


def test_two_monitors_of_one_fit_may_not_share_a_log_dir(data, tmp_path):
    model = dense_model()
    model.build((None, 6))
    before = model.get_weights()
    first = RelevanceMonitor(data["vector"][:2], log_dir=tmp_path / "run", tensorboard=False)
    second = RelevanceMonitor(data["vector"][2:4], log_dir=tmp_path / "other" / ".." / "run",
                              analyzer="lrp.epsilon", tensorboard=False)
    with pytest.raises(ValueError, match="also used by another RelevanceMonitor in this fit"):
        model.fit(data["vector"], data["labels"], epochs=1, verbose=0,
                  callbacks=[first, second])
    _untouched(model, before)
    assert not (tmp_path / "run").exists()
    # one after the other (a new fit) is fine
    model.fit(data["vector"], data["labels"], epochs=1, verbose=0, callbacks=[first])
    assert pngs(tmp_path / "run" / "heatmaps") == ["epoch_0001.png"]


class _Diverge(keras.callbacks.Callback):
    """Sets every weight to NaN at the end of one epoch, as a diverging fit would."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            self.model.set_weights([np.full_like(w, np.nan) for w in self.model.get_weights()])


def test_a_diverging_fit_is_warned_about_not_killed(data, tmp_path):
    model = dense_model()
    monitor = RelevanceMonitor(data["vector"][:3], log_dir=tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(data["vector"], data["labels"], epochs=3, verbose=0,
                            callbacks=[_Diverge(epoch=1), monitor])
    assert len(history.history["loss"]) == 3  # the fit ran to its end
    skipped = [str(w.message) for w in caught if w.category is RuntimeWarning
               and "RelevanceMonitor skipped" in str(w.message)]
    assert len(skipped) == 2
    assert skipped[0].startswith("RelevanceMonitor skipped the picture after epoch 2: the "
                                 "model's weights hold NaN or Inf (")
    assert "has training diverged?" in skipped[0] and "after epoch 3" in skipped[1]
    assert [r["epoch"] for r in monitor.records] == [1]
    assert pngs(tmp_path / "heatmaps") == ["epoch_0001.png"]


def test_overflowing_outputs_skip_the_picture(data, tmp_path):
    model = dense_model()
    monitor = RelevanceMonitor(data["vector"][:3], log_dir=tmp_path, tensorboard=False)
    monitor.set_model(model)
    monitor.on_train_begin()
    model.set_weights([np.full_like(w, 1e30) for w in model.get_weights()])  # finite
    with pytest.warns(RuntimeWarning, match="outputs on the samples are NaN or Inf"):
        monitor.on_epoch_end(0)
    assert monitor.records == [] and not (tmp_path / "heatmaps").exists()
