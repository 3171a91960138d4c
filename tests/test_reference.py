"""Compare dtd_keras with the independent numpy reference in tests/reference.py.

The first part checks the reference itself against Keras (convolution
matrices, pooling) and against properties stated in the DTD supplement; it
does not need the library.  The second part compares ``dk.DTD`` / ``dk.LRP``
with the reference: float64 reference against the float32 library, to 1e-5.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

keras = pytest.importorskip("keras")

try:  # tests/ as plain directory (pytest's default rootdir/prepend import)
    import reference as ref  # noqa: E402
except ImportError:  # tests/ as a package
    from tests import reference as ref  # noqa: E402

L = keras.layers

RTOL = 1e-5


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def assert_matches(lib, expected):
    """float32 library output vs float64 reference, to 1e-5 relative."""
    expected = np.asarray(expected, dtype=np.float64)
    scale = float(np.abs(expected).max())
    assert scale > 0, "reference relevance is all zero: the test would be vacuous"
    lib = np.asarray(lib)
    assert lib.shape == expected.shape
    assert np.all(np.isfinite(lib)), "library relevance has non-finite entries"
    np.testing.assert_allclose(lib, expected, rtol=RTOL, atol=RTOL * scale)


def randomize(model, seed, bias="nonpositive", gain=1.5):
    """Seeded random kernels (fan-in scaled) and biases set via set_weights."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        kernel = weights[0]
        fan_in = int(np.prod(kernel.shape[:-1]))
        new = [rng.normal(0.0, gain / np.sqrt(fan_in), kernel.shape).astype("float32")]
        if len(weights) > 1:
            b = rng.normal(0.0, 0.1, weights[1].shape)
            if bias == "nonpositive":
                b = -np.abs(b)
            new.append(b.astype("float32"))
        layer.set_weights(new)
    return model


def sequential(input_shape, layers, seed, bias="nonpositive"):
    model = keras.Sequential([keras.Input(input_shape), *layers])
    return randomize(model, seed, bias=bias)


def sample(rng, shape, domain):
    if domain == "real":
        x = rng.normal(0.0, 1.0, shape)
    elif domain == "positive":
        x = rng.uniform(0.0, 1.0, shape)
    else:
        low, high = domain
        x = rng.uniform(low, high, shape)
    return x.astype("float32")


def is_alive(model, x):
    """Every sample keeps some active ReLUs in front of every non-input linear layer."""
    return all(
        (a > 0).reshape(len(a), -1).any(axis=1).all()
        for _, a in ref.linear_layer_inputs(model, x)[1:]
    )


def assert_alive(model, x):
    assert is_alive(model, x), "some sample has all ReLUs of a layer dead: vacuous test"


def live_model(build, x, tries=20):
    """``build(k)`` for the first k whose model keeps every sample of ``x`` alive."""
    for k in range(tries):
        model = build(k)
        if is_alive(model, x):
            return model
    raise AssertionError("no seed gave a live model")


def linear_names(model):
    return [
        layer.name
        for layer in model.layers
        if type(layer).__name__ in ("Dense", "Conv1D", "Conv2D", "Conv3D")
    ]


# ---------------------------------------------------------------------------
# The reference on its own: dense-matrix rules
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def matrices():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(7, 4))
    b = -np.abs(rng.normal(size=4)) * 0.1
    Xpos = rng.uniform(0.0, 1.0, 7)
    R = rng.uniform(0.5, 1.0, 4)
    return W, b, Xpos, R


def test_w2_matches_formula_and_conserves(matrices):
    W, _, _, R = matrices
    out = ref.w2(W, R)
    expected = np.array(
        [sum(W[i, j] ** 2 / (W[:, j] ** 2).sum() * R[j] for j in range(4)) for i in range(7)]
    )
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    assert np.isclose(out.sum(), R.sum())
    assert np.all(out >= 0)


def test_zplus_conserves_and_is_positive(matrices):
    W, _, X, R = matrices
    out = ref.zplus(W, X, R)
    assert np.isclose(out.sum(), R.sum())
    assert np.all(out >= 0)


