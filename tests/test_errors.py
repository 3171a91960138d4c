"""Bad input gets an error that names the problem; never NaN or a silent wrong answer."""

import re

import keras
import numpy as np
import pytest

import dtd_keras as dk
from dtd_keras import rules


@pytest.fixture(scope="module")
def model():
    return keras.Sequential([keras.Input((4,), name="pixels"),
                             keras.layers.Dense(3, activation="relu", name="hidden"),
                             keras.layers.Dense(2, name="logits")])


@pytest.fixture(scope="module")
def boxed(model):
    return dk.DTD(model, input_domain=dk.Box(0.0, 1.0))


def test_input_outside_box_says_how_far(boxed):
    x = np.full((2, 4), 0.5, "float32")
    x[1, 2] = -0.25
    with pytest.raises(dk.DomainError, match=r"input 0 \('pixels'\).*1 values below low, "
                                             r"the worst 0\.25 below at index \(1, 2\)"):
        boxed.analyze(x)
    x[1, 2] = 1.5
    with pytest.raises(ValueError, match=r"above high, the worst 0\.5 above"):
        boxed.analyze(x)


def test_negative_input_for_positive_domain(model):
    x = np.ones((1, 4), "float32")
    x[0, 3] = -2
    with pytest.raises(dk.DomainError, match=r"below 0.*min -2 at index \(0, 3\)"):
        dk.DTD(model, input_domain="positive").analyze(x)


def test_zbox_input_rule_declares_the_domain(model):
    lrp = dk.LRP(model, rules.Epsilon(0.1), input_rule=rules.ZBox(0, 1))
    with pytest.raises(dk.DomainError, match="outside the declared domain Box"):
        lrp.analyze(np.full((1, 4), 2.0))


@pytest.mark.parametrize("x, message", [
    (np.zeros((2, 5)), r"has shape \(2, 5\); the model expects \('batch', 4\)"),
    (np.zeros(4), r"has shape \(4,\)"),
    (np.array([[0.0, np.nan, 0.0, np.inf]]), "contains 2 NaN or infinite values"),
])
def test_bad_arrays(boxed, x, message):
    with pytest.raises(ValueError, match=message):
        boxed.analyze(x)


@pytest.mark.parametrize("neuron, message", [
    (2, r"out of range: got \[2, 2\], the explained output has 2 neurons"),
    (-1, "out of range"),
    ([0], r"one index per sample \(2\) or a \[2, K\] array of K per sample; got shape \(1,\)"),
    ([[0], [1], [0]], r"got shape \(3, 1\)"),
    ("some", "must be None, an int, indices or .all."),
    (0.5, "must hold integers"),
])
def test_bad_neuron(boxed, neuron, message):
    with pytest.raises(ValueError, match=message):
        boxed.analyze(np.zeros((2, 4)), neuron=neuron)


def test_unsupported_layer_fails_at_construction_with_its_name():
    inp = keras.Input((5, 3))
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.LSTM(4, name="memory")(inp)))
    with pytest.raises(dk.UnsupportedLayerError,
                       match=r"layer 'memory' \(LSTM\) \(call 0 in the graph, fed by the "
                             r"input\) has no relevance rule.*dk\.register_layer"):
        dk.DTD(model)


def test_unsupported_activation_is_named():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="exponential",
                                                                    name="squash"),
                              keras.layers.Dense(1)])
    with pytest.raises(dk.UnsupportedLayerError, match=r"'squash' \(Dense\) applies activation "
                                                       r"'exponential'"):
        dk.LRP(model)


def test_rule_parameters_are_checked():
    with pytest.raises(ValueError, match=re.escape("alpha - beta = 1")):
        rules.AlphaBeta(1, 1)
    with pytest.raises(ValueError, match="beta >= 0"):
        rules.AlphaBeta(0, -1)
    with pytest.raises(ValueError, match="epsilon >= 0"):
        rules.Epsilon(-0.1)
    with pytest.raises(ValueError, match="gamma >= 0"):
        rules.Gamma(-1)
    with pytest.raises(ValueError, match="low <= high"):
        rules.ZBox(1, 0)
    with pytest.raises(ValueError, match="do not broadcast"):
        dk.Box(np.zeros(3), np.ones(4))


