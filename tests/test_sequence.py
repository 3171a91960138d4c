"""Sequence layers, value-moving ``keras.ops``, merges, gradient baselines on any model,
and refusals listing every gap (issue 14, section 2). Numbers are compared with the
independent numpy reference in tests/reference.py."""

import importlib.util
import os
import warnings

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

import dtd_keras as dk  # noqa: E402
from dtd_keras.errors import UnsupportedLayerError  # noqa: E402
from dtd_keras.layers import LayerRelevance  # noqa: E402
from dtd_keras.layers import registry as layer_registry  # noqa: E402

try:  # tests/ as plain directory (pytest's default rootdir/prepend import)
    import reference as ref  # noqa: E402
except ImportError:  # tests/ as a package
    from tests import reference as ref  # noqa: E402

L = keras.layers
ops = keras.ops
RTOL = 1e-5


def assert_matches(lib, expected, rtol=RTOL):
    expected = np.asarray(expected, dtype=np.float64)
    scale = float(np.abs(expected).max())
    assert scale > 0, "reference relevance is all zero: the test would be vacuous"
    np.testing.assert_allclose(np.asarray(lib), expected, rtol=rtol, atol=rtol * scale)


def randomized(model, seed, gain=1.5):
    """Seeded fan-in scaled kernels and small negative biases (live ReLUs)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        target = getattr(layer, "layer", layer)
        weights = target.get_weights()
        if not weights:
            continue
        fan_in = int(np.prod(weights[0].shape[:-1]))
        new = [rng.normal(0.0, gain / np.sqrt(fan_in), weights[0].shape).astype("float32")]
        new += [-np.abs(rng.normal(0.0, 0.1, w.shape)).astype("float32") for w in weights[1:]]
        target.set_weights(new)
    return model


# ---------------------------------------------------------------------------
# Conv1D (dilated, causal), global pooling over time, TimeDistributed: vs the reference
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sequence_nets():
    """Two Sequential sequence CNNs and a positive batch."""
    rng = np.random.default_rng(3)
    x = rng.uniform(0.0, 1.0, (3, 9, 3)).astype("float32")

    def conv_net(pool):
        return randomized(keras.Sequential([
            keras.Input((9, 3)),
            L.Conv1D(4, 3, dilation_rate=2, padding="causal", activation="relu"),
            L.Conv1D(5, 2, dilation_rate=3, activation="relu"),
            pool(),
            L.Dense(3)]), 11)

    distributed = randomized(keras.Sequential([
        keras.Input((9, 3)),
        L.TimeDistributed(L.Dense(4, activation="relu")),
        L.Conv1D(3, 2, activation="relu"),
        L.Flatten(),
        L.Dense(3)]), 1)
    return x, {"gap": conv_net(L.GlobalAveragePooling1D),
               "gmp": conv_net(L.GlobalMaxPooling1D), "td": distributed}


def test_reference_causal_dilated_conv_is_keras():
    """The reference's causal, dilated Conv1D matrix computes what Keras computes."""
    layer = L.Conv1D(2, 3, dilation_rate=2, padding="causal")
    x = np.random.default_rng(0).normal(size=(1, 7, 3)).astype("float32")
    y = np.asarray(layer(x))
    W, b, _, shape = ref.conv_as_matrix(layer, x.shape)
    np.testing.assert_allclose((W.T @ x.reshape(-1) + b).reshape(shape), y[0], atol=1e-5)


