"""Token inputs: Embedding, position/segment shares, Keras masks, bad input (issue 14)."""

import keras
import numpy as np
import pytest
import reference as ref
import tensorflow as tf

import dtd_keras as dk
from dtd_keras.layers.embedding import PositionTable

SEQ, DIM = 6, 4


def _token_model(seq=SEQ, bias=True):
    """ids, segment ids, padding mask → token + segment + position embeddings (positions
    from keras.ops.cumsum) → Dense ReLU → mean over unmasked tokens → Dense."""
    keras.utils.set_random_seed(7)
    ids = keras.Input((seq,), dtype="int32", name="ids")
    seg = keras.Input((seq,), dtype="int32", name="seg")
    mask = keras.Input((seq,), dtype="int32", name="padding_mask")
    positions = keras.ops.cumsum(keras.ops.ones_like(ids), axis=1) - 1
    init = keras.initializers.RandomUniform(-1.0, 1.0, seed=1)
    x = keras.layers.Add()([
        keras.layers.Embedding(12, DIM, embeddings_initializer=init, name="tok")(ids),
        keras.layers.Embedding(2, DIM, embeddings_initializer=init, name="segment")(seg),
        keras.layers.Embedding(SEQ, DIM, embeddings_initializer=init, name="pos")(positions)])
    binit = "random_uniform" if bias else "zeros"
    h = keras.layers.Dense(5, activation="relu", bias_initializer=binit, name="hidden")(x)
    p = keras.layers.GlobalAveragePooling1D()(h, mask=mask)
    out = keras.layers.Dense(3, bias_initializer=binit, name="top")(p)
    return keras.Model([ids, seg, mask], out)


IDS = np.array([[3, 1, 4, 1, 5, 0], [9, 2, 6, 5, 3, 5]], np.int32)
SEGS = np.array([[0, 0, 0, 1, 1, 0], [0, 0, 1, 1, 1, 1]], np.int32)
MASK = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], np.int32)
X = [IDS, SEGS, MASK]


@pytest.fixture(scope="module")
def model():
    return _token_model()


@pytest.fixture(scope="module")
def analyzer(model):
    return dk.LRP(model, dk.rules.Epsilon(0.0))


@pytest.fixture(scope="module")
def explanation(analyzer):
    return analyzer.explain(X)


def test_token_and_embedding_shares_match_the_reference(model, explanation):
    tok, segment, pos = (model.get_layer(n).embeddings.numpy() for n in ("tok", "segment", "pos"))
    W1, b1 = model.get_layer("hidden").get_weights()
    W2, b2 = model.get_layer("top").get_weights()
    positions = np.broadcast_to(np.arange(SEQ), IDS.shape)
    assert set(explanation.embeddings) == {"segment", "pos"}
    for i in range(len(IDS)):
        want = ref.token_model_lrp0([tok, segment, pos], [IDS[i], SEGS[i], positions[i]],
                                    MASK[i], W1, b1, W2, b2, explanation.neuron[i])
        got = [explanation.relevance[0][i], explanation.embeddings["segment"][i],
               explanation.embeddings["pos"][i]]
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6)
    # integer inputs other than the token ids get no relevance
    assert explanation.relevance[0].shape == IDS.shape
    assert not np.any(explanation.relevance[1]) and not np.any(explanation.relevance[2])


def test_padding_gets_exactly_zero(explanation):
    padded = MASK == 0
    assert not np.any(explanation.relevance[0][padded])
    for share in explanation.embeddings.values():
        assert not np.any(share[padded])
    assert np.all(explanation.relevance[0][~padded] != 0)


def test_shares_conserve_without_biases():
    analyzer = dk.LRP(_token_model(bias=False), dk.rules.Epsilon(0.0))
    explanation = analyzer.explain(X)
    properties = explanation.properties()
    np.testing.assert_allclose(properties.relative_error, 0.0, atol=1e-5)
    total = explanation.relevance[0].sum(1) + sum(s.sum(1) for s in explanation.embeddings.values())
    np.testing.assert_allclose(total, explanation.explained, rtol=1e-5)


def test_features_option_keeps_the_embedding_axis(model, explanation):
    features = dk.LRP(model, dk.rules.Epsilon(0.0), token_relevance="features").explain(X)
    assert features.relevance[0].shape == (*IDS.shape, DIM)
    assert features.embeddings["pos"].shape == (*IDS.shape, DIM)
    np.testing.assert_allclose(features.relevance[0].sum(-1), explanation.relevance[0],
                               rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="token_relevance must be one of"):
        dk.LRP(model, token_relevance="tokens")


