"""Issue 13: DTD never hands out a template that ignores the input.

Above a PReLU (LeakyReLU, swish, a linear output) a hidden layer's input domain is ℝ, where
the seed's w² reads only the weights. DTD gives such Dense/Conv layers ``hidden_real_rule``
(default ``ZSign``), tested here on random networks wired as MTCNN's ONet is.
"""

import keras
import numpy as np
import pytest

import dtd_keras as dk
from dtd_keras import rules


def prelu_net(conv):
    """Random PReLU network wired as MTCNN's ONet is (functional, PReLU after every
    Conv/Dense, shared over space, max pools, two heads), or its dense part alone."""
    keras.utils.set_random_seed(7)
    L = keras.layers
    inp = keras.Input((12, 12, 3) if conv else (24,))
    h = inp
    if conv:
        for i, (filters, size, pool) in enumerate([(6, 3, 3), (8, 3, 2)], 1):
            h = L.Conv2D(filters, size, name=f"conv{i}")(h)
            h = L.PReLU(shared_axes=[1, 2], name=f"prelu{i}")(h)
            h = L.MaxPooling2D(pool, 2, padding="same", name=f"pool{i}")(h)
        h = L.Flatten()(h)
    h = L.PReLU(name="prelu3")(L.Dense(16, name="dense")(h))
    model = keras.Model(inp, [L.Dense(2, activation="softmax", name="prob")(h),
                              L.Dense(4, name="box")(h)])
    for layer in model.layers:
        if isinstance(layer, L.PReLU):
            layer.alpha.assign(np.full(layer.alpha.shape, 0.25, "float32"))
    return model


def map_correlation(e):
    r = e.relevance.reshape(len(e.explained), -1) / e.explained[:, None]
    c = np.corrcoef(r)
    return c[~np.eye(len(c), dtype=bool)]


def test_dtd_hidden_layers_on_real_inputs_read_the_activations():
    """Issue 13: above a PReLU a layer's input domain is ℝ, where the seed's w² reads only
    the weights: every input got the same map (R/logit equal to 1e-8). Hidden layers there
    get signed z⁺, named by one warning; hidden_real_rule=W2() keeps the old maps."""
    model = prelu_net(conv=False)
    x = np.random.default_rng(8).normal(size=(6, 24)).astype("float32")
    with pytest.warns(UserWarning, match=r"1 hidden layer reads real-valued inputs.*: "
                                         r"'prob' \(Dense\)\. .*get ZSign\(\)"):
        analyzer = dk.DTD(model, output="prob")
    assert analyzer.rules == {"dense": rules.W2(), "prob": rules.ZSign()}  # input: declared ℝ
    assert analyzer.hidden_real_layers == ["prob"]
    e = analyzer.explain(x, neuron=0)
    assert map_correlation(e).max() < 0.99 and map_correlation(e).mean() < 0.7  # 0.91, 0.53
    np.testing.assert_allclose(e.properties().total, e.explained, rtol=1e-5)
    old = dk.DTD(model, output="prob", hidden_real_rule=rules.W2()).explain(x, neuron=0)
    np.testing.assert_allclose(map_correlation(old), 1.0, atol=1e-6)  # one template
    with pytest.raises(dk.UnsupportedLayerError, match=r"hidden_real_rule='error'\): 1 hidden "
                                                       r"layer reads .*'prob' \(Dense\).*LRP"):
        dk.DTD(model, output="prob", hidden_real_rule="error")
    with pytest.raises(TypeError, match="hidden_real_rule must be a dtd_keras rule"):
        dk.DTD(model, output="prob", hidden_real_rule="w2")


def test_dtd_on_an_onet_like_prelu_network():
    """The conv network: PReLU named as such, every hidden layer z⁺, conservation, and
    the option reproducing w² everywhere (= LRP with W2)."""
    model = prelu_net(conv=True)
    x = np.random.default_rng(9).normal(size=(5, 12, 12, 3)).astype("float32")
    with pytest.warns(UserWarning) as caught:
        analyzer = dk.DTD(model, output="prob")
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2 and "prelu1 (prelu), prelu2 (prelu), prelu3 (prelu)" in messages[0]
    assert "'conv2' (Conv2D), 'dense' (Dense), 'prob' (Dense)" in messages[1]
    assert analyzer.rules == {"conv1": rules.W2(), "conv2": rules.ZSign(),
                              "dense": rules.ZSign(), "prob": rules.ZSign()}
    e = analyzer.explain(x, neuron=1)
    np.testing.assert_allclose(e.properties().total, e.explained, rtol=1e-5)
    old = dk.DTD(model, output="prob", hidden_real_rule=rules.W2())
    assert set(old.rules.values()) == {rules.W2()}
    w2 = dk.LRP(model, rules.W2(), output="prob").explain(x, neuron=1).relevance
    np.testing.assert_allclose(old.explain(x, neuron=1).relevance, w2, rtol=1e-5, atol=1e-9)
    assert map_correlation(e).mean() < map_correlation(old.explain(x, neuron=1)).mean()