@pytest.mark.parametrize("net", ["gap", "gmp", "td"])
def test_sequence_nets_match_the_reference(sequence_nets, net):
    """DTD (box input, then z⁺) and LRP-ε on dilated/causal Conv1D, global average and
    max pooling over time and TimeDistributed(Dense): the reference's numbers."""
    x, nets = sequence_nets
    model = nets[net]
    box = dk.DTD(model, input_domain=dk.Box(0.0, 1.0))
    assert_matches(box.analyze(x), ref.reference_relevance(model, x, input_domain=(0.0, 1.0)))
    eps = dk.LRP(model, dk.rules.Epsilon(0.01))
    specs = {"global_average_pooling1d": ("zflat",)} if net == "gap" else {}
    spec = ref.constant_rule(("epsilon", 0.01), layer_specs={
        layer.name: specs["global_average_pooling1d"] for layer in model.layers
        if type(layer).__name__ == "GlobalAveragePooling1D"})
    assert_matches(eps.analyze(x, neuron=1), ref.reference_relevance(model, x, 1, spec))


def test_time_distributed_takes_the_inner_layers_rule(sequence_nets):
    """TimeDistributed(Dense) gets the rule Dense would get at that place (DTD by domain,
    LRP's rule and layer_rules by the wrapper's name), and K neurons at once equal K
    single explanations."""
    x, nets = sequence_nets
    model = nets["td"]
    name = model.layers[0].name
    assert dk.DTD(model, input_domain="positive").rules[name] == dk.rules.ZPlus()
    assert dk.DTD(model).rules[name] == dk.rules.W2()
    gamma = dk.rules.Gamma(0.5)
    lrp = dk.LRP(model, layer_rules={name: gamma})
    assert lrp.rules[name] == gamma
    many = lrp.analyze(x, neuron="all")
    for k in range(3):
        np.testing.assert_allclose(many[:, k], lrp.analyze(x, neuron=k), rtol=1e-5, atol=1e-6)


def test_time_distributed_refusals():
    """A wrapped layer with no rule, a wrapped layer whose activation has none, and a box
    whose bounds change over time are refused, each naming the wrapper."""
    inp = keras.Input((4, 3))
    for inner, match in ((Opaque(name="custom"), "'td' \\(TimeDistributed\\) wraps 'custom'"),
                         (L.Dense(2, activation="exponential", name="exp"),
                          "'td/exp' \\(Dense\\) applies activation 'exponential'")):
        model = keras.Model(inp, L.Flatten()(L.TimeDistributed(inner, name="td")(inp)))
        with pytest.raises(UnsupportedLayerError, match=match):
            dk.LRP(model)
    model = keras.Model(inp, L.Flatten()(L.TimeDistributed(L.Dense(2), name="td_dense")(inp)))
    low = np.zeros((4, 3), np.float32)
    low[2] = -1.0
    with pytest.raises(UnsupportedLayerError, match="'td_dense'.*differ between time steps"):
        dk.DTD(model, input_domain=dk.Box(low, 1.0))


# ---------------------------------------------------------------------------
# keras.ops that move values; merges
# ---------------------------------------------------------------------------


def _moves(x, np_like):
    """One pipeline of value-moving ops, written for keras.ops and for numpy."""
    if np_like is np:
        t = np.transpose(x, (0, 2, 1)).reshape(x.shape[0], -1)
        cls = x[:, 0]
        first, second = np.split(x, 2, axis=-1)
        tail = np.take(second, [3, 1, 1], axis=1)[:, :, ::-1].reshape(x.shape[0], -1)
        grid = np.tile(np.stack([cls, x[:, 2]], axis=1), (1, 2, 1)).reshape(x.shape[0], -1)
        squeezed = np.squeeze(np.expand_dims(first[:, -1], 1), 1)
        return np.concatenate([t, tail, grid, squeezed, np.repeat(cls, 2, axis=-1)], -1)
    t = ops.reshape(ops.transpose(x, (0, 2, 1)), (-1, x.shape[1] * x.shape[2]))
    cls = x[:, 0]
    first, second = ops.split(x, 2, axis=-1)
    tail = ops.reshape(ops.flip(ops.take(second, [3, 1, 1], axis=1), axis=-1), (-1, 6))
    grid = ops.reshape(ops.tile(ops.stack([cls, x[:, 2]], axis=1), (1, 2, 1)), (-1, 16))
    squeezed = ops.squeeze(ops.expand_dims(first[:, -1], 1), 1)
    return ops.concatenate([t, tail, grid, squeezed, ops.repeat(cls, 2, axis=-1)], -1)