def test_z_matches_formula(matrices):
    W, _, X, R = matrices
    Z = X[:, None] * W
    expected = (Z / Z.sum(axis=0) * R).sum(axis=1)
    np.testing.assert_allclose(ref.z(W, X, R), expected, rtol=1e-12)


def test_zbox_positive_and_conserving(matrices):
    W, _, _, R = matrices
    rng = np.random.default_rng(1)
    low, high = -0.5 * np.ones(7), 1.5 * np.ones(7)
    X = rng.uniform(low, high)
    out = ref.zbox(W, X, R, low, high)
    q = X[:, None] * W - low[:, None] * np.maximum(W, 0) - high[:, None] * np.minimum(W, 0)
    np.testing.assert_allclose(out, (q / q.sum(axis=0) * R).sum(axis=1), rtol=1e-12)
    assert np.all(out >= -1e-12)
    assert np.isclose(out.sum(), R.sum())


def test_epsilon_zero_is_z_with_bias(matrices):
    W, b, X, R = matrices
    Z = X[:, None] * W
    expected = (Z / (Z.sum(axis=0) + b) * R).sum(axis=1)
    np.testing.assert_allclose(ref.epsilon(W, b, X, R, 0.0), expected, rtol=1e-12)
    big = ref.epsilon(W, b, X, R, 1e9)
    assert np.abs(big).max() < 1e-7


def test_alphabeta_10_equals_zplus_on_positive_inputs(matrices):
    W, b, X, R = matrices
    np.testing.assert_allclose(ref.alphabeta(W, b, X, R, 1, 0), ref.zplus(W, X, R), rtol=1e-12)


def test_alphabeta_21_conserves_without_bias(matrices):
    W, _, _, R = matrices
    X = np.random.default_rng(2).normal(size=7)
    out = ref.alphabeta(W, np.zeros(4), X, R, 2, 1)
    assert np.isclose(out.sum(), R.sum())


def test_gamma_limits(matrices):
    W, b, X, R = matrices
    Z = X[:, None] * W
    np.testing.assert_allclose(
        ref.gamma(W, b, X, R, 0.0), (Z / (Z.sum(axis=0) + b) * R).sum(axis=1), rtol=1e-12
    )
    # x >= 0, only neurons with z_j > 0 relevant: gamma -> inf is the z+-rule
    alive = np.where(X @ W + b > 0, R, 0.0)
    assert alive.any() and not alive.all()
    np.testing.assert_allclose(ref.gamma(W, b, X, alive, 1e9), ref.zplus(W, X, alive),
                               rtol=1e-6, atol=1e-8)


def test_gamma_on_signed_inputs_is_bounded():
    """Generalized gamma: for z_j > 0 every numerator term is pushed towards the sign of
    z_j, so the rule's denominator is not the sum of mixed-sign products the classic rule
    divides by; hand-computed on a 2x1 case."""
    W = np.array([[1.0], [-2.0]])
    X = np.array([-1.0, -1.0])        # z = -1 + 2 = 1 > 0
    b, R, g = np.array([0.0]), np.array([1.0]), 0.5
    # x+ = 0; x- = X: n_i = x_i (w_i + g w-_i) = [-1 * 1, -1 * (-2 - 1)] = [-1, 3]
    np.testing.assert_allclose(ref.gamma(W, b, X, R, g), [-1 / 2, 3 / 2])
    X = np.array([1.0, 1.0])          # z = -1 < 0: swapped, n = x (w + g w-)... x+ side
    # n_i = x+_i (w_i + g w-_i) = [1, -3]; d = -2
    np.testing.assert_allclose(ref.gamma(W, b, X, R, g), [-1 / 2, 3 / 2])


def test_flat_dense_is_uniform(matrices):
    _, _, _, R = matrices
    np.testing.assert_allclose(ref.flat(np.ones((7, 4)), R), np.full(7, R.sum() / 7))


