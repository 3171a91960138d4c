"""dk.evaluate.continuity: scale-free by default, raw on request, and named argument errors."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import dtd_keras as dk
from dtd_keras import evaluate as ev

W = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
DELTAS = np.array([[0.1, 0, 0, 0], [0, 0, 0, 0.1], [0.1, 0.1, 0, 0.05]], np.float32)


def _linear(weights: np.ndarray) -> keras.Model:
    """f(x) = Σ w_i x_i (one Dense unit, no bias)."""
    layer = keras.layers.Dense(1, use_bias=False)
    model = keras.Sequential([keras.Input((4,)), layer])
    layer.set_weights([weights.reshape(4, 1)])
    return model


@pytest.fixture(scope="module")
def models():
    return _linear(W), _linear(10 * W)


def _x(count: int = 5, seed: int = 4) -> np.ndarray:
    return (np.abs(np.random.default_rng(seed).normal(size=(count, 4))) + 0.5).astype(
        np.float32)


def _by_numpy(fn, x: np.ndarray, deltas: np.ndarray, normalize: bool) -> np.ndarray:
    """Every ratio, computed independently of the library: loops, float64."""
    ratios = np.empty((len(x), len(deltas)))
    for i, xi in enumerate(x.astype(np.float64)):
        base = fn(xi[None])[0]
        for p, delta in enumerate(deltas.astype(np.float64)):
            moved = (xi + delta).astype(np.float32).astype(np.float64)
            change = np.sum(np.abs(fn(moved[None])[0] - base))
            ratios[i, p] = change / np.linalg.norm(moved - xi)
            if normalize:
                ratios[i, p] /= np.sum(np.abs(base))
    return ratios


def test_maps_times_ten_keep_the_normalised_value_and_scale_the_raw_one(models):
    small, large = models                        # DTD maps of `large` are 10× those of `small`
    x = _x()
    norm_small = ev.continuity(dk.DTD(small), x, perturbations=DELTAS)
    norm_large = ev.continuity(dk.DTD(large), x, perturbations=DELTAS)
    raw_small = ev.continuity(dk.DTD(small), x, perturbations=DELTAS, normalize=False)
    raw_large = ev.continuity(dk.DTD(large), x, perturbations=DELTAS, normalize=False)
    assert norm_small.normalized and not raw_small.normalized
    assert norm_large.value == pytest.approx(norm_small.value, rel=1e-5)
    assert raw_large.value == pytest.approx(10 * raw_small.value, rel=1e-5)
    # DTD (w²) on f = w·x: R = w²/Σw² · f(x), so ‖R(x)‖₁ = |w·x|, ‖ΔR‖₁ = |w·δ|
    norms = np.linalg.norm(DELTAS.astype(np.float64), axis=1)
    hand = np.abs(DELTAS @ W)[None] / (norms[None] * np.abs(x @ W)[:, None])
    np.testing.assert_allclose(norm_small.ratios, hand, rtol=1e-4)
    np.testing.assert_allclose(norm_small.per_sample, hand.max(1), rtol=1e-4)
    assert norm_small.value == pytest.approx(hand.max(1).mean(), rel=1e-4)


def test_normalised_and_raw_match_an_independent_numpy_computation():
    def fn(x):                                    # a nonlinear map: R = 7 · sin(x) ⊙ x²
        return 7.0 * np.sin(x) * x ** 2

    def explainer(x, neuron):
        return fn(np.asarray(x, np.float64)).astype(np.float32)

    x = _x(4, seed=1)
    for normalize in (True, False):
        result = ev.continuity(explainer, x, perturbations=DELTAS, normalize=normalize)
        expected = _by_numpy(fn, x, DELTAS, normalize)
        np.testing.assert_allclose(result.ratios, expected, rtol=1e-4)
        assert result.value == pytest.approx(expected.max(1).mean(), rel=1e-4)
        assert result.max == pytest.approx(expected.max(), rel=1e-4)
        assert result.to_dict()["normalized"] is normalize
    scaled = ev.continuity(lambda x, n: 10 * explainer(x, n), x, perturbations=DELTAS)
    assert scaled.value == pytest.approx(ev.continuity(explainer, x,
                                                       perturbations=DELTAS).value, rel=1e-5)


def test_an_all_zero_map_is_left_out_with_a_warning_and_all_zero_is_an_error():
    x = _x(3)
    x[:, 0] = [0.5, 2.0, 3.0]

    def first_zero(batch, neuron):                # zero wherever x₀ < 1: the first input
        out = np.asarray(batch, np.float32) ** 2  # (δ moves x₀ by at most 0.1)
        out[np.asarray(batch)[:, 0] < 1.0] = 0.0
        return out

    with pytest.warns(RuntimeWarning, match="1 of 3 inputs have an all-zero map"):
        result = ev.continuity(first_zero, x, perturbations=DELTAS)
    assert result.zero_maps == 1 and np.isnan(result.per_sample[0])
    assert np.all(np.isnan(result.ratios[0])) and np.all(np.isfinite(result.per_sample[1:]))
    assert result.value == pytest.approx(np.mean(result.per_sample[1:]))
    assert ev.continuity(first_zero, x, perturbations=DELTAS, normalize=False).zero_maps == 0
    with pytest.raises(ValueError, match="every one of the 3 maps R\\(x\\) is zero.*"
                                         "normalize=False"):
        ev.continuity(lambda b, n: np.zeros_like(b), x, perturbations=DELTAS)


@pytest.mark.parametrize("options, message", [
    ({"low": np.zeros(3)}, r"low of shape \(3,\) does not broadcast to one sample's shape "
                           r"\(4,\)"),
    ({"high": np.ones((2, 4))}, r"high of shape \(2, 4\) does not broadcast"),
    ({"low": np.full(4, np.nan)}, "low contains NaN"),
    ({"low": "zero"}, "low must be a number"),
    ({"low": 1.0, "high": 0.0}, "low > high"),
    ({"samples": 2.5}, r"samples .* must be an integer >= 1; got 2.5"),
    ({"samples": 0}, r"samples \(random perturbations per input\) must be an integer >= 1; "
                     r"got 0"),
    ({"radius": float("nan")}, r"radius .* finite number > 0; got nan"),
    ({"radius": -1.0}, r"radius \(the perturbations' L2 length\) must be a finite number > 0; "
                       r"got -1.0"),
    ({"radius": "0.5"}, r"radius .* got '0.5'"),
    ({"seed": 1.5}, "seed must be an integer"),
    ({"batch_size": 0}, "batch_size must be an integer >= 1"),
    ({"normalize": "yes"}, "normalize must be True or False"),
    ({"perturbations": np.zeros((0, 4))}, r"at least one.*got shape \(0, 4\)"),
    ({"perturbations": np.zeros((2, 3))}, r"shaped \(P, \*\(4,\)\); got shape \(2, 3\)"),
])
def test_bad_arguments_are_named(models, options, message):
    with pytest.raises(ValueError, match=message):
        ev.continuity(dk.DTD(models[0]), _x(2), **options)


def test_no_inputs_is_named_not_a_reshape_error(models):
    with pytest.raises(ValueError, match=r"holds no samples \(shape \(0, 4\)\)"):
        ev.continuity(dk.DTD(models[0]), np.zeros((0, 4), np.float32))


def test_broadcasting_bounds_still_work(models):
    x = _x(2)
    result = ev.continuity(dk.DTD(models[0]), x, radius=0.1, samples=3,
                           low=np.zeros((1, 4))[0], high=np.full(4, 10.0))
    assert result.ratios.shape == (2, 3) and np.isfinite(result.value)