def test_value_moving_ops_move_relevance_like_the_reference():
    """transpose, reshape, x[:, 0], split, take, flip, stack, tile, expand_dims, squeeze,
    concatenate, repeat in functional code: LRP-0 of the Dense on top, then each value's
    relevance back to where it was copied from (copies summed)."""
    inp = keras.Input((5, 4))
    dense = L.Dense(2, use_bias=False)
    model = keras.Model(inp, dense(_moves(inp, ops)))
    randomized(model, 2)
    x = np.random.default_rng(1).normal(size=(2, 5, 4)).astype("float32")
    got = dk.LRP(model, dk.rules.Epsilon(0.0)).analyze(x, neuron=0)
    W = dense.get_weights()[0].astype(np.float64)
    index = _moves(np.arange(20).reshape(1, 5, 4), np)[0]
    for n in range(2):
        features = x[n].reshape(-1)[index]
        upper = ref.z(W, features, np.array([features @ W[:, 0], 0.0]))
        assert_matches(got[n], ref.moved_relevance(index, upper, 20).reshape(5, 4))


def test_integer_operands_and_casts_carry_no_relevance():
    """take_along_axis with an integer index input: the index gets none; a float→float
    cast passes relevance unchanged; a mask cast to float starts no relevance."""
    x_in = keras.Input((6,))
    idx = keras.Input((3,), dtype="int32")
    mask = keras.Input((3,), dtype="int32")
    picked = ops.take_along_axis(ops.cast(x_in, "float32"), idx, axis=1)
    out = L.Dense(1, use_bias=False)(picked * ops.cast(mask, "float32"))
    model = keras.Model([x_in, idx, mask], out)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 6)).astype("float32")
    ids = np.array([[0, 2, 2], [5, 1, 0]], np.int32)
    ones = np.ones((2, 3), np.int32)
    rx, rid, rmask = dk.LRP(model, dk.rules.Epsilon(0.0)).analyze([x, ids, ones])
    w = model.layers[-1].get_weights()[0][:, 0]
    expected = np.zeros((2, 6))
    for n in range(2):
        np.add.at(expected[n], ids[n], x[n, ids[n]] * w)  # LRP-0, one output: x_i w_i
    assert_matches(rx, expected)
    assert not rid.any() and not rmask.any()


@pytest.fixture(scope="module")
def branches():
    rng = np.random.default_rng(6)
    xs = [rng.normal(size=(4, 5)).astype("float32") for _ in range(2)]
    xs[1][0, :2] = xs[0][0, :2]  # ties for Maximum/Minimum
    xs[1][1] = xs[0][1]  # a − b cancels exactly
    return xs


@pytest.mark.parametrize("kind,add", [("maximum", "proportional"), ("minimum", "positive"),
                                      ("average", "proportional"), ("average", "positive"),
                                      ("subtract", "proportional"), ("subtract", "positive")])
@pytest.mark.parametrize("as_op", [False, True])
def test_merges_match_the_reference(branches, kind, add, as_op):
    """Maximum/Minimum (winner, ties to the first), Average (as Add) and Subtract (Add on
    a and −b), as layers and as keras.ops, under LRP-0 of a Dense on top."""
    if as_op and kind == "average":
        pytest.skip("keras.ops.average is a reduction along an axis, not a merge")
    a, b = keras.Input((5,)), keras.Input((5,))
    if as_op:
        merged = getattr(ops, kind)(a, b)
    else:
        merged = getattr(L, kind.capitalize())()([a, b])
    dense = L.Dense(1, use_bias=False)
    model = randomized(keras.Model([a, b], dense(merged)), 8)
    got = dk.LRP(model, dk.rules.Epsilon(0.0), add=add).analyze(branches, neuron=0)
    w = dense.get_weights()[0][:, 0].astype(np.float64)
    upper = merged_values(model, branches) * w  # LRP-0 with one output neuron: R_i = m_i w_i
    expected = ref.merge_relevance(kind, branches, upper, add)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)
    assert any(np.abs(e).max() > 0 for e in expected)


