"""LayerNorm/RMSNorm (AttnLRP's identity rule), EinsumDense and Dense on 3-D inputs,
elementwise activations under the attention analyzers, and honest properties.

Norms are checked against tests/reference.py's ``norm_epsilon`` (the frozen-scale
linear map written from the equation, then the ε-rule); linear layers against the
matrix rules applied to the layer's matrix, read off by feeding it the unit basis.
Several layers sit side by side in one model, each explained through its own output
neuron, so that one analyzer (one trace) checks them all.
"""

import warnings

import keras
import numpy as np
import pytest
import reference as ref
from test_layers import RULES, layer_matrix, randomize

import dtd_keras as dk
from dtd_keras import rules
from dtd_keras.engine import row_blocks
from dtd_keras.errors import UnsupportedLayerError

L = keras.layers
SHAPE = (3, 4)


def branches(make, count, shape=SHAPE):
    """``count`` layers ``make(k)`` named ``lin{k}`` side by side on one input, each
    flattened, concatenated: one output block per layer."""
    inp = keras.Input(shape)
    outs = [L.Flatten()(make(k)(inp)) for k in range(count)]
    model = keras.Model(inp, L.Concatenate()(outs) if count > 1 else outs[0])
    randomize(model, np.random.default_rng(0))
    return model


def block_sizes(model, count):
    return [int(np.prod(model.get_layer(f"lin{k}").output.shape[1:])) for k in range(count)]


def sample(batch=3, shape=SHAPE, seed=1):
    x = np.random.default_rng(seed).uniform(-1, 1, (batch, *shape)).astype("float32")
    x[-1] = 0.0  # every Σ_i z_ij vanishes: ZFlat's flat branch
    return x


