"""Relevance at any layer (issue 15, item 1): ``explain(x, layers=[...])`` returns each
named layer's output relevance from the same compiled pass.

Under DTD on bias-free ReLU networks relevance is conserved layer by layer, so every
layer's sum equals the input map's sum; one layer's values are compared against the
independent numpy reference (``tests/reference.py``) applied to the network above it."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from reference import reference_relevance
from small_nets import bias_free_cnn, positive_top

import dtd_keras as dk
from dtd_keras.engine.layer_relevance import unknown_layers

L = keras.layers


def _cnn() -> keras.Model:
    return bias_free_cnn(3, 8, (4, 5), (6,), 3, "cnn")


def _mlp() -> keras.Model:
    keras.utils.set_random_seed(4)
    model = keras.Sequential([
        keras.Input((7,)),
        L.Dense(8, activation="relu", use_bias=False, name="h1"),
        L.Dense(6, activation="relu", use_bias=False, name="h2"),
        L.Dense(3, activation="softmax", use_bias=False, name="out"),
    ], name="mlp")
    return positive_top(model)


@pytest.fixture(scope="module")
def nets():
    """Per net: the model, its DTD analyzer, positive inputs, and the layer names."""
    rng = np.random.default_rng(0)
    cnn, mlp = _cnn(), _mlp()
    return {
        "cnn": (cnn, dk.DTD(cnn), rng.uniform(size=(3, 8, 8, 1)).astype("float32"),
                ["conv1", "conv2", "pool", "flat", "fc", "out"]),
        "mlp": (mlp, dk.DTD(mlp), rng.uniform(size=(3, 7)).astype("float32"),
                ["h1", "h2", "out"]),
    }


def _sums(a: np.ndarray, axes: int = 1) -> np.ndarray:
    return a.reshape(*a.shape[:axes], -1).astype(np.float64).sum(-1)


@pytest.mark.parametrize("net", ["cnn", "mlp"])
def test_every_layer_holds_the_input_sum(nets, net):
    model, analyzer, x, names = nets[net]
    e = analyzer.explain(x, layers=names)
    assert list(e.layer_relevance) == names
    assert np.all(e.explained > 0)  # else DTD need not conserve
    total = _sums(e.relevance)
    np.testing.assert_allclose(total, e.explained, rtol=1e-5)
    values = {layer.name: layer.output for layer in model.layers}
    sub = keras.Model(model.inputs[0], [values[n] for n in names])
    for name, out in zip(names, sub(x)):
        assert e.layer_relevance[name].shape == tuple(out.shape), name
        assert e.layer_relevance[name].dtype == np.float32
        np.testing.assert_allclose(_sums(e.layer_relevance[name]), total, rtol=1e-5,
                                   err_msg=name)
    top = np.zeros_like(e.layer_relevance["out"])  # the explained logit, nothing else
    top[np.arange(len(x)), e.neuron] = e.explained
    np.testing.assert_allclose(e.layer_relevance["out"], top, rtol=1e-6)
    assert analyzer.explain(x).layer_relevance == {}


def _two_branches() -> keras.Model:
    """``h`` read by two branches ``a`` and ``b``, joined by ``add``, then ``out``."""
    keras.utils.set_random_seed(5)
    inp = keras.Input((5,))
    h = L.Dense(6, activation="relu", use_bias=False, name="h")(inp)
    a = L.Dense(4, activation="relu", use_bias=False, name="a")(h)
    b = L.Dense(4, activation="relu", use_bias=False, name="b")(h)
    out = L.Dense(2, use_bias=False, name="out")(L.Add(name="add")([a, b]))
    return positive_top(keras.Model(inp, out))


def test_a_branching_layer_holds_both_branches_relevance():
    """``h`` feeds two branches: its relevance is the sum over both consumers (each branch
    alone holds only part of it)."""
    model = _two_branches()
    x = np.random.default_rng(2).uniform(size=(2, 5)).astype("float32")
    e = dk.DTD(model).explain(x, layers=["h", "a", "b", "add"])
    total = _sums(e.relevance)
    np.testing.assert_allclose(_sums(e.layer_relevance["h"]), total, rtol=1e-5)
    np.testing.assert_allclose(_sums(e.layer_relevance["add"]), total, rtol=1e-5)
    parts = _sums(e.layer_relevance["a"]), _sums(e.layer_relevance["b"])
    np.testing.assert_allclose(parts[0] + parts[1], total, rtol=1e-5)
    assert np.all(parts[0] > 0) and np.all(parts[1] > 0)


@pytest.mark.parametrize("net, layer", [("cnn", "conv2"), ("mlp", "h1")])
def test_layer_relevance_equals_the_reference(nets, net, layer):
    """The relevance at ``layer``'s output is the reference's input relevance of the
    network above it, fed that layer's (ReLU, hence positive) output."""
    model, analyzer, x, _ = nets[net]
    e = analyzer.explain(x, layers=[layer])
    position = [lyr.name for lyr in model.layers].index(layer)
    below = keras.Model(model.inputs[0], model.layers[position].output)
    activation = np.asarray(below(x))
    above = keras.Sequential([keras.Input(activation.shape[1:]),
                              *model.layers[position + 1:]])
    expected = reference_relevance(above, activation, neuron=e.neuron,
                                   input_domain="positive")
    np.testing.assert_allclose(e.layer_relevance[layer], expected, rtol=1e-4,
                               atol=1e-6 * np.abs(expected).max())
    assert np.abs(expected).max() > 0


