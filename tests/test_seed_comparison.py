"""The seed comparison benchmark runs end to end in its quick mode and its numbers hold up."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("mlxtend")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "seed_comparison.py"


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    spec = importlib.util.spec_from_file_location("seed_comparison", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    out = tmp_path_factory.mktemp("seed")
    return module, module.run(out, quick=True, verbose=False), out


def test_quick_run_writes_the_table_and_the_figure(comparison):
    module, result, out = comparison
    text = (out / "seed_comparison.md").read_text(encoding="utf-8")
    png = (out / "seed_comparison.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    labels = [m.label for m in module._methods()]
    assert len(labels) == 12
    for label in labels:
        assert f"| {label} |" in text
    assert "## Against the seed's section 4" in text
    assert len(result["observations"]) == 5 and len(result["beyond"]) == 4
    assert "## Beyond the seed" in text


def test_quick_run_numbers_follow_the_propositions(comparison):
    _, result, _ = comparison
    rows = result["rows"]
    for key in ("dtd_w2", "dtd_zbox"):            # hidden biases ≤ 0: Propositions 1, 3
        assert rows[key]["conservation_error"] < 1e-5
        assert rows[key]["share_consistent"] == 1.0
        assert rows[key]["background_negative"] == 0.0
    assert rows["dtd_minmax"]["share_positive"] == 1.0    # a_j ≤ 0: positive
    assert rows["random"]["share_consistent"] == 1.0      # consistent by construction …
    assert rows["random"]["randomization_all"] < 0.5      # … and unrelated to the model
    for row in rows.values():
        assert 0.0 <= row["irrelevant_share"] <= 1.0
        assert 0.0 <= row["background_negative"] <= row["negative_fraction"] + 1e-9


def test_region_shares_and_gini_by_hand(comparison):
    module, _, _ = comparison
    import numpy as np

    maps = np.zeros((2, 28, 56, 1))
    x = np.zeros((2, 28, 56, 1))
    x[:, :, :10] = -1.0                       # black stripe on the left
    maps[0, 0, 0] = -1.0                      # negative, on black, left half
    maps[0, 0, 40] = 3.0                      # right half
    maps[1, 5, 5] = 2.0
    side = np.array([0, 1])                   # relevant digit left / right
    shares = module.region_shares(maps, x, side)
    np.testing.assert_allclose(shares["irrelevant"], [3 / 4, 1.0])
    np.testing.assert_allclose(shares["background_negative"], [1 / 4, 0.0])
    one_hot = np.zeros((1, 4))
    one_hot[0, 2] = 1
    np.testing.assert_allclose(module.gini(one_hot), [3 / 4])     # (n − 1) / n
    np.testing.assert_allclose(module.gini(np.ones((1, 4))), [0.0])
