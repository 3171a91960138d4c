"""Layers of real models: each relevance rule checked against an independent reference.

Single linear layers are checked against the seed's matrix rules (tests/reference.py)
applied to the layer's matrix, read off by feeding it the unit basis; BatchNorm folding
against a hand-folded model; merges and re-indexing ops against numpy by hand.
"""

import warnings

import keras
import numpy as np
import pytest
import reference as ref
import tensorflow as tf

import dtd_keras as dk
from dtd_keras import rules

L = keras.layers
RULES = [
    (rules.W2(), ("w2",)), (rules.Z(), ("z",)), (rules.ZPlus(), ("zplus",)),
    (rules.ZBox(-1.0, 1.0), ("zbox", -1.0, 1.0)), (rules.Epsilon(0.1), ("epsilon", 0.1)),
    (rules.AlphaBeta(2, 1), ("alphabeta", 2.0, 1.0)), (rules.Gamma(0.25), ("gamma", 0.25)),
    (rules.Flat(), ("flat",)), (rules.ZFlat(), ("zflat",)),
]


def layer_matrix(model, shape):
    """(W, b) of a linear single-layer model, from its response to the unit basis."""
    size = int(np.prod(shape))
    basis = np.concatenate([np.zeros((1, size)), np.eye(size)]).reshape(-1, *shape)
    out = np.asarray(model(basis.astype("float32")), dtype=np.float64).reshape(size + 1, -1)
    return out[1:] - out[0], out[0]


def randomize(model, rng, bn_stats=True):
    for layer in model.layers:
        new = []
        for w in layer.weights:
            value = rng.normal(0, 1, w.shape)
            if "variance" in w.path:
                value = rng.uniform(0.5, 2.0, w.shape)
            new.append(value.astype("float32"))
        if new:
            layer.set_weights(new)


def single(layer, shape):
    model = keras.Sequential([keras.Input(shape), layer, L.Flatten()])
    randomize(model, np.random.default_rng(0))
    return model


LINEAR_LAYERS = {
    "depthwise": (lambda: L.DepthwiseConv2D(3, depth_multiplier=2, strides=2, padding="same"),
                  (5, 5, 2)),
    "separable": (lambda: L.SeparableConv2D(3, 3, depth_multiplier=2, padding="same"),
                  (4, 4, 2)),
    "transpose": (lambda: L.Conv2DTranspose(2, 3, strides=2, padding="same"), (3, 3, 2)),
    "avgpool": (lambda: L.AveragePooling2D(2, strides=2, padding="same"), (5, 5, 2)),
    "global_avg": (lambda: L.GlobalAveragePooling2D(), (3, 3, 2)),
    "batchnorm": (lambda: L.BatchNormalization(), (3, 2)),
}


@pytest.fixture(scope="module", params=sorted(LINEAR_LAYERS))
def linear_model(request):
    make, shape = LINEAR_LAYERS[request.param]
    return single(make(), shape), shape


@pytest.mark.parametrize("rule, spec", RULES, ids=[s[0] for _, s in RULES])
def test_linear_layers_match_the_matrix_rules(linear_model, rule, spec):
    model, shape = linear_model
    name = model.layers[0].name
    analyzer = dk.LRP(model, layer_rules={name: rule})
    x = np.random.default_rng(1).uniform(-1, 1, (2, *shape)).astype("float32")
    if spec[0] == "zflat":
        x[1] = 0.0  # every Σ_i z_ij vanishes: the flat branch
    W, b = layer_matrix(model, shape)
    mask = (W != 0).astype(np.float64)
    neuron = W.shape[1] // 2
    e = analyzer.explain(x, neuron=neuron)
    for i in range(2):
        flat_x = x[i].reshape(-1).astype(np.float64)
        logit = flat_x @ W[:, neuron] + b[neuron]
        np.testing.assert_allclose(e.explained[i], logit, rtol=1e-5, atol=1e-6)
        top = np.zeros(W.shape[1])
        top[neuron] = logit
        expected = ref.apply_rule(spec, W, b, flat_x, top, mask).reshape(shape)
        np.testing.assert_allclose(e.relevance[i], expected, rtol=1e-5,
                                   atol=1e-5 * np.abs(expected).max() + 1e-7)


