"""MinMaxDTD: the min-max relevance model, checked against numpy written from its equations."""

from __future__ import annotations

import json
import re
from pathlib import Path

import keras
import numpy as np
import pytest

import dtd_keras as dk
from dtd_keras.relevance_model import MinMaxRelevance, NotFittedError, r_squared

RTOL = 1e-4


def relu(z):
    return np.maximum(z, 0.0)


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    keep = y < 4
    return (x[keep] / 16.0).astype("float32"), y[keep]


@pytest.fixture(scope="module")
def mlp(digits):
    x, y = digits
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((64,)),  # names fixed: the suite builds many models
                              keras.layers.Dense(12, activation="relu", name="dense"),
                              keras.layers.Dense(8, activation="relu", name="dense_1"),
                              keras.layers.Dense(4, activation="softmax", name="dense_2")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x[:500], y[:500], epochs=8, verbose=0)
    return model


@pytest.fixture(scope="module")
def fitted(mlp, digits):
    x, _ = digits
    analyzer = dk.MinMaxDTD(mlp, input_domain="real", pool_size=3)
    r2 = analyzer.fit(x[:400], validation_data=x[400:480], epochs=6, verbose=0)
    return analyzer, r2


def forward(model, x):
    (w1, b1), (w2, b2), (w3, b3) = (layer.get_weights() for layer in model.layers)
    h1 = relu(x @ w1 + b1)
    h2 = relu(h1 @ w2 + b2)
    return w1, h1, w2, h2, w3, h1 @ w2, h2 @ w3 + b3


def hand_relevance(model, relevance_model, x):
    """True relevance (z⁺ at the output layer), R̂ and the heatmap, in numpy."""
    w1, h1, _, h2, w3, _, logits = forward(model, x)
    c = logits.argmax(1)
    logit = logits[np.arange(len(x)), c]
    z = h2 * np.maximum(w3[:, c].T, 0)                       # z⁺_kc, (N, K)
    true = z / z.sum(1, keepdims=True) * logit[:, None]
    context = np.eye(w3.shape[1])[c] * logit[:, None]        # relevance of the output layer
    v, v_context, d = relevance_model.get_weights()
    a = np.minimum(0.0, context @ v_context + d)
    y = relu(h1 @ v + a)                                     # detection neurons
    m = relevance_model.pool_size
    predicted = y.reshape(len(x), -1, m).sum(-1)             # sum pooling
    # z⁺ through the detection layer, then w² at the input layer (domain ℝ)
    vp = np.maximum(v, 0)
    zp = h1[:, :, None] * vp[None]                           # (N, I, J)
    share = np.divide(y, zp.sum(1), out=np.zeros_like(y), where=zp.sum(1) > 0)
    r_hidden = (zp * share[:, None, :]).sum(-1)
    w2sq = w1 ** 2
    r_input = r_hidden @ (w2sq / w2sq.sum(0, keepdims=True)).T
    return true, predicted, r_input, logit, a


def test_default_layer_is_the_hidden_layer_feeding_the_output(fitted):
    analyzer, _ = fitted
    assert analyzer.layers == ["dense_1"]
    assert set(analyzer.relevance_models) == {"dense_1"}


def test_r2_is_the_held_out_r2_computed_by_hand(fitted, mlp, digits):
    analyzer, r2 = fitted
    x, _ = digits
    held = x[400:480]
    true, predicted, *_ = hand_relevance(mlp, analyzer.relevance_models["dense_1"], held)
    by_hand = 1 - ((true - predicted) ** 2).sum() / ((true - true.mean(0)) ** 2).sum()
    assert r2["dense_1"] == pytest.approx(by_hand, rel=1e-4, abs=1e-5)
    assert analyzer.r2 == r2
    R, R_hat = analyzer.relevance_fit(held)["dense_1"]
    np.testing.assert_allclose(R, true, rtol=RTOL, atol=1e-5)
    np.testing.assert_allclose(R_hat, predicted, rtol=RTOL, atol=1e-5)


