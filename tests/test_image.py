"""Behavioural tests for dtd_keras.image (relevance -> pictures)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

pytest.importorskip("matplotlib")

from dtd_keras import image as dimg  # noqa: E402


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------- reduce_channels


def test_reduce_channels_values_on_hand_made_array():
    R = np.zeros((2, 2, 3))
    R[0, 0] = [1.0, -2.0, 3.0]
    R[1, 1] = [-4.0, 0.0, 0.0]
    np.testing.assert_allclose(dimg.reduce_channels(R, method="sum"), [[2, 0], [0, -4]])
    np.testing.assert_allclose(dimg.reduce_channels(R, method="abs_sum"), [[6, 0], [0, 4]])
    np.testing.assert_allclose(dimg.reduce_channels(R, method="max_abs"), [[3, 0], [0, 4]])
    np.testing.assert_allclose(dimg.reduce_channels(R, method="norm"), [[np.sqrt(14), 0], [0, 4]])


def test_reduce_channels_shapes_and_channels_first():
    R = rng().normal(size=(5, 7, 3))
    assert dimg.reduce_channels(R).shape == (5, 7)
    chw = np.moveaxis(R, -1, 0)  # (3, 5, 7)
    np.testing.assert_allclose(dimg.reduce_channels(chw, axis=0), dimg.reduce_channels(R))

    batch = rng(1).normal(size=(4, 5, 7, 3))
    assert dimg.reduce_channels(batch).shape == (4, 5, 7)
    nchw = np.moveaxis(batch, -1, 1)
    np.testing.assert_allclose(
        dimg.reduce_channels(nchw, axis=1, method="norm"),
        dimg.reduce_channels(batch, method="norm"),
    )
    np.testing.assert_allclose(dimg.reduce_channels(batch)[2], batch[2].sum(-1))


def test_reduce_channels_2d_and_axis_none():
    M = np.array([[1.0, -2.0], [0.0, 3.0]])
    np.testing.assert_array_equal(dimg.reduce_channels(M), M)
    np.testing.assert_array_equal(dimg.reduce_channels(M, method="abs_sum"), np.abs(M))
    maps = np.stack([M, -M])
    out = dimg.reduce_channels(maps, axis=None)
    assert out.shape == (2, 2, 2)
    np.testing.assert_array_equal(out, maps)


def test_reduce_channels_errors():
    with pytest.raises(ValueError, match="unknown reduce method 'mean'"):
        dimg.reduce_channels(np.zeros((2, 2, 3)), method="mean")
    with pytest.raises(ValueError, match="axis 3 is out of range"):
        dimg.reduce_channels(np.zeros((2, 2, 3)), axis=3)
    with pytest.raises(ValueError, match="batch axis"):
        dimg.reduce_channels(np.zeros((2, 2, 2, 3)), axis=0)
    with pytest.raises(ValueError, match="5 dims"):
        dimg.reduce_channels(np.zeros((1, 2, 2, 2, 3)))
    with pytest.raises(ValueError, match="1 dims"):
        dimg.reduce_channels(np.zeros(4))
    with pytest.raises(ValueError, match="numeric"):
        dimg.reduce_channels(np.array([["a", "b"]]))


# --------------------------------------------------------------------------- normalize


def test_normalize_max_abs_exact_signs_and_zero():
    R = np.array([[0.0, 2.0], [-8.0, 4.0]], dtype=np.float32)
    out = dimg.normalize(R)
    assert out.dtype == np.float32
    assert out[1, 0] == -1.0  # largest magnitude maps to exactly -1
    assert np.abs(out).max() == 1.0
    assert out[0, 0] == 0.0
    np.testing.assert_array_equal(np.sign(out), np.sign(R))
    np.testing.assert_allclose(out, R / 8.0)


def test_normalize_positive_max_hits_exactly_one():
    R = np.array([0.3, -0.1, 0.7, 0.0])
    out = dimg.normalize(R)
    assert out[2] == 1.0
    assert out.max() == 1.0 and out.min() > -1.0


def test_normalize_zero_map_gives_zeros_not_nan():
    for mode in ("max_abs", "percentile"):
        out = dimg.normalize(np.zeros((3, 4)), mode=mode)
        assert np.all(out == 0) and not np.any(np.isnan(out))
    out = dimg.normalize(np.zeros((2, 3, 4)), per_sample=True)
    assert np.all(out == 0)


def test_normalize_percentile_clips_outliers():
    R = np.linspace(-1.0, 1.0, 201)
    R[100] = 0.0
    R[-1] = 100.0  # one huge outlier
    out = dimg.normalize(R, mode="percentile", percentile=90)
    scale = np.percentile(np.abs(R), 90)
    assert out[-1] == 1.0  # clipped
    assert out.max() <= 1.0 and out.min() >= -1.0
    np.testing.assert_allclose(out[:100], np.clip(R[:100] / scale, -1, 1))
    assert out[100] == 0.0
    # far more pixels are saturated than with max_abs
    assert np.sum(np.abs(out) == 1.0) > 10
    assert np.sum(np.abs(dimg.normalize(R)) == 1.0) == 1


def test_normalize_percentile_falls_back_to_max_when_sparse():
    R = np.zeros(1000)
    R[3] = -5.0  # the 99.5th percentile of |R| is 0
    out = dimg.normalize(R, mode="percentile")
    assert out[3] == -1.0 and np.count_nonzero(out) == 1


def test_normalize_per_sample_vs_global():
    R = np.stack([np.full((2, 2), 1.0), np.full((2, 2), -10.0), np.zeros((2, 2))])
    per = dimg.normalize(R, per_sample=True)
    np.testing.assert_array_equal(per[0], 1.0)
    np.testing.assert_array_equal(per[1], -1.0)
    np.testing.assert_array_equal(per[2], 0.0)
    glob = dimg.normalize(R)
    np.testing.assert_allclose(glob[0], 0.1)
    np.testing.assert_array_equal(glob[1], -1.0)


def test_normalize_errors():
    with pytest.raises(ValueError, match="unknown normalize mode 'minmax'"):
        dimg.normalize(np.ones(3), mode="minmax")
    with pytest.raises(ValueError, match="percentile"):
        dimg.normalize(np.ones(3), mode="percentile", percentile=0)
    with pytest.raises(ValueError, match="NaN"):
        dimg.normalize(np.array([1.0, np.nan]))


@settings(max_examples=40, deadline=None)
@given(
    hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=1, max_dims=3, max_side=6),
        elements=st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False),
    )
)
def test_normalize_properties(R):
    out = dimg.normalize(R)
    assert out.shape == R.shape
    assert np.all(np.abs(out) <= 1.0)
    np.testing.assert_array_equal(np.sign(out), np.sign(R))
    if np.any(R != 0):
        assert np.abs(out).max() == 1.0


# --------------------------------------------------------------------------- colormaps


def test_bwr_colours_and_channel_order():
    c = dimg.cmap("bwr")
    assert c is dimg.BWR
    white = np.asarray(c(0.5))[:3]
    np.testing.assert_array_equal(white, [1.0, 1.0, 1.0])
    hm = dimg.heatmap(np.array([[1.0, 0.0, -1.0]]), reduce=None)
    red, zero, blue = hm[0]
    np.testing.assert_array_equal(zero, [255, 255, 255])
    assert red[0] > 200 and red[2] < 50  # R channel first
    assert blue[2] > 200 and blue[0] < 50


def test_cold_hot_colours():
    assert dimg.cmap("cold_hot") is dimg.COLD_HOT
    hm = dimg.heatmap(np.array([[1.0, 0.5, 0.0, -0.5, -1.0]]), cmap="cold_hot", reduce=None)
    pos, half_pos, zero, half_neg, neg = hm[0].astype(int)
    np.testing.assert_array_equal(zero, [0, 0, 0])
    assert pos[0] > 200 and pos[2] < 50  # yellow: red-ish, no blue
    np.testing.assert_array_equal(half_pos, [255, 0, 0])
    np.testing.assert_array_equal(half_neg, [0, 0, 255])
    assert neg[2] > 200 and neg[0] < 50  # cyan: blue-ish, no red


def test_small_values_stay_close_to_centre_colour():
    hm = dimg.heatmap(np.array([[1.0, 1e-3, -1e-3]]), reduce=None).astype(int)
    assert np.abs(hm[0, 1] - 255).max() <= 2
    assert np.abs(hm[0, 2] - 255).max() <= 2


def test_cmap_lookup():
    from matplotlib.colors import Colormap

    assert isinstance(dimg.cmap("viridis"), Colormap)
    assert dimg.cmap("COLD-HOT") is dimg.COLD_HOT
    rev = dimg.cmap("bwr_r")
    assert np.asarray(rev(1.0))[2] == 1.0  # reversed: top is blue
    custom = dimg.cmap("magma")
    assert dimg.cmap(custom) is custom
    # matplotlib maps with an even lookup table still put 0 on the centre colour
    np.testing.assert_array_equal(
        dimg.heatmap(np.zeros((1, 1)), cmap="seismic", reduce=None)[0, 0], [255, 255, 255]
    )
    with pytest.raises(ValueError, match="unknown colormap 'nope'"):
        dimg.cmap("nope")
    with pytest.raises(AttributeError):
        dimg.NOT_A_MAP  # noqa: B018


# --------------------------------------------------------------------------- heatmap


def test_heatmap_shapes_and_dtype():
    R = rng().normal(size=(6, 5, 3))
    hm = dimg.heatmap(R)
    assert hm.shape == (6, 5, 3) and hm.dtype == np.uint8
    batch = rng(1).normal(size=(4, 6, 5, 3))
    hb = dimg.heatmap(batch)
    assert hb.shape == (4, 6, 5, 3)
    np.testing.assert_array_equal(hb[1], dimg.heatmap(batch[1]))  # per-sample by default
    np.testing.assert_array_equal(dimg.heatmap(np.moveaxis(R, -1, 0), axis=0), hm)
    np.testing.assert_array_equal(dimg.heatmap(np.moveaxis(batch, -1, 1), axis=1), hb)
    assert dimg.heatmap(rng().normal(size=(3, 6, 5)), axis=None).shape == (3, 6, 5, 3)


def test_heatmap_reduction_matters():
    R = np.zeros((1, 2, 2))
    R[0, 0] = [1.0, -1.0]  # sums to 0, abs_sum to 2
    R[0, 1] = [0.5, 0.0]
    np.testing.assert_array_equal(dimg.heatmap(R)[0, 0], [255, 255, 255])
    assert dimg.heatmap(R, reduce="abs_sum")[0, 0, 0] == 255
    assert dimg.heatmap(R, reduce="abs_sum")[0, 0, 1] == 0  # saturated red


def test_heatmap_batch_common_scale():
    batch = np.stack([np.full((2, 2), 1.0), np.full((2, 2), 4.0)])
    per = dimg.heatmap(batch, reduce=None, axis=None)
    common = dimg.heatmap(batch, reduce=None, axis=None, per_sample=False)
    np.testing.assert_array_equal(per[0], per[1])
    assert common[0, 0, 0, 1] > common[1, 0, 0, 1]  # sample 0 paler on the common scale


def test_heatmap_is_deterministic_and_zero_is_white():
    R = rng(3).normal(size=(8, 8, 3))
    np.testing.assert_array_equal(dimg.heatmap(R), dimg.heatmap(R.copy()))
    assert np.all(dimg.heatmap(np.zeros((4, 4, 3))) == 255)
    assert np.all(dimg.heatmap(np.zeros((4, 4, 3)), cmap="cold_hot") == 0)


def test_heatmap_bad_input():
    with pytest.raises(ValueError, match="5 dims"):
        dimg.heatmap(np.zeros((1, 1, 2, 2, 3)))
    with pytest.raises(ValueError, match="unknown colormap 'rainbowz'"):
        dimg.heatmap(np.zeros((2, 2)), cmap="rainbowz")
    with pytest.raises(ValueError, match="unknown reduce method 'avg'"):
        dimg.heatmap(np.zeros((2, 2, 3)), reduce="avg")
    with pytest.raises(ValueError, match="unknown normalize mode"):
        dimg.heatmap(np.zeros((2, 2, 3)), normalize="zscore")
    with pytest.raises(ValueError, match="reduce=None"):
        dimg.heatmap(np.zeros((2, 2, 3)), reduce=None)


# --------------------------------------------------------------------------- overlay / to_rgb


def test_to_rgb_rescales_by_min_max():
    img = np.array([[-3.0, 1.0]])
    out = dimg.to_rgb(img)
    assert out.shape == (1, 2, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[0, 0], [0, 0, 0])
    np.testing.assert_array_equal(out[0, 1], [255, 255, 255])
    np.testing.assert_array_equal(dimg.to_rgb(np.full((2, 2), 7.0)), 128)  # constant -> grey
    fixed = dimg.to_rgb(np.array([[0, 51]], dtype=np.uint8), value_range=(0, 255))
    np.testing.assert_array_equal(fixed[0, 1], [51, 51, 51])


def test_overlay_range_and_shape():
    image = rng().uniform(-123.0, 456.0, size=(9, 7, 3))
    R = rng(1).normal(size=(9, 7, 3))
    out = dimg.overlay(image, R, alpha=0.4)
    assert out.shape == (9, 7, 3) and out.dtype == np.uint8
    expected = 0.6 * dimg.to_rgb(image) / 255 + 0.4 * dimg.heatmap(R) / 255
    assert np.abs(out.astype(float) - expected * 255).max() <= 1.5

    np.testing.assert_array_equal(dimg.overlay(image, R, alpha=0.0), dimg.to_rgb(image))
    np.testing.assert_array_equal(dimg.overlay(image, R, alpha=1.0), dimg.heatmap(R))


def test_overlay_grayscale_channels_first_and_batch():
    gray = rng().uniform(size=(9, 7))
    R = rng(1).normal(size=(9, 7))
    assert dimg.overlay(gray, R).shape == (9, 7, 3)

    image_chw = rng(2).uniform(0, 255, size=(3, 9, 7))
    R_chw = rng(3).normal(size=(3, 9, 7))
    np.testing.assert_array_equal(
        dimg.overlay(image_chw, R_chw, axis=0),
        dimg.overlay(np.moveaxis(image_chw, 0, -1), np.moveaxis(R_chw, 0, -1)),
    )

    images = rng(4).uniform(size=(2, 9, 7, 1))
    Rs = rng(5).normal(size=(2, 9, 7, 1))
    out = dimg.overlay(images, Rs, grayscale=True)
    assert out.shape == (2, 9, 7, 3)
    np.testing.assert_array_equal(out[1], dimg.overlay(images[1], Rs[1], grayscale=True))


def test_overlay_alpha_by_relevance_keeps_image_where_relevance_is_zero():
    image = rng().uniform(size=(4, 4, 3))
    R = np.zeros((4, 4))
    R[0, 0] = 1.0
    out = dimg.overlay(image, R, alpha=1.0, alpha_by_relevance=True)
    base = dimg.to_rgb(image)
    np.testing.assert_array_equal(out[1:], base[1:])
    np.testing.assert_array_equal(out[0, 0], [255, 0, 0])


def test_overlay_bad_input():
    with pytest.raises(ValueError, match="do not match"):
        dimg.overlay(np.zeros((4, 4, 3)), np.zeros((5, 4, 3)))
    with pytest.raises(ValueError, match="alpha"):
        dimg.overlay(np.zeros((4, 4)), np.zeros((4, 4)), alpha=1.5)
    with pytest.raises(ValueError, match="channels"):
        dimg.overlay(np.zeros((4, 4, 2)), np.zeros((4, 4)))
    with pytest.raises(ValueError, match="5 dims"):
        dimg.overlay(np.zeros((1, 1, 4, 4, 3)), np.zeros((4, 4)))


# --------------------------------------------------------------------------- grid / save_png


def test_grid_rows_with_titles_and_row_labels():
    from matplotlib.figure import Figure

    inputs = rng().uniform(size=(2, 8, 8, 3))
    maps = rng(1).normal(size=(2, 8, 8, 3))
    rows = [[dimg.to_rgb(inputs[i]), maps[i], dimg.overlay(inputs[i], maps[i])] for i in range(2)]
    fig = dimg.grid(rows, titles=["input", "LRP", "overlay"], row_labels=["cat", "dog"])
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 6
    assert [ax.get_title() for ax in fig.axes] == ["input", "LRP", "overlay", "", "", ""]
    assert [fig.axes[i].get_ylabel() for i in (0, 3)] == ["cat", "dog"]
    # the relevance panel was rendered with the heatmap pipeline
    shown = fig.axes[1].get_images()[0].get_array()
    np.testing.assert_array_equal(np.asarray(shown), dimg.heatmap(maps[0]))


def test_grid_flat_wraps_into_ncols():
    maps = rng().normal(size=(5, 6, 6, 1))
    fig = dimg.grid(maps, titles=[f"m{i}" for i in range(5)], ncols=2)
    assert len(fig.axes) == 5
    assert [ax.get_title() for ax in fig.axes] == ["m0", "m1", "m2", "m3", "m4"]
    geometry = [ax.get_subplotspec().get_geometry()[:2] for ax in fig.axes]
    assert set(geometry) == {(3, 2)}


def test_grid_skips_empty_slots_and_per_panel_titles():
    m = rng().normal(size=(4, 4))
    fig = dimg.grid([[m, None], [None, m]], titles=[["a", None], [None, "d"]])
    assert [ax.get_title() for ax in fig.axes] == ["a", "d"]
    # a row label on an empty first slot gets a frameless holder axes
    fig = dimg.grid([[m, None], [None, m]], row_labels=["r0", "r1"])
    assert len(fig.axes) == 3
    assert [ax.get_ylabel() for ax in fig.axes] == ["r0", "r1", ""]
    assert not fig.axes[1].get_images() and not fig.axes[1].get_frame_on()


def test_grid_bad_input():
    m = np.zeros((4, 4))
    with pytest.raises(ValueError, match="titles"):
        dimg.grid([m, m], titles=["only one"])
    with pytest.raises(ValueError, match="row labels"):
        dimg.grid([[m], [m]], row_labels=["a"])
    with pytest.raises(ValueError, match="at least one panel"):
        dimg.grid([])
    with pytest.raises(ValueError, match="batch"):
        dimg.grid([rng().normal(size=(2, 4, 4, 3))])
    with pytest.raises(ValueError, match="unknown colormap"):
        dimg.grid([m], cmap="nope")


def test_picture_panels_are_drawn_as_images_not_relevance():
    """README's example: a float digit in [0, 1] next to its relevance. Wrapped in
    Picture, the digit is drawn grey (black 0 .. white 1); a bare float array is
    relevance and gets the diverging colours."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    digit = np.zeros((8, 8, 1), np.float32)
    digit[2:6, 3:5] = 1.0  # a white stroke on black
    relevance = digit - 0.25
    fig = dimg.grid([[dimg.Picture(digit, value_range=(0, 1)), relevance]],
                    titles=["input", "DTD"], panel_size=1.0, dpi=80)
    shown = np.asarray(fig.axes[0].get_images()[0].get_array())
    assert shown.shape == (8, 8, 3) and shown.dtype == np.uint8
    assert (shown[..., 0] == shown[..., 1]).all() and (shown[..., 1] == shown[..., 2]).all()
    assert shown[0, 0].tolist() == [0, 0, 0] and shown[3, 3].tolist() == [255, 255, 255]
    heat = np.asarray(fig.axes[1].get_images()[0].get_array())
    assert heat[0, 0, 2] > heat[0, 0, 0]  # negative relevance: blue
    assert heat[3, 3].tolist() == [255, 0, 0]  # the largest relevance: red
    # the rendered figure: the centre of the stroke is white, a corner black
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    pixels = np.asarray(canvas.buffer_rgba())[..., :3]
    (x0, y0), (x1, y1) = fig.axes[0].get_window_extent().get_points()
    height = pixels.shape[0]

    def at(row, col):  # the rendered colour at the centre of an image pixel
        x = x0 + (col + 0.5) * (x1 - x0) / 8
        y = y1 - (row + 0.5) * (y1 - y0) / 8
        return pixels[int(height - y), int(x)].tolist()

    assert at(3.5, 3.5) == [255, 255, 255] and at(0, 0) == [0, 0, 0]