def merged_values(model, xs):
    """The merge's output (the Dense's input) as Keras computes it."""
    inner = keras.Model(model.inputs, model.layers[-1].input)
    return np.asarray(inner(xs), np.float64)


def test_subtract_positive_gives_nothing_to_a_subtracted_positive_value():
    """add="positive" on a − b: b > 0 pushes the output down, so it gets no relevance."""
    a, b = keras.Input((3,)), keras.Input((3,))
    model = keras.Model([a, b], L.Dense(1, kernel_initializer="ones",
                                         use_bias=False)(L.Subtract()([a, b])))
    xa = np.array([[2.0, 1.0, 3.0]], np.float32)
    xb = np.array([[1.0, -1.0, 0.5]], np.float32)
    ra, rb = dk.DTD(model, hidden_real_rule=dk.rules.ZSign()).analyze([xa, xb])
    assert rb[0, 0] == 0 and rb[0, 2] == 0 and rb[0, 1] > 0
    assert np.isclose(ra.sum() + rb.sum(), float(np.sum(xa - xb)), rtol=1e-5)


# ---------------------------------------------------------------------------
# Gradient baselines on any model
# ---------------------------------------------------------------------------


class TwoLayer(keras.Model):
    """A subclassed model (no graph): tanh hidden layer, softmax output."""

    def __init__(self):
        super().__init__()
        self.hidden = L.Dense(4, activation="tanh")
        self.out = L.Dense(3, activation="softmax")

    def call(self, x):
        return self.out(self.hidden(x))


def test_gradient_baselines_on_a_subclassed_model():
    """The output is explained as it is (softmax included), with a warning; the numbers
    are the analytic gradient of the top probability, written out in numpy."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 5)).astype("float32")
    model = TwoLayer()
    model(x)
    with pytest.warns(UserWarning, match="subclassed.*explained as it is"):
        grad = dk.create_analyzer("gradient", model)
    with pytest.warns(UserWarning):
        ixg = dk.create_analyzer("input_x_gradient", model)
    W1, b1 = (w.astype(np.float64) for w in model.hidden.get_weights())
    W2, b2 = (w.astype(np.float64) for w in model.out.get_weights())
    h = np.tanh(x @ W1 + b1)
    z = h @ W2 + b2
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    k = p.argmax(1)
    dz = p[np.arange(3), k][:, None] * (np.eye(3)[k] - p)  # ∂p_k/∂z
    expected = ((dz @ W2.T) * (1 - h ** 2)) @ W1.T
    explanation = grad.explain(x)
    np.testing.assert_allclose(explanation.explained, p[np.arange(3), k], rtol=1e-5)
    assert_matches(explanation.relevance, expected, rtol=1e-4)
    assert_matches(ixg.analyze(x), x * expected, rtol=1e-4)
    assert grad.analyze(x, neuron="all").shape == (3, 3, 5)


def test_gradient_on_tokens_is_taken_at_the_embedding():
    """Token ids: gradient at the Embedding's output, summed over the features; input ×
    gradient sums embedding ⊙ gradient; an integer input no Embedding reads gets zeros;
    the softmax head is stripped (the logit is explained)."""
    tokens = keras.Input((4,), dtype="int32")
    mask = keras.Input((4,), dtype="int32")
    emb = L.Embedding(7, 3)
    h = emb(tokens) * ops.expand_dims(ops.cast(mask, "float32"), -1)
    dense = L.Dense(2, activation="softmax")
    model = keras.Model([tokens, mask], dense(L.Flatten()(h)))
    ids = np.array([[1, 6, 0, 3], [2, 2, 5, 4]], np.int32)
    keep = np.array([[1, 1, 1, 0], [1, 0, 1, 1]], np.int32)
    W = dense.get_weights()[0].astype(np.float64).reshape(4, 3, 2)
    E = emb.get_weights()[0].astype(np.float64)
    for name, times in (("gradient", False), ("input_x_gradient", True)):
        r_tokens, r_mask = dk.create_analyzer(name, model).analyze([ids, keep], neuron=1)
        g = W[None, :, :, 1] * keep[:, :, None]  # ∂ logit_1 / ∂ e_t
        expected = (E[ids] * g if times else g).sum(-1)
        assert_matches(r_tokens, expected)
        assert r_tokens.shape == (2, 4) and not r_mask.any()
        with pytest.raises(ValueError, match=r"token id 7 at \(1, 2\).*input_dim=7"):
            dk.create_analyzer(name, model).analyze([np.where(ids == 5, 7, ids), keep])


def test_gradient_takes_layers_without_a_rule():
    """A layer no analyzer has a rule for (a TensorFlow-coded Lambda) does not stop the
    gradient: it equals tf.GradientTape's on the model itself."""
    inp = keras.Input((5,))
    h = L.Lambda(lambda t: tf.math.sin(t) * 2.0)(L.Dense(4)(inp))
    model = keras.Model(inp, L.Dense(3)(h))
    x = np.random.default_rng(2).normal(size=(2, 5)).astype("float32")
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = model(xt)[:, 2]
    assert_matches(dk.create_analyzer("gradient", model).analyze(x, neuron=2),
                   tape.gradient(y, xt).numpy())