def test_r_squared_matches_sklearn_variance_weighted():
    from sklearn.metrics import r2_score

    rng = np.random.default_rng(0)
    t = rng.normal(size=(30, 4))
    p = t + rng.normal(scale=0.5, size=t.shape)
    assert r_squared(t, p) == pytest.approx(r2_score(t, p, multioutput="variance_weighted"))
    assert r_squared(t, t) == 1.0
    assert np.isnan(r_squared(np.ones((5, 2)), np.zeros((5, 2))))


def test_heatmap_equals_numpy_reference_and_is_conservative_positive(fitted, mlp, digits):
    analyzer, _ = fitted
    x = digits[0][400:440]
    e = analyzer.explain(x)
    true, predicted, r_input, logit, a = hand_relevance(
        mlp, analyzer.relevance_models["dense_1"], x)
    np.testing.assert_allclose(e.relevance, r_input, rtol=RTOL, atol=1e-5)
    np.testing.assert_allclose(e.explained, logit, rtol=1e-5)
    assert np.all(a <= 0)
    assert np.all(e.relevance >= 0)                                        # positive
    np.testing.assert_allclose(e.relevance.sum(1), predicted.sum(1), rtol=RTOL)  # Σ R̂
    # what is *not* conserved: the logit, by exactly the fit error Σ_k (R̂_k − R_k)
    np.testing.assert_allclose(e.properties().conservation_error,
                               (predicted - true).sum(1), rtol=1e-3, atol=1e-4)


def test_incoming_mode_splits_the_relevance_from_above(mlp, fitted, digits, tmp_path):
    analyzer, _ = fitted
    path = analyzer.save(tmp_path / "model")
    config = analyzer.get_config() | {"redistribute": "incoming"}
    incoming = dk.MinMaxDTD.from_config(mlp, config)
    incoming.relevance_models["dense_1"].set_weights(
        analyzer.relevance_models["dense_1"].get_weights())
    incoming.fitted = True
    x = digits[0][400:440]
    true, predicted, *_ = hand_relevance(mlp, analyzer.relevance_models["dense_1"], x)
    expected = np.where(predicted > 0, true, 0.0).sum(1)   # lost where R̂_k = 0
    maps = incoming.analyze(x)
    np.testing.assert_allclose(maps.sum(1), expected, rtol=RTOL, atol=1e-5)
    assert np.all(maps >= 0)
    assert path.exists()


def test_inhibition_is_never_positive():
    layer = MinMaxRelevance("dense", units=3, input_shape=(5,), context_size=2, pool_size=2,
                            seed=0)
    layer.context_bias.assign(np.full(layer.context_bias.shape, 5.0, np.float32))
    context = np.array([[10.0, -3.0], [-10.0, 0.0]], np.float32)
    a = keras.ops.convert_to_numpy(layer.inhibition(context))
    assert a.shape == (2, 6) and np.all(a <= 0)
    x = np.abs(np.random.default_rng(0).normal(size=(2, 5))).astype(np.float32)
    y = keras.ops.convert_to_numpy(layer.detect(x, context))
    v, vc, d = layer.get_weights()
    np.testing.assert_allclose(y, relu(x @ v + np.minimum(0, context @ vc + d)), rtol=1e-5)


def test_save_and_load_give_the_same_maps(fitted, mlp, digits, tmp_path):
    analyzer, r2 = fitted
    x = digits[0][400:420]
    path = analyzer.save(tmp_path / "relevance_models.npz")
    loaded = dk.MinMaxDTD.load(path, mlp)
    np.testing.assert_array_equal(loaded.analyze(x), analyzer.analyze(x))
    assert loaded.r2 == r2 and loaded.layers == analyzer.layers
    assert loaded.get_config() == analyzer.get_config()
    other = keras.Sequential([
        keras.Input((64,)), keras.layers.Dense(12, activation="relu", name="dense"),
        keras.layers.Dense(9, activation="relu", name="dense_1"),
        keras.layers.Dense(4, name="dense_2")])
    with pytest.raises(ValueError, match="dense_1.*units"):
        dk.MinMaxDTD.load(path, other)