def test_analyzer_options_are_checked(model):
    with pytest.raises(ValueError, match=r"layer_rules names layers that have no rule to set: "
                                         r"\['nope'\]; the rule-taking layers are"):
        dk.LRP(model, layer_rules={"nope": rules.Z()})
    with pytest.raises(TypeError, match="must be a dtd_keras rule"):
        dk.LRP(model, rule="epsilon")
    with pytest.raises(ValueError, match="unknown input domain 'pixels'"):
        dk.DTD(model, input_domain="pixels")
    with pytest.raises(ValueError, match="max_pool must be one of"):
        dk.DTD(model, max_pool="average")


def test_models_without_a_graph():
    unbuilt = keras.Sequential([keras.layers.Dense(2)], name="fresh")
    with pytest.raises(ValueError, match="'fresh' has no known input shape yet"):
        dk.DTD(unbuilt)

    class Custom(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(dk.UnsupportedLayerError, match="subclassed keras.Model"):
        dk.DTD(Custom())

    inp = keras.Input((3,))
    two = keras.Model(inp, [keras.layers.Dense(2)(inp), keras.layers.Dense(1)(inp)])
    with pytest.raises(ValueError, match="has 2 outputs; pass output=<index or name>"):
        dk.DTD(two)
    with pytest.raises(ValueError, match="output=2 is out of range"):
        dk.DTD(two, output=2)
    assert dk.DTD(two, output=1).analyze(np.ones((1, 3))).shape == (1, 3)


def test_sequential_built_without_input():
    model = keras.Sequential([keras.layers.Dense(3, activation="relu"), keras.layers.Dense(2)])
    model.build((None, 4))
    assert dk.DTD(model).analyze(np.ones((2, 4))).shape == (2, 4)


def test_one_refusal_lists_every_gap():
    """Issue 13: a model with several unsupported layers is refused once, naming each
    (name, class, where), with the advice once."""
    inp = keras.Input((5, 3), name="tokens")
    h = keras.layers.LSTM(4, return_sequences=True, name="memory")(inp)
    h = keras.layers.Dense(3, activation="exponential", name="squash")(h)
    h = keras.ops.softsign(keras.layers.Dense(3, name="mix")(h))
    model = keras.Model(inp, keras.layers.Dense(2, name="out")(keras.layers.Flatten()(h)))
    with pytest.raises(dk.UnsupportedLayerError) as caught:
        dk.DTD(model)
    message = str(caught.value)
    assert message.startswith(f"model '{model.name}' has 3 layers that cannot be explained:")
    for gap in (r"layer 'memory' \(LSTM\) \(call 0 in the graph, fed by the input\) has no "
                r"relevance rule",
                r"layer 'squash' \(Dense\) applies activation 'exponential', which has no "
                r"relevance rule \(call 1 in the graph, fed by 'memory'\)",
                r"operation 'softsign' \(Softsign\) \(call 3 in the graph, fed by 'mix'\)"):
        assert re.search(gap, message), gap
    assert message.count("register_layer") == 2  # once per kind of advice, not per layer


@pytest.mark.parametrize("op", ["tanh", "elu", "softplus", "selu", "hard_sigmoid"])
def test_keras_ops_activations_pass_like_their_layers(op):
    """README: keras.ops activations in functional code pass relevance unchanged, with
    the warning their Activation-layer twins get (they were refused)."""
    inp = keras.Input((4,))
    h = getattr(keras.ops, op)(keras.layers.Dense(3, name="hidden")(inp))
    model = keras.Model(inp, keras.layers.Dense(2, name="top")(h))
    with pytest.warns(UserWarning, match=rf"non-ReLU activations.*{op} \({op}\)"):
        analyzer = dk.LRP(model, rules.Epsilon(0.1))
    x = np.random.default_rng(0).normal(size=(2, 4)).astype("float32")
    twin = keras.Model(inp, model.get_layer("top")(
        keras.layers.Activation(op)(model.get_layer("hidden")(inp))))
    with pytest.warns(UserWarning, match=rf"non-ReLU activations.* \({op}\)"):
        twin_analyzer = dk.LRP(twin, rules.Epsilon(0.1))
    np.testing.assert_allclose(analyzer.analyze(x), twin_analyzer.analyze(x), rtol=1e-6)


def test_lrp_refuses_rule_none(model):
    """Issue 13: rule=None was silently read as ε; leaving rule out still gives ε."""
    with pytest.raises(TypeError, match=r"got rule=None: pass one, e\.g\. dk\.rules\.Epsilon"
                                        r"\(0\.1\).*leave rule out for Epsilon\(epsilon=1e-06\)"):
        dk.LRP(model, rule=None)
    assert set(dk.LRP(model).rules.values()) == {rules.Epsilon(1e-6)}
