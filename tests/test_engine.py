"""Engine behaviour: seed section 3 properties, tracing, live weights, graph shapes, errors."""

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import dtd_keras as dk
from dtd_keras import rules
from dtd_keras.engine import propagation, row_blocks

D_IN, H1, H2, D_OUT = 6, 5, 4, 3


def relu_mlp(softmax=False):
    return keras.Sequential([
        keras.Input((D_IN,)),
        keras.layers.Dense(H1, activation="relu"),
        keras.layers.Dense(H2),
        keras.layers.ReLU(),
        keras.layers.Dense(D_OUT, activation="softmax" if softmax else None),
    ])


def set_weights(model, rng, scale=1.0):
    """Random weights, non-positive biases (the seed's networks have b ≤ 0)."""
    for layer in model.layers:
        if layer.weights:
            kernel, bias = layer.get_weights()
            layer.set_weights([rng.normal(0, scale, kernel.shape).astype("float32"),
                               -np.abs(rng.normal(0, 0.1 * scale, bias.shape)).astype("float32")])


@pytest.fixture(scope="module")
def mlp():
    model = relu_mlp()
    set_weights(model, np.random.default_rng(0))
    return model


@pytest.fixture(scope="module")
def seed_analyzers(mlp):
    """One analyzer per seed rule on the same model (weights are read live)."""
    return {
        "w2": dk.LRP(mlp, rules.W2()),
        "z": dk.LRP(mlp, rules.Z()),
        "zplus": dk.LRP(mlp, rules.ZPlus(), input_rule=rules.W2()),
        "zbox": dk.DTD(mlp, input_domain=dk.Box(-1.0, 2.0)),
        "dtd_real": dk.DTD(mlp),
        "dtd_positive": dk.DTD(mlp, input_domain="positive"),
    }


def logits(model, x):
    """Pre-softmax outputs computed independently of the library."""
    head = model.layers[-1]
    below = keras.Model(model.inputs[0], head.input)(x)
    return np.asarray(below @ head.kernel.numpy() + head.bias.numpy())


weights_seed = st.integers(0, 2**31 - 1)
inputs = arrays(np.float32, (4, D_IN), elements=st.floats(-1, 2, width=32))
PROPERTY = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@PROPERTY
@given(seed=weights_seed, x=inputs)
@pytest.mark.parametrize("name", ["w2", "z", "zbox", "dtd_real"])
def test_conservation_on_random_relu_networks(seed_analyzers, mlp, name, seed, x):
    """Definition 1: Σ input relevance = explained logit (relu nets, b ≤ 0)."""
    set_weights(mlp, np.random.default_rng(seed))
    e = seed_analyzers[name].explain(x)
    np.testing.assert_allclose(e.explained, logits(mlp, x)[np.arange(4), e.neuron],
                               rtol=1e-5, atol=1e-6)
    total = e.relevance.reshape(4, -1).sum(axis=1)
    # The seed explains a positive output: with b ≤ 0, a positive logit means every
    # denominator on its way down is nonzero. w² denominators never depend on x.
    check = np.full(4, True) if name == "w2" else e.explained > 1e-6
    np.testing.assert_allclose(total[check], e.explained[check], rtol=2e-4, atol=1e-6)


@PROPERTY
@given(seed=weights_seed, x=arrays(np.float32, (4, D_IN), elements=st.floats(0, 2, width=32)))
@pytest.mark.parametrize("name", ["zplus", "dtd_positive"])
def test_zplus_conserves_and_is_positive_on_positive_inputs(seed_analyzers, mlp, name, seed, x):
    set_weights(mlp, np.random.default_rng(seed))
    e = seed_analyzers[name].explain(x)
    p = e.properties()
    explained_positive = e.explained > 1e-6
    assert np.all(p.consistent[explained_positive]), str(p)


@PROPERTY
@given(seed=weights_seed, x=inputs)
@pytest.mark.parametrize("name", ["w2", "zbox", "dtd_real"])
def test_seed_rules_are_positive_in_their_domain(seed_analyzers, mlp, name, seed, x):
    """Definition 2 for w² (any input) and zᴮ (inputs in the box), top logit > 0."""
    set_weights(mlp, np.random.default_rng(seed))
    e = seed_analyzers[name].explain(x)
    p = e.properties()
    assert np.all(p.positive[e.explained > 0]), str(p)