def test_unfitted_and_bad_input_errors(mlp, digits):
    x = digits[0][:50]
    analyzer = dk.MinMaxDTD(mlp, input_domain=dk.Box(0, 1))
    with pytest.raises(NotFittedError, match="fit"):
        analyzer.analyze(x)
    with pytest.raises(NotFittedError):
        analyzer.save("never.npz")
    bad = x.copy()
    bad[3, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        analyzer.fit(bad, verbose=0)
    with pytest.raises(ValueError, match="shape"):
        analyzer.fit(x[:, :10], verbose=0)
    with pytest.raises(ValueError, match="validation_split"):
        analyzer.fit(x, validation_split=1.5, verbose=0)
    with pytest.raises(ValueError, match="not rule-taking layers"):
        dk.MinMaxDTD(mlp, layers=["nope"])
    with pytest.raises(ValueError, match="ReLU"):
        dk.MinMaxDTD(mlp, layers=["dense_2"])      # the softmax output layer
    with pytest.raises(ValueError, match="pool_size"):
        dk.MinMaxDTD(mlp, pool_size=0)
    with pytest.raises(ValueError, match="redistribute"):
        dk.MinMaxDTD(mlp, redistribute="sideways")


def test_overflowing_training_free_relevance_is_refused_not_fitted():
    """z⁺ of the output layer overflows (4e38) while the forward pass holds: the relevance
    recorded at the hidden layer would be a silent 0; fitting refuses it by name."""
    model = keras.Sequential([keras.Input((3,)),
                              keras.layers.Dense(3, activation="relu", name="hidden"),
                              keras.layers.Dense(2, name="out")])
    model.get_layer("hidden").set_weights([np.eye(3, dtype="float32"), np.zeros(3, "float32")])
    model.get_layer("out").set_weights([np.array([[1, .1], [-1.9, .1], [1, .1]], "float32"),
                                        np.zeros(2, "float32")])
    x = np.full((4, 3), 2e38, "float32")
    assert np.all(np.isfinite(model(x)))
    analyzer = dk.MinMaxDTD(model, input_domain="positive")
    with pytest.raises(dk.NumericalError, match="samples 0–3 is not finite"):
        analyzer.fit(x, neuron=0, validation_data=x, epochs=1, verbose=0)


def test_convolutional_layer_and_fit_split(digits):
    x, y = digits
    images = x.reshape(-1, 8, 8, 1)
    keras.utils.set_random_seed(2)
    model = keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu", name="conv2d"),
        keras.layers.Conv2D(5, 3, strides=2, padding="same", activation="relu",
                            name="conv2d_1"),
        keras.layers.Flatten(), keras.layers.Dense(4, name="dense")])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(images[:400], y[:400], epochs=3, verbose=0)
    analyzer = dk.MinMaxDTD(model, input_domain=dk.Box(0, 1), pool_size=2)
    assert analyzer.layers == ["conv2d_1"]
    relevance_model = analyzer.relevance_models["conv2d_1"]
    assert relevance_model.get_config()["output_shape"] == [3, 3, 5]
    r2 = analyzer.fit(images[:300], validation_split=0.25, epochs=3, verbose=0)
    assert set(r2) == {"conv2d_1"} and np.isfinite(r2["conv2d_1"])
    e = analyzer.explain(images[300:330])
    _, R_hat = analyzer.relevance_fit(images[300:330])["conv2d_1"]
    assert np.all(e.relevance >= 0)
    np.testing.assert_allclose(e.relevance.reshape(30, -1).sum(1),
                               R_hat.reshape(30, -1).sum(1), rtol=RTOL, atol=1e-6)


# ---------------------------------------------------------------- issue 13: files
def _entries(path):
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def _meta(entries):
    return json.loads(str(entries["meta"]))


def _with_meta(entries, change):
    meta = _meta(entries)
    change(meta)
    return entries | {"meta": np.asarray(json.dumps(meta))}