def test_neuron_all_stacks_the_neurons(nets):
    _, analyzer, x, _ = nets["cnn"]
    many = analyzer.explain(x, neuron="all", layers=["conv2", "fc"])
    assert many.layer_relevance["conv2"].shape == (3, 3, 4, 4, 5)
    assert many.layer_relevance["fc"].shape == (3, 3, 6)
    split = analyzer.explain(x, neuron="all", layers=["conv2", "fc"], neurons_per_pass=2)
    for k in range(3):
        single = analyzer.explain(x, neuron=k, layers=["conv2", "fc"])
        for name in ("conv2", "fc"):
            scale = np.abs(single.layer_relevance[name]).max()
            for result in (many, split):
                np.testing.assert_allclose(result.layer_relevance[name][:, k],
                                           single.layer_relevance[name], rtol=1e-5,
                                           atol=1e-6 * scale)


def test_empty_batch_gives_empty_layer_maps(nets):
    _, analyzer, x, _ = nets["cnn"]
    e = analyzer.explain(x[:0], layers="pool")
    assert e.layer_relevance["pool"].shape == (0, 2, 2, 5)


def test_bad_layer_names(nets):
    model, analyzer, x, names = nets["mlp"]
    with pytest.raises(ValueError, match=r"layers= names 'nope', which is no layer.*known "
                                         r"layers are \['h1', 'h2', 'out'\]"):
        analyzer.explain(x, layers=["h1", "nope"])
    with pytest.raises(ValueError, match=r"names 'h_2', .*did you mean 'h2'"):
        analyzer.explain(x, layers="h_2")
    many = [f"block_{i}_add" for i in range(30)]  # a large model: no list, a pointer
    text = unknown_layers("condition=", ["block_5_ad"], many)
    assert "did you mean 'block_5_add'" in text and "block_29_add" not in text
    assert text.endswith("(see analyzer.layer_names for all 30 of them)")
    with pytest.raises(TypeError, match="layers must be a layer name or a list"):
        analyzer.explain(x, layers=[1])
    with pytest.raises(ValueError, match="Gradient computes no relevance at hidden layers"):
        dk.create_analyzer("gradient", model).explain(x, layers=["h1"])
    inp = keras.Input((6,))
    first, second = keras.ops.split(L.Dense(4, activation="relu", name="h")(inp), 2, axis=-1)
    split = dk.DTD(keras.Model(inp, L.Dense(2)(L.Concatenate()([second, first]))))
    with pytest.raises(ValueError, match=r"layer 'split' \(Split\) has 2 outputs"):
        split.explain(np.ones((1, 6), np.float32), layers=["h", "split"])


def test_traced_once_per_layer_tuple_and_export_unaffected(nets, tmp_path):
    model, analyzer, x, _ = nets["mlp"]
    plain = analyzer.explain(x)
    before = analyzer.trace_count
    for _ in range(2):
        analyzer.explain(x, layers=["h2", "h1"])
    assert analyzer.trace_count == before + 1
    maps, _, _ = analyzer.function((tf.constant(x),), tf.constant([-1, -1, -1], tf.int32))
    assert len(maps) == 1  # the plain function still returns the input map only
    loaded = tf.saved_model.load(str(analyzer.export(tmp_path / "exported")))
    served = loaded.signatures["serving_default"](tf.constant(x))
    assert sorted(served) == ["logit", "neuron", "relevance"]
    np.testing.assert_allclose(served["relevance"].numpy(), plain.relevance, rtol=1e-5)