def test_z_rule_can_produce_negative_relevance(seed_analyzers, mlp):
    """The z-rule is conservative but not positive: a concrete counterexample."""
    set_weights(mlp, np.random.default_rng(1))
    x = np.random.default_rng(2).uniform(-1, 2, (64, D_IN)).astype("float32")
    e = seed_analyzers["z"].explain(x)
    p = e.properties()
    assert np.any(~p.positive & (e.explained > 0))
    assert p.negative_mass.min() < -1e-3
    ok = e.explained > 1e-3  # positive outputs: every denominator is nonzero
    np.testing.assert_allclose(p.total[ok], p.explained[ok], rtol=1e-3)


def test_rule_choice_follows_input_domain(mlp):
    for domain, first in [("real", rules.W2()), ("positive", rules.ZPlus()),
                          ((0.0, 1.0), rules.ZBox(0, 1))]:
        chosen = list(dk.DTD(mlp, input_domain=domain).rules.values())
        assert repr(chosen[0]) == repr(first)
        assert chosen[1:] == [rules.ZPlus(), rules.ZPlus()]


def test_softmax_head_is_stripped_and_neuron_selection():
    model = relu_mlp(softmax=True)
    set_weights(model, np.random.default_rng(3))
    x = np.random.default_rng(4).uniform(0, 1, (5, D_IN)).astype("float32")
    analyzer = dk.DTD(model, input_domain=(0, 1))
    z = logits(model, x)
    e = analyzer.explain(x)
    np.testing.assert_array_equal(e.neuron, z.argmax(axis=1))
    np.testing.assert_allclose(e.explained, z.max(axis=1), rtol=1e-5)
    e1 = analyzer.explain(x, neuron=1)
    np.testing.assert_allclose(e1.explained, z[:, 1], rtol=1e-5, atol=1e-6)
    per = [0, 2, 1, 1, 0]
    e2 = analyzer.explain(x, neuron=per)
    np.testing.assert_array_equal(e2.neuron, per)
    np.testing.assert_allclose(e2.explained, z[np.arange(5), per], rtol=1e-5, atol=1e-6)
    # each sample's map is the single-sample map (batching changes nothing)
    single = analyzer.analyze(x[2:3], neuron=1)
    np.testing.assert_allclose(single[0], e1.relevance[2], rtol=1e-5, atol=1e-7)
    assert e1.relevance.dtype == np.float32 and e1.relevance.shape == x.shape


def test_one_trace_for_many_batch_sizes_and_live_weights(mlp):
    analyzer = dk.DTD(mlp, input_domain="positive")
    rng = np.random.default_rng(5)
    for batch in (1, 7, 256):
        assert analyzer.analyze(rng.uniform(0, 1, (batch, D_IN))).shape == (batch, D_IN)
    assert analyzer.trace_count == 1
    x = rng.uniform(0, 1, (3, D_IN)).astype("float32")
    before = analyzer.analyze(x)
    set_weights(mlp, np.random.default_rng(6))  # "more training"
    after = analyzer.analyze(x)
    fresh = dk.DTD(mlp, input_domain="positive").analyze(x)
    np.testing.assert_allclose(after, fresh, rtol=1e-6, atol=1e-7)
    assert not np.allclose(before, after)
    assert analyzer.trace_count == 1


@pytest.mark.parametrize("rule", [rules.W2(), rules.Z(), rules.ZPlus(), rules.ZBox(-1, 1),
                                  rules.Epsilon(0.0), rules.Epsilon(0.1), rules.AlphaBeta(2, 1),
                                  rules.Gamma(0.25), rules.Flat()])
def test_zero_denominators_give_zero_not_nan(rule):
    """All-zero inputs and a dead layer: finite maps, zero relevance where nothing flows."""
    model = relu_mlp()
    set_weights(model, np.random.default_rng(7))
    dead = model.layers[1]
    dead.set_weights([np.zeros_like(w) for w in dead.get_weights()])
    analyzer = dk.LRP(model, rule)
    x = np.zeros((2, D_IN), "float32")
    x[1] = np.linspace(-1, 1, D_IN)
    r = analyzer.analyze(x)
    assert np.all(np.isfinite(r))
    if not isinstance(rule, (rules.W2, rules.Flat)):
        np.testing.assert_array_equal(r, 0.0)


