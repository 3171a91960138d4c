"""MinMaxDTD: the min-max relevance model, checked against numpy written from its equations."""

from __future__ import annotations

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