def test_token_model_embeddings_and_integer_outputs():
    """An embedding's output relevance, summed over its features, is its share; integer
    outputs (token positions) carry no relevance and are refused by name."""
    keras.utils.set_random_seed(6)
    ids = keras.Input((4,), dtype="int32", name="ids")
    positions = keras.ops.cumsum(keras.ops.ones_like(ids), axis=1) - 1
    h = L.Add()([L.Embedding(7, 3, name="tok")(ids), L.Embedding(4, 3, name="pos")(positions)])
    out = L.Dense(2, name="top")(L.Flatten()(L.Dense(3, activation="relu", name="mix")(h)))
    analyzer = dk.LRP(keras.Model(ids, out), dk.rules.Epsilon(0.0))
    x = np.array([[1, 5, 2, 6], [3, 0, 4, 1]], np.int32)
    e = analyzer.explain(x, layers=["tok", "pos", "mix"])
    assert e.layer_relevance["mix"].shape == (2, 4, 3)
    np.testing.assert_allclose(e.layer_relevance["tok"].sum(-1), e.relevance, rtol=1e-5,
                               atol=1e-7)
    np.testing.assert_allclose(e.layer_relevance["pos"].sum(-1), e.embeddings["pos"],
                               rtol=1e-5, atol=1e-7)
    cumsum = next(c.name for c in analyzer.graph.calls  # auto-named: cumsum, cumsum_1, …
                  if type(c.operation).__name__ == "Cumsum")
    with pytest.raises(ValueError, match=rf"layer '{cumsum}' \(Cumsum\) outputs int32 values "
                                         r"of shape \(None, 4\), which carry no relevance"):
        analyzer.explain(x, layers=cumsum)


# ------------------------------------------------- layer_inputs=True: what each layer hands down
def test_what_a_layer_hands_down_equals_the_reference(nets):
    """``conv2`` hands its input (conv1's output) the reference's input relevance of the
    network from conv2 up, fed conv1's output, which is the value ``layer_inputs`` gives.
    Every layer hands down what it holds (DTD conserves), and a one-reader input gets
    exactly what its reader hands it."""
    model, analyzer, x, names = nets["cnn"]
    e = analyzer.explain(x, layers=names, layer_inputs=True)
    assert list(e.layer_input_relevance) == list(e.layer_inputs) == names
    activation = np.asarray(keras.Model(model.inputs[0], model.get_layer("conv1").output)(x))
    np.testing.assert_allclose(e.layer_inputs["conv2"][0], activation, rtol=1e-6, atol=1e-7)
    above = keras.Sequential([keras.Input(activation.shape[1:]), *model.layers[1:]])
    expected = reference_relevance(above, activation, neuron=e.neuron, input_domain="positive")
    (handed,) = e.layer_input_relevance["conv2"]
    assert handed.shape == activation.shape and handed.dtype == np.float32
    np.testing.assert_allclose(handed, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())
    np.testing.assert_allclose(handed, e.layer_relevance["conv1"], rtol=1e-6)
    total = _sums(e.relevance)
    for name in names:
        np.testing.assert_allclose(_sums(e.layer_input_relevance[name][0]), total, rtol=1e-5,
                                   err_msg=name)
    np.testing.assert_allclose(e.layer_input_relevance["conv1"][0], e.relevance, rtol=1e-6)
    plain = analyzer.explain(x, layers=names)
    assert plain.layer_input_relevance == {} and plain.layer_inputs == {}
    np.testing.assert_array_equal(plain.layer_relevance["conv2"], e.layer_relevance["conv2"])


