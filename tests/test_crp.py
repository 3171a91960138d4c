"""Conditional heatmaps (CRP; issue 15, item 2): ``explain(x, condition={layer: [c…]})``
gives, per listed channel of the layer's output, the input relevance flowing through that
channel alone (Achtibat et al., Nature Machine Intelligence 2023).

Checked on a small ReLU CNN under DTD (z+ above the input, w² at the real-valued input)
and LRP-ε: the maps of all channels sum to the unconditioned map; one channel's map equals
the independent numpy reference (``tests/reference.py``) run on the whole network with
only that channel's relevance kept at the layer's output; bad conditions are refused."""

import keras
import numpy as np
import pytest
from reference import constant_rule, reference_relevance
from small_nets import bias_free_cnn

import dtd_keras as dk

L = keras.layers


@pytest.fixture(scope="module")
def crp():
    """A bias-free ReLU CNN (non-negative output weights: the top logit is positive, so
    DTD conserves), its DTD and LRP-ε analyzers, and inputs."""
    model = bias_free_cnn(7, 7, (3, 4), (), 3, "crp_cnn")
    x = np.random.default_rng(1).normal(size=(2, 7, 7, 1)).astype("float32")
    return model, {"dtd": dk.DTD(model), "lrp": dk.LRP(model, rule=dk.rules.Epsilon(0.1))}, x


REFERENCE_RULES = {"dtd": None, "lrp": constant_rule(("epsilon", 0.1))}


@pytest.mark.parametrize("kind", ["dtd", "lrp"])
def test_concepts_sum_to_the_heatmap_and_one_equals_the_reference(crp, kind):
    model, analyzers, x = crp
    analyzer = analyzers[kind]
    plain = analyzer.explain(x, layers=["conv2"])
    e = analyzer.explain(x, condition={"conv2": [0, 1, 2, 3]}, layers=["conv2"])
    assert e.relevance.shape == (2, 4, 7, 7, 1) and e.relevance.dtype == np.float32
    assert e.neuron.shape == e.explained.shape == (2,)
    np.testing.assert_array_equal(e.neuron, plain.neuron)
    np.testing.assert_allclose(e.relevance.sum(1), plain.relevance, rtol=1e-5,
                               atol=1e-6 * np.abs(plain.relevance).max())
    # the layer relevance (captured at the conditioned output) is masked per copy
    hidden = plain.layer_relevance["conv2"]
    for k in range(4):
        expected = np.zeros_like(hidden)
        expected[..., k] = hidden[..., k]
        np.testing.assert_allclose(e.layer_relevance["conv2"][:, k], expected, rtol=1e-6)
    # several concepts carry relevance per sample (else the mask did nothing)
    sums = e.relevance.reshape(2, 4, -1).sum(-1)
    assert np.all((np.abs(e.relevance).reshape(2, 4, -1).max(-1) > 0).sum(1) >= 2)
    # one concept against the independent reference: the whole network, the relevance
    # at conv2's output kept at channel 1 only
    options = {} if REFERENCE_RULES[kind] is None else {"rule_for_layer": REFERENCE_RULES[kind]}
    expected = reference_relevance(model, x, neuron=e.neuron, condition=("conv2", 1),
                                   **options)
    np.testing.assert_allclose(e.relevance[:, 1], expected, rtol=1e-4,
                               atol=1e-6 * np.abs(expected).max())
    assert np.all(np.abs(expected).reshape(2, -1).max(-1) > 0)
    unconditioned = reference_relevance(model, x, neuron=e.neuron, **options)
    assert not np.allclose(expected, unconditioned)
    if kind == "dtd":  # DTD conserves: the concepts' sums split the explained logit
        np.testing.assert_allclose(sums.sum(1), e.explained, rtol=1e-5)