def test_batchnorm_fold_uses_all_statistics():
    """Conv→BN→ReLU→Dense with random γ, β, mean, variance, ε: the analyzer folds the BN
    and gives the same maps as a hand-folded model."""
    rng = np.random.default_rng(2)
    inp = keras.Input((6, 6, 2))
    h = L.Conv2D(3, 3, name="conv")(inp)
    h = L.BatchNormalization(epsilon=0.3, name="bn")(h)
    h = L.ReLU()(h)
    out = L.Dense(4, name="top")(L.Flatten()(h))
    model = keras.Model(inp, out)
    randomize(model, rng)
    conv, bn, top = (model.get_layer(n) for n in ("conv", "bn", "top"))
    gamma, beta, mean, var = bn.get_weights()
    scale = gamma / np.sqrt(var + 0.3)
    kernel, bias = conv.get_weights()
    folded = keras.Sequential([keras.Input((6, 6, 2)), L.Conv2D(3, 3, activation="relu"),
                               L.Flatten(), L.Dense(4)])
    folded.layers[0].set_weights([kernel * scale, (bias - mean) * scale + beta])
    folded.layers[2].set_weights(top.get_weights())
    x = rng.uniform(0, 1, (3, 6, 6, 2)).astype("float32")
    np.testing.assert_allclose(model(x), folded(x), rtol=1e-5, atol=1e-5)
    analyzer = dk.DTD(model, input_domain=(0, 1))
    assert list(analyzer.rules) == ["conv", "top"]  # the BN is folded, no rule of its own
    np.testing.assert_allclose(analyzer.analyze(x), dk.DTD(folded, input_domain=(0, 1)).analyze(x),
                               rtol=1e-4, atol=1e-6)
    # live: new statistics are folded at the next call, without rebuilding
    bn.set_weights([gamma, beta, mean + 1.0, var])
    folded.layers[0].set_weights([kernel * scale, (bias - mean - 1.0) * scale + beta])
    np.testing.assert_allclose(analyzer.analyze(x), dk.DTD(folded, input_domain=(0, 1)).analyze(x),
                               rtol=1e-4, atol=1e-6)


def test_dense_batchnorm_dense_just_works():
    model = keras.Sequential([keras.Input((5,)), L.Dense(4), L.BatchNormalization(),
                              L.ReLU(), L.Dense(3)])
    randomize(model, np.random.default_rng(3))
    analyzer = dk.DTD(model)
    assert len(analyzer.rules) == 2
    x = np.random.default_rng(4).normal(size=(4, 5)).astype("float32")
    e = analyzer.explain(x)
    np.testing.assert_allclose(e.explained, np.asarray(model(x)).max(axis=1), rtol=1e-5)
    assert np.all(np.isfinite(e.relevance))


def residual_model(op):
    """x → conv(relu) a → conv(relu) → conv → add(a, ·) → relu → dense, biases ≤ 0."""
    inp = keras.Input((6, 6, 1))
    a = L.Conv2D(3, 3, padding="same", activation="relu")(inp)
    c = L.Conv2D(3, 3, padding="same", activation="relu")(a)
    c = L.Conv2D(3, 3, padding="same")(c)
    s = L.Add()([a, c]) if op == "layer" else a + c
    out = L.Dense(2)(L.Flatten()(L.ReLU()(s)))
    model = keras.Model(inp, out)
    rng = np.random.default_rng(5)
    for layer in model.layers:
        if layer.weights:
            k, b = layer.get_weights()
            layer.set_weights([rng.normal(0, 0.5, k.shape).astype("float32"),
                               -np.abs(rng.normal(0, 0.1, b.shape)).astype("float32")])
    return model