def test_nested_model_and_shared_layer_called_twice():
    rng = np.random.default_rng(8)
    inner_in = keras.Input((4,))
    inner = keras.Model(inner_in, keras.layers.Dense(4, activation="relu", name="deep")(inner_in),
                        name="inner")
    x_in = keras.Input((4,), name="x")
    shared = keras.layers.Dense(4, activation="relu", name="shared")
    out = keras.layers.Dense(2, name="head")(shared(inner(shared(x_in))))
    model = keras.Model(x_in, out)
    set_weights(model, rng)
    analyzer = dk.DTD(model, input_domain="positive")
    assert list(analyzer.rules) == ["shared[0]", "inner/deep", "shared[1]", "head"]
    x = rng.uniform(0, 1, (3, 4)).astype("float32")
    e = analyzer.explain(x)
    np.testing.assert_allclose(e.explained, model(x).numpy().max(axis=1), rtol=1e-5)
    assert np.all(e.properties().consistent | (e.explained <= 0))
    # the same network written flat, with the shared weights copied, gives the same maps
    flat = keras.Sequential([keras.Input((4,))] + [keras.layers.Dense(4, activation="relu")
                                                   for _ in range(3)] + [keras.layers.Dense(2)])
    for target, source in zip(flat.layers, [shared, inner.layers[-1], shared, model.layers[-1]]):
        target.set_weights(source.get_weights())
    np.testing.assert_allclose(dk.DTD(flat, input_domain="positive").analyze(x), e.relevance,
                               rtol=1e-5, atol=1e-7)


def test_layer_rules_select_by_name_and_call():
    model = relu_mlp()
    analyzer = dk.LRP(model, rules.Epsilon(0.1), input_rule=rules.ZBox(-1, 1),
                      layer_rules={model.layers[-1].name: rules.AlphaBeta(2, 1)})
    assert [type(r) for r in analyzer.rules.values()] == [rules.ZBox, rules.Epsilon,
                                                          rules.AlphaBeta]


