"""AttnLRP and CP-LRP (issue 14): the attention rules against the independent numpy
reference (tests/reference.py), on every layer/op type that uses them:
``keras.ops.dot_product_attention`` (MultiHeadAttention without explicit scores),
the ``Softmax`` layer with a mask and ``einsum`` (MultiHeadAttention with dropout), and
hand-written ``einsum``/``ops.softmax``/``matmul`` attention."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

import dtd_keras as dk
from dtd_keras.analyzers import AttnLRP
from dtd_keras.errors import UnsupportedLayerError
from dtd_keras.rules import bilinear_relevance, constant_left_relevance, softmax_relevance

try:
    import reference as ref
except ImportError:  # pragma: no cover
    from tests import reference as ref

EPS = 1e-6
T, S, D = 4, 3, 6
MODES = ("attn_lrp", "cp_lrp")


def _randomize(model, seed):
    """Random weights and biases everywhere (biases too: they must absorb)."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype("float32")
                       for w in model.get_weights()])
    return model


def _mha_model(kind):
    """Cross-attention (query x, key/value x2, attention_mask) through MHA, then a
    Dense head. ``"dpa"``: the dot_product_attention op; ``"softmax"`` (dropout > 0):
    einsum + Softmax(mask) + einsum. ``"causal"``: self-attention, use_causal_mask."""
    keras.utils.set_random_seed(1)
    x = keras.Input((T, D), name="x")
    if kind.startswith("causal"):  # "causal_dropout": Keras builds the mask itself
        inputs = x
        mha = keras.layers.MultiHeadAttention(
            2, 3, dropout=0.1 if kind == "causal_dropout" else 0.0, name="mha")
        y = mha(x, x, use_causal_mask=True)
    else:
        x2 = keras.Input((S, D), name="x2")
        mask = keras.Input((T, S), dtype="bool", name="mask")
        inputs = [x, x2, mask]
        mha = keras.layers.MultiHeadAttention(2, 3, dropout=0.1 if kind == "softmax" else 0.0,
                                              name="mha")
        y = mha(x, x2, attention_mask=mask)
    out = keras.layers.Dense(3, name="head")(keras.layers.Flatten()(y))
    return _randomize(keras.Model(inputs, out, name=f"mha_{kind}"), 2)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    keep = np.ones((2, T, S), bool)
    keep[:, :, 1] = False  # key 1 masked for every query
    keep[1, 2, 0] = False
    return (rng.normal(size=(2, T, D)).astype("float32"),
            rng.normal(size=(2, S, D)).astype("float32"), keep)


def _mha_reference(model, xq, xkv, keep, mode):
    """Reference relevance of (query input, key/value input) for the top logit."""
    mha, head = model.get_layer("mha"), model.get_layer("head")
    w = {v.path.split("/")[-2] + "/" + v.path.split("/")[-1]: np.asarray(v)
         for v in mha.weights}
    params = {"Wq": w["query/kernel"], "bq": w["query/bias"], "Wk": w["key/kernel"],
              "bk": w["key/bias"], "Wv": w["value/kernel"], "bv": w["value/bias"],
              "Wo": w["attention_output/kernel"], "bo": w["attention_output/bias"],
              "scale": 1 / np.sqrt(3)}
    y = np.asarray(mha(xq, xkv, attention_mask=keep), np.float64)
    Wd, bd = (np.asarray(v, np.float64) for v in head.weights)
    maps = []
    for n in range(len(xq)):
        logits = y[n].reshape(-1) @ Wd + bd
        top = np.where(np.arange(3) == logits.argmax(), logits, 0.0)
        r_y = ref.epsilon(Wd, bd, y[n].reshape(-1), top, EPS).reshape(T, D)
        maps.append(ref.attention_relevance(xq[n], xkv[n], params, r_y, mode, EPS,
                                            None if keep is None else keep[n]))
    return [np.stack(m) for m in zip(*maps)]


def _close(actual, expected, rtol=2e-4):
    scale = max(np.abs(expected).max(), 1e-12)
    np.testing.assert_allclose(actual, expected, atol=rtol * scale, rtol=0)