@pytest.mark.parametrize("op", ["layer", "keras.ops"])
def test_residual_add_conserves_not_doubles(op):
    model = residual_model(op)
    x = np.random.default_rng(6).uniform(0, 1, (8, 6, 6, 1)).astype("float32")
    e = dk.DTD(model, input_domain=(0, 1)).explain(x)
    p = e.properties()
    ok = e.explained > 1e-3
    assert ok.sum() >= 4
    np.testing.assert_allclose(p.total[ok], e.explained[ok], rtol=1e-4)
    assert np.all(p.positive[ok])  # the seed explains positive outputs


def test_add_splits_in_proportion_and_survives_cancellation():
    a, b = keras.Input((3,)), keras.Input((3,))
    model = keras.Model([a, b], L.Add()([a, b]))
    analyzer = dk.LRP(model)
    xa = np.array([[1.0, 2.0, 1.0]], "float32")
    xb = np.array([[3.0, -2.0, 0.0]], "float32")
    ra, rb = analyzer.analyze([xa, xb], neuron=0)
    np.testing.assert_allclose([ra[0, 0], rb[0, 0]], [1.0, 3.0], rtol=1e-6)
    ra, rb = analyzer.analyze([xa, xb], neuron=1)  # 2 + (−2) = 0: nothing to split
    assert np.all(np.isfinite(ra)) and np.all(np.isfinite(rb))
    xb2 = np.array([[3.0, -2.0 + 1e-7, 0.0]], "float32")  # near-cancellation: split by |x|
    ra, rb = analyzer.analyze([xa, xb2], neuron=1)
    total = float(xa[0, 1] + xb2[0, 1])
    np.testing.assert_allclose([ra[0, 1], rb[0, 1]], [total / 2, total / 2], rtol=1e-3)


def test_concatenate_and_reindexing_ops_move_relevance_exactly():
    x_in = keras.Input((3, 4, 2))
    branch = [L.ZeroPadding2D(((1, 0), (2, 1)))(x_in),
              L.UpSampling2D(2)(L.Cropping2D(((1, 0), (0, 2)))(x_in))]
    flat = L.Concatenate()([L.Flatten()(branch[0]), L.Flatten()(L.Permute((2, 1, 3))(branch[1]))])
    model = keras.Model(x_in, L.Dense(1, use_bias=False)(flat))
    w = np.random.default_rng(7).normal(size=(flat.shape[-1], 1)).astype("float32")
    model.layers[-1].set_weights([w])
    x = np.random.default_rng(8).uniform(0.5, 1, (1, 3, 4, 2)).astype("float32")
    r = dk.LRP(model, rules.Z()).analyze(x)[0]
    # z-rule, no bias: R_j = x'_j w_j at the concatenation; map back by hand
    n0 = 4 * 7 * 2
    w0 = w[:n0, 0].reshape(4, 7, 2)[1:, 2:6]                   # padded branch, crop back
    w1 = w[n0:, 0].reshape(4, 4, 2).transpose(1, 0, 2)        # undo Permute
    w1 = w1.reshape(2, 2, 2, 2, 2).sum(axis=(1, 3))            # undo 2× upsampling: sum copies
    expected = x[0] * w0
    expected[1:, :2] += x[0, 1:, :2] * w1
    np.testing.assert_allclose(r, expected, rtol=1e-5, atol=1e-6)


