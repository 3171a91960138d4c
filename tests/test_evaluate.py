"""dk.evaluate: every metric against small cases computed by hand."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import dtd_keras as dk
from dtd_keras import evaluate as ev

pytest.importorskip("matplotlib")

W = np.array([1.0, 2.0, 3.0, 4.0], np.float32)


def linear_model(weights=W, softmax=False, name="linear"):
    """f(x) = Σ w_i x_i: a Dense layer without bias (a second, zero unit for softmax)."""
    units = 2 if softmax else 1
    layer = keras.layers.Dense(units, use_bias=False,
                               activation="softmax" if softmax else None, name="dense")
    model = keras.Sequential([keras.Input(weights.shape), layer], name=name)
    kernel = np.zeros((weights.size, units), np.float32)
    kernel[:, 0] = weights.ravel()
    layer.set_weights([kernel.reshape(*weights.shape, units) if weights.ndim == 1 else kernel])
    return model


@pytest.fixture(scope="module")
def linear():
    return linear_model()


@pytest.fixture(scope="module")
def mlp():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(10)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:600], y[:600], epochs=5, verbose=0)
    return model, x[600:640]


# --------------------------------------------------------------------------- summary


def test_summary_of_hand_made_explanations():
    e = dk.Explanation(np.array([[1.0, 2.0], [3.0, -1.0], [1.0, 1.0]], np.float32),
                       np.zeros(3, np.int32), np.array([3.0, 2.0, 4.0], np.float32))
    s = ev.summary(e)
    assert s.count == 3
    assert s.mean_conservation_error == pytest.approx(0.5 / 3)   # errors 0, 0, (2-4)/4
    assert s.max_conservation_error == pytest.approx(0.5)
    assert s.share_positive == pytest.approx(2 / 3)              # sample 1 has -1
    assert s.share_consistent == pytest.approx(1 / 3)            # only sample 0
    assert s.negative_fraction == pytest.approx(0.25 / 3)        # |-1| / Σ|R| = 1/4
    halves = ev.summary([dk.Explanation(e.relevance[:1], e.neuron[:1], e.explained[:1]),
                         dk.Explanation(e.relevance[1:], e.neuron[1:], e.explained[1:])])
    assert halves.to_dict() == s.to_dict()


def test_summary_runs_an_analyzer_over_a_dataset_in_batches(linear):
    x = np.random.default_rng(0).normal(size=(7, 4)).astype(np.float32)
    s = ev.summary(dk.DTD(linear), x, batch_size=3)      # w²: conservative; signs follow f
    assert s.count == 7
    assert s.mean_conservation_error < 1e-5
    positive = (x @ W) > 0
    assert s.share_positive == pytest.approx(positive.mean())
    with pytest.raises(ValueError, match="needs x"):
        ev.summary(dk.DTD(linear))
    with pytest.raises(ValueError, match="no explained logit"):
        ev.summary(lambda data, neuron: data, x)
    with pytest.raises(ValueError, match="rtol"):
        ev.summary(dk.DTD(linear), x, rtol=-1)


def test_summary_reads_a_results_store(mlp, tmp_path):
    """dk.load_results(...) feeds summary: its stored properties, or recomputed from its
    relevance for another rtol; the same numbers as summarizing the analyzer directly."""
    model, x = mlp
    analyzer = dk.LRP(model, dk.rules.Epsilon(0.1))
    results = dk.analyze_dataset(analyzer, x, tmp_path / "store.zarr", chunk_size=16,
                                 progress=False)
    for rtol in (1e-4, 0.3):
        direct = ev.summary(analyzer, x, rtol=rtol).to_dict()
        stored = ev.summary(dk.load_results(tmp_path / "store.zarr"), rtol=rtol).to_dict()
        assert stored.keys() == direct.keys()
        for key, value in direct.items():
            assert stored[key] == pytest.approx(value, rel=1e-4, abs=1e-7), key
    assert ev.summary(results).count == len(x)
    assert 0 < ev.summary(results, rtol=0.3).share_consistent  # ε loses a little: rtol matters


# --------------------------------------------------------------------------- pixel flipping


def test_pixel_flipping_curve_and_aopc_by_hand(linear):
    x = np.ones((1, 4), np.float32)
    relevance = np.array([[4.0, 3.0, 1.0, 2.0]], np.float32)   # order: x0, x1, x3, x2
    result = ev.pixel_flipping(linear, x, relevance, patch_size=1, perturbation=0.0)
    np.testing.assert_allclose(result.curve, [10, 9, 7, 3, 0])
    assert result.aopc == pytest.approx((0 + 1 + 3 + 7 + 10) / 5)
    np.testing.assert_allclose(result.aopc_curve, [0, 1 / 2, 4 / 3, 11 / 4, 21 / 5])
    assert result.random_curve[0] == 10 and result.random_curve[-1] == 0
    assert result.steps == 4 and result.curves.shape == (1, 5)


def test_pixel_flipping_two_dimensional_patches_by_hand():
    weights = np.arange(1, 10, dtype=np.float32).reshape(3, 3)
    model = keras.Sequential([keras.Input((3, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(1, use_bias=False)])
    model.layers[-1].set_weights([weights.reshape(9, 1)])
    x = np.ones((1, 3, 3), np.float32)
    relevance = np.zeros((1, 3, 3), np.float32)
    relevance[0, 2, 2] = 5.0          # patch {(2,2)} first
    relevance[0, 0, 2] = 1.0          # then patch {(0,2), (1,2)}
    with pytest.warns(UserWarning, match="only 4 patches"):   # too coarse to rank methods
        result = ev.pixel_flipping(model, x, relevance, patch_size=2, steps=2,
                                   perturbation=0.0)
    # 2x2 patches of a 3x3 grid: {00,01,10,11}, {02,12}, {20,21}, {22}
    np.testing.assert_allclose(result.curve, [45, 45 - 9, 45 - 9 - 3 - 6])


def test_a_perturbation_that_removes_nothing_gives_aopc_zero(linear):
    x = np.full((3, 4), 0.5, np.float32)
    relevance = np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32)
    for perturbation, bounds in ((0.5, {}), ("uniform", {"low": 0.5, "high": 0.5})):
        result = ev.pixel_flipping(linear, x, relevance, patch_size=1,
                                   perturbation=perturbation, seeds=(0, 1), **bounds)
        assert result.aopc == 0.0 and result.aopc_random == 0.0


def test_pixel_flipping_uniform_noise_is_shared_by_both_orders(linear):
    x = np.random.default_rng(2).uniform(size=(5, 4)).astype(np.float32)
    relevance = x * W
    result = ev.pixel_flipping(linear, x, relevance, patch_size=1, seeds=(0, 1, 2))
    # after all patches the input is the seed's noise, whatever the order
    np.testing.assert_allclose(result.curves[:, -1], result.random_curves[:, -1], rtol=1e-5)
    assert result.aopc > result.aopc_random     # x ⊙ w is the exact contribution
    assert result.seeds == (0, 1, 2)


def test_pixel_flipping_tracks_the_logit_not_the_softmax():
    model = linear_model(softmax=True)
    x = np.ones((2, 4), np.float32)
    result = ev.pixel_flipping(model, x, x * W, patch_size=1, perturbation=0.0, neuron=0)
    np.testing.assert_allclose(result.curve, [10, 6, 3, 1, 0])


def test_pixel_flipping_errors(linear):
    x = np.ones((2, 4), np.float32)
    with pytest.raises(ValueError, match="relevance has shape"):
        ev.pixel_flipping(linear, x, np.ones((2, 3)))
    with pytest.raises(ValueError, match="steps"):
        ev.pixel_flipping(linear, x, x, patch_size=1, steps=5)
    with pytest.raises(ValueError, match="perturbation"):
        ev.pixel_flipping(linear, x, x, perturbation="gaussian")
    with pytest.raises(ValueError, match="NaN"):
        ev.pixel_flipping(linear, x, np.full((2, 4), np.nan))


# --------------------------------------------------------------------------- similarity


def test_spearman_and_ssim_by_hand():
    assert ev.spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(1 - 6 * 2 / (4 * 15))
    assert ev.spearman([1, 1, 2], [1, 2, 3]) == pytest.approx(1.5 / np.sqrt(1.5 * 2))
    assert ev.spearman([2, 2, 2], [1, 2, 3]) == 0.0
    a = np.array([[0.0, 1.0], [0.0, 1.0]])
    b = np.array([[0.0, 0.0], [1.0, 1.0]])
    c2 = 0.03 ** 2           # one 2x2 window: equal means, variances 1/3, covariance 0
    assert ev.ssim(a, b, window=2) == pytest.approx(c2 / (2 / 3 + c2))
    assert ev.ssim(a, a) == pytest.approx(1.0)


# --------------------------------------------------------------------------- randomization


def test_randomization_drops_similarity_and_leaves_the_model_alone(mlp):
    model, x = mlp
    before = [w.copy() for w in model.get_weights()]
    result = ev.randomization("gradient", model, x)
    assert result.layers == tuple(layer.name for layer in model.layers[::-1])  # top first
    assert result.similarity.shape == (3,) and result.ssim.shape == (3,)
    assert result.similarity[-1] < 0.5                               # all layers random
    assert result.per_sample.shape == (3, len(x))
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)
    again = ev.randomization(lambda m: dk.create_analyzer("gradient", m), model, x,
                             layers=[model.layers[-1].name], rebuild=True)
    np.testing.assert_allclose(again.similarity, result.similarity[:1])
    fig = result.plot()
    assert fig.axes


def test_randomization_errors(mlp):
    model, x = mlp
    with pytest.raises(TypeError, match="factory"):
        ev.randomization(dk.DTD(model), model, x)
    with pytest.raises(ValueError, match="no trainable weights"):
        ev.randomization("gradient", model, x, layers=["flatten"])


def test_randomize_layer_redraws_from_the_initializer():
    layer = keras.layers.Dense(3, kernel_initializer="ones", bias_initializer="zeros")
    layer.build((None, 2))
    layer.kernel.assign(np.full((2, 3), 7.0))
    ev.randomize_layer(layer, seed=0)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.kernel), np.ones((2, 3)))


# --------------------------------------------------------------------------- continuity


DELTAS = np.array([[0.1, 0, 0, 0], [0, 0, 0, 0.1], [0.1, 0.1, 0, 0]], np.float32)


def test_continuity_on_a_linear_model_equals_the_hand_value(linear):
    x = np.random.default_rng(4).normal(size=(5, 4)).astype(np.float32)
    norms = np.sqrt((DELTAS.astype(np.float64) ** 2).sum(1))
    # DTD (w²) on f(x) = w·x: R = w²/Σw² · f(x), so ‖R(x) − R(x')‖₁ = |w·δ|
    dtd = ev.continuity(dk.DTD(linear), x, perturbations=DELTAS, normalize=False)
    expected = np.abs(DELTAS @ W) / norms
    np.testing.assert_allclose(dtd.ratios, np.broadcast_to(expected, (5, 3)), rtol=1e-4)
    assert dtd.value == pytest.approx(expected.max(), rel=1e-4)
    # gradient: R = w whatever x, so it never moves
    assert ev.continuity(dk.create_analyzer("gradient", linear), x,
                         perturbations=DELTAS).value == 0.0
    # input x gradient: R = x ⊙ w, so ‖δ ⊙ w‖₁ / ‖δ‖₂
    ixg = ev.continuity(dk.create_analyzer("input_x_gradient", linear), x,
                        perturbations=DELTAS, normalize=False)
    assert ixg.value == pytest.approx((np.abs(DELTAS * W).sum(1) / norms).max(), rel=1e-4)


def test_continuity_random_directions_and_domain_clipping(linear):
    x = np.ones((2, 4), np.float32)
    boxed = dk.DTD(linear, input_domain=dk.Box(0.0, 1.0))
    with pytest.raises(ValueError, match="clipped away"):
        ev.continuity(boxed, x, perturbations=np.full((1, 4), 0.1))
    result = ev.continuity(dk.DTD(linear), x, radius=0.01, samples=6, seed=0,
                           normalize=False)
    assert result.ratios.shape == (2, 6)
    assert np.all(result.per_sample <= np.linalg.norm(W) * (1 + 1e-3))   # Cauchy-Schwarz
    assert result.plot().axes


# --------------------------------------------------------------------------- baseline & plots


def test_random_baseline_is_consistent_but_random(linear):
    x = np.abs(np.random.default_rng(5).normal(size=(6, 4))).astype(np.float32) + 0.1
    baseline = ev.RandomBaseline(linear, seed=0)
    first, second = baseline.explain(x), baseline.explain(x)
    np.testing.assert_allclose(first.relevance.sum(1), x @ W, rtol=1e-5)
    assert not np.allclose(first.relevance, second.relevance)
    assert ev.summary(baseline, x).share_consistent == 1.0


def test_every_result_plots_a_figure(linear):
    from matplotlib.figure import Figure

    x = np.ones((2, 4), np.float32)
    e = dk.DTD(linear).explain(x)
    for result in (ev.summary(e), ev.pixel_flipping(linear, x, e, patch_size=1)):
        assert isinstance(result.plot(), Figure)