def test_picture_scales_and_refuses_bad_images():
    np.testing.assert_array_equal(dimg.Picture(np.full((2, 2), 127.5),
                                               value_range=(0, 255)).rgb[..., 0], 128)
    rgb = dimg.Picture(np.stack([np.eye(3)] * 3), axis=0).rgb  # channels first
    assert rgb.shape == (3, 3, 3)
    with pytest.raises(ValueError, match="one image, got a batch"):
        dimg.Picture(np.zeros((2, 4, 4, 1)))
    with pytest.raises(ValueError, match="NaN"):
        dimg.Picture(np.full((2, 2), np.nan))
    with pytest.raises(ValueError, match="channels"):
        dimg.Picture(np.zeros((4, 4, 2)))


def test_save_png_array_roundtrip(tmp_path):
    from PIL import Image

    hm = dimg.heatmap(rng().normal(size=(10, 6, 3)))
    path = dimg.save_png(hm, tmp_path / "deep" / "er" / "hm.png")
    assert path.exists()
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (6, 10) and im.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(im), hm)
    # float arrays are relevance and go through heatmap
    R = rng(1).normal(size=(10, 6))
    dimg.save_png(R, tmp_path / "r.png", cmap="cold_hot")
    with Image.open(tmp_path / "r.png") as im:
        np.testing.assert_array_equal(np.asarray(im), dimg.heatmap(R, cmap="cold_hot"))
    with pytest.raises(ValueError, match="one image"):
        dimg.save_png(np.zeros((2, 4, 4, 3), np.uint8), tmp_path / "batch.png")