# ---------------------------------------------------------------------------
# Refusals: once, every gap
# ---------------------------------------------------------------------------


class Opaque(L.Layer):
    """A custom layer with a registered behaviour whose domain mapping refuses."""

    def call(self, x):
        return x * 2.0

    def compute_output_shape(self, input_shape):
        return input_shape


class RefusesDomains(LayerRelevance):
    def domains(self, domains):
        raise UnsupportedLayerError(f"layer {self.call.description} cannot map its domain")


def test_a_refused_model_lists_every_gap(monkeypatch):
    """Three different unsupported layers (TensorFlow code in a Lambda, an activation
    with no rule, a Multiply of three branches) and a gap found later (mapping domains):
    one error names all four."""
    monkeypatch.setitem(layer_registry.LAYER_RELEVANCE, Opaque, RefusesDomains)
    inp = keras.Input((6,))
    h = L.Lambda(lambda t: tf.math.sin(t), name="tf_code")(L.Dense(6)(inp))
    h = L.Dense(6, activation="exponential", name="exp_dense")(h)
    h = L.Multiply(name="three_way")([h, h, inp])
    h = Opaque(name="opaque")(h)
    model = keras.Model(inp, L.Dense(2)(h))
    with pytest.raises(UnsupportedLayerError) as caught:
        dk.LRP(model)
    message = str(caught.value)
    assert "has 4 layers that cannot be explained" in message
    for name in ("'tf_code'", "'exp_dense' (Dense)", "'three_way' (Multiply)",
                 "'opaque' (Opaque)"):
        assert name in message


# ---------------------------------------------------------------------------
# A real sequence CNN: deepcut's trained Thai word segmenter
# ---------------------------------------------------------------------------


def _deepcut_dir():
    """The unpacked deepcut package (PyPI wheel): $DTD_KERAS_DEEPCUT or an installed one."""
    where = os.environ.get("DTD_KERAS_DEEPCUT")
    if where is None:
        spec = importlib.util.find_spec("deepcut")
        where = spec.submodule_search_locations[0] if spec else None
    if where and os.path.exists(os.path.join(where, "weight", "cnn_without_ne_ab.h5")):
        return where
    return None