def test_zero_denominators_give_zero():
    W = np.array([[1.0, 0.0], [-1.0, 0.0]])
    X = np.array([1.0, 1.0])
    R = np.array([1.0, 1.0])
    for out in (
        ref.w2(W, R),
        ref.z(W, X, R),
        ref.zplus(np.array([[-1.0, 0.0], [-1.0, 0.0]]), X, R),
        ref.alphabeta(W, np.zeros(2), np.zeros(2), R, 2, 1),
        ref.gamma(W, np.zeros(2), X, R, 0.0),
        ref.flat(np.zeros((2, 2)), R),
    ):
        assert np.all(np.isfinite(out))
    np.testing.assert_array_equal(ref.z(W, X, R), [0.0, 0.0])
    np.testing.assert_array_equal(ref.w2(W, R), [0.5, 0.5])


# ---------------------------------------------------------------------------
# Convolution and pooling configurations (shared by reference and library tests)
# ---------------------------------------------------------------------------

CONV = {1: L.Conv1D, 2: L.Conv2D, 3: L.Conv3D}
POOL = {1: L.MaxPooling1D, 2: L.MaxPooling2D, 3: L.MaxPooling3D}

# id: (rank, spatial input size, conv kwargs) -- two such convs are stacked
CONV_CONFIGS = {
    "1d-valid": (1, 9, dict(kernel_size=3)),
    "1d-stride2-same": (1, 9, dict(kernel_size=3, strides=2, padding="same")),
    "1d-dilation2-same": (1, 9, dict(kernel_size=2, dilation_rate=2, padding="same")),
    "1d-cf-stride2": (1, 9, dict(kernel_size=3, strides=2, data_format="channels_first")),
    "2d-same": (2, 7, dict(kernel_size=3, padding="same")),
    "2d-stride2-valid": (2, 7, dict(kernel_size=3, strides=2)),
    "2d-even-stride2-same": (2, 7, dict(kernel_size=2, strides=2, padding="same")),
    "2d-dilation2-same": (2, 6, dict(kernel_size=3, dilation_rate=2, padding="same")),
    "2d-rect-valid": (2, 7, dict(kernel_size=(3, 2), strides=(2, 1))),
    "2d-cf-stride2-same": (
        2,
        9,
        dict(kernel_size=3, strides=2, padding="same", data_format="channels_first"),
    ),
    "3d-stride2-same": (3, 5, dict(kernel_size=3, strides=2, padding="same")),
    "3d-dilation2-valid": (3, 5, dict(kernel_size=2, dilation_rate=2)),
    "3d-cf-same": (3, 4, dict(kernel_size=2, padding="same", data_format="channels_first")),
}

# id: (rank, spatial input size, pool kwargs); a same-padded ReLU conv precedes the pool
POOL_CONFIGS = {
    "1d-2": (1, 8, dict(pool_size=2)),
    "1d-3-stride2-same": (1, 9, dict(pool_size=3, strides=2, padding="same")),
    "2d-2": (2, 6, dict(pool_size=2)),
    "2d-3-stride2-same": (2, 7, dict(pool_size=3, strides=2, padding="same")),
    "2d-cf-2-same": (2, 5, dict(pool_size=2, padding="same", data_format="channels_first")),
    "3d-2": (3, 4, dict(pool_size=2)),
    "3d-cf-2-stride1-same": (
        3,
        4,
        dict(pool_size=2, strides=1, padding="same", data_format="channels_first"),
    ),
}

IN_CHANNELS = 2

# NOTE on channels_first: Keras 3 (TF backend) `ops.add` rewrites `x + bias` with
# bias shaped (1, C, 1, ...) into `tf.nn.bias_add(..., "NHWC")` whenever C equals the
# *last* dimension of x, so a channels_first Conv whose filter count equals its last
# output spatial size adds the bias along the wrong axis.  The configurations above
# avoid that coincidence (filters 3 and 2 never equal the last output size).


def _input_shape(rank, size, data_format):
    spatial = (size,) * rank
    if data_format == "channels_first":
        return (IN_CHANNELS, *spatial)
    return (*spatial, IN_CHANNELS)


def conv_input_shape(config_id):
    rank, size, kw = CONV_CONFIGS[config_id]
    return _input_shape(rank, size, kw.get("data_format", "channels_last"))