def test_each_reader_hands_down_its_own_part():
    """``h`` is read by ``a`` and ``b``: each hands down its own part of h's relevance,
    and the parts add up to what ``h`` holds; ``add`` hands each branch what it holds."""
    analyzer = dk.DTD(_two_branches())
    x = np.random.default_rng(2).uniform(size=(2, 5)).astype("float32")
    assert analyzer.layer_names == ("h", "a", "b", "add", "out")
    e = analyzer.explain(x, layers=analyzer.layer_names, layer_inputs=True)
    (from_a,), (from_b,) = e.layer_input_relevance["a"], e.layer_input_relevance["b"]
    np.testing.assert_allclose(from_a + from_b, e.layer_relevance["h"], rtol=1e-5)
    assert _sums(from_a).min() > 0 and _sums(from_b).min() > 0
    to_a, to_b = e.layer_input_relevance["add"]
    np.testing.assert_allclose(to_a, e.layer_relevance["a"], rtol=1e-6)
    np.testing.assert_allclose(to_b, e.layer_relevance["b"], rtol=1e-6)
    kernel = {n: analyzer.model.get_layer(n).get_weights()[0] for n in ("h", "b")}
    np.testing.assert_allclose(e.layer_inputs["add"][1],
                               np.maximum(np.maximum(x @ kernel["h"], 0) @ kernel["b"], 0),
                               rtol=1e-5, atol=1e-7)


def test_layer_inputs_with_many_neurons_empty_batches_eagerly_and_bad_values(nets):
    _, analyzer, x, _ = nets["cnn"]
    many = analyzer.explain(x, neuron="all", layers=["conv2"], layer_inputs=True,
                            neurons_per_pass=2)
    assert many.layer_input_relevance["conv2"][0].shape == (3, 3, 6, 6, 4)
    assert many.layer_inputs["conv2"][0].shape == (3, 6, 6, 4)  # per sample, not neuron
    single = analyzer.explain(x, neuron=2, layers=["conv2"], layer_inputs=True)
    np.testing.assert_allclose(many.layer_input_relevance["conv2"][0][:, 2],
                               single.layer_input_relevance["conv2"][0], rtol=1e-5,
                               atol=1e-7)
    empty = analyzer.explain(x[:0], layers="pool", layer_inputs=True)
    assert empty.layer_input_relevance["pool"][0].shape == (0, 4, 4, 5)
    assert empty.layer_inputs["pool"][0].shape == (0, 4, 4, 5)
    before = analyzer.trace_count
    tf.config.run_functions_eagerly(True)  # TensorFlow's debugging switch: no trace
    try:
        eager = analyzer.explain(x, neuron=2, layers=["conv2"], layer_inputs=True)
    finally:
        tf.config.run_functions_eagerly(False)
    assert analyzer.trace_count == before
    np.testing.assert_allclose(eager.layer_input_relevance["conv2"][0],
                               single.layer_input_relevance["conv2"][0], rtol=1e-5, atol=1e-7)
    with pytest.raises(TypeError, match="layer_inputs must be True or False, got 'yes'"):
        analyzer.explain(x, layers="pool", layer_inputs="yes")
    with pytest.raises(ValueError, match="layer_inputs=True does not combine with condition="):
        analyzer.explain(x, layers="pool", layer_inputs=True, condition={"conv2": [0]})
    with pytest.raises(ValueError, match=r"no layer 'nope' in DTD; the known layers are "
                                         r"\['conv1', 'conv2', 'pool', 'flat', 'fc', 'out'\]"):
        analyzer.behaviour("nope")


def test_replace_behaviour_is_the_one_extension_point(nets):
    """A subclass replaces a call's behaviour while building; every pass then goes
    through it. Once built, replacing is refused (compiled passes would miss it)."""
    model, analyzer, x, _ = nets["mlp"]

    class Doubled:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def relevance(self, inputs, outputs, relevances, rule=None, **kept):
            return [2 * r for r in self.inner.relevance(inputs, outputs, relevances, rule,
                                                        **kept)]

    class DoubledDTD(dk.DTD):
        def _finish_build(self):
            super()._finish_build()
            self.replace_behaviour("h2", Doubled)

    doubled = DoubledDTD(model)
    assert isinstance(doubled.behaviour("h2"), Doubled)
    plain, twice = (a.explain(x, layers=["h1", "h2"]) for a in (analyzer, doubled))
    np.testing.assert_allclose(twice.relevance, 2 * plain.relevance, rtol=1e-6)
    np.testing.assert_allclose(twice.layer_relevance["h1"], 2 * plain.layer_relevance["h1"],
                               rtol=1e-6)
    np.testing.assert_allclose(twice.layer_relevance["h2"], plain.layer_relevance["h2"],
                               rtol=1e-6)
    with pytest.raises(RuntimeError, match=r"replace_behaviour\('h1'\) is for building"):
        analyzer.replace_behaviour("h1", Doubled)
