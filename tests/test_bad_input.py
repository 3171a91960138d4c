"""Issue 7: every bad input gets a correct answer or an error naming the problem.

Empty batches, inputs smaller than a kernel, neuron indices beyond an output known only at
run time, float32 overflow, NaN weights, degenerate or absurd boxes, per-sample bounds,
float64 layers, training-mode calls, outputs by name, and the exported model's shape and
finiteness checks.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import dtd_keras as dk
from dtd_keras import rules

L = keras.layers


@pytest.fixture(scope="module")
def cnn():
    keras.utils.set_random_seed(3)
    return keras.Sequential([keras.Input((8, 8, 1), name="pixels"),
                             L.Conv2D(4, 3, activation="relu", name="conv"),
                             L.Flatten(), L.Dense(10, name="logits")])


@pytest.fixture(scope="module")
def fully_convolutional():
    """No fixed spatial size: the output size is known only at run time."""
    keras.utils.set_random_seed(4)
    return keras.Sequential([keras.Input((None, None, 1)),
                             L.Conv2D(3, 5, activation="relu", name="wide"),
                             L.Conv2D(2, 1, name="head")])


@pytest.fixture(scope="module")
def exported(cnn, tmp_path_factory):
    path = dk.DTD(cnn, input_domain=dk.Box(0.0, 1.0)).export(
        tmp_path_factory.mktemp("export") / "explainer")
    return tf.saved_model.load(str(path))


def test_empty_batch_gives_empty_results(cnn):
    for analyzer in (dk.DTD(cnn, input_domain=dk.Box(0.0, 1.0)), dk.LRP(cnn)):
        e = analyzer.explain(np.zeros((0, 8, 8, 1)))
        assert e.relevance.shape == (0, 8, 8, 1) and e.relevance.dtype == np.float32
        assert e.neuron.shape == (0,) and e.explained.shape == (0,)
        assert analyzer.analyze(np.zeros((0, 8, 8, 1)), neuron=[]).shape == (0, 8, 8, 1)
        assert len(e.properties().total) == 0


def test_exported_model_takes_an_empty_batch(exported):
    out = exported.signatures["serving_default"](input=tf.zeros((0, 8, 8, 1)))
    assert out["relevance"].shape == (0, 8, 8, 1) and out["logit"].shape == (0,)
    out = exported.signatures["analyze_neuron"](input=tf.zeros((0, 8, 8, 1)),
                                                neuron=tf.zeros((0,), tf.int32))
    assert out["neuron"].shape == (0,)


@pytest.mark.parametrize("x", [np.zeros((2, 9, 9, 1)), np.zeros((2, 8, 8)),
                               np.zeros((2, 8, 8, 1, 1))])
def test_exported_model_names_the_expected_shape(exported, x):
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"\[\?,8,8,1\]|\(batch, 8, 8, 1\)"):
        exported.signatures["serving_default"](input=tf.constant(x, tf.float32))


def test_input_smaller_than_a_kernel_names_the_layer(fully_convolutional):
    analyzer = dk.DTD(fully_convolutional)
    with pytest.raises(ValueError, match=r"layer 'wide' \(Conv2D\) \(kernel_size=\(5, 5\).*"
                                         r"cannot compute on an input of shape \(1, 3, 3, 1\)"):
        analyzer.explain(np.ones((1, 3, 3, 1)))
    assert analyzer.explain(np.ones((1, 5, 5, 1))).relevance.shape == (1, 5, 5, 1)


@pytest.mark.parametrize("jit", [False, True])
def test_neuron_beyond_an_output_known_at_run_time(fully_convolutional, jit):
    analyzer = dk.DTD(fully_convolutional, jit_compile=jit)
    assert analyzer.output_size is None
    x = np.random.default_rng(0).uniform(size=(2, 6, 6, 1))  # output 2 x 2 x 2 = 8 neurons
    with pytest.raises(ValueError, match=r"out of range: got \[8, 1\], the explained output "
                                         r"has 8 neurons for inputs of this shape"):
        analyzer.explain(x, neuron=[8, 1])
    e = analyzer.explain(x, neuron=[7, 1])
    np.testing.assert_array_equal(e.neuron, [7, 1])


def test_float32_overflow_names_the_layer(cnn):
    """x = 3e38 is finite; sums over it are not: forward or relevance, the layer is named."""
    model = keras.Sequential([keras.Input((4,)), L.Dense(3, kernel_initializer="ones",
                                                         name="sums"), L.Dense(2, name="top")])
    x = np.full((1, 4), 3e38, np.float32)
    with pytest.raises(dk.NumericalError, match=r"forward pass overflows float32 at layer "
                                                r"'sums' \(Dense\).*the model input's is 3e\+38"):
        dk.DTD(model).explain(x)
    x = np.full((1, 8, 8, 1), 3e38, np.float32)  # the forward pass holds, z⁺'s sums do not
    with pytest.raises(dk.NumericalError, match=r"relevance is not finite below layer "
                                                r"'logits' \(Dense\) under ZPlus\(\)"):
        dk.DTD(cnn).explain(x)


def test_nan_weights_are_named(cnn):
    clone = keras.models.clone_model(cnn)
    clone.set_weights(cnn.get_weights())
    kernel = clone.get_layer("logits").kernel
    kernel.assign(tf.where(tf.range(kernel.shape[0])[:, None] == 3, np.nan, kernel))
    for analyzer in (dk.DTD(clone), dk.LRP(clone, rules.Epsilon(0.1))):
        with pytest.raises(dk.NumericalError, match=r"layer 'logits' \(Dense\) has 10 NaN or "
                                                    r"infinite values in its weight"):
            analyzer.explain(np.ones((1, 8, 8, 1)))


def test_degenerate_and_absurd_boxes(cnn):
    with pytest.raises(ValueError, match=r"Box\(0.5, 0.5\) has no width"):
        dk.Box(0.5, 0.5)
    with pytest.raises(ValueError, match="no width"):
        dk.DTD(cnn, input_domain=(0.2, 0.2))
    # a box far wider than the data: zᴮ stays exact (its terms are (x-l)w⁺ + (x-h)w⁻)
    # where float32 can hold them, and is refused by name where it cannot
    x = np.random.default_rng(1).uniform(size=(2, 8, 8, 1)).astype("float32")
    e = dk.DTD(cnn, input_domain=dk.Box(-1e30, 1e30)).explain(x)
    assert np.all(e.properties(rtol=1e-3).consistent | (e.explained <= 0))
    for absurd in (1e38, 3e38):  # zᴮ's quotients would underflow to 0: every relevance lost
        with pytest.raises(ValueError, match=r"Box bounds reach 1e\+38|Box bounds reach 3e\+38"):
            dk.DTD(cnn, input_domain=dk.Box(-absurd, absurd))


def test_box_bounds_with_a_batch_axis_are_refused(cnn):
    with pytest.raises(ValueError, match=r"more axes than one sample.*no batch axis"):
        dk.DTD(cnn, input_domain=dk.Box(np.zeros((5, 8, 8, 1)), 1.0))
    with pytest.raises(ValueError, match=r"does not broadcast to one sample"):
        dk.LRP(cnn, input_rule=rules.ZBox(np.zeros((7, 1)), 1.0))
    per_pixel = dk.DTD(cnn, input_domain=dk.Box(np.zeros((8, 8, 1)), np.ones((8, 1))))
    assert per_pixel.explain(np.full((1, 8, 8, 1), 0.5)).relevance.shape == (1, 8, 8, 1)


def test_float64_and_float16_weights_are_refused():
    model = keras.Sequential([keras.Input((4,)), L.Dense(3, dtype="float64", name="wide")])
    with pytest.raises(dk.UnsupportedLayerError, match=r"'wide' \(Dense\) computes in float64"):
        dk.DTD(model)
    model = keras.Sequential([keras.Input((4,)), L.Dense(3, dtype="float16", name="half")])
    with pytest.raises(dk.UnsupportedLayerError,
                       match=r"'half' \(Dense\) stores its weights in float16"):
        dk.DTD(model)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_models_are_explained_in_float32(policy):
    """float32 weights, low-precision compute: relevance is float32 and exact (DTD
    conserves to float32 rounding, where the model's own float16 math would not), and the
    explained logit is the model's up to its rounding."""
    keras.utils.set_random_seed(5)
    keras.config.set_dtype_policy(policy)
    try:
        model = keras.Sequential([
            keras.Input((8, 8, 1)), L.Conv2D(6, 3, activation="relu"), L.MaxPooling2D(),
            L.BatchNormalization(), L.Flatten(), L.Dense(12, activation="relu"),
            L.Dense(4, dtype="float32")])
    finally:
        keras.config.set_dtype_policy("float32")
    x = np.random.default_rng(6).uniform(size=(3, 8, 8, 1)).astype("float32")
    e = dk.DTD(model, input_domain=dk.Box(0.0, 1.0)).explain(x)
    assert e.relevance.dtype == np.float32
    np.testing.assert_allclose(e.relevance.reshape(3, -1).sum(1), e.explained, rtol=1e-5)
    assert np.all(e.relevance >= -1e-6 * np.abs(e.explained).max())
    np.testing.assert_allclose(e.explained, np.asarray(model(x)).max(axis=1), rtol=2e-2)


@pytest.mark.parametrize("make", [
    lambda h: L.BatchNormalization(name="bn")(h, training=True),
    lambda h: L.Dropout(0.5, name="drop")(h, training=True),
])
def test_training_mode_calls_are_refused(make):
    inp = keras.Input((4,))
    out = L.Dense(2)(make(L.Dense(3, activation="relu")(inp)))
    with pytest.raises(dk.UnsupportedLayerError, match=r"is called with training=True"):
        dk.DTD(keras.Model(inp, out))


def test_nested_model_called_in_training_mode_is_refused():
    inner_in = keras.Input((3,))
    inner = keras.Model(inner_in, L.Dropout(0.5)(inner_in), name="inner")
    inp = keras.Input((3,))
    out = L.Dense(2)(inner(inp, training=True))
    with pytest.raises(dk.UnsupportedLayerError, match=r"'inner' \(Functional\).*training=True"):
        dk.DTD(keras.Model(inp, out))


def test_output_by_name():
    inp = keras.Input((4,))
    h = L.Dense(3, activation="relu")(inp)
    model = keras.Model(inp, {"score": L.Dense(2, name="score_head")(h),
                              "aux": L.Dense(1, name="aux_head")(h)})
    x = np.random.default_rng(0).uniform(size=(3, 4)).astype("float32")
    for name in ("score_head", "score"):
        e = dk.LRP(model, output=name).explain(x)
        np.testing.assert_allclose(e.explained, np.asarray(model(x)["score"]).max(axis=1),
                                   rtol=1e-5)
    assert dk.LRP(model, output="aux_head").explain(x).neuron.tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match=r"output='nope' names no output.*'aux_head'"):
        dk.LRP(model, output="nope")
    with pytest.raises(TypeError, match="output must be an int index or an output name"):
        dk.LRP(model, output=1.5)


