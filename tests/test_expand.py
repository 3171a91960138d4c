"""Composite layers: the analyzer sees inside a layer with no behaviour of its own (its
``call`` run on symbolic inputs), explains it exactly as the same computation written as
a functional model, follows its live weights, and refuses what it cannot see inside."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import dtd_keras as dk
from dtd_keras import rules

L = keras.layers


class Block(L.Layer):
    """A residual block written as a Python layer: two Dense sublayers and ``keras.ops``."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inner = L.Dense(6, activation="relu", name="inner")
        self.outer = L.Dense(4, name="outer")

    def call(self, x):
        return keras.ops.relu(self.outer(self.inner(x)) + x)


class Opaque(L.Layer):
    """TensorFlow code: cannot run on symbolic inputs, so it cannot be seen inside."""

    def call(self, x):
        return tf.nn.relu(x)


@pytest.fixture(scope="module")
def models():
    keras.utils.set_random_seed(3)
    block = Block(name="block")
    x = keras.Input((4,))
    composite = keras.Model(x, L.Dense(2, name="head")(block(x)))
    # the same computation, written out as a functional model sharing the weights
    y = keras.Input((4,))
    h = L.Add()([block.outer(block.inner(y)), y])
    flat = keras.Model(y, composite.get_layer("head")(L.ReLU()(h)))
    return composite, flat


def test_a_composite_layer_is_explained_like_its_functional_twin(models):
    composite, flat = models
    x = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    seen = dk.LRP(composite, rules.Epsilon(0.01))
    assert {"block/inner", "block/outer", "head"} <= set(seen.rules)
    np.testing.assert_allclose(seen.analyze(x), dk.LRP(flat, rules.Epsilon(0.01)).analyze(x),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(seen.predict(x), composite.predict(x, verbose=0), rtol=1e-5)


def test_layer_rules_name_layers_inside_a_composite(models):
    composite, _ = models
    analyzer = dk.LRP(composite, rules.Epsilon(0.01), layer_rules={"block/inner": rules.ZPlus()})
    assert analyzer.rules["block/inner"] == rules.ZPlus()
    assert analyzer.rules["block/outer"] == rules.Epsilon(0.01)


def test_weights_inside_a_composite_stay_live(models):
    composite, _ = models
    x = np.ones((1, 4), "float32")
    analyzer = dk.LRP(composite, rules.Epsilon(0.01))
    before = analyzer.analyze(x, neuron=0)
    inner = composite.get_layer("block").inner
    old = inner.kernel.numpy()
    try:
        inner.kernel.assign(old * 2.0 + 0.1)
        after = analyzer.analyze(x, neuron=0)
        np.testing.assert_allclose(analyzer.predict(x), composite.predict(x, verbose=0),
                                   rtol=1e-5)
        assert not np.allclose(before, after)
    finally:
        inner.kernel.assign(old)


def test_a_layer_that_cannot_be_seen_inside_is_refused_by_name():
    x = keras.Input((3,))
    model = keras.Model(x, L.Dense(2)(Opaque(name="opaque")(L.Dense(3)(x))))
    with pytest.raises(dk.UnsupportedLayerError, match=r"'opaque' \(Opaque\)"):
        dk.LRP(model)


class TokenAndPosition(L.Layer):
    """Token and position embeddings, positions computed from ``keras.ops.arange``
    (``fixed=False``) or from the ids themselves (``fixed=True``)."""

    def __init__(self, fixed, **kwargs):
        super().__init__(**kwargs)
        self.fixed = fixed
        self.tokens = L.Embedding(20, 8, name="tokens")
        self.positions = L.Embedding(6, 8, name="positions")

    def call(self, ids):
        if self.fixed:
            where = keras.ops.cumsum(keras.ops.ones_like(ids), axis=1) - 1
        else:
            where = keras.ops.arange(keras.ops.shape(ids)[-1])
        return self.tokens(ids) + self.positions(where)


@pytest.mark.parametrize("fixed", [False, True])
def test_a_sublayer_run_on_constants_is_refused_and_the_rewrite_explained(fixed):
    keras.utils.set_random_seed(2)
    ids = keras.Input((6,), dtype="int32")
    h = TokenAndPosition(fixed, name="embed")(ids)
    model = keras.Model(ids, L.Dense(2)(L.GlobalAveragePooling1D()(h)))
    if not fixed:  # the position table would be frozen into a constant, its share lost
        with pytest.raises(dk.UnsupportedLayerError,
                           match=r"'embed' \(TokenAndPosition\).*'positions' \(Embedding\)"
                                 r".*keras.ops.arange"):
            dk.create_analyzer("attn_lrp", model)
        return
    x = np.random.default_rng(0).integers(0, 20, (2, 6)).astype("int32")
    e = dk.LRP(model, rules.Epsilon(0.0)).explain(x)
    assert e.relevance.shape == (2, 6) and set(e.embeddings) == {"embed/positions"}
    assert np.abs(e.embeddings["embed/positions"]).sum() > 0  # reported, not folded in


class SplitHeads(L.Layer):
    """Reshapes with the sequence length read from ``keras.ops.shape``: unknown (None)
    when the model has free lengths, so the recorded reshape could not run."""

    def call(self, x):
        batch, length = keras.ops.shape(x)[0], keras.ops.shape(x)[1]
        return keras.ops.reshape(x, (batch, length, 2, 2))


def test_a_reshape_to_a_length_unknown_at_build_time_is_refused_when_built():
    x = keras.Input((None, 4))
    h = L.Flatten()(L.GlobalAveragePooling1D()(L.Reshape((-1, 4))(SplitHeads(name="heads")(x))))
    model = keras.Model(x, L.Dense(2)(h))
    with pytest.raises(dk.UnsupportedLayerError,
                       match=r"'heads' \(SplitHeads\).*length unknown.*\(None, None, 2, 2\)"):
        dk.LRP(model)