def conv_model(config_id, activation="relu", seed_offset=0):
    rank, size, kw = CONV_CONFIGS[config_id]
    df = kw.get("data_format", "channels_last")
    layers = [
        CONV[rank](3, activation=activation, **kw),
        CONV[rank](2, activation=activation, **kw),
        L.Flatten(data_format=df),
        L.Dense(3),
    ]
    seed = 100 + 100 * seed_offset + list(CONV_CONFIGS).index(config_id)
    return sequential(_input_shape(rank, size, df), layers, seed)


def pool_model(config_id):
    rank, size, kw = POOL_CONFIGS[config_id]
    df = kw.get("data_format", "channels_last")
    layers = [
        CONV[rank](3, 3, padding="same", activation="relu", data_format=df),
        POOL[rank](**kw),
        L.Flatten(),
        L.Dense(3),
    ]
    seed = 200 + list(POOL_CONFIGS).index(config_id)
    return sequential(_input_shape(rank, size, df), layers, seed)


@pytest.mark.parametrize("config_id", list(CONV_CONFIGS))
def test_conv_as_matrix_matches_keras(config_id):
    model = conv_model(config_id, activation=None)
    x = sample(np.random.default_rng(3), (2, *model.input_shape[1:]), "real")
    a = x.astype(np.float64)
    for layer in model.layers[:2]:
        W, b, M, out_shape = ref.conv_as_matrix(layer, a.shape[1:])
        expected = np.asarray(layer(a.astype("float32")), dtype=np.float64)
        assert expected.shape[1:] == tuple(out_shape)
        got = np.stack([(W.T @ s.reshape(-1) + b).reshape(out_shape) for s in a])
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
        assert set(np.unique(M)) <= {0.0, 1.0}
        assert np.all(M[W != 0] == 1)
        a = got


@pytest.mark.parametrize("config_id", list(POOL_CONFIGS))
def test_pool_windows_match_keras(config_id):
    model = pool_model(config_id)
    pool = model.layers[1]
    x = sample(np.random.default_rng(4), (2, *pool.input.shape[1:]), "real")
    windows, out_shape = ref.pool_windows(pool, x.shape[1:])
    expected = np.asarray(pool(x))
    got = np.stack([ref.maxpool_forward(windows, s).reshape(out_shape) for s in x])
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    R = np.random.default_rng(5).uniform(size=len(windows))
    for s in np.abs(x):
        for back in (ref.maxpool_winner_backward, ref.maxpool_proportional_backward):
            assert np.isclose(back(windows, s, R).sum(), R.sum())