# ----------------------------------------------------------------- the rules alone
def test_softmax_rule_matches_reference_masked_inputs_get_zero():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 3, 5))
    R = rng.normal(size=(2, 3, 5))
    keep = rng.random((2, 3, 5)) > 0.3
    keep[..., 0] = True
    for k in (None, keep):
        logits = x if k is None else np.where(k, x, -1e9)
        s = tf.nn.softmax(tf.constant(logits, tf.float32), axis=-1)
        R_s = R * ref.softmax_np(x, k)  # relevance only where the output is nonzero
        got = softmax_relevance(tf.constant(logits, tf.float32), s,
                                tf.constant(R_s, tf.float32), -1,
                                None if k is None else tf.constant(k)).numpy()
        _close(got, ref.attn_softmax(x, R_s, k), 1e-5)
    assert np.all(got[~keep] == 0)


def test_bilinear_rules_match_reference_and_conserve():
    rng = np.random.default_rng(4)
    A, B, R = rng.normal(size=(3, 4)), rng.normal(size=(4, 5)), rng.normal(size=(3, 5))
    a, b, r = (tf.constant(t, tf.float32) for t in (A, B, R))
    got_a, got_b = bilinear_relevance(tf.matmul, a, b, r, EPS)
    want_a, want_b = ref.uniform_matmul(A, B, R, EPS)
    _close(got_a.numpy(), want_a, 1e-5)
    _close(got_b.numpy(), want_b, 1e-5)
    # no bias: the two factors together get all relevance (within the epsilon)
    assert np.isclose(got_a.numpy().sum() + got_b.numpy().sum(), R.sum(), rtol=1e-4)
    got_cp = constant_left_relevance(tf.matmul, a, b, r, EPS).numpy()
    _close(got_cp, ref.cp_matmul(A, B, R, EPS), 1e-5)
    assert np.isclose(got_cp.sum(), R.sum(), rtol=1e-4)
    # a zero product with epsilon 0 passes nothing, never inf/NaN
    zero_a, zero_b = bilinear_relevance(tf.matmul, tf.zeros((3, 4)), b, r, 0.0)
    assert np.all(zero_a.numpy() == 0) and np.all(zero_b.numpy() == 0)


# ------------------------------------------------------- MultiHeadAttention end to end
@pytest.mark.parametrize("kind", ["dpa", "softmax"])
@pytest.mark.parametrize("mode", MODES)
def test_cross_attention_with_mask_matches_reference(kind, mode, data):
    xq, xkv, keep = data
    model = _mha_model(kind)
    explanation = dk.create_analyzer(mode, model).explain([xq, xkv, keep])
    got_q, got_kv, got_mask = explanation.relevance
    want_q, want_kv = _mha_reference(model, xq, xkv, keep, mode)
    _close(got_q, want_q)
    _close(got_kv, want_kv)
    assert np.all(got_kv[:, 1] == 0)  # a masked key gets exactly zero
    assert np.all(got_mask == 0)  # the boolean mask carries no relevance
    if mode == "cp_lrp":  # attention constant: no relevance through the scores
        assert np.all(got_q == 0)


@pytest.mark.parametrize("kind", ["causal", "causal_dropout"])
@pytest.mark.parametrize("mode", MODES)
def test_causal_self_attention_matches_reference(mode, kind, data):
    xq = data[0]
    model = _mha_model(kind)
    analyzer = AttnLRP(model, mode)
    got = analyzer.explain(xq).relevance
    causal = np.tril(np.ones((T, T), bool))
    want_q, want_kv = _mha_reference(model, xq, xq, np.broadcast_to(causal, (2, T, T)), mode)
    _close(got, want_q + want_kv)
    # several neurons per sample: the same maps as one by one
    many = analyzer.explain(xq, "all").relevance
    _close(many[:, 1], analyzer.explain(xq, 1).relevance, 1e-5)


# ------------------------------------------------- hand-written attention with keras.ops
@pytest.fixture(scope="module")
def ops_model():
    keras.utils.set_random_seed(5)
    x = keras.Input((T, D))
    q, k, v = (keras.layers.Dense(3, name=n)(x) for n in ("q", "k", "v"))
    probs = ops.softmax(ops.einsum("btd,bsd->bts", q, k) * 0.5, axis=-1)
    y = keras.layers.Dense(D, name="o")(ops.matmul(probs, v))
    out = keras.layers.Dense(3, name="head")(keras.layers.Flatten()(y))
    return _randomize(keras.Model(x, out), 6)