def test_save_png_figure(tmp_path):
    from PIL import Image

    fig = dimg.grid([np.eye(4), -np.eye(4)], panel_size=1.0, dpi=50)
    path = dimg.save_png(fig, tmp_path / "figs" / "grid.png")
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (100, 50)


def test_no_global_matplotlib_state_changed(tmp_path):
    import matplotlib

    def snapshot() -> dict:
        # skip "backend": reading it can resolve (and so change) the auto backend
        return {k: matplotlib.rcParams[k] for k in matplotlib.rcParams if k != "backend"}

    before = snapshot()
    registered = set(matplotlib.colormaps)
    fig = dimg.grid([[np.eye(3), dimg.overlay(np.eye(3), np.eye(3))]], row_labels=["x"])
    dimg.save_png(fig, tmp_path / "g.png")
    dimg.save_png(dimg.heatmap(np.eye(3), cmap="cold_hot"), tmp_path / "h.png")
    assert snapshot() == before
    assert set(matplotlib.colormaps) == registered


# --------------------------------------------------------------------------- import hygiene


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_heatmaps_and_pngs_need_numpy_only():
    """A plain install (no matplotlib, no Pillow) draws built-in heatmaps and writes PNGs;
    only figures and other colormaps ask for the viz extra. No TensorFlow either."""
    proc = _run(
        """
        import os, sys, tempfile, zlib
        sys.modules["matplotlib"] = None  # make `import matplotlib` fail
        sys.modules["PIL"] = None
        import numpy as np
        from dtd_keras import image as mod
        assert mod.reduce_channels(np.ones((2, 2, 3))).shape == (2, 2)
        assert mod.normalize(np.array([2.0, -4.0])).tolist() == [0.5, -1.0]
        hm = mod.heatmap(np.array([[1.0, 0.0, -1.0]]), reduce=None)
        assert hm[0].tolist() == [[255, 0, 0], [255, 255, 255], [0, 0, 255]], hm
        mod.overlay(np.eye(3), np.eye(3), cmap="cold_hot")
        path = os.path.join(tempfile.mkdtemp(), "h.png")
        mod.save_png(mod.Picture(np.eye(3), value_range=(0, 1)), path)
        data = open(path, "rb").read()
        assert data[:8] == b"\\x89PNG\\r\\n\\x1a\\n" and data[12:16] == b"IHDR"
        assert not any(m.split(".")[0] in ("tensorflow", "keras") for m in sys.modules)
        for call in (lambda: mod.heatmap(np.ones((2, 2)), cmap="viridis"), lambda: mod.BWR,
                     lambda: mod.grid([np.eye(2)])):
            try:
                call()
            except ImportError as exc:
                assert "pip install 'dtd-keras[viz]'" in str(exc), exc
            else:
                raise AssertionError("expected ImportError")
        print("ok")
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


@pytest.mark.parametrize("name", ["bwr", "cold_hot", "bwr_r", "cold_hot_r"])
def test_numpy_colours_equal_matplotlibs(name):
    values = np.concatenate([np.linspace(-1, 1, 2001), rng().uniform(-1, 1, 5000),
                             [-1.0, -0.5, 0.0, 0.5, 1.0, 1e-9, -1e-9]])
    ours = dimg.heatmap(values[None], cmap=name, reduce=None, normalize=None)
    theirs = dimg.heatmap(values[None], cmap=dimg.cmap(name), reduce=None, normalize=None)
    np.testing.assert_array_equal(ours, theirs)


def test_png_writer_roundtrip_for_grey_rgb_rgba(tmp_path):
    from PIL import Image

    from dtd_keras.image.png import write_png

    for shape, mode in (((5, 7), "L"), ((5, 7, 3), "RGB"), ((5, 7, 4), "RGBA")):
        pixels = rng().integers(0, 256, shape, dtype=np.uint8)
        write_png(pixels, tmp_path / "p.png")
        with Image.open(tmp_path / "p.png") as im:
            assert im.mode == mode and im.size == (7, 5)
            np.testing.assert_array_equal(np.asarray(im), pixels)
    with pytest.raises(ValueError, match="uint8"):
        write_png(np.zeros((2, 2)), tmp_path / "f.png")
    with pytest.raises(ValueError, match="non-empty"):
        write_png(np.zeros((0, 2, 3), np.uint8), tmp_path / "e.png")


def test_drawing_does_not_import_pyplot():
    proc = _run(
        """
        import sys, tempfile, os
        import numpy as np
        from dtd_keras import image as mod
        fig = mod.grid([np.eye(3), np.eye(3)], titles=["a", "b"])
        mod.save_png(fig, os.path.join(tempfile.mkdtemp(), "x.png"))
        mod.save_png(mod.overlay(np.eye(3), np.eye(3)), os.path.join(tempfile.mkdtemp(), "y.png"))
        assert "matplotlib.pyplot" not in sys.modules  # so no backend was selected either
        print("ok")
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