def test_reference_forward_matches_keras():
    for config_id in ("2d-cf-stride2-same", "3d-stride2-same"):
        model = conv_model(config_id)
        x = sample(np.random.default_rng(6), (2, *model.input_shape[1:]), "real")
        np.testing.assert_allclose(
            ref.forward(model, x), np.asarray(model(x)), rtol=1e-5, atol=1e-5
        )
    model = pool_model("3d-cf-2-stride1-same")
    x = sample(np.random.default_rng(6), (2, *model.input_shape[1:]), "real")
    np.testing.assert_allclose(ref.forward(model, x), np.asarray(model(x)), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------
# Shared models for the library comparisons
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dk():
    import dtd_keras

    return dtd_keras


@pytest.fixture(scope="module")
def dense_net():
    """Dense ReLU net, non-positive biases, linear output."""
    return sequential(
        (8,),
        [L.Dense(10, activation="relu"), L.Dense(8, activation="relu"), L.Dense(3)],
        seed=13,
    )


@pytest.fixture(scope="module")
def dense_net_mixed_bias():
    """Dense ReLU net with biases of both signs (exercises b+ / b- handling)."""
    return sequential(
        (8,),
        [L.Dense(10, activation="relu"), L.Dense(8, activation="relu"), L.Dense(3)],
        seed=11,
        bias="mixed",
    )


@pytest.fixture(scope="module")
def softmax_net():
    """Dense ReLU net with Dropout, an Activation layer and a softmax output."""
    return sequential(
        (8,),
        [
            L.Dense(6),
            L.Activation("relu"),
            L.Dropout(0.5),
            L.Dense(5, activation="relu"),
            L.Dense(4, activation="softmax"),
        ],
        seed=12,
    )


@pytest.fixture(scope="module")
def conv_net():
    """Small 2D conv net: same-padded conv, strided linear conv + ReLU layer, dense head."""
    return sequential(
        (6, 6, 2),
        [
            L.Conv2D(3, 3, padding="same", activation="relu"),
            L.Conv2D(4, 2, strides=2),
            L.ReLU(),
            L.Reshape((9, 4)),
            L.Flatten(),
            L.Dense(3),
        ],
        seed=13,
    )


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(20)
    return {
        "dense": sample(rng, (3, 8), (-1.0, 1.0)),
        "dense_pos": sample(rng, (3, 8), "positive"),
        "conv": sample(rng, (3, 6, 6, 2), (-1.0, 1.0)),
        "conv_pos": sample(rng, (3, 6, 6, 2), "positive"),
    }


# LRP rules: id -> (factory on dk.rules, reference spec)
ZBOX_BOUNDS = (-1.0, 3.0)
RULES = {
    "W2": (lambda r: r.W2(), ("w2",)),
    "Z": (lambda r: r.Z(), ("z",)),
    "ZPlus": (lambda r: r.ZPlus(), ("zplus",)),
    "ZBox": (lambda r: r.ZBox(*ZBOX_BOUNDS), ("zbox", *ZBOX_BOUNDS)),
    "Epsilon": (lambda r: r.Epsilon(0.1), ("epsilon", 0.1)),
    "AlphaBeta10": (lambda r: r.AlphaBeta(1, 0), ("alphabeta", 1, 0)),
    "AlphaBeta21": (lambda r: r.AlphaBeta(2, 1), ("alphabeta", 2, 1)),
    "Gamma": (lambda r: r.Gamma(0.25), ("gamma", 0.25)),
    "Flat": (lambda r: r.Flat(), ("flat",)),
}
# generalized gamma is defined on signed inputs too: every rule gets the same data
POSITIVE_DATA_RULES: set[str] = set()


def _rule_data(data, kind, rule_id):
    return data[kind + "_pos"] if rule_id in POSITIVE_DATA_RULES else data[kind]


def _check_lrp(dk, model, x, rule_id, neuron=None):
    factory, spec = RULES[rule_id]
    if spec[0] == "zbox":
        low, high = ZBOX_BOUNDS
        for layer, a in ref.linear_layer_inputs(model, x):
            assert low <= a.min() and a.max() <= high, f"{layer.name} input leaves the box"
    assert_alive(model, x)
    expected = ref.reference_relevance(model, x, neuron, ref.constant_rule(spec))
    analyzer = dk.LRP(model, rule=factory(dk.rules))
    assert_matches(analyzer.analyze(x, neuron=neuron), expected)


# ---------------------------------------------------------------------------
# Library vs reference: every LRP rule, dense and conv
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("rule_id", list(RULES))
def test_lrp_rule_dense(dk, dense_net, data, rule_id):
    _check_lrp(dk, dense_net, _rule_data(data, "dense", rule_id), rule_id)


@pytest.mark.parametrize("rule_id", ["Epsilon", "AlphaBeta21", "Gamma"])
def test_lrp_rule_dense_mixed_bias(dk, dense_net_mixed_bias, data, rule_id):
    _check_lrp(dk, dense_net_mixed_bias, _rule_data(data, "dense", rule_id), rule_id, neuron=1)


@pytest.mark.parametrize("rule_id", list(RULES))
def test_lrp_rule_conv(dk, conv_net, data, rule_id):
    _check_lrp(dk, conv_net, _rule_data(data, "conv", rule_id), rule_id)


def test_lrp_input_rule_and_layer_rules(dk, dense_net, data):
    x = data["dense"]
    names = linear_names(dense_net)
    expected = ref.reference_relevance(
        dense_net,
        x,
        2,
        ref.constant_rule(("epsilon", 0.1), ("zbox", -1.0, 1.0), {names[1]: ("z",)}),
    )
    analyzer = dk.LRP(
        dense_net,
        rule=dk.rules.Epsilon(0.1),
        input_rule=dk.rules.ZBox(-1.0, 1.0),
        layer_rules={names[1]: dk.rules.Z()},
    )
    assert_matches(analyzer.analyze(x, neuron=2), expected)


# ---------------------------------------------------------------------------
# Library vs reference: DTD for every input domain
# ---------------------------------------------------------------------------

DOMAINS = {
    "real": ("real", "real"),
    "positive": ("positive", "positive"),
    "box": (("box", -0.5, 1.5), (-0.5, 1.5)),
}
RULE_CLASS = {"w2": "W2", "zplus": "ZPlus", "zbox": "ZBox"}


def _check_dtd(dk, model, domain_id, seed, use_box_object):
    ref_domain, sample_domain = DOMAINS[domain_id]
    x = sample(np.random.default_rng(seed), (3, *model.input_shape[1:]), sample_domain)
    if domain_id == "box":
        lib_domain = dk.Box(-0.5, 1.5) if use_box_object else (-0.5, 1.5)
    else:
        lib_domain = domain_id
    assert_alive(model, x)
    analyzer = dk.DTD(model, input_domain=lib_domain)
    expected = ref.reference_relevance(model, x, None, input_domain=ref_domain)
    assert_matches(analyzer.analyze(x), expected)
    # the rule chosen for each linear layer
    chosen = {}
    ref.reference_relevance(
        model,
        x[:1],
        None,
        lambda i, layer, dom: chosen.setdefault(layer.name, ref.dtd_rule_for_layer(i, layer, dom)),
        input_domain=ref_domain,
    )
    for name, spec in chosen.items():
        assert type(analyzer.rules[name]).__name__ == RULE_CLASS[spec[0]], name


@pytest.mark.parametrize("domain_id", list(DOMAINS))
def test_dtd_dense(dk, dense_net, domain_id):
    _check_dtd(dk, dense_net, domain_id, seed=30, use_box_object=True)


@pytest.mark.parametrize("domain_id", list(DOMAINS))
def test_dtd_conv(dk, conv_net, domain_id):
    _check_dtd(dk, conv_net, domain_id, seed=31, use_box_object=False)


# ---------------------------------------------------------------------------
# Library vs reference: softmax output and neuron selection
# ---------------------------------------------------------------------------


def test_softmax_explains_logit(dk, softmax_net):
    x = sample(np.random.default_rng(40), (4, 8), "real")
    analyzer = dk.DTD(softmax_net, input_domain="real")
    for neuron in (None, 3, [0, 1, 2, 3]):
        expected = ref.reference_relevance(softmax_net, x, neuron)
        assert_matches(analyzer.analyze(x, neuron=neuron), expected)
    # same weights with a linear output layer: identical explanations
    twin = keras.Sequential([keras.Input((8,)), *softmax_net.layers[:-1], L.Dense(4)])
    twin.layers[-1].set_weights(softmax_net.layers[-1].get_weights())
    logits = ref.forward(twin, x)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(ref.forward(softmax_net, x), probs, rtol=1e-10)
    np.testing.assert_allclose(np.asarray(softmax_net(x)), probs, rtol=1e-5, atol=1e-6)
    twin_analyzer = dk.DTD(twin, input_domain="real")
    assert_matches(twin_analyzer.analyze(x), ref.reference_relevance(softmax_net, x, None))


# ---------------------------------------------------------------------------
# Library vs reference: convolution geometries and max pooling
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("config_id", list(CONV_CONFIGS))
def test_dtd_conv_geometry(dk, config_id):
    """DTD with a box domain: zB on the first conv, z+ on the second conv and the head."""
    x = sample(np.random.default_rng(50), (2, *conv_input_shape(config_id)), (-1.0, 1.0))
    model = live_model(lambda k: conv_model(config_id, seed_offset=k), x)
    expected = ref.reference_relevance(model, x, None, input_domain=("box", -1.0, 1.0))
    analyzer = dk.DTD(model, input_domain=(-1.0, 1.0))
    assert_matches(analyzer.analyze(x), expected)


@pytest.mark.parametrize("mode", ["winner", "proportional"])
@pytest.mark.parametrize("config_id", list(POOL_CONFIGS))
def test_dtd_max_pool(dk, config_id, mode):
    model = pool_model(config_id)
    x = sample(np.random.default_rng(60), (2, *model.input_shape[1:]), "real")
    assert_alive(model, x)
    expected = ref.reference_relevance(model, x, None, max_pool=mode)
    analyzer = dk.DTD(model, input_domain="real", max_pool=mode)
    assert_matches(analyzer.analyze(x), expected)


def test_model_without_input_object(dk):
    """A Sequential built with ``build()`` instead of an ``Input``; neuron given per sample."""
    model = keras.Sequential(
        [L.Dense(10, activation="relu"), L.Dropout(0.2), L.Dense(8, activation="relu"), L.Dense(3)]
    )
    model.build((None, 8))
    randomize(model, seed=13)
    x = sample(np.random.default_rng(70), (3, 8), "positive")
    assert_alive(model, x)
    neurons = [2, 0, 1]
    expected = ref.reference_relevance(model, x, neurons, input_domain="positive")
    analyzer = dk.DTD(model, input_domain="positive")
    assert_matches(analyzer.analyze(x, neuron=neurons), expected)


def test_dtd_hidden_layers_on_real_inputs_use_zsign(dk):
    """Issue 13: a hidden Dense/Conv layer reading real values (here linear outputs) gets
    DTD's hidden_real_rule, ZSign (each neuron's relevance to the products x_i w_ij of its
    own sign); the layer reading the declared real input keeps the seed's w²."""
    model = sequential((5, 5, 2), [L.Conv2D(3, 2, name="conv"), L.Flatten(),
                                   L.Dense(6, name="hidden"), L.Dense(3, name="top")], seed=14)
    x = sample(np.random.default_rng(32), (3, 5, 5, 2), "real")
    analyzer = dk.DTD(model)
    assert analyzer.rules == {"conv": dk.rules.W2(), "hidden": dk.rules.ZSign(),
                              "top": dk.rules.ZSign()}
    expected = ref.reference_relevance(
        model, x, None, lambda i, layer, domain: ("w2",) if i == 0 else ("zsign",))
    assert_matches(analyzer.analyze(x), expected)
    logits = ref.forward(model, x).max(axis=1)
    np.testing.assert_allclose(expected.sum(axis=(1, 2, 3)), logits, rtol=1e-9)  # conserves
    # both sides occur: some hidden neurons have a negative bias-free sum
    _, below = ref.linear_layer_inputs(model, x)[1]
    sums = below @ model.get_layer("hidden").get_weights()[0]
    assert np.any(sums < 0) and np.any(sums > 0)


def test_zsign_reference_properties():
    """The reference ZSign: non-negative shares, conservative where the sum is nonzero,
    z⁺ where every product is non-negative, and it keeps a negative neuron's relevance
    that signed z⁺ loses."""
    W = np.array([[1.0, -2.0], [0.5, 1.0], [-1.0, -0.5]])
    X = np.array([1.0, -1.0, 2.0])  # products [1, -.5, -2] (sum -1.5) and [-2, -1, -1]
    R = np.array([3.0, 1.0])
    out = ref.zsign(W, X, R)
    np.testing.assert_allclose(out, [0.0 + 0.5, 3 * 0.5 / 2.5 + 0.25, 3 * 2 / 2.5 + 0.25])
    np.testing.assert_allclose(out.sum(), R.sum())
    np.testing.assert_allclose(ref.zplus(W, X, R).sum(), 3.0)  # z⁺ loses neuron 1's R
    Xp = np.array([1.0, 2.0, 0.0])
    Wp = np.abs(W)
    np.testing.assert_allclose(ref.zsign(Wp, Xp, R), ref.zplus(Wp, Xp, R))