def check_each_rule(model, x, **lrp):
    """Layer ``lin{k}`` under ``RULES[k]``, explained at the middle of its block,
    against the matrix rule on its matrix."""
    count = len(RULES)
    analyzer = dk.LRP(model, layer_rules={f"lin{k}": r for k, (r, _) in enumerate(RULES)}, **lrp)
    W, b = layer_matrix(model, SHAPE)
    sizes = block_sizes(model, count)
    starts = np.cumsum([0, *sizes[:-1]])
    neurons = np.tile(starts + np.array(sizes) // 2, (len(x), 1)).astype("int32")
    e = analyzer.explain(x, neuron=neurons)  # [batch, K]: every layer in one pass
    for k, (_, spec) in enumerate(RULES):
        cols = slice(starts[k], starts[k] + sizes[k])
        Wk, bk, mid = W[:, cols], b[cols], sizes[k] // 2
        for i in range(len(x)):
            flat = x[i].reshape(-1).astype(np.float64)
            logit = flat @ Wk[:, mid] + bk[mid]
            top = np.zeros(sizes[k])
            top[mid] = logit
            expected = ref.apply_rule(spec, Wk, bk, flat, top, (Wk != 0).astype(float))
            np.testing.assert_allclose(
                e.relevance[i, k], expected.reshape(SHAPE), rtol=1e-5,
                atol=1e-5 * np.abs(expected).max() + 1e-7, err_msg=f"{spec} sample {i}")


EQUATIONS = [  # (equation, output shape, bias axes): one summed axis, two, an ellipsis
    ("abc,cd->abd", (3, 2), "d"), ("abc,cde->abde", (3, 2, 2), "de"),
    ("abc,bcd->ad", (2,), "d"), ("...c,cd->...d", (2,), None),
]


def test_einsum_dense_takes_every_rule():
    def make(k):
        equation, out, bias = EQUATIONS[k % len(EQUATIONS)]
        return L.EinsumDense(equation, out, bias_axes=bias, name=f"lin{k}")

    check_each_rule(branches(make, len(RULES)), sample())


def test_dense_on_3d_inputs_takes_every_rule_in_row_blocks(monkeypatch):
    """Dense on [batch, seq, features], its kernel processed in blocks of rows (the path
    of kernels above 8 MiB: here a 4x2 kernel in blocks of 2 rows). The whole-kernel
    path is EinsumDense's ``abc,cd->abd`` above (the same map) and the norm tests."""
    monkeypatch.setattr(row_blocks, "CHUNK_ELEMENTS", 4)
    model = branches(lambda k: L.Dense(2, name=f"lin{k}"), len(RULES))
    check_each_rule(model, sample())


def test_einsum_dense_stacks_its_one_summed_axis():
    from dtd_keras.layers.linear import _axis_of, _einsum_parts

    assert _einsum_parts("ab c,cd->abd") == ("abc", "cd", "abd")
    assert [_axis_of(s, "c") for s in ("abc", "...c", "c...", "cd")] == [2, -1, 0, 0]


# ---------------------------------------------------------------------- norms
class OpLayerNorm(L.Layer):
    """``keras.ops.layer_normalization`` with its own weights (seen inside)."""

    def build(self, shape):
        self.g = self.add_weight(shape=(shape[-1],), name="g")
        self.b = self.add_weight(shape=(shape[-1],), name="b")

    def call(self, x):
        return keras.ops.layer_normalization(x, self.g, self.b, axis=-1, epsilon=1e-5)


class OpRMSNorm(L.Layer):
    """``keras.ops.rms_normalization`` with its own scale (seen inside)."""

    def build(self, shape):
        self.s = self.add_weight(shape=(shape[-1],), name="s")

    def call(self, x):
        return keras.ops.rms_normalization(x, scale=self.s, axis=-1, epsilon=1e-5)


def _norms():
    with warnings.catch_warnings():  # rms_scaling=True is deprecated (still supported)
        warnings.simplefilter("ignore")
        rms_scaling = L.LayerNormalization(rms_scaling=True)
    return [  # (layer, sample axes, centred, statistic)
        (L.LayerNormalization(), (1,), True, "variance"),
        (L.LayerNormalization(axis=1), (0,), True, "variance"),
        (L.LayerNormalization(axis=[1, 2], center=False), (0, 1), True, "variance"),
        (L.LayerNormalization(scale=False, epsilon=0.1), (1,), True, "variance"),
        (rms_scaling, (1,), False, "centred_variance"),
        (L.RMSNormalization(), (1,), False, "mean_square"),
        (OpLayerNorm(), (1,), True, "variance"),
        (OpRMSNorm(), (1,), False, "mean_square"),
    ]


@pytest.fixture(scope="module")
def norm_model():
    """Each norm variant on the input, then Flatten and a Dense logit of its own."""
    norms = _norms()
    inp = keras.Input(SHAPE)
    logits = [L.Dense(1, name=f"top{k}")(L.Flatten()(layer(inp)))
              for k, (layer, *_) in enumerate(norms)]
    model = keras.Model(inp, L.Concatenate()(logits))
    randomize(model, np.random.default_rng(3))
    return model, norms


def _gamma_beta(layer):
    if isinstance(layer, OpLayerNorm):
        return layer.g.numpy(), layer.b.numpy()
    if isinstance(layer, (OpRMSNorm, L.RMSNormalization)):
        return (layer.s if isinstance(layer, OpRMSNorm) else layer.scale).numpy(), None
    gamma = None if layer.gamma is None else layer.gamma.numpy()
    beta = None if layer.beta is None else layer.beta.numpy()
    if gamma is not None and list(layer.axis) == [1]:  # over the sequence axis
        gamma = gamma[:, None]
        beta = None if beta is None else beta[:, None]
    return gamma, beta


@pytest.mark.filterwarnings("ignore:You passed `rms_scaling=True`")
def test_norms_match_the_frozen_scale_epsilon_rule(norm_model):
    model, norms = norm_model
    x = np.random.default_rng(4).normal(0, 1, (2, *SHAPE)).astype("float32")
    analyzer = dk.LRP(model, rules.Epsilon(1e-6))
    assert not [w for w in analyzer.rules.values() if w != rules.Epsilon(1e-6)]
    e = analyzer.explain(x, neuron=np.tile(np.arange(len(norms)), (2, 1)).astype("int32"))
    for k, (layer, axes, center, statistic) in enumerate(norms):
        gamma, beta = _gamma_beta(layer)
        eps = float(layer.epsilon) if hasattr(layer, "epsilon") else 1e-5
        y_keras = np.asarray(keras.Model(model.input, layer.output)(x), np.float64)
        Wd, bd = (w.astype(np.float64) for w in model.get_layer(f"top{k}").get_weights())
        for i in range(2):
            *_, y = ref.frozen_norm(x[i], gamma, beta, axes, center, statistic, eps)
            np.testing.assert_allclose(y, y_keras[i].reshape(-1), rtol=1e-4, atol=1e-5,
                                       err_msg=f"reference forward of {layer.name}")
            logit = y @ Wd[:, 0] + bd[0]
            r_y = ref.epsilon(Wd, bd, y, np.array([logit]), 1e-6)
            expected = ref.norm_epsilon(x[i], r_y.reshape(SHAPE), gamma, beta, axes,
                                        center, statistic, eps, 1e-6)
            np.testing.assert_allclose(e.relevance[i, k], expected, rtol=1e-4,
                                       atol=1e-4 * np.abs(expected).max(),
                                       err_msg=f"{layer.name} ({type(layer).__name__})")


@pytest.mark.parametrize("analyzer", ["lrp", "dtd"])
def test_dense_layernorm_dense_conserves_without_biases(analyzer):
    inp = keras.Input(SHAPE)
    h = L.Dense(4, use_bias=False)(inp)
    ln = L.LayerNormalization()
    h = L.Dense(3, use_bias=False, activation="relu")(ln(h))
    out = L.Dense(2, use_bias=False)(L.Flatten()(h))
    model = keras.Model(inp, out)
    randomize(model, np.random.default_rng(2))
    ln.beta.assign(np.zeros(4, "float32"))  # β = 0: nothing absorbs
    x = np.random.default_rng(5).normal(0, 1, (4, *SHAPE)).astype("float32")
    a = dk.LRP(model, rules.Epsilon(1e-6)) if analyzer == "lrp" else dk.DTD(
        model, hidden_real_rule=rules.ZSign())
    props = a.explain(x).properties()
    assert np.abs(props.relative_error).max() < 1e-4, props


def test_beta_absorbs_its_share_and_properties_say_so():
    keras.utils.set_random_seed(6)  # LN's ε-rule (ε = 1e-6): no output near 0 in this draw
    inp = keras.Input(SHAPE)
    ln = L.LayerNormalization(beta_initializer="random_normal")
    out = L.Dense(1, use_bias=False, name="logit")(L.Flatten()(ln(inp)))
    model = keras.Model(inp, out)
    x = np.random.default_rng(6).normal(0, 1, (3, *SHAPE)).astype("float32")
    analyzer = dk.LRP(model, rules.Epsilon(0.0))  # LRP-0 on the top: only β absorbs
    assert analyzer.absorbed_by == (ln.name,)
    e = analyzer.explain(x)
    assert e.absorbed_by == (ln.name,)
    props = e.properties()
    w = model.get_layer("logit").get_weights()[0][:, 0]
    share = np.tile(ln.beta.numpy(), SHAPE[0]) @ w  # Σ_j β_j R_j / y_j with R_j = y_j w_j
    np.testing.assert_allclose(props.absorbed, share, rtol=1e-4, atol=1e-5)
    text = str(props)
    assert "rel. absorbed" in text and "not an error of the method" in text and ln.name in text
    assert props.to_dicts()[0].keys() >= {"relative_error", "consistent"}
    assert "absorbed_by" not in props.to_dicts()[0]
    z = dk.LRP(model, rules.Epsilon(0.0), layer_rules={ln.name: rules.Z()})  # β left out
    assert z.absorbed_by == ()
    assert np.abs(z.explain(x).properties().relative_error).max() < 1e-4


def test_dtd_on_relu_networks_still_reports_conservation_errors():
    model = keras.Sequential([keras.Input((4,)), L.Dense(3, activation="relu"), L.Dense(2)])
    e = dk.DTD(model).explain(np.ones((1, 4), "float32"))
    assert e.absorbed_by == () and "rel. error" in str(e.properties())
    assert "absorbed" not in str(e.properties())
    from dtd_keras.datasets.store import PROPERTY_FIELDS

    assert "absorbed_by" not in PROPERTY_FIELDS and len(PROPERTY_FIELDS) == 8


class TensorScaleNorm(L.Layer):
    """A layer norm whose γ is computed from the input: relevance cannot reach it."""

    def call(self, x):
        gamma = keras.ops.sigmoid(x)
        return keras.ops.layer_normalization(x, gamma, None, axis=-1)


def test_unsupported_norm_configurations_are_refused_at_once():
    inp = keras.Input(SHAPE)
    h = L.LayerNormalization(name="norm")(inp)
    h = TensorScaleNorm(name="tensor_scale")(h)
    model = keras.Model(inp, L.Dense(2)(L.Flatten()(h)))
    with pytest.raises(UnsupportedLayerError) as info:
        dk.LRP(model, layer_rules={"norm": rules.Gamma(0.25)})
    message = str(info.value)
    assert "2 layers" in message
    assert "'norm' (LayerNormalization) got rule Gamma" in message
    assert "'tensor_scale/" in message and "(LayerNorm)" in message
    assert "tensor computed by the model" in message


# ----------------------------------------------------------------- activations
def gelu_approximate(x):  # keras-hub's name (keras_hub.src.utils.keras_utils)
    return keras.activations.gelu(x, approximate=True)


class AttentionOption(dk.LRP):
    """What the attention analyzers pass every behaviour: ``attention`` set."""

    def _step_options(self):
        return {**super()._step_options(), "attention": "attn_lrp"}


def test_elementwise_activations_warn_only_outside_the_attention_analyzers():
    inp = keras.Input((4,))
    h = L.Dense(4, activation=gelu_approximate, name="hub_dense")(inp)
    h = L.Activation("tanh", name="tanh")(h)
    h = keras.ops.silu(h)
    h = L.EinsumDense("ab,bc->ac", 4, activation="gelu", name="ffn")(h)
    model = keras.Model(inp, L.Dense(2)(h))
    with pytest.warns(UserWarning, match="non-ReLU") as caught:
        dk.LRP(model)
    message = str(caught[0].message)
    for name in ("hub_dense (gelu_approximate)", "tanh (tanh)", "(silu)", "ffn (gelu)"):
        assert name in message
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        analyzer = AttentionOption(model)
    x = np.random.default_rng(7).normal(0, 1, (2, 4)).astype("float32")
    assert analyzer.explain(x).relevance.shape == (2, 4)
