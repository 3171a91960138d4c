"""Several neurons per sample in one pass (issue 9): ``neuron="all"`` or ``[batch, K]``
equals K single-neuron calls, for every analyzer kind, with one trace."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import dtd_keras as dk
from dtd_keras import rules

L = keras.layers


@pytest.fixture(scope="module")
def cnn():
    keras.utils.set_random_seed(11)
    inp = keras.Input((8, 8, 1))
    h = L.Conv2D(6, 3, activation="relu", name="conv")(inp)
    skip = L.Conv2D(6, 1, activation="relu", name="skip")(h)
    h = L.Add()([h, skip])
    h = L.MaxPooling2D()(h)
    h = L.BatchNormalization(name="bn")(h)  # standalone (after an Add)
    h = L.Flatten()(h)
    h = L.Dense(12, activation="relu", name="hidden")(h)
    out = L.Dense(5, activation="softmax", name="out")(h)
    model = keras.Model(inp, out)
    rng = np.random.default_rng(0)
    bn = model.get_layer("bn")
    bn.set_weights([rng.uniform(0.5, 2, 6), rng.normal(0, 0.1, 6), rng.normal(0, 0.1, 6),
                    rng.uniform(0.5, 2, 6)])
    return model


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(1).uniform(size=(3, 8, 8, 1)).astype("float32")


ANALYZERS = {
    "DTD box": lambda m: dk.DTD(m, input_domain=dk.Box(0.0, 1.0)),
    "LRP epsilon": lambda m: dk.LRP(m, rules.Epsilon(0.1)),
    "LRP gamma": lambda m: dk.LRP(m, rules.Gamma(0.25)),
    "LRP alpha-beta": lambda m: dk.LRP(m, rules.AlphaBeta(2, 1)),
    "composite": lambda m: dk.create_analyzer("lrp.composite", m, low=0.0, high=1.0),
    "gradient": lambda m: dk.create_analyzer("gradient", m),
}


@pytest.mark.parametrize("name", sorted(ANALYZERS))
def test_all_neurons_equal_single_calls(cnn, x, name):
    analyzer = ANALYZERS[name](cnn)
    many = analyzer.explain(x, neuron="all")
    assert many.relevance.shape == (3, 5, 8, 8, 1)
    assert many.neuron.shape == many.explained.shape == (3, 5)
    np.testing.assert_array_equal(many.neuron, np.tile(np.arange(5), (3, 1)))
    for k in range(5):
        single = analyzer.explain(x, neuron=k)
        scale = np.abs(single.relevance).max()
        np.testing.assert_allclose(many.relevance[:, k], single.relevance, rtol=1e-5,
                                   atol=1e-6 * scale)
        np.testing.assert_allclose(many.explained[:, k], single.explained, rtol=1e-6)
    # chunked passes give the same; one more trace for the [batch, K] signature only
    chunked = analyzer.explain(x, neuron="all", neurons_per_pass=2)
    np.testing.assert_allclose(chunked.relevance, many.relevance, rtol=1e-5,
                               atol=1e-6 * np.abs(many.relevance).max())
    assert analyzer.trace_count == 2


def test_k_chosen_neurons_per_sample_and_properties(cnn, x):
    analyzer = dk.DTD(cnn, input_domain=dk.Box(0.0, 1.0))
    chosen = np.array([[4, 0], [1, 1], [2, 3]])
    e = analyzer.explain(x, neuron=chosen)
    assert e.relevance.shape == (3, 2, 8, 8, 1)
    np.testing.assert_array_equal(e.neuron, chosen)
    for i in range(3):
        for j in range(2):
            single = analyzer.explain(x[i:i + 1], neuron=int(chosen[i, j]))
            np.testing.assert_allclose(e.relevance[i, j], single.relevance[0], rtol=1e-5,
                                       atol=1e-7)
    props = e.properties()
    assert props.total.shape == (3, 2)
    np.testing.assert_allclose(props.total, e.relevance.reshape(3, 2, -1).sum(-1), rtol=1e-6)
    assert len(props.to_dicts()) == 6
    assert analyzer.analyze(x, neuron=chosen).shape == (3, 2, 8, 8, 1)


def test_many_neurons_through_strategy_run(cnn, x):
    """analyzer.function takes [batch, K] neurons too (no input_signature)."""
    analyzer = dk.LRP(cnn, rules.Epsilon(0.1))
    maps, neuron, logit = analyzer.function((tf.constant(x),), tf.constant([[0, 1]] * 3))
    assert maps[0].shape == (3, 2, 8, 8, 1) and logit.shape == (3, 2)
    np.testing.assert_allclose(maps[0][:, 1], analyzer.analyze(x, neuron=1), rtol=1e-5,
                               atol=1e-7)


def test_bad_many_neuron_arguments(cnn, x):
    analyzer = dk.DTD(cnn)
    with pytest.raises(ValueError, match=r"out of range"):
        analyzer.explain(x, neuron=[[0, 5]] * 3)
    with pytest.raises(ValueError, match=r"neurons_per_pass must be a positive int"):
        analyzer.explain(x, neuron="all", neurons_per_pass=0)
    fully_conv = keras.Sequential([keras.Input((None, None, 1)), L.Conv2D(2, 3)])
    with pytest.raises(ValueError, match=r"neuron='all' needs an explained output whose size"):
        dk.DTD(fully_conv).explain(x, neuron="all")
    empty = analyzer.explain(x[:0], neuron="all")
    assert empty.relevance.shape == (0, 5, 8, 8, 1)