def test_preprocessing_maps_the_box_to_what_the_first_layer_sees():
    raw = keras.Input((4, 4, 2))
    h = L.Normalization(mean=[10.0, 20.0], variance=[4.0, 25.0])(L.Rescaling(2.0)(raw))
    model = keras.Model(raw, L.Dense(3)(L.Flatten()(L.Conv2D(2, 2, activation="relu")(h))))
    analyzer = dk.DTD(model, input_domain=dk.Box(0, 255))
    first = next(iter(analyzer.rules.values()))
    assert isinstance(first, rules.ZBox)
    np.testing.assert_allclose(first.low[0, 0], [-5.0, -4.0], rtol=1e-6)
    np.testing.assert_allclose(first.high[0, 0], [(510 - 10) / 2, (510 - 20) / 5], rtol=1e-6)
    x = np.random.default_rng(9).uniform(0, 255, (2, 4, 4, 2)).astype("float32")
    inner = keras.Model(model.layers[3].input, model.output)
    normalized = np.asarray(keras.Model(raw, h)(x))
    expected = dk.DTD(inner, input_domain=dk.Box(first.low, first.high)).analyze(normalized)
    np.testing.assert_allclose(analyzer.analyze(x), expected, rtol=1e-5, atol=1e-7)
    with pytest.raises(dk.DomainError):
        analyzer.analyze(x + 300)


def test_non_relu_activations_pass_relevance_with_one_warning():
    inp = keras.Input((4,))
    h = L.Dense(4, activation="swish")(inp)
    h = L.ReLU(max_value=6.0)(L.Dense(4)(h))
    h = L.LeakyReLU(0.1)(L.Dense(4, activation="gelu")(h))
    model = keras.Model(inp, L.Dense(2)(h))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        analyzer = dk.LRP(model, rules.Epsilon(0.0))
    messages = [str(w.message) for w in caught if "non-ReLU" in str(w.message)]
    assert len(messages) == 1 and all(s in messages[0] for s in ("silu", "relu6", "gelu",
                                                                 "leaky_relu"))
    assert np.all(np.isfinite(analyzer.analyze(np.ones((2, 4)))))


def test_gating_multiply_gives_everything_to_the_signal():
    inp = keras.Input((4, 4, 2))
    h = L.Conv2D(3, 1, activation="relu")(inp)
    gate = L.Dense(3, activation="sigmoid")(L.GlobalAveragePooling2D()(h))
    gated = L.Multiply()([L.Reshape((1, 1, 3))(gate), h])
    model = keras.Model(inp, L.Dense(2)(L.Flatten()(gated)))
    randomize(model, np.random.default_rng(10))
    for layer in model.layers:  # biases ≤ 0 so z⁺ conserves
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(-np.abs(layer.bias.numpy()))
    with pytest.warns(UserWarning, match="sigmoid"):
        analyzer = dk.DTD(model, input_domain="positive")
    x = np.random.default_rng(11).uniform(0, 1, (4, 4, 4, 2)).astype("float32")
    e = analyzer.explain(x)
    ok = e.explained > 1e-4
    np.testing.assert_allclose(e.properties().total[ok], e.explained[ok], rtol=1e-4)


def test_register_a_custom_linear_layer():
    class Scale(L.Layer):  # TensorFlow code: the analyzer cannot see inside it
        def build(self, shape):
            self.kernel = self.add_weight(shape=(shape[-1],), initializer="ones")

        def call(self, x):
            return tf.multiply(x, self.kernel)

    model = keras.Sequential([keras.Input((3,)), Scale(name="scale"), L.Dense(2)])
    with pytest.raises(dk.UnsupportedLayerError, match=r"'scale' \(Scale\).*register_layer"):
        dk.DTD(model)

    class ScaleRelevance(dk.layers.Linear):
        def raw_weights(self):
            return self.layer.kernel.value, None

        def linear(self, a, kernel, bias):
            return a * kernel

    dk.register_layer(Scale, ScaleRelevance)
    try:
        model.layers[0].kernel.assign([2.0, -1.0, 0.5])
        analyzer = dk.LRP(model, rules.Z())
        assert "scale" in analyzer.rules
        x = np.array([[1.0, 2.0, 3.0]], "float32")
        e = analyzer.explain(x)
        np.testing.assert_allclose(e.relevance.sum(), e.explained[0], rtol=1e-5)
    finally:
        del dk.layers.LAYER_RELEVANCE[Scale]


