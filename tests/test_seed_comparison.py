"""The seed comparison benchmark runs end to end in its quick mode and its numbers hold up."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("mlxtend")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "seed_comparison.py"


@pytest.fixture(scope="module")
def module():
    spec = importlib.util.spec_from_file_location("seed_comparison", SCRIPT)
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = loaded  # dataclasses look their module up
    spec.loader.exec_module(loaded)
    return loaded


@pytest.fixture(scope="module")
def comparison(module, tmp_path_factory):
    out = tmp_path_factory.mktemp("seed")
    return module.run(out, quick=True, verbose=False), out


def test_quick_run_writes_both_tables_and_the_figure(module, comparison):
    result, out = comparison
    text = (out / "seed_comparison.md").read_text(encoding="utf-8")
    png = (out / "seed_comparison.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    labels = [m.label for m in module._methods()]
    assert len(labels) == 12
    for label in labels:
        assert text.count(f"| {label} |") == 2                  # the CNN's and the FC's rows
    assert "## A small CNN" in text and "### Against the seed's section 4" in text
    assert "## Closer to the paper: a fully connected detection/sum-pooling network" in text
    for title in ("Σ\\|R\\| on irrelevant half", "Σ\\|R\\| on irrelevant digit's strokes",
                  "Spearman with occlusion share", "continuity (normalised)"):
        assert text.count(f"| {title} |") == 2
    assert "on irrelevant digit |" not in text                  # the old, misleading title
    assert "the gradient puts" not in text                      # no gradient-as-use claim
    assert text.count("blacking out the irrelevant half") >= 2  # occlusion, both networks
    for network in result["networks"].values():
        assert len(network["observations"]) == 5 and len(network["beyond"]) == 4
    assert "### Beyond the seed" in text


def test_quick_run_numbers_follow_the_propositions(comparison):
    result, _ = comparison
    for name, network in result["networks"].items():
        rows = network["rows"]
        for key in ("dtd_w2", "dtd_zbox"):        # hidden biases ≤ 0: Propositions 1, 3
            assert rows[key]["conservation_error"] < 1e-5, name
            assert rows[key]["share_consistent"] == 1.0, name
            assert rows[key]["background_negative"] == 0.0, name
        assert rows["dtd_minmax"]["share_positive"] == 1.0    # a_j ≤ 0: positive
        assert rows["random"]["share_consistent"] == 1.0      # consistent by construction …
        assert rows["random"]["randomization_all"] < 0.5      # … and unrelated to the model
        for row in rows.values():
            assert 0.0 <= row["irrelevant_strokes"] <= row["irrelevant_half"] <= 1.0
            assert row["irrelevant_strokes"] > 0.0            # computed, not a placeholder
            assert -1.0 <= row["occlusion_correlation"] <= 1.0
            assert 0.0 <= row["background_negative"] <= row["negative_fraction"] + 1e-9
            assert row["continuity_normalized"] is True and np.isfinite(row["continuity"])


def test_quick_run_measures_the_networks_use_of_each_half(comparison):
    result, _ = comparison
    assert set(result["networks"]) == {"cnn", "fc"}
    for network in result["networks"].values():
        used = network["occlusion"]
        for part in ("irrelevant", "relevant"):
            assert used[f"{part}_change"] > 0.0               # blacking out moves the logit
            assert 0.0 <= used[f"{part}_kept"] <= 1.0
        assert 0.0 < used["share"] < 1.0


def test_the_fc_network_is_the_papers_kind(module):
    import keras

    model = module.build_fc_model()
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [layer.units for layer in dense] == [400, 400]
    assert model.output_shape == (None, 4)
    assert [layer.pool_size for layer in model.layers
            if isinstance(layer, keras.layers.AveragePooling1D)] == [(4,), (100,)]
    for layer in dense:                                       # biases pushed to ≤ 0
        layer.bias.assign(np.ones(layer.units, np.float32))
        layer.bias.assign(layer.bias_constraint(layer.bias))
        assert np.all(keras.ops.convert_to_numpy(layer.bias) <= 0)


def test_region_shares_occlusion_and_gini_by_hand(module):
    import keras

    maps = np.zeros((2, 28, 56, 1))
    x = np.full((2, 28, 56, 1), -1.0)
    x[0, 3, 40] = 0.5                         # a stroke pixel of sample 0's irrelevant half
    x[:, :, 20:22] = 0.0                      # strokes on the left half of both samples
    maps[0, 0, 0] = -1.0                      # negative, on black, left (relevant) half
    maps[0, 0, 40] = 3.0                      # right (irrelevant) half, black
    maps[0, 3, 40] = 2.0                      # right half, on the stroke
    maps[1, 5, 21] = 2.0                      # left (irrelevant) half, on a stroke
    maps[1, 5, 50] = 2.0                      # right (relevant) half
    side = np.array([0, 1])                   # relevant digit left / right
    shares = module.region_shares(maps, x, side)
    np.testing.assert_allclose(shares["irrelevant_half"], [5 / 6, 1 / 2])
    np.testing.assert_allclose(shares["irrelevant_strokes"], [2 / 6, 1 / 2])
    np.testing.assert_allclose(shares["background_negative"], [1 / 6, 0.0])
    one_hot = np.zeros((1, 4))
    one_hot[0, 2] = 1
    np.testing.assert_allclose(module.gini(one_hot), [3 / 4])     # (n − 1) / n
    np.testing.assert_allclose(module.gini(np.ones((1, 4))), [0.0])

    # occlusion on a linear "network": logit 0 = Σ (x + 1) over the left half,
    # logit 1 = Σ (x + 1) over the right half (black = −1 contributes nothing)
    inputs = keras.Input((28, 56, 1))
    left = keras.layers.Lambda(lambda t: keras.ops.sum(t[:, :, :28] + 1, axis=(1, 2, 3)))
    right = keras.layers.Lambda(lambda t: keras.ops.sum(t[:, :, 28:] + 1, axis=(1, 2, 3)))
    model = keras.Model(inputs, keras.ops.stack([left(inputs), 0.5 * right(inputs)], -1))
    x = np.full((1, 28, 56, 1), -1.0, np.float32)
    x[0, :4, :4] = 1.0                        # left digit: 16 pixels, logit 0 = 32
    x[0, :2, 30:32] = 1.0                     # right digit: logit 1 = 0.5 · 8 = 4
    used = module.occlusion(model, x, np.array([0]))              # relevant digit left
    assert used["irrelevant_change"] == pytest.approx(0.0)        # logit 0 ignores the right
    assert used["relevant_change"] == pytest.approx(1.0)          # 32 → 0
    assert used["irrelevant_kept"] == 1.0                         # 32 vs 0
    assert used["relevant_kept"] == 0.0                           # 0 vs 4: the top changes
    assert used["share"] == pytest.approx(0.0)
    used = module.occlusion(model, x, np.array([1]))              # "relevant" digit right
    assert used["irrelevant_change"] == pytest.approx(1.0)        # left blacked out: 32 → 0
    assert used["irrelevant_kept"] == 0.0                         # top becomes logit 1
    assert used["share"] == pytest.approx(1.0)