def test_token_input_choice(model, explanation):
    chosen = dk.LRP(model, dk.rules.Epsilon(0.0), token_input="seg").explain(X)
    assert set(chosen.embeddings) == {"tok", "pos"}
    np.testing.assert_allclose(chosen.relevance[1], explanation.embeddings["segment"], rtol=1e-5)
    np.testing.assert_allclose(chosen.embeddings["tok"], explanation.relevance[0], rtol=1e-5)
    assert not np.any(chosen.relevance[0])
    with pytest.raises(ValueError, match="'padding_mask' is read by no embedding"):
        dk.LRP(model, token_input="padding_mask")
    with pytest.raises(ValueError, match="names no model input"):
        dk.LRP(model, token_input="words")


def test_several_neurons_carry_their_shares(analyzer, explanation):
    every = analyzer.explain(X, "all")
    assert every.embeddings["pos"].shape == (2, 3, SEQ)
    rows = np.arange(2)
    np.testing.assert_allclose(every.embeddings["pos"][rows, explanation.neuron],
                               explanation.embeddings["pos"], rtol=1e-5, atol=1e-7)
    empty = analyzer.explain([a[:0] for a in X])
    assert empty.relevance[0].shape == (0, SEQ) and empty.embeddings["pos"].shape == (0, SEQ)


def test_mask_zero_is_applied_and_padding_gets_zero():
    keras.utils.set_random_seed(3)
    ids = keras.Input((SEQ,), dtype="int32")
    e = keras.layers.Embedding(10, DIM, mask_zero=True)(ids)
    h = keras.layers.Dense(5)(e)
    out = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling1D()(h))
    model = keras.Model(ids, out)
    analyzer = dk.LRP(model, dk.rules.Epsilon(0.0))
    np.testing.assert_allclose(analyzer.predict(IDS), model(IDS), rtol=1e-5, atol=1e-7)
    relevance = analyzer.analyze(IDS)  # conftest also checks predict == model
    assert not np.any(relevance[IDS == 0]) and np.all(relevance[IDS != 0] != 0)


def test_masks_reach_inside_expanded_layers():
    """MultiHeadAttention reads its inputs' Keras masks inside ``call``: the expanded graph
    gets them as inputs, so its forward pass is the model's (checked call by call with
    plain forward behaviours: attention rules are not this test's subject)."""
    from dtd_keras.engine.graph import walk
    from dtd_keras.engine.passes import forward_values
    from dtd_keras.layers.base import LayerRelevance
    from dtd_keras.layers.registry import expands

    keras.utils.set_random_seed(4)
    ids = keras.Input((SEQ,), dtype="int32")
    e = keras.layers.Embedding(10, 8, mask_zero=True)(ids)
    h = keras.layers.MultiHeadAttention(2, 4)(e, e)
    out = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling1D()(h))
    model = keras.Model(ids, out)
    graph = walk(model, expand=expands)
    attention = next(c for c in graph.calls if "dot_product_attention" in c.name)
    assert len(attention.inputs) == 4  # query, key, value and the padding mask
    steps = [(LayerRelevance(c, graph), None) for c in graph.calls]
    values = forward_values(steps, graph.inputs, [tf.constant(IDS)])
    np.testing.assert_allclose(values[graph.output], model(IDS), rtol=1e-5, atol=1e-7)


class Positions(keras.layers.Layer):
    """A learned position table sliced to the sequence length (keras-hub style)."""

    def __init__(self, length, **kwargs):
        super().__init__(**kwargs)
        self.length = length

    def build(self, shape):
        self.table = self.add_weight(shape=(self.length, shape[-1]),
                                     initializer=keras.initializers.RandomUniform(-1, 1, seed=2))

    def call(self, x):
        table = self.table[: keras.ops.shape(x)[1]]
        return keras.ops.broadcast_to(table, keras.ops.shape(x))


class PositionsRelevance(PositionTable):
    @property
    def table_length(self):
        return self.layer.length