@pytest.mark.parametrize("name", sorted(dk.PRESETS))
def test_every_preset_builds_and_explains(name):
    model = residual_model("layer")
    options = {"low": 0.0, "high": 1.0} if name == "deep_taylor.bounded" else {}
    analyzer = dk.create_analyzer(name, model, **options)
    x = np.random.default_rng(12).uniform(0, 1, (2, 6, 6, 1)).astype("float32")
    r = analyzer.analyze(x)
    assert r.shape == x.shape and r.dtype == np.float32 and np.all(np.isfinite(r))


def test_gradient_presets_are_the_gradient():
    import tensorflow as tf

    model = residual_model("layer")
    x = tf.constant(np.random.default_rng(13).uniform(0, 1, (2, 6, 6, 1)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = model(x)[:, 1]
    g = tape.gradient(y, x).numpy()
    np.testing.assert_allclose(dk.create_analyzer("gradient", model).analyze(x, neuron=1), g,
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(dk.create_analyzer("input_x_gradient", model).analyze(x, neuron=1),
                               g * x.numpy(), rtol=1e-5, atol=1e-7)


def test_composite_bands_by_depth():
    inp = keras.Input((8, 8, 1))
    h = inp
    for _ in range(5):
        h = L.Conv2D(2, 3, padding="same", activation="relu")(h)
    model = keras.Model(inp, L.Dense(2)(L.Dense(4, activation="relu")(L.Flatten()(h))))
    chosen = list(dk.create_analyzer("lrp.composite", model, low=0, high=1).rules.values())
    assert [type(r).__name__ for r in chosen] == ["ZBox", "Gamma", "Gamma", "Epsilon", "Epsilon",
                                                  "Epsilon", "Epsilon"]
    assert chosen[3].epsilon == 0.25 and chosen[5].epsilon == 0.0 and chosen[6].epsilon == 0.0
    custom = dk.create_analyzer("lrp.composite", model, split=(1, 6))
    assert [type(r).__name__ for r in custom.rules.values()][:2] == ["W2", "Epsilon"]
    dense_only = keras.Sequential([keras.Input((4,)), L.Dense(3, activation="relu"),
                                   L.Dense(3, activation="relu"), L.Dense(2)])
    bands = dk.create_analyzer("lrp.composite", dense_only, low=0, high=1).rules.values()
    assert [type(r).__name__ for r in bands] == ["ZBox", "Epsilon", "Epsilon"]
    with pytest.raises(ValueError, match="unknown analyzer 'lrp.nope'"):
        dk.create_analyzer("lrp.nope", model)


@pytest.mark.parametrize("rule", [rules.W2(), rules.Flat(), rules.ZBox(-1, 1)])
def test_explicit_zero_padding_is_folded_like_same_padding(rule):
    """ZeroPadding → Conv(valid) explains like Conv(same): padded zeros get no relevance."""
    def build(explicit):
        inp = keras.Input((5, 5, 2))
        h = L.ZeroPadding2D(1)(inp) if explicit else inp
        h = L.Conv2D(3, 3, padding="valid" if explicit else "same", activation="relu")(h)
        return keras.Model(inp, L.Dense(2)(L.Flatten()(h)))

    explicit, same = build(True), build(False)
    randomize(explicit, np.random.default_rng(14))
    same.set_weights(explicit.get_weights())
    x = np.random.default_rng(15).uniform(-1, 1, (3, 5, 5, 2)).astype("float32")
    a = dk.LRP(explicit, rules.ZPlus(), input_rule=rule)
    b = dk.LRP(same, rules.ZPlus(), input_rule=rule)
    assert list(a.rules.values())[0] == list(b.rules.values())[0] or isinstance(rule, rules.ZBox)
    np.testing.assert_allclose(a.analyze(x), b.analyze(x), rtol=1e-5, atol=1e-7)
    e = a.explain(x)
    ok = e.explained > 1e-4
    np.testing.assert_allclose(e.properties().total[ok], e.explained[ok], rtol=1e-4)


def test_lrp_splits_average_pools_proportionally_whatever_the_rule():
    """αβ on all-positive pool weights would scale relevance by α: LRP uses z (ZFlat)."""
    model = keras.Sequential([keras.Input((4, 4, 1)), L.AveragePooling2D(2, name="pool"),
                              L.Flatten(), L.Dense(2, use_bias=False, name="top")])
    analyzer = dk.LRP(model, rules.AlphaBeta(2, 1), layer_rules={"top": rules.Z()})
    assert analyzer.rules["pool"] == rules.ZFlat()
    assert dk.DTD(model, input_domain="positive").rules["pool"] == rules.ZPlus()
    x = np.random.default_rng(16).uniform(0.1, 1, (2, 4, 4, 1)).astype("float32")
    e = analyzer.explain(x)  # z at the top conserves; so must the pool (αβ there: 2×)
    np.testing.assert_allclose(e.properties().total, e.explained, rtol=1e-5)


def test_functional_ops_relu_and_constant_scaling():
    inp = keras.Input((4,))
    h = keras.ops.relu(L.Dense(3)(inp)) * 2.0
    model = keras.Model(inp, L.Dense(2)(h))
    randomize(model, np.random.default_rng(17))
    analyzer = dk.DTD(model, input_domain="positive")
    assert list(analyzer.rules.values())[1] == rules.ZPlus()  # keras.ops.relu → ℝ₊
    x = np.random.default_rng(18).uniform(0, 1, (3, 4)).astype("float32")
    e = analyzer.explain(x)
    np.testing.assert_allclose(e.explained, np.asarray(model(x)).max(axis=1), rtol=1e-5)
    assert np.all(np.isfinite(e.relevance))
    flipped = keras.Model(inp, L.Dense(2)(keras.ops.relu(L.Dense(3)(inp)) * -1.0))
    flipped_dtd = dk.DTD(flipped, input_domain="positive", hidden_real_rule=rules.W2())
    assert list(flipped_dtd.domains.values())[1].name == "real"  # × a negative constant: ℝ


POOLS = {
    "global": lambda: L.GlobalAveragePooling2D(name="pool"),
    "windowed": lambda: L.AveragePooling2D(2, name="pool"),
}


@pytest.mark.parametrize("pool", sorted(POOLS))
@pytest.mark.parametrize("rule, spec", RULES, ids=[s[0] for _, s in RULES])
def test_lrp_splits_average_pools_with_the_z_rule(pool, rule, spec):
    """Whatever LRP's rule, an average pool splits each output's relevance in proportion
    to its window's inputs (README: the z-rule, like zennit's Norm): ε would halve it
    through a global pool of small values, αβ would scale it by α."""
    model = keras.Sequential([keras.Input((4, 4, 2)), POOLS[pool](), L.Flatten()])
    x = np.random.default_rng(3).uniform(0.01, 0.02, (2, 4, 4, 2)).astype("float32")
    analyzer = dk.LRP(model, rule=rule)
    assert analyzer.rules["pool"] == rules.ZFlat()
    e = analyzer.explain(x, neuron=1)
    size = 4 if pool == "global" else 2  # window side
    window = x[:, :size, :size, 1]  # neuron 1: channel 1 of the first window
    expected = np.zeros_like(x)
    expected[:, :size, :size, 1] = window / window.sum(axis=(1, 2), keepdims=True) * (
        e.explained[:, None, None])
    np.testing.assert_allclose(e.relevance, expected, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(e.relevance.sum(axis=(1, 2, 3)), e.explained, rtol=1e-5)


def test_dtd_passes_relevance_through_a_standalone_batchnorm():
    """A BatchNorm after a ReLU cannot be folded: under DTD it passes relevance unchanged
    (w² on one-input neurons, bias left out), so DTD conserves with any statistics; LRP
    keeps the ε-rule there. The layer above reads the BN's real-valued output: ZSign
    (DTD's hidden_real_rule), checked against the reference."""
    model = keras.Sequential([keras.Input((6,)), L.Dense(5, activation="relu", name="hidden"),
                              L.BatchNormalization(name="bn"), L.Dense(3, name="top")])
    randomize(model, np.random.default_rng(4))
    x = np.random.default_rng(5).uniform(-1, 1, (4, 6)).astype("float32")
    with pytest.warns(UserWarning, match=r"'top' \(Dense\)"):
        analyzer = dk.DTD(model)
    assert analyzer.rules["bn"] == rules.W2() and dk.LRP(model).rules["bn"] == rules.Epsilon(1e-6)
    assert analyzer.rules["top"] == rules.ZSign()
    e = analyzer.explain(x)
    np.testing.assert_allclose(e.relevance.sum(axis=1), e.explained, rtol=1e-5)
    # the relevance reaching the BN's input is the relevance of its output, unchanged
    top = model.get_layer("top").get_weights()[0].astype(np.float64)
    bn_out = np.asarray(keras.Model(model.inputs, model.get_layer("bn").output)(x))
    assert np.all(np.isfinite(bn_out))
    upper = ref.zsign(top, bn_out[0], np.eye(3)[e.neuron[0]] * e.explained[0])
    hidden = ref.w2(model.get_layer("hidden").get_weights()[0], upper)
    np.testing.assert_allclose(e.relevance[0], hidden, rtol=1e-5, atol=1e-7)


def test_lrp_average_pool_splits_an_all_zero_window_evenly():
    """ZFlat at an average pool: a window whose inputs are all zero (a dead channel) gets
    relevance from input-independent rules above (w²); it is split evenly, not lost."""
    model = keras.Sequential([keras.Input((3, 3, 2)), L.GlobalAveragePooling2D(name="pool"),
                              L.Dense(2, name="top")])
    randomize(model, np.random.default_rng(7))
    x = np.random.default_rng(8).uniform(0.5, 1.0, (1, 3, 3, 2)).astype("float32")
    x[..., 1] = 0.0  # channel 1: an all-zero window
    e = dk.LRP(model, rule=rules.W2()).explain(x, neuron=0)
    top = model.get_layer("top").get_weights()[0].astype(np.float64)
    upper = ref.w2(top, np.array([e.explained[0], 0.0]))  # relevance of the two channels
    np.testing.assert_allclose(e.relevance[0, ..., 1], np.full((3, 3), upper[1] / 9),
                               rtol=1e-5)
    window = x[0, ..., 0]
    np.testing.assert_allclose(e.relevance[0, ..., 0], window / window.sum() * upper[0],
                               rtol=1e-5)
    np.testing.assert_allclose(e.relevance.sum(), e.explained[0], rtol=1e-5)


@pytest.mark.parametrize("add", ["proportional", "positive"])
def test_add_elementwise_split_equals_the_gradient_trick(add, monkeypatch):
    """Same-shaped branches are split elementwise (one division for all of them); the
    gradient trick, used where branches broadcast, gives the same relevance, including
    where the contributions cancel or all vanish."""
    from dtd_keras.layers import merge

    a, b, c = keras.Input((6,)), keras.Input((6,)), keras.Input((6,))
    model = keras.Model([a, b, c], L.Dense(2)(L.Add()([a, b, c])))
    rng = np.random.default_rng(7)
    xs = [rng.normal(size=(5, 6)).astype("float32") for _ in range(3)]
    xs[1][0] = -xs[0][0] - xs[2][0]  # the three cancel exactly in sample 0
    for x in xs:
        x[1] = 0.0  # and all vanish in sample 1
    fast = dk.LRP(model, add=add).analyze(xs)
    monkeypatch.setattr(merge, "_same_shapes", lambda tensors: False)
    slow = dk.LRP(model, add=add).analyze(xs)
    for f, s in zip(fast, slow):
        np.testing.assert_allclose(f, s, rtol=1e-5, atol=1e-6)