def _damaged(kind, good, path):
    """Write a damaged copy of the file ``good`` to ``path``; what the error must say."""
    raw = good.read_bytes()
    entries = _entries(good)
    if kind == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
        return "damaged, truncated"
    if kind == "empty":
        path.write_bytes(b"")
        return "damaged, truncated"
    if kind == "random bytes":
        path.write_bytes(np.random.default_rng(0).bytes(3000))
        return "damaged, truncated"
    if kind == "flipped bytes":  # the zip directory intact, a weight's bytes changed
        data = bytearray(raw)
        at = raw.index(b"0/0.npy") + 200
        data[at:at + 64] = bytes(64)
        path.write_bytes(bytes(data))
        return "damaged or truncated"
    if kind == "npy":
        with open(path, "wb") as file:
            np.save(file, np.zeros(3))
        return r"single array .*\.npy"
    if kind == "json text":
        path.write_text(json.dumps({"format": 2}))
        return "damaged, truncated"
    saved = {
        "no meta": lambda: {k: v for k, v in entries.items() if k != "meta"},
        "meta not json": lambda: entries | {"meta": np.asarray("{not json")},
        "meta numbers": lambda: entries | {"meta": np.arange(3)},
        "meta a list": lambda: entries | {"meta": np.asarray("[1, 2]")},
        "no config": lambda: _with_meta(entries, lambda m: m.pop("config")),
        "layers not names": lambda: _with_meta(
            entries, lambda m: m["config"].update(layers="dense_1")),
        "pool_size string": lambda: _with_meta(
            entries, lambda m: m["config"].update(pool_size="3")),
        "unknown option": lambda: _with_meta(
            entries, lambda m: m["config"]["options"].update(colour="red")),
        "unknown layer": lambda: _with_meta(
            entries, lambda m: m["config"].update(layers=["nope"])),
        "bad domain": lambda: _with_meta(
            entries, lambda m: m["config"].update(input_domain={"low": "a", "high": 1})),
        "format": lambda: _with_meta(entries, lambda m: m.update(format=99)),
        "r2 text": lambda: _with_meta(entries, lambda m: m.update(r2={"dense_1": "high"})),
        "model config missing": lambda: _with_meta(entries, lambda m: m.update(models={})),
        "weight missing": lambda: {k: v for k, v in entries.items() if k != "0/1"},
        "weight shape": lambda: entries | {"0/0": entries["0/0"][:, :-1]},
        "weight dtype": lambda: entries | {"0/2": entries["0/2"].astype(np.int64)},
        "weight nan": lambda: entries | {"0/2": np.full_like(entries["0/2"], np.nan)},
    }[kind]()
    np.savez(path, **saved)
    return {"no meta": "no 'meta' entry", "meta not json": "not valid JSON",
            "meta numbers": "not a JSON string", "meta a list": "JSON list, not an object",
            "no config": "lacks the 'config'", "layers not names": "'layers'",
            "pool_size string": "'pool_size'", "unknown option": "colour",
            "unknown layer": "nope", "bad domain": "configuration does not build",
            "format": "unknown MinMaxDTD file format 99", "r2 text": "'r2'",
            "model config missing": "no relevance model for layer 'dense_1'",
            "weight missing": r"'0/1'\) is missing",
            "weight shape": r"shape \(12, 23\).*needs \(12, 24\)",
            "weight dtype": "int64", "weight nan": "NaN"}[kind]


DAMAGE = ["truncated", "empty", "random bytes", "flipped bytes", "npy", "json text",
          "no meta", "meta not json", "meta numbers", "meta a list", "no config",
          "layers not names", "pool_size string", "unknown option", "unknown layer",
          "bad domain", "format", "r2 text", "model config missing", "weight missing",
          "weight shape", "weight dtype", "weight nan"]


@pytest.fixture(scope="module")
def saved(fitted, tmp_path_factory):
    analyzer, _ = fitted
    return analyzer.save(tmp_path_factory.mktemp("saved") / "good.npz")


