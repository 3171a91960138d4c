"""dk.evaluate's inputs and arguments (issue 13, items 3 and 6): every entry point checks
its inputs against the model as ``explain`` does, before TensorFlow sees them (an input
of the wrong rank used to abort the process); every argument is checked by name; the
AOPC's default patch grid scales with the input; samples with a logit <= 0 are marked.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest

import dtd_keras as dk
from dtd_keras import evaluate as ev
from dtd_keras.evaluate._common import LogitFunction
from dtd_keras.evaluate.pixel_flipping import default_patch_size

L = keras.layers
EXPECTS = r"has shape \(3, (8, 8|8, 8, 1, 1|8, 8, 3|16, 16, 1)\); the model expects " \
          r"\('batch', 8, 8, 1\)"


@pytest.fixture(scope="module")
def cnn():
    keras.utils.set_random_seed(5)
    return keras.Sequential([keras.Input((8, 8, 1), name="pixels"),
                             L.Conv2D(3, 3, activation="relu", name="conv"),
                             L.Flatten(), L.Dense(4, name="logits")])


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).uniform(size=(3, 8, 8, 1)).astype(np.float32)


def wrong_inputs(x):
    """Wrong rank (used to abort the process: a TF CHECK failure), 5-D (used to return
    garbage), 3 channels and 16x16 (used to give a raw InvalidArgumentError)."""
    return {"rank 3": x[..., 0], "5-D": x[..., None], "3 channels": np.repeat(x, 3, -1),
            "16x16": np.zeros((3, 16, 16, 1), np.float32)}


# ------------------------------------------------------------------ inputs vs the model


def test_pixel_flipping_checks_x_against_the_model(cnn, x):
    for bad in wrong_inputs(x).values():
        with pytest.raises(ValueError, match=EXPECTS):
            ev.pixel_flipping(cnn, bad, bad)
        with pytest.raises(ValueError, match=EXPECTS):  # an analyzer as the model, too
            ev.pixel_flipping(dk.DTD(cnn), bad, bad)


def test_pixel_flipping_checks_an_analyzers_declared_domain(cnn, x):
    with pytest.raises(dk.DomainError):
        ev.pixel_flipping(dk.DTD(cnn, input_domain=dk.Box(0.0, 0.5)), x, x)


def test_random_baseline_checks_x_against_the_model(cnn, x):
    baseline = ev.RandomBaseline(cnn)
    for bad in wrong_inputs(x).values():
        with pytest.raises(ValueError, match=EXPECTS):
            baseline.explain(bad)
        with pytest.raises(ValueError, match=EXPECTS):
            baseline.analyze(bad)
    empty = baseline.explain(x[:0])  # as an analyzer's explain: empty results
    assert empty.relevance.shape == (0, 8, 8, 1) and empty.explained.shape == (0,)


def test_the_logit_function_checks_every_call(cnn, x):
    """The guard sits where TensorFlow is called, for every metric that uses it."""
    logit = LogitFunction(cnn)
    with pytest.raises(ValueError, match=EXPECTS):
        logit(x[..., 0])
    assert logit(x)[1].shape == (3,)


def test_summary_randomization_and_continuity_check_x(cnn, x):
    baseline = ev.RandomBaseline(cnn)
    for bad in wrong_inputs(x).values():
        with pytest.raises(ValueError, match=EXPECTS):
            ev.summary(baseline, bad)
        with pytest.raises(ValueError, match=EXPECTS):
            ev.summary(dk.DTD(cnn), bad)
        with pytest.raises(ValueError, match=EXPECTS):
            ev.randomization("gradient", cnn, bad)
    for batch_size in (0, 1.5):
        with pytest.raises(ValueError, match="batch_size must be a positive int"):
            ev.summary(dk.DTD(cnn), x, batch_size=batch_size)
    # continuity explains through the shared helper: the baseline's explain checks
    with pytest.raises(ValueError, match=EXPECTS):
        ev.continuity(baseline, x[..., 0], samples=2)


def test_zero_samples_get_a_clear_error(cnn, x):
    empty = x[:0]
    with pytest.raises(ValueError, match=r"x holds no samples \(shape \(0, 8, 8, 1\)\)"):
        ev.pixel_flipping(cnn, empty, empty)
    with pytest.raises(ValueError, match="x holds no samples"):
        ev.randomization("gradient", cnn, empty)
    with pytest.raises(ValueError, match="x holds no samples"):
        ev.summary(dk.DTD(cnn), empty)
    with pytest.raises(ValueError, match="x holds no samples"):
        ev.continuity(dk.DTD(cnn), empty)


# ------------------------------------------------------------------ pixel_flipping's arguments


def test_pixel_flipping_argument_errors_name_the_argument(cnn, x):
    def flip(**options):
        return ev.pixel_flipping(cnn, x, x, **options)

    for patch in (2.5, (2, 2.5), True, 0, "4"):
        with pytest.raises(ValueError, match=r"patch_size must be None, a positive int or one "
                                             r"per spatial axis \(8, 8\), got"):
            flip(patch_size=patch)
    with pytest.raises(ValueError, match="patch_size"):
        flip(patch_size=(2, 2, 2))
    with pytest.raises(ValueError, match="steps must be a positive int, got 2.5"):
        flip(steps=2.5)
    for perturbation in (None, True, float("nan"), [0.0]):
        with pytest.raises(ValueError, match="perturbation must be 'uniform' or a finite "
                                             "number, got"):
            flip(perturbation=perturbation)
    with pytest.raises(ValueError, match=r"low has shape \(3,\), which does not broadcast to "
                                         r"one sample's shape \(8, 8, 1\)"):
        flip(low=np.zeros(3))
    with pytest.raises(ValueError, match=r"high has shape \(3, 8, 8, 1\)"):  # a batch axis
        flip(high=np.ones((3, 8, 8, 1)))
    with pytest.raises(ValueError, match="low must be finite"):
        flip(low=np.nan)
    with pytest.raises(ValueError, match="high must be a number or an array"):
        flip(high="one")
    with pytest.raises(ValueError, match="low > high at 64 of 64 values"):
        flip(low=1.0, high=0.0)
    for seeds in ((), 0, (1.5,), "0"):
        with pytest.raises(ValueError, match="seeds must be a non-empty sequence of ints"):
            flip(seeds=seeds)
    for batch_size in (0, 2.5):
        with pytest.raises(ValueError, match="batch_size must be a positive int"):
            flip(batch_size=batch_size)


def test_pixel_flipping_accepts_per_sample_bounds_and_numpy_ints(cnn, x):
    result = ev.pixel_flipping(cnn, x, x, patch_size=np.int64(2), steps=np.int64(3),
                               low=np.zeros((8, 8, 1)), high=np.ones((8, 1)),
                               seeds=np.arange(2), perturbation="uniform")
    assert result.patch_size == (2, 2) and result.steps == 3 and result.seeds == (0, 1)


# ------------------------------------------------------------------ AOPC: the default grid


def test_default_patch_size_leaves_at_least_64_patches():
    assert default_patch_size((8, 8)) == 1          # 64 patches (4x4 gave only 4)
    assert default_patch_size((28, 28)) == 3        # 10x10 = 100 patches; 4 would give 49
    assert default_patch_size((32, 32)) == 4        # 8x8 = 64
    assert default_patch_size((224, 224)) == 31     # 8x8 = 64; 32 would give 7x7
    assert default_patch_size((28, 56)) == 5        # 6x12 = 72; 6 would give 5x10 = 50
    assert default_patch_size((4,)) == 1 and default_patch_size((100,)) == 1
    for spatial in ((8, 8), (28, 28), (28, 56), (224, 224), (13, 200), (500,)):
        p = default_patch_size(spatial)
        count = np.prod([-(-s // p) for s in spatial])
        larger = np.prod([-(-s // (p + 1)) for s in spatial])
        assert count >= 64 and larger < 64, spatial


def test_pixel_flipping_default_grid_and_the_coarse_grid_warning(cnn, x):
    with warnings.catch_warnings():
        warnings.simplefilter("error")              # the default never warns on 8x8
        default = ev.pixel_flipping(cnn, x, x, perturbation=0.0)
    assert default.patch_size == (1, 1) and default.steps == 64
    assert default.curve.shape == (65,)
    with pytest.warns(UserWarning, match=r"patch_size \(4, 4\) cuts inputs of spatial shape "
                                         r"\(8, 8\) into only 4 patches"):
        coarse = ev.pixel_flipping(cnn, x, x, patch_size=4, perturbation=0.0)
    assert coarse.steps == 4


def test_the_grid_is_documented_as_not_samek_windows():
    doc = ev.pixel_flipping.__doc__
    assert "fixed grid of non-overlapping" in doc and "Samek et al. 2017" in doc
    assert "window around each next most relevant" in doc


# ------------------------------------------------------------------ rtol


def test_rtol_must_be_finite_and_not_negative():
    e = dk.Explanation(np.ones((2, 3), np.float32), np.zeros(2, np.int32),
                       np.full(2, 3.0, np.float32))
    for rtol in (-1, float("nan"), float("inf"), "1e-4", None, True):
        with pytest.raises(ValueError, match="rtol must be a finite number >= 0, got"):
            e.properties(rtol)
        with pytest.raises(ValueError, match="rtol must be a finite number >= 0"):
            ev.summary(e, rtol=rtol)
    assert e.properties(0).consistent.all() and ev.summary(e, rtol=np.float32(1e-3)).count == 2


# ------------------------------------------------------------------ logit <= 0


def test_properties_mark_samples_whose_logit_is_not_positive():
    e = dk.Explanation(np.array([[1.0, 2.0], [-0.5, -0.5], [0.0, 0.0]], np.float32),
                       np.zeros(3, np.int32), np.array([3.0, -1.0, 0.0], np.float32))
    p = e.properties()
    np.testing.assert_array_equal(p.explained_positive, [True, False, False])
    assert [d["explained_positive"] for d in p.to_dicts()] == [True, False, False]
    lines = str(p).splitlines()
    assert lines[0].endswith("positive  consistent")   # the columns are unchanged
    assert not lines[1].endswith("*") and lines[2].endswith(" *") and lines[3].endswith(" *")
    assert lines[4].startswith("* explained logit <= 0: cannot be consistent")
    assert "*" not in str(dk.Explanation(e.relevance[:1], e.neuron[:1],
                                         e.explained[:1]).properties())
    assert ev.summary(e).share_explained_positive == pytest.approx(1 / 3)


def test_dtd_is_never_consistent_where_the_logit_is_negative():
    """The claim the mark stands for, on DTD itself: conservative, hence negative."""
    model = keras.Sequential([keras.Input((4,)), L.Dense(1, use_bias=False)])
    model.layers[-1].set_weights([np.array([[1.0], [2.0], [3.0], [4.0]], np.float32)])
    x = np.array([[1, 1, 1, 1], [-1, -1, -1, -1]], np.float32)
    p = dk.DTD(model).explain(x).properties()
    np.testing.assert_array_equal(p.explained_positive, [True, False])
    np.testing.assert_array_equal(p.consistent, [True, False])
    assert p.total[1] == pytest.approx(-10, rel=1e-5) and not p.positive[1]