@pytest.fixture(scope="module")
def cnn_dtd():
    model = keras.Sequential([
        keras.Input((6, 6, 2)),
        keras.layers.Conv2D(3, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Conv2D(4, 2, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(3),
    ])
    return model, {d: dk.DTD(model, input_domain=d) for d in ("real", "positive", (-1.0, 1.0))}


@PROPERTY
@given(seed=weights_seed,
       x=arrays(np.float32, (3, 6, 6, 2), elements=st.floats(0, 1, width=32)))
def test_dtd_on_random_conv_nets_is_consistent(cnn_dtd, seed, x):
    """Definitions 1–3 for every input domain on a ReLU CNN with b ≤ 0 (positive logits)."""
    model, analyzers = cnn_dtd
    set_weights(model, np.random.default_rng(seed), scale=0.7)
    for analyzer in analyzers.values():
        e = analyzer.explain(x)
        p = e.properties()
        explained = e.explained > 1e-5
        assert np.all(p.consistent[explained]), (analyzer.rules, str(p))


@pytest.mark.parametrize("rule", [rules.W2(), rules.Z(), rules.ZPlus(), rules.ZBox(-1, 2),
                                  rules.Epsilon(0.1), rules.AlphaBeta(2, 1), rules.Gamma(0.25),
                                  rules.Flat()])
def test_large_dense_kernels_in_row_blocks_give_the_same_result(mlp, rule, monkeypatch):
    """Dense kernels above CHUNK_ELEMENTS are processed in blocks of rows: same maps."""
    set_weights(mlp, np.random.default_rng(9))
    x = np.random.default_rng(10).uniform(-1, 2, (3, D_IN)).astype("float32")
    whole = dk.LRP(mlp, rule).analyze(x)
    every = dk.LRP(mlp, rule).analyze(x, neuron="all")
    # 6×5 → six blocks of one row (the loop), 5×4 → two blocks of two rows and a tail of one
    monkeypatch.setattr(row_blocks, "CHUNK_ELEMENTS", 8)
    blocked = dk.LRP(mlp, rule)
    np.testing.assert_allclose(blocked.analyze(x), whole, rtol=1e-5, atol=1e-7)
    # several neurons per sample share the blocks' denominators too
    np.testing.assert_allclose(blocked.analyze(x, neuron="all"), every, rtol=1e-5, atol=1e-7)
    # XLA compiles the loops of blocks (static block sizes; the tail outside the loop)
    xla = dk.LRP(mlp, rule, jit_compile=True)
    np.testing.assert_allclose(xla.analyze(x), whole, rtol=1e-4, atol=1e-6)


def test_division_by_zero_subnormal_and_overflowed_denominators():
    """0 and subnormal denominators pass nothing; ∞ gives NaN, or, in a compiled pass, a
    recorded flag that the pass turns into NaN maps (one reduction instead of two passes)."""
    ones = np.ones(5, "float32")
    denominators = np.array([0.0, 1e-39, 2.0, np.inf, np.nan], "float32")
    exact = propagation.safe_divide(ones, denominators).numpy()
    np.testing.assert_array_equal(exact, [0.0, 0.0, 0.5, np.nan, np.nan])
    with propagation.deferred_overflow_check() as flags:
        deferred = propagation.safe_divide(ones, denominators, nonnegative=True).numpy()
        finite = propagation.safe_divide(ones[:3], denominators[:3]).numpy()
    np.testing.assert_array_equal(deferred, [0.0, 0.0, 0.5, 0.0, np.nan])  # ∞: a silent 0 …
    assert bool(propagation.overflowed(flags[:1]))  # … that the flag catches
    np.testing.assert_array_equal(finite, [0.0, 0.0, 0.5])
    assert not bool(propagation.overflowed(flags[1:]))
    assert not bool(propagation.overflowed([]))


def _signed_model(layer, shape):
    keras.utils.set_random_seed(11)
    model = keras.Sequential([keras.Input(shape), layer, keras.layers.Flatten(),
                              keras.layers.Dense(3)])
    return model


STACKED_LAYERS = {
    "dense": (lambda: keras.layers.Dense(4, activation="relu"), (5,)),
    "conv2d": (lambda: keras.layers.Conv2D(3, 2, activation="relu"), (4, 4, 2)),
    "conv2d-cf": (lambda: keras.layers.Conv2D(3, 2, padding="same", activation="relu",
                                              data_format="channels_first"), (2, 4, 5)),
    "conv1d-causal": (lambda: keras.layers.Conv1D(3, 2, padding="causal", activation="relu"),
                      (6, 2)),
    "transpose": (lambda: keras.layers.Conv2DTranspose(3, 2, strides=2, activation="relu"),
                  (3, 3, 2)),
    "separable": (lambda: keras.layers.SeparableConv2D(3, 2, activation="relu"), (4, 4, 2)),
}


@pytest.mark.parametrize("layer_id", list(STACKED_LAYERS))
@pytest.mark.parametrize("rule", [rules.ZBox(-1, 2), rules.ZPlus(), rules.AlphaBeta(2, 1),
                                  rules.Gamma(0.25)])
def test_several_terms_in_one_pass_equal_separate_passes(layer_id, rule, monkeypatch):
    """On signed inputs these rules have two terms per group; a layer that sums over its
    input channels runs them as one forward and one backward pass: same maps."""
    make, shape = STACKED_LAYERS[layer_id]
    model = _signed_model(make(), shape)
    x = np.random.default_rng(12).uniform(-1, 2, (3, *shape)).astype("float32")
    stacked = dk.LRP(model, rule).analyze(x)
    monkeypatch.setattr(dk.layers.linear.Linear, "stack_axes", lambda self: None)
    separate = dk.LRP(model, rule).analyze(x)
    np.testing.assert_allclose(stacked, separate, rtol=1e-5, atol=1e-6)


def _op_count(analyzer, shape, op_type):
    import tensorflow as tf

    graph = analyzer.function.get_concrete_function(
        (tf.TensorSpec((None, *shape)),), tf.TensorSpec((None,), tf.int32)).graph
    return sum(op.type == op_type for op in graph.get_operations())


def test_zbox_first_conv_runs_one_modified_forward_pass():
    """zᴮ's two terms ((x−l)w⁺ and (x−h)w⁻) share one convolution: the graph holds the
    model's own conv and one more, not two more."""
    model = _signed_model(keras.layers.Conv2D(3, 2, activation="relu"), (4, 4, 1))
    assert _op_count(dk.DTD(model, input_domain=dk.Box(0.0, 1.0)), (4, 4, 1), "Conv2D") == 2
    assert _op_count(dk.DTD(model, input_domain=dk.Box(0.0, 1.0)), (4, 4, 1),
                     "Conv2DBackpropInput") == 1


def test_forward_keeps_preactivations_only_for_rules_that_read_them(mlp):
    """ε and γ read the forward pass's pre-activation; z⁺/zᴮ/w² do not, so DTD keeps
    only the activations alive until the backward pass."""
    from dtd_keras.engine.passes import forward_values

    x = np.ones((2, D_IN), "float32")
    for analyzer, kept in ((dk.DTD(mlp, input_domain=dk.Box(-1.0, 2.0)), 0),
                           (dk.LRP(mlp, rules.Epsilon(0.1)), 3), (dk.LRP(mlp, rules.Gamma()), 3)):
        values = forward_values(analyzer._steps, analyzer.graph.inputs, [x])
        assert sum(isinstance(k, tuple) and k[0] == "kept" for k in values) == kept
        # where kept, ReLU outputs (fused, or a ReLU layer after a linear one: both in
        # this model) are recomputed from it late rather than also kept
        recomputed = sum(isinstance(k, tuple) and k[0] == "relu of" for k in values)
        assert recomputed == (2 if kept else 0)