@pytest.mark.parametrize("kind", DAMAGE)
def test_load_of_a_damaged_file_is_a_value_error_naming_file_and_fault(kind, saved, mlp,
                                                                       tmp_path):
    path = tmp_path / "damaged.npz"
    what = _damaged(kind, saved, path)
    with pytest.raises(ValueError, match=re.escape(str(path))) as caught:
        dk.MinMaxDTD.load(path, mlp)
    assert re.search(what, str(caught.value)), str(caught.value)


def test_load_of_a_missing_file_names_it(mlp, tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.npz"):
        dk.MinMaxDTD.load(tmp_path / "nothing.npz", mlp)


def test_save_writes_whole_files_only(fitted, tmp_path, monkeypatch):
    analyzer, _ = fitted
    path = analyzer.save(tmp_path / "models")
    before = path.read_bytes()

    def fail(target, *args, **kwargs):  # writes part of the file, then the disk is full
        if hasattr(target, "write"):
            target.write(b"PK\x03\x04 partial")
        else:
            Path(target).write_bytes(b"PK\x03\x04 partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", fail)
    with pytest.raises(OSError, match="disk full"):
        analyzer.save(path)
    assert path.read_bytes() == before                      # the old file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models.npz"]   # no leftovers


# ---------------------------------------------------------------- issue 13: fitting
def test_fit_refuses_too_few_samples_saying_how_many(mlp, digits):
    x = digits[0]
    analyzer = dk.MinMaxDTD(mlp, pool_size=2)
    with pytest.raises(ValueError, match=r"at least 2 training and 2 held-out.*"
                                         r"validation_split=0\.2 of 6 samples gives 5 "
                                         r"training and 1 held-out: give at least 8 samples"):
        analyzer.fit(x[:6], epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"validation_split=0\.5 of 3 samples.*at least 4"):
        analyzer.fit(x[:3], validation_split=0.5, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="x and validation_data gives 10 training and 1 "):
        analyzer.fit(x[:10], validation_data=x[10:11], epochs=1, verbose=0)
    with pytest.raises(ValueError, match="gives 0 training"):
        analyzer.fit(x[:0], epochs=1, verbose=0)
    r2 = analyzer.fit(x[:8], epochs=1, verbose=0)              # the least that works
    assert np.isfinite(r2["dense_1"]) and np.isfinite(r2.totals["dense_1"])


def test_relevance_without_variance_gives_a_defined_r2_and_a_warning(mlp, digits):
    x = np.repeat(digits[0][:1], 12, axis=0)             # every sample alike
    analyzer = dk.MinMaxDTD(mlp, pool_size=2)
    with pytest.warns(UserWarning, match=r"'dense_1' does not vary over its \d+ samples.*"
                                         r"R² is undefined; reported as 0"):
        r2 = analyzer.fit(x, epochs=1, verbose=0)
    assert r2["dense_1"] == 0.0 and r2.totals["dense_1"] == 0.0   # not an exact fit
    from sklearn.metrics import r2_score

    t, p = np.ones((5, 2)), np.zeros((5, 2))
    assert r_squared(t, p, force_finite=True) == r2_score(t, p) == 0.0
    assert r_squared(t, t, force_finite=True) == r2_score(t, t) == 1.0


def _weights(analyzer):
    return [w for name in analyzer.layers
            for w in analyzer.relevance_models[name].get_weights()]


def test_fit_is_reproducible_given_a_seed_and_leaves_global_random_state(mlp, digits):
    import random

    x = digits[0][:60]
    python_state, numpy_state = random.getstate(), np.random.get_state()
    runs = []
    for seed in (5, 5, 6):
        analyzer = dk.MinMaxDTD(mlp, pool_size=2)
        r2 = analyzer.fit(x, epochs=2, batch_size=8, seed=seed, verbose=0)
        runs.append((_weights(analyzer), r2, r2.totals))
    for a, b in zip(runs[0][0], runs[1][0]):
        np.testing.assert_array_equal(a, b)
    assert runs[0][1] == runs[1][1] and runs[0][2] == runs[1][2]
    assert not np.array_equal(runs[0][0][0], runs[2][0][0])    # another seed, other weights
    assert random.getstate() == python_state
    np.testing.assert_array_equal(np.random.get_state()[1], numpy_state[1])


@pytest.mark.parametrize("arguments, message", [
    ({"pool_size": "4"}, r"pool_size must be an int >= 1, got '4' \(str\)"),
    ({"pool_size": 2.7}, r"pool_size must be an int >= 1, got 2\.7 \(float\)"),
    ({"pool_size": True}, "pool_size must be an int"),
    ({"pool_size": 0}, "pool_size must be an int >= 1, got 0"),
    ({"seed": -1}, "seed must be an int >= 0, got -1"),
    ({"seed": 1.5}, "seed must be an int"),
    ({"layers": []}, "layers must be a non-empty list"),
])
def test_constructor_arguments_are_checked_by_name(mlp, arguments, message):
    with pytest.raises(ValueError, match=message):
        dk.MinMaxDTD(mlp, **arguments)


@pytest.mark.parametrize("arguments, message", [
    ({"epochs": 2.5}, r"epochs must be an int >= 1, got 2\.5"),
    ({"epochs": 0}, "epochs must be an int >= 1, got 0"),
    ({"batch_size": "32"}, "batch_size must be an int"),
    ({"collect_batch_size": 0}, "collect_batch_size must be an int >= 1"),
    ({"seed": "1"}, "seed must be an int >= 0"),
    ({"learning_rate": -1.0}, r"learning_rate must be a finite number in \(0, inf\)"),
    ({"learning_rate": float("nan")}, "learning_rate must be a finite number"),
    ({"validation_split": "0.2"}, "validation_split must be a number"),
    ({"validation_split": 1.5}, r"validation_split must be a finite number in \(0, 1\)"),
    ({"verbose": "loud"}, "verbose must be one of"),
    ({"neuron": [0] * 49}, r"one index per sample \(50\).*got shape \(49,\)"),
    ({"neuron": "all"}, r"one explained neuron per sample.*shape \(50, 4\)"),
    ({"neuron": [0] * 50, "validation_data": "held"},
     r"one index per sample of x \(50\); pass validation_neuron= for the 20 samples"),
    ({"validation_data": "held", "validation_neuron": [0] * 19},
     r"one index per sample \(20\).*got shape \(19,\)"),
    ({"validation_neuron": [0] * 10}, "validation_neuron needs validation_data"),
])
def test_fit_arguments_are_checked_by_name(mlp, digits, arguments, message):
    x = digits[0]
    if arguments.get("validation_data") == "held":
        arguments = arguments | {"validation_data": x[50:70]}
    arguments = {"epochs": 1, "verbose": 0} | arguments
    analyzer = dk.MinMaxDTD(mlp, pool_size=2)
    with pytest.raises(ValueError, match=message):
        analyzer.fit(x[:50], **arguments)


def test_fit_reports_the_r2_of_per_sample_totals_as_numpy(fitted, mlp, digits):
    analyzer, r2 = fitted
    held = digits[0][400:480]
    true, predicted, *_ = hand_relevance(mlp, analyzer.relevance_models["dense_1"], held)
    t, p = true.sum(1), predicted.sum(1)
    by_hand = 1 - ((t - p) ** 2).sum() / ((t - t.mean()) ** 2).sum()
    assert r2.totals["dense_1"] == pytest.approx(by_hand, rel=1e-4, abs=1e-5)
    assert analyzer.r2_totals == r2.totals and dict(r2) == analyzer.r2
    assert r2.totals["dense_1"] != pytest.approx(r2["dense_1"], abs=1e-3)   # another number
    assert "totals" in repr(r2)


# ---------------------------------------------------------------- issue 13: stacked layers
def _z_plus(a, v, y):
    """z⁺ of the detection neurons' y onto the activations a through the kernel v."""
    zp = a[:, :, None] * np.maximum(v, 0)[None]
    share = np.divide(y, zp.sum(1), out=np.zeros_like(y), where=zp.sum(1) > 0)
    return (zp * share[:, None, :]).sum(-1)


def _pool(y, m):
    return y.reshape(len(y), -1, m).sum(-1)


def stacked_hand(model, upper, lower, x):
    """Two stacked relevance models (upper: 'dense_1', lower: 'dense'), in numpy: the
    lower one's true relevance is the upper model's z⁺ decomposition, its context the
    upper model's R̂."""
    _, h1, _, _, w3, _, logits = forward(model, x)
    c = logits.argmax(1)
    logit = logits[np.arange(len(x)), c]
    vu, vcu, du = upper.get_weights()
    yu = relu(h1 @ vu + np.minimum(0, (np.eye(w3.shape[1])[c] * logit[:, None]) @ vcu + du))
    hat_upper = _pool(yu, upper.pool_size)                 # what 'dense_1' holds, (N, 8)
    true_lower = _z_plus(h1, vu, yu)                       # what reaches 'dense', (N, 12)
    vl, vcl, dl = lower.get_weights()
    yl = relu(x @ vl + np.minimum(0, hat_upper @ vcl + dl))
    square = vl ** 2                                        # w² at the input (domain ℝ)
    return true_lower, _pool(yl, lower.pool_size), yl @ (square / square.sum(0)).T


@pytest.fixture(scope="module")
def stacked(mlp, digits):
    x = digits[0]
    analyzer = dk.MinMaxDTD(mlp, layers=["dense", "dense_1"], pool_size=2)
    r2 = analyzer.fit(x[:300], validation_data=x[400:460], epochs=3, verbose=0)
    return analyzer, r2


def test_stacked_models_are_fitted_top_down_and_match_numpy(stacked, mlp, digits):
    analyzer, r2 = stacked
    upper, lower = (analyzer.relevance_models[n] for n in ("dense_1", "dense"))
    held = digits[0][400:460]
    true, predicted, maps = stacked_hand(mlp, upper, lower, held)
    R, R_hat = analyzer.relevance_fit(held)["dense"]
    np.testing.assert_allclose(R, true, rtol=RTOL, atol=1e-5)
    np.testing.assert_allclose(R_hat, predicted, rtol=RTOL, atol=1e-5)
    # fit's R² of the lower layer is against the relevance the fitted upper model delivers
    by_hand = 1 - ((true - predicted) ** 2).sum() / ((true - true.mean(0)) ** 2).sum()
    assert r2["dense"] == pytest.approx(by_hand, rel=1e-4, abs=1e-5)
    e = analyzer.explain(held)
    np.testing.assert_allclose(e.relevance, maps, rtol=RTOL, atol=1e-5)
    np.testing.assert_allclose(e.relevance.sum(1), predicted.sum(1), rtol=RTOL)


def test_the_upper_relevance_model_changes_the_maps(stacked, mlp, digits, tmp_path):
    analyzer, _ = stacked
    x = digits[0][400:430]
    path = analyzer.save(tmp_path / "stacked")
    changed = dk.MinMaxDTD.load(path, mlp)
    np.testing.assert_array_equal(changed.analyze(x), analyzer.analyze(x))   # round trip
    upper = changed.relevance_models["dense_1"]
    v, vc, d = upper.get_weights()
    upper.set_weights([v * np.random.default_rng(0).uniform(0.5, 1.5, v.shape), vc, d])
    difference = np.abs(changed.analyze(x) - analyzer.analyze(x)).sum(1)
    total = np.abs(analyzer.analyze(x)).sum(1)
    # (a sample whose lower-layer inhibition is 0 everywhere does not read the context)
    assert np.mean(difference > 1e-3 * total) > 0.5 and difference.sum() > 0.02 * total.sum()


def test_a_format_1_file_with_stacked_models_is_refused(stacked, tmp_path):
    analyzer, _ = stacked
    path = analyzer.save(tmp_path / "new.npz")
    entries = _with_meta(_entries(path), lambda m: m.update(format=1))
    old = tmp_path / "old.npz"
    np.savez(old, **entries)
    with pytest.raises(ValueError, match=r"old\.npz: written by an older dtd_keras.*fit "
                                         r"again"):
        dk.MinMaxDTD.load(old, analyzer.model)