def test_subsets_chunks_neuron_and_one_trace_per_layer_and_count(crp):
    _, analyzers, x = crp
    analyzer = analyzers["dtd"]
    full = analyzer.explain(x, neuron=1, condition={"conv2": [0, 1, 2, 3]})
    traces = analyzer.trace_count
    part = analyzer.explain(x, neuron=1, condition={"conv2": [3, 1]})
    again = analyzer.explain(x[:1], neuron=1, condition={"conv2": [0, 2]})
    assert analyzer.trace_count == traces + 1  # one per (layer, K); channels are an input
    np.testing.assert_allclose(part.relevance, full.relevance[:, [3, 1]], rtol=1e-6)
    np.testing.assert_allclose(again.relevance, full.relevance[:1, [0, 2]], rtol=1e-6)
    np.testing.assert_array_equal(full.neuron, [1, 1])
    chunked = analyzer.explain(x, neuron=1, condition={"conv2": [0, 1, 2, 3]},
                               neurons_per_pass=3)
    np.testing.assert_allclose(chunked.relevance, full.relevance, rtol=1e-6)
    empty = analyzer.explain(x[:0], condition={"conv1": [1]})
    assert empty.relevance.shape == (0, 1, 7, 7, 1)


@pytest.mark.parametrize("condition, error, message", [
    ({"conv2": [0], "conv1": [0]}, ValueError, "exactly one layer"),
    ({"nope": [0]}, ValueError, r"condition= names 'nope', which is no layer.*known layers"),
    ({"conv_2": [0]}, ValueError, r"condition= names 'conv_2'.*did you mean 'conv2'"),
    ({"conv2": [4]}, ValueError, "has 4 channels"),
    ({"conv2": [-1]}, ValueError, "has 4 channels"),
    ({"conv2": []}, ValueError, "has 4 channels"),
    ({"conv2": [0.5]}, ValueError, "channel indices of layer 'conv2' \\(Conv2D\\)"),
    ({"flat": [0]}, None, None),  # a flat output's last axis is its only one: allowed
    ([("conv2", [0])], TypeError, "must be a dict"),
])
def test_bad_conditions(crp, condition, error, message):
    _, analyzers, x = crp
    if error is None:
        analyzers["dtd"].explain(x, condition=condition)
        return
    with pytest.raises(error, match=message):
        analyzers["dtd"].explain(x, condition=condition)


def test_repeated_channels_and_other_output_units(crp):
    """A repeated channel is computed once per listing; conditioning on an output unit
    other than the explained neuron leaves nothing to explain (all zero)."""
    _, analyzers, x = crp
    twice = analyzers["dtd"].explain(x, condition={"conv2": [1, 1]}).relevance
    np.testing.assert_array_equal(twice[:, 0], twice[:, 1])
    e = analyzers["dtd"].explain(x, neuron=0, condition={"out": [0, 2]})
    assert np.any(e.relevance[:, 0]) and not np.any(e.relevance[:, 1])


def test_merged_positions_and_channels_are_refused():
    """A Flatten/Reshape (layer or keras.ops) output merging positions and channels has
    no channels: condition=, concept_relevance and reference_samples refuse it and name
    the layer before it; a Dense output and a Reshape keeping the channel axis are fine."""
    inputs = keras.Input((3, 3, 1))
    conv = L.Conv2D(2, 2, activation="relu", name="conv")(inputs)  # (2, 2, 2)
    flat = L.Flatten(name="flat")(conv)
    ops_flat = keras.ops.reshape(conv, (-1, 8))
    rows = L.Reshape((4, 2), name="rows")(conv)  # keeps the 2 channels
    merged = L.Add()([flat, ops_flat, L.Flatten(name="flat_rows")(rows)])
    model = keras.Model(inputs, L.Dense(2, name="out")(L.Dense(3, name="dense")(merged)))
    analyzer = dk.LRP(model, rule=dk.rules.Epsilon(0.1))
    x = np.ones((1, 3, 3, 1), np.float32)
    reshape = next(n for n in analyzer.layer_names if n not in (
        "conv", "flat", "rows", "flat_rows", "add", "dense", "out"))
    for name in ("flat", reshape, "flat_rows"):
        with pytest.raises(ValueError, match=r"condition= cannot condition on the channels .*"
                                             r"merges the positions and channels.*Use the "
                                             r"layer before it \('(conv|rows)'"):
            analyzer.explain(x, condition={name: [3 % 2]})
    for name in ("dense", "rows"):
        assert analyzer.explain(x, condition={name: [1]}).relevance.shape == (1, 1, 3, 3, 1)
    e = analyzer.explain(x, layers=["flat", "dense"])
    with pytest.raises(ValueError, match="merges positions and channels.*Dense layer after"):
        e.concept_relevance("flat")
    assert e.concept_relevance("dense").values.shape == (1, 3)
    with pytest.raises(ValueError, match="reference samples need the channels of layer "
                                         "'flat' \\(Flatten\\): it merges"):
        dk.concepts.reference_samples(analyzer, x, "flat", 0, out="never-written")