@pytest.mark.parametrize("mode", MODES)
def test_ops_attention_matches_reference(mode, ops_model, data):
    xq = data[0]
    got = dk.create_analyzer(mode, ops_model).explain(xq).relevance
    w = {layer.name: [np.asarray(t, np.float64) for t in layer.get_weights()]
         for layer in ops_model.layers if layer.get_weights()}
    params = {"scale": 0.5, "Wo": w["o"][0][None], "bo": w["o"][1]}
    for n in "qkv":
        params["W" + n], params["b" + n] = w[n][0][:, None], w[n][1][None]
    y = np.asarray(keras.Model(ops_model.input, ops_model.get_layer("o").output)(xq))
    Wd, bd = w["head"]
    want = []
    for n in range(len(xq)):
        logits = y[n].reshape(-1) @ Wd + bd
        top = np.where(np.arange(3) == logits.argmax(), logits, 0.0)
        r_y = ref.epsilon(Wd, bd, y[n].reshape(-1), top, EPS).reshape(T, D)
        want.append(sum(ref.attention_relevance(xq[n], xq[n], params, r_y, mode, EPS)))
    _close(got, np.stack(want))


def test_dot_product_attention_decomposition_is_the_op():
    """The rule's decomposition (scores, mask, softmax, mix) computes what the op does:
    grouped-query heads, a score bias, a mask, is_causal and a scale."""
    from dtd_keras.layers.attention import DotProductAttentionRelevance

    shapes = {"q": (T, 4, 2), "k": (T, 2, 2), "v": (T, 2, 2), "b": (4, T, T)}
    inputs = {n: keras.Input(s, name=n) for n, s in shapes.items()}
    inputs["m"] = keras.Input((1, T, T), dtype="bool", name="m")
    out = ops.dot_product_attention(inputs["q"], inputs["k"], inputs["v"], bias=inputs["b"],
                                    mask=inputs["m"], scale=0.3, is_causal=True)
    model = keras.Model(list(inputs.values()), keras.layers.Dense(2)(keras.layers.Flatten()(out)))
    step = next(s for s, _ in AttnLRP(model)._steps
                if isinstance(s, DotProductAttentionRelevance))
    rng = np.random.default_rng(9)
    values = [tf.constant(rng.normal(size=(2, *s)), tf.float32) for s in shapes.values()]
    values.append(tf.constant(rng.random((2, 1, T, T)) > 0.3))
    parts = step.parts(values)
    logits = parts["scores"](parts["query"], parts["key"])
    probs = tf.nn.softmax(tf.where(parts["keep"], logits, -1e30), axis=-1)
    mixed = parts["mix"](probs, parts["value"]).numpy()
    np.testing.assert_allclose(mixed, step.forward(values)[0].numpy(), rtol=1e-5, atol=1e-6)
    relevance = step.relevance(values, step.forward(values), [tf.ones_like(values[0])])
    assert relevance[3] is None and relevance[4] is None  # bias absorbs, mask carries none
    causal_hidden = ~np.tril(np.ones((T, T), bool))
    assert parts["keep"].numpy()[:, :, causal_hidden].sum() == 0


# ------------------------------------------------------------ analyzers and presets
def test_plain_lrp_uses_the_attnlrp_rules_and_presets_combine_with_layer_rules(data):
    xq = data[0]
    model = _mha_model("causal")
    attn_lrp = AttnLRP(model)
    attn = attn_lrp.explain(xq).relevance
    lrp = dk.LRP(model, dk.rules.Epsilon(EPS)).explain(xq).relevance
    np.testing.assert_array_equal(attn, lrp)
    gamma = dk.create_analyzer("cp_lrp", model, layer_rules={"head": dk.rules.Gamma(0.25)},
                               input_rule=dk.rules.Epsilon(0.1))
    assert gamma.rules["head"] == dk.rules.Gamma(0.25)
    for name, rule in gamma.rules.items():  # the projections reading x get the input rule
        reads_input = name.split("/")[1:2] in (["query"], ["key"], ["value"])
        assert rule == (dk.rules.Epsilon(0.1) if reads_input else
                        dk.rules.Gamma(0.25) if name == "head" else dk.rules.Epsilon(EPS))
    # a dataset store records the mode: AttnLRP and CP-LRP maps are never mixed
    from dtd_keras.datasets.identity import analyzer_config

    modes = {analyzer_config(a)["state"] for a in (attn_lrp, AttnLRP(model, "cp_lrp"))}
    assert modes == {"attention=attn_lrp, epsilon=1e-06", "attention=cp_lrp, epsilon=1e-06"}