def test_the_invariant_checker_catches_another_function(cnn):
    """The conftest invariant (analyzer computes the model's function) can fail."""
    from invariants import assert_explains_the_model

    analyzer = dk.DTD(cnn)
    x = np.random.default_rng(2).uniform(size=(2, 8, 8, 1)).astype("float32")
    e = analyzer.explain(x)
    other = keras.models.clone_model(cnn)  # fresh random weights
    analyzer.model = other
    with pytest.raises(AssertionError, match="computes another function"):
        assert_explains_the_model(analyzer, x, e)


@pytest.mark.parametrize("x, message", [
    (np.ones((1, 8, 8, 1), np.complex64), r"holds complex numbers \(complex64\)"),
    (np.full((1, 8, 8, 1), "a"), r"holds <U1 values, not numbers"),
])
def test_complex_and_non_numeric_inputs_are_refused(cnn, x, message):
    with pytest.raises(ValueError, match=message):
        dk.DTD(cnn).explain(x)


def test_input_smaller_than_a_window_under_global_pooling_names_the_layer():
    """Issue 13: a conv window larger than the input, hidden by a global pool, gave a
    detail-free RuntimeError (TensorFlow returns garbage shapes there, and Keras' own
    model silently outputs zeros); it is refused before anything runs."""
    model = keras.Sequential([keras.Input((None, None, 1)), L.Conv2D(3, 3, name="conv"),
                              L.GlobalMaxPooling2D(), L.Dense(2)])
    for analyzer in (dk.DTD(model), dk.LRP(model)):
        with pytest.raises(ValueError, match=r"layer 'conv' \(Conv2D\) \(kernel_size=\(3, 3\)"
                                             r".*cannot compute on an input of shape "
                                             r"\(1, 2, 2, 1\).*zero or negative"):
            analyzer.explain(np.ones((1, 2, 2, 1)))
        assert analyzer.explain(np.ones((2, 3, 3, 1))).relevance.shape == (2, 3, 3, 1)
    pooled = keras.Sequential([keras.Input((None, None, 1)), L.Conv2D(3, 2, padding="same"),
                               L.MaxPooling2D(2, name="pool"), L.Conv2D(2, 2, name="top"),
                               L.GlobalAveragePooling2D(), L.Dense(2)])
    with pytest.raises(ValueError, match=r"layer 'top' \(Conv2D\).*input of shape "
                                         r"\(1, 1, 1, 3\) \(the model input has shape "
                                         r"\(1, 3, 3, 1\)\)"):
        dk.DTD(pooled).explain(np.ones((1, 3, 3, 1)))