@pytest.fixture(scope="module")
def free_length():
    """Token ids of any length, a position table of SEQ rows."""
    dk.register_layer(Positions, PositionsRelevance)
    keras.utils.set_random_seed(5)
    ids = keras.Input((None,), dtype="int32", name="ids")
    e = keras.layers.Embedding(10, DIM, name="tok")(ids)
    x = keras.layers.Add()([e, Positions(SEQ, name="positions")(e)])
    out = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling1D()(x))
    return dk.LRP(keras.Model(ids, out), dk.rules.Epsilon(0.0))


def test_position_table_share(free_length):
    explanation = free_length.explain(IDS[:, :4])
    assert explanation.embeddings["positions"].shape == (2, 4)
    np.testing.assert_allclose(explanation.properties().relative_error, 0.0, atol=1e-5)
    with pytest.raises(ValueError, match=r"position table 'positions' \(Positions\) holds 6 "
                                         r"positions.*sequence of 7"):
        free_length.explain(np.ones((1, 7), np.int32))


def test_bad_token_input(analyzer, free_length):
    bad = IDS.copy()
    bad[1, 2] = 12
    with pytest.raises(ValueError, match=r"input 0 \('ids'\) holds token id 12 at position "
                                         r"\(1, 2\).*'tok' \(Embedding\): it has 12 rows"):
        analyzer.explain([bad, SEGS, MASK])
    bad[1, 2] = -1
    with pytest.raises(ValueError, match=r"token id -1 at position \(1, 2\)"):
        analyzer.explain([bad, SEGS, MASK])
    with pytest.raises(ValueError, match=r"input 0 \('ids'\) takes int32 values.*got float"):
        analyzer.explain([IDS.astype(np.float32), SEGS, MASK])
    with pytest.raises(ValueError, match=r"input 0 \('ids'\) is ragged.*lengths \[2, 3\]"):
        free_length.explain([[1, 2], [3, 4, 5]])
    with pytest.raises(ValueError, match=r"input 2 \('padding_mask'\) has shape \(2, 5\)"):
        analyzer.explain([IDS, SEGS, MASK[:, :5]])


def test_positions_beyond_an_embedding_table_are_named():
    keras.utils.set_random_seed(6)
    ids = keras.Input((None,), dtype="int32", name="ids")
    positions = keras.ops.cumsum(keras.ops.ones_like(ids), axis=1) - 1
    x = keras.layers.Add()([keras.layers.Embedding(10, DIM, name="tok")(ids),
                            keras.layers.Embedding(4, DIM, name="pos")(positions)])
    analyzer = dk.LRP(keras.Model(ids, keras.layers.Dense(2)(x)), dk.rules.Epsilon(0.0))
    with pytest.raises(ValueError, match=r"'pos' \(Embedding\) receives id 4 at position "
                                         r"\(0, 4\).*longer than this position table"):
        analyzer.explain(np.ones((1, 5), np.int32))


def test_float_ids_into_an_embedding():
    ids = keras.Input((3,), name="ids")  # float32: Keras' Embedding casts (truncates)
    out = keras.layers.Dense(1)(keras.layers.Flatten()(keras.layers.Embedding(5, 2)(ids)))
    analyzer = dk.LRP(keras.Model(ids, out))
    assert analyzer.analyze(np.array([[1.0, 2.0, 3.0]])).shape == (1, 3)
    with pytest.raises(ValueError, match=r"input 0 \('ids'\) feeds embedding .* float values "
                                         r"that are not token ids: 2.5 at position \(0, 1\)"):
        analyzer.explain(np.array([[1.0, 2.5, 3.0]]))


def test_export_token_model(analyzer, explanation, tmp_path):
    path = analyzer.export(tmp_path / "tokens")
    loaded = tf.saved_model.load(str(path))
    out = loaded.signatures["serving_default"](**{f"input_{i}": tf.constant(a)
                                                  for i, a in enumerate(X)})
    np.testing.assert_allclose(out["relevance_0"], explanation.relevance[0], rtol=1e-5,
                               atol=1e-7)
    np.testing.assert_allclose(out["embedding_pos"], explanation.embeddings["pos"], rtol=1e-5,
                               atol=1e-7)
    bad = IDS.copy()
    bad[0, 0] = 40
    with pytest.raises(tf.errors.InvalidArgumentError, match="outside the vocabulary of "
                                                             "embedding .{1,3}tok"):
        loaded.signatures["serving_default"](input_0=tf.constant(bad), input_1=tf.constant(SEGS),
                                             input_2=tf.constant(MASK))