def test_refused_with_several_neurons_per_sample(crp):
    _, analyzers, x = crp
    with pytest.raises(ValueError, match="one neuron per sample"):
        analyzers["dtd"].explain(x, neuron="all", condition={"conv2": [0]})


# --------------------------------------------------- which concepts matter (concept_relevance)
def test_concept_relevance_equals_the_reference_and_adds_up(crp):
    model, analyzers, x = crp
    e = analyzers["dtd"].explain(x, layers=["conv2", "conv1"])
    concepts = e.concept_relevance("conv2")
    assert concepts.layer == "conv2" and concepts.values.shape == (2, 4)
    expected = reference_relevance(model, x, neuron=e.neuron, at="conv2").sum(axis=(1, 2))
    np.testing.assert_allclose(concepts.values, expected, rtol=1e-5,
                               atol=1e-6 * np.abs(expected).max())
    assert np.all(np.count_nonzero(expected, axis=1) >= 2)  # several concepts matter
    np.testing.assert_allclose(concepts.values.sum(1),
                               e.layer_relevance["conv2"].sum(axis=(1, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(concepts.values.sum(1), e.explained, rtol=1e-5)  # DTD conserves
    channels, values = concepts.top(2)
    assert channels.shape == values.shape == (2, 2)
    np.testing.assert_array_equal(channels, np.argsort(-expected, axis=1)[:, :2])
    np.testing.assert_array_equal(values, np.take_along_axis(concepts.values, channels, 1))
    assert np.all(np.diff(concepts.top()[1], axis=1) <= 0)
    assert e.concept_relevance("conv1").values.shape == (2, 3)
    assert concepts.values.dtype == np.float32  # as the layer relevance
    with pytest.raises(ValueError, match=r"no relevance at layer 'conv_1' \(it holds "
                                         r"\['conv2', 'conv1'\]; did you mean 'conv1'"):
        e.concept_relevance("conv_1")


def test_concept_relevance_with_a_k_axis(crp):
    """K conditioned concepts: at a lower layer, copy k's channels equal the reference
    conditioned on c_k; at the conditioned layer copy k holds only channel c_k's share,
    the unconditioned one. K neurons per sample: one row per neuron."""
    model, analyzers, x = crp
    analyzer = analyzers["dtd"]
    plain = analyzer.explain(x, layers=["conv2"]).concept_relevance("conv2").values
    e = analyzer.explain(x, condition={"conv2": [3, 1]}, layers=["conv2", "conv1"])
    at_condition = e.concept_relevance("conv2").values
    assert at_condition.shape == (2, 2, 4)
    for k, channel in enumerate([3, 1]):
        expected = np.zeros_like(plain)
        expected[:, channel] = plain[:, channel]
        np.testing.assert_allclose(at_condition[:, k], expected, rtol=1e-5, atol=1e-7)
    lower = e.concept_relevance("conv1").values
    assert lower.shape == (2, 2, 3)
    reference = reference_relevance(model, x, neuron=e.neuron, condition=("conv2", 1),
                                    at="conv1").sum(axis=(1, 2))
    np.testing.assert_allclose(lower[:, 1], reference, rtol=1e-4,
                               atol=1e-6 * np.abs(reference).max())
    # above the conditioned layer the pass carries one set, tiled at the mask: equal copies
    above = analyzer.explain(x, condition={"conv1": [0, 2]}, layers=["conv2"])
    hidden = analyzer.explain(x, layers=["conv2"]).layer_relevance["conv2"]
    for k in range(2):
        np.testing.assert_allclose(above.layer_relevance["conv2"][:, k], hidden, rtol=1e-6)
    assert above.concept_relevance("conv2").values.shape == (2, 2, 4)
    many = analyzer.explain(x, neuron="all", layers=["conv2"]).concept_relevance("conv2")
    assert many.values.shape == (2, 3, 4) and many.top(1)[0].shape == (2, 3, 1)
    one = analyzer.explain(x, neuron=2, layers=["conv2"]).concept_relevance("conv2").values
    np.testing.assert_allclose(many.values[:, 2], one, rtol=1e-5, atol=1e-7)


def test_top_orders_by_relevance_and_refuses_bad_requests(crp):
    _, analyzers, x = crp
    hand = dk.Explanation(np.zeros((1, 2)), np.zeros(1, int), np.ones(1, np.float32),
                          layer_relevance={"h": np.array([[[1.0, -2.0, 3.0, 1.0]]])})
    channels, values = hand.concept_relevance("h").top(3)  # [batch, spatial, channels]
    np.testing.assert_array_equal(channels, [[2, 0, 3]])  # ties keep channel order
    np.testing.assert_array_equal(values, [[3.0, 1.0, 1.0]])
    e = analyzers["dtd"].explain(x, layers=["conv2"])
    with pytest.raises(ValueError, match=r"no relevance at layer 'conv1'.*layers=\['conv1'\]"):
        e.concept_relevance("conv1")
    with pytest.raises(ValueError, match="holds no layer"):
        analyzers["dtd"].explain(x).concept_relevance("conv2")
    concepts = e.concept_relevance("conv2")
    for k in (0, 5, True, 1.5):
        with pytest.raises(ValueError, match="has 4 channels"):
            concepts.top(k)


# --------------------------------------------------------------------- channels_first layers
@pytest.fixture(scope="module")
def channels_first():
    """The channel axis first: two Conv2D (data_format="channels_first"), a ReLU layer
    between them (no data_format of its own: the channel axis is the conv's)."""
    keras.utils.set_random_seed(3)
    first = {"use_bias": False, "data_format": "channels_first"}
    model = keras.Sequential([
        keras.Input((1, 6, 6)),
        L.Conv2D(3, 3, name="cf1", **first), L.ReLU(name="relu1"),
        L.Conv2D(4, 3, activation="relu", name="cf2", **first),
        L.Flatten(name="flat"), L.Dense(3, use_bias=False, name="out"),
    ], name="crp_channels_first")
    out = model.get_layer("out")
    out.set_weights([np.abs(out.get_weights()[0])])
    x = np.random.default_rng(2).normal(size=(2, 1, 6, 6)).astype("float32")
    return model, dk.DTD(model), x


def test_channels_first_conditions_and_concepts_use_the_first_axis(channels_first):
    model, analyzer, x = channels_first
    plain = analyzer.explain(x, layers=["cf2", "relu1"])
    e = analyzer.explain(x, condition={"cf2": [0, 1, 2, 3]})
    np.testing.assert_allclose(e.relevance.sum(1), plain.relevance, rtol=1e-5,
                               atol=1e-6 * np.abs(plain.relevance).max())
    expected = reference_relevance(model, x, neuron=e.neuron, condition=("cf2", 1, 0))
    np.testing.assert_allclose(e.relevance[:, 1], expected, rtol=1e-4,
                               atol=1e-6 * np.abs(expected).max())
    assert not np.allclose(expected, reference_relevance(model, x, neuron=e.neuron))
    concepts = plain.concept_relevance("cf2").values
    assert concepts.shape == (2, 4)
    at_layer = reference_relevance(model, x, neuron=e.neuron, at="cf2").sum(axis=(2, 3))
    np.testing.assert_allclose(concepts, at_layer, rtol=1e-5, atol=1e-6 * np.abs(at_layer).max())
    # the ReLU layer has the conv's 3 channels on its first axis (not the 4 columns)
    assert plain.concept_relevance("relu1").values.shape == (2, 3)
    through_relu = analyzer.explain(x, condition={"relu1": [2]}, layers=["relu1"])
    kept = through_relu.layer_relevance["relu1"][:, 0]
    np.testing.assert_array_equal(kept[:, :2], 0)
    np.testing.assert_allclose(kept[:, 2], plain.layer_relevance["relu1"][:, 2], rtol=1e-6)
    with pytest.raises(ValueError, match="has 3 channels"):
        analyzer.explain(x, condition={"relu1": [3]})


def test_minmax_dtd_refuses_conditions():
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((5,)), L.Dense(4, activation="relu", name="h"),
                              L.Dense(3, name="o")], name="crp_minmax")
    analyzer = dk.MinMaxDTD(model, pool_size=1)
    analyzer.fit(np.random.default_rng(0).normal(size=(8, 5)).astype("float32"), epochs=1,
                 verbose=0)
    with pytest.raises(ValueError, match="MinMaxDTD computes no conditional heatmaps"):
        analyzer.explain(np.zeros((1, 5), np.float32), condition={"h": [0]})


# ------------------------------------------------- the channel-sparse step (conditions.py)
@pytest.fixture(scope="module")
def with_biases():
    """Biases everywhere; a Conv2D without activation under a ReLU layer; a Dense."""
    keras.utils.set_random_seed(5)
    model = keras.Sequential([
        keras.Input((7, 7, 2)),
        L.Conv2D(3, 3, activation="relu", name="conv1"),
        L.Conv2D(4, 3, name="conv2"), L.ReLU(name="r2"),
        L.Flatten(name="flat"), L.Dense(5, activation="relu", name="d"),
        L.Dense(3, name="out"),
    ], name="crp_sparse")
    for name, shift in (("conv2", 0.2), ("d", 0.5)):  # live units: no copy is all zero
        kernel, bias = model.get_layer(name).get_weights()
        model.get_layer(name).set_weights([kernel, bias + shift])
    out = model.get_layer("out")
    out.set_weights([np.abs(out.get_weights()[0]), out.get_weights()[1]])
    x = np.random.default_rng(4).uniform(size=(2, 7, 7, 2)).astype("float32")
    return model, x


SPARSE_ANALYZERS = {
    "dtd": lambda m: dk.DTD(m, input_domain=dk.Box(0.0, 1.0)),  # zᴮ at conv1, z⁺ above
    "epsilon": lambda m: dk.LRP(m, rule=dk.rules.Epsilon(0.1)),
    "alphabeta": lambda m: dk.LRP(m, rule=dk.rules.AlphaBeta(1.0, 0.0)),
}


@pytest.mark.parametrize("kind, asks", [
    ("dtd", [{"conv1": [2, 0]}, {"r2": [3, 1, 3]}, {"d": [4, 0, 3]}]),
    ("epsilon", [{"r2": [3, 1, 3]}]),
    ("alphabeta", [{"d": [4, 0, 3]}]),
])
def test_channel_sparse_step_is_taken_and_equals_the_dense_path(with_biases, kind, asks,
                                                                 monkeypatch):
    """The conditioned Linear layer reads its masked relevance on channel c_k alone for
    copy k (the input layer under zᴮ; a conv through a ReLU layer; a Dense; a channel
    asked twice): the same maps as the dense path, which runs every channel."""
    from dtd_keras.engine import conditions

    model, x = with_biases
    maps = {}
    for sparse in (True, False):
        monkeypatch.setattr(conditions, "SPARSE", sparse)
        analyzer = SPARSE_ANALYZERS[kind](model)
        before = conditions.STATS["sparse_steps"]
        maps[sparse] = [analyzer.explain(x, condition=c).relevance for c in asks]
        assert conditions.STATS["sparse_steps"] - before == (len(asks) if sparse else 0)
    for fast, dense in zip(maps[True], maps[False]):
        assert np.abs(dense).reshape(dense.shape[:2] + (-1,)).max(-1).min() > 0
        np.testing.assert_allclose(fast, dense, rtol=1e-5, atol=1e-6 * np.abs(dense).max())
