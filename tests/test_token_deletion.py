"""dk.evaluate.token_deletion against a hand computation on a model whose logit is the sum
of one number per token (so each token's exact contribution is known)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import dtd_keras as dk

VALUES = np.array([0.0, 3.0, -1.0, 2.0, 0.5, 1.5, -2.0, 4.0], np.float32)  # id 0: the pad
IDS = np.array([[1, 2, 3, 4, 5], [7, 6, 1, 1, 2], [4, 4, 7, 3, 6]], np.int32)


@pytest.fixture(scope="module")
def summing_model():
    """logit = Σ_t VALUES[id_t]: Embedding(8, 1) -> Flatten -> Dense(1, ones, no bias)."""
    inp = keras.Input((5,), dtype="int32")
    e = keras.layers.Embedding(8, 1, name="emb")(inp)
    out = keras.layers.Dense(1, use_bias=False, name="sum")(keras.layers.Flatten()(e))
    model = keras.Model(inp, out)
    model.get_layer("emb").set_weights([VALUES[:, None]])
    model.get_layer("sum").set_weights([np.ones((5, 1), np.float32)])
    return model


def _reference_curve(ids, relevance, steps):
    """f(x^(k)) for k = 0..steps, MoRF, from the token values (independent of dtd_keras)."""
    contrib = VALUES[ids].astype(np.float64)
    order = np.argsort(-relevance, axis=1, kind="stable")[:, :steps]
    removed = np.take_along_axis(contrib, order, axis=1)
    start = contrib.sum(axis=1, keepdims=True)
    return np.concatenate([start, start - np.cumsum(removed, axis=1)], axis=1)


def test_curves_and_aopc_match_a_hand_computation(summing_model):
    R = VALUES[IDS]  # each token's exact contribution
    result = dk.evaluate.token_deletion(summing_model, IDS, R, seeds=(0, 1))
    expected = _reference_curve(IDS, R, 5)
    np.testing.assert_allclose(result.curves, expected, rtol=1e-6, atol=1e-5)
    drop = expected[:, :1] - expected
    np.testing.assert_allclose(result.aopc, drop.mean(), rtol=1e-6)
    np.testing.assert_allclose(result.aopc_per_sample, drop.mean(axis=1), rtol=1e-6)
    # every token replaced at the end, whatever the order: both curves end at 0
    np.testing.assert_allclose(result.random_curves[:, -1], 0.0, atol=1e-5)
    assert result.aopc > result.aopc_random  # the exact contributions beat chance
    reversed_ = dk.evaluate.token_deletion(summing_model, IDS, -R, seeds=(0, 1))
    assert reversed_.aopc < result.aopc_random  # least relevant first does worse than chance
    np.testing.assert_allclose(reversed_.random_curves, result.random_curves, atol=1e-5)
    assert result.to_dict()["steps"] == 5 and result.neuron.tolist() == [0, 0, 0]


def test_keep_features_steps_and_explanations(summing_model):
    R = np.stack([VALUES[IDS], np.zeros(IDS.shape, np.float32)], axis=-1)  # (N, T, D)
    keep = np.array([True, False, False, False, False])
    result = dk.evaluate.token_deletion(summing_model, IDS, R, keep=keep, steps=4,
                                        replace_id=0)
    kept_value = VALUES[IDS[:, 0]]
    np.testing.assert_allclose(result.curves[:, -1], kept_value, atol=1e-5)
    np.testing.assert_allclose(result.random_curves[:, -1], kept_value, atol=1e-5)
    masked_R = np.where(keep, -np.inf, VALUES[IDS])
    np.testing.assert_allclose(result.curves, _reference_curve(IDS, masked_R, 4), atol=1e-5)
    explanation = dk.Explanation(VALUES[IDS], np.zeros(3, np.int64), VALUES[IDS].sum(1))
    again = dk.evaluate.token_deletion(summing_model, IDS, explanation, steps=2)
    np.testing.assert_allclose(again.curves, _reference_curve(IDS, VALUES[IDS], 2),
                               atol=1e-5)


def test_token_deletion_bad_input(summing_model):
    R = VALUES[IDS]
    td = dk.evaluate.token_deletion
    with pytest.raises(ValueError, match="float inputs are not ids"):
        td(summing_model, IDS.astype(np.float32), R)
    with pytest.raises(ValueError, match=r"relevance has shape \(3, 4\); the tokens have"):
        td(summing_model, IDS, R[:, :4])
    with pytest.raises(ValueError, match=r"between 1 and the fewest replaceable tokens.*\(4\)"):
        td(summing_model, IDS, R, keep=np.eye(1, 5, dtype=bool)[0], steps=5)
    with pytest.raises(ValueError, match=r"keep has shape \(4,\)"):
        td(summing_model, IDS, R, keep=np.ones(4, bool))
    with pytest.raises(ValueError, match="replace_id must be an int"):
        td(summing_model, IDS, R, replace_id=0.5)
    with pytest.raises(ValueError, match="NaN"):
        td(summing_model, IDS, np.where(IDS == 1, np.nan, R))