def test_without_biases_cp_lrp_conserves_and_attn_lrp_differs_by_the_softmax_bias(data):
    keras.utils.set_random_seed(7)
    x = keras.Input((T, D))
    y = keras.layers.MultiHeadAttention(2, 3, use_bias=False)(x, x)
    out = keras.layers.Dense(3, use_bias=False)(keras.layers.Flatten()(y))
    model = _randomize(keras.Model(x, out), 8)
    cp = dk.create_analyzer("cp_lrp", model).explain(data[0])
    np.testing.assert_allclose(cp.relevance.sum((1, 2)), cp.explained, rtol=1e-4)
    attn = dk.create_analyzer("attn_lrp", model).explain(data[0])
    assert np.abs(attn.relevance.sum((1, 2)) - attn.explained).max() > 1e-3


def test_bad_configurations_are_refused():
    model = _mha_model("causal")
    with pytest.raises(ValueError, match="mode must be one of"):
        AttnLRP(model, "attention")
    with pytest.raises(ValueError, match="epsilon must be"):
        AttnLRP(model, epsilon=-1.0)
    x = keras.Input((T, D))
    three = ops.einsum("btd,bsd,bse->bte", x, x, x)
    with pytest.raises(UnsupportedLayerError, match=r"Einsum.*3 operands.*\(None, 4, 6\)"):
        AttnLRP(keras.Model(x, keras.layers.Flatten()(three)))
    everywhere = keras.layers.Flatten()(ops.softmax(keras.layers.Dense(2)(x), axis=None))
    with pytest.raises(UnsupportedLayerError, match=r"Softmax.*all axes.*\(None, 4, 2\)"):
        AttnLRP(keras.Model(x, keras.layers.Dense(2)(everywhere)))


def test_a_product_of_two_signals_splits_half_and_half_under_the_attention_analyzers():
    """A gated MLP ``(x·W₁) ⊙ silu(x·W₂)``: the uniform rule gives each factor half of
    each product's relevance (``a·b/ẑ ≈ 1``); plain LRP cannot tell signal from gate."""
    keras.utils.set_random_seed(4)
    x = keras.Input((5,))
    up = keras.layers.Dense(6, name="up")(x)
    gate = keras.layers.Dense(6, activation="silu", name="gate")(x)
    product = keras.layers.Multiply(name="product")([up, gate])
    model = keras.Model(x, keras.layers.Dense(2, name="down")(product))
    with pytest.raises(dk.UnsupportedLayerError, match=r"'product' \(Multiply\).*attn_lrp"):
        dk.LRP(model)
    inputs = np.random.default_rng(3).normal(size=(3, 5)).astype("float32")
    seen = {}

    def inspect(step, rule, lower):
        if step.call.name == "product":
            seen["lower"] = [np.asarray(r) for r in lower]

    analyzer = AttnLRP(model, "attn_lrp")
    e = analyzer.explain(inputs)
    values = analyzer._forward_values([tf.constant(inputs)])
    chosen = tf.constant(e.neuron)
    analyzer._relevance_graph((tf.constant(inputs),), chosen, inspect=inspect)
    r_up, r_gate = seen["lower"]
    np.testing.assert_allclose(r_up, r_gate, rtol=1e-4, atol=1e-7)
    # together they are the product's relevance: LRP-ε of `down` on the product
    w, b = (np.asarray(v, np.float64) for v in model.get_layer("down").weights)
    prod = np.asarray(values[analyzer.graph.calls[-1].inputs[0]], np.float64)
    top = np.zeros((3, 2))
    top[np.arange(3), e.neuron] = e.explained
    want = np.stack([ref.epsilon(w, b, prod[n], top[n], EPS) for n in range(3)])
    np.testing.assert_allclose(r_up + r_gate, want, rtol=1e-4, atol=1e-6)