def deepcut_model(weights):
    """deepcut's architecture (model.py, get_convo_nn2) rebuilt in Keras 3; its Keras 2.0
    weights file loaded by layer name."""
    import h5py

    chars = keras.Input((21,), dtype="int32", name="chars")
    kinds = keras.Input((21,), dtype="int32", name="char_types")
    a = L.BatchNormalization(name="batch_normalization_1")(
        L.SpatialDropout1D(0.15)(L.Embedding(178, 32, name="embedding_1")(chars)))
    units = []
    for w in range(1, 13):
        filters = 200 if w <= 8 else 150 if w <= 11 else 100
        out = L.Conv1D(filters, w, activation="relu", name=f"conv1d_{w}")(a)
        out = L.TimeDistributed(L.Dense(5), name=f"time_distributed_{w}")(out)
        units.append(L.ZeroPadding1D((0, w - 1))(out))
    b = L.SpatialDropout1D(0.15)(L.Embedding(12, 12, name="embedding_2")(kinds))
    x = L.Concatenate()([a, L.Maximum(name="maximum_1")(units), b])
    x = L.Flatten()(L.BatchNormalization(name="batch_normalization_2")(x))
    x = L.Dense(100, activation="relu", name="dense_13")(x)
    model = keras.Model([chars, kinds], L.Dense(1, activation="sigmoid", name="dense_14")(x))
    with h5py.File(weights, "r") as f:
        for layer in model.layers:
            if layer.weights and layer.name in f:
                stored = {k.split(":")[0]: np.asarray(v)
                          for k, v in f[layer.name][layer.name].items()}
                target = getattr(layer, "layer", layer)
                target.set_weights([stored[v.name] for v in target.weights])
    return model


class TokenSum(LayerRelevance):
    """Stand-in Embedding behaviour while none is registered: a token's relevance is its
    embedding's, summed over the features."""

    def relevance(self, inputs, outputs, relevances, rule=None):
        return [tf.reduce_sum(relevances[0], axis=-1)]


def test_deepcut_word_segmenter_is_explained(monkeypatch):
    """Embedding, BatchNormalization, twelve Conv1D → TimeDistributed(Dense) →
    ZeroPadding1D branches, Maximum, Concatenate: explained by DTD, not refused (the
    gradient baselines are checked on token models above)."""
    where = _deepcut_dir()
    if where is None:
        pytest.skip("deepcut's weights are absent (unpack its wheel; set DTD_KERAS_DEEPCUT)")
    if keras.layers.Embedding not in layer_registry.LAYER_RELEVANCE:
        monkeypatch.setitem(layer_registry.LAYER_RELEVANCE, keras.layers.Embedding, TokenSum)
    spec = importlib.util.spec_from_file_location("deepcut_utils", os.path.join(where, "utils.py"))
    utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(utils)
    model = deepcut_model(os.path.join(where, "weight", "cnn_without_ne_ab.h5"))
    text = "ตัดคำได้ดีมาก"
    chars, kinds = (a.astype(np.int32) for a in utils.create_feature_array(text))
    starts = np.asarray(model([chars, kinds])).ravel() > 0.5  # word starts (the weights work)
    assert [i for i in range(1, len(text)) if starts[i]] == [3, 5, 8, 10]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DTD: hidden layers read real values (ZSign)
        dtd = dk.DTD(model)
    # DTD's rules here (z⁺, zˢⁱᵍⁿ, w² through BatchNorm) are positive and never create
    # relevance: a positive logit gives a positive map summing to at most the logit
    explanation = dtd.explain([chars, kinds], neuron=0)
    up = explanation.explained > 0
    assert up.sum() >= 3
    maps = np.concatenate([r.reshape(len(text), -1) for r in explanation.relevance], axis=1)
    assert np.all(np.isfinite(maps)) and maps.shape == (len(text), 42)
    assert np.all(maps[up] >= -1e-6 * explanation.explained[up, None])
    assert np.all(maps[up].sum(1) <= explanation.explained[up] * (1 + 1e-5))
    assert np.all(maps[up].sum(1) > 0)
