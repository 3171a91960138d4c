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

import dtd_keras as dk

L = keras.layers


@pytest.fixture(scope="module")
def crp():
    """A bias-free ReLU CNN (non-negative output weights: the top logit is positive, so
    DTD conserves), its DTD and LRP-ε analyzers, and inputs."""
    keras.utils.set_random_seed(7)
    model = keras.Sequential([
        keras.Input((7, 7, 1)),
        L.Conv2D(3, 3, activation="relu", use_bias=False, name="conv1"),
        L.Conv2D(4, 3, activation="relu", use_bias=False, name="conv2"),
        L.MaxPooling2D(name="pool"),
        L.Flatten(name="flat"),
        L.Dense(3, use_bias=False, name="out"),
    ], name="crp_cnn")
    out = model.get_layer("out")
    out.set_weights([np.abs(out.get_weights()[0])])
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
    ({"nope": [0]}, ValueError, "name no layer"),
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


def test_refused_with_several_neurons_per_sample(crp):
    _, analyzers, x = crp
    with pytest.raises(ValueError, match="one neuron per sample"):
        analyzers["dtd"].explain(x, neuron="all", condition={"conv2": [0]})
