"""dk.image text heatmaps: HTML (escaped, colours by sign) and PNG (written, readable)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import dtd_keras.image as dimg

TOKENS = ["<script>", "a&b", '"q"', "good", "bad", "$x$"]
R = np.array([0.0, 0.5, -0.25, 2.0, -2.0, 1.0])


def _backgrounds(page: str) -> list[tuple[int, int, int]]:
    found = re.findall(r"background-color:#([0-9a-f]{6})", page)
    return [tuple(int(h[i:i + 2], 16) for i in (0, 2, 4)) for h in found]


def test_html_escapes_tokens_labels_and_title():
    page = dimg.text_html(TOKENS, R, labels=["<i>label</i>"], title="a < b")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "a&amp;b" in page and "&quot;q&quot;" in page
    assert "&lt;i&gt;label&lt;/i&gt;" in page and "<title>a &lt; b</title>" in page
    assert page.startswith("<!DOCTYPE html>") and "http" not in page  # self-contained
    assert page.count('<span class="t"') == len(TOKENS)


def test_html_colours_follow_the_sign_and_scale():
    colours = _backgrounds(dimg.text_html(TOKENS, R))
    assert colours[0] == (255, 255, 255)  # 0: the centre colour
    assert colours[3] == (255, 0, 0) and colours[4] == (0, 0, 255)  # ±max |R|: the ends
    red, _, blue = colours[1]  # +0.25 of the scale: light red
    assert red == 255 and blue < 255
    red, _, blue = colours[2]  # negative: light blue
    assert blue == 255 and red < 255
    # the image heatmaps' colour for half the scale
    assert list(colours[5]) == dimg.heatmap(np.array([[0.5]]), normalize=None)[0, 0].tolist()
    # the tooltip carries the value itself, not the scaled one
    assert 'title="R = -2"' in dimg.text_html(TOKENS, R)


def test_text_colors_batches_features_and_common_scale():
    rows = [["a", "b", "c"], ["d", "e"]]
    R2 = np.array([[1.0, -1.0, 0.0], [0.5, 0.25, 99.0]])  # 99 lies past text 1's end
    own = dimg.text_colors(rows, R2)
    assert own.scales.tolist() == [1.0, 0.5]
    assert own.colors[1][0].tolist() == [255, 0, 0]  # its own max: full red
    ragged = dimg.text_colors(rows, [[1.0, -1.0, 0.0], [0.5, 0.25]])  # one array per text
    assert [v.tolist() for v in ragged.values] == [[1.0, -1.0, 0.0], [0.5, 0.25]]
    assert all(np.array_equal(a, b) for a, b in zip(ragged.colors, own.colors))
    common = dimg.text_colors(rows, R2, per_sample=False)
    assert common.scales.tolist() == [1.0, 1.0]
    assert 0 < common.colors[1][0][1] < 255  # half the common scale: light red
    # [seq, dim] is summed over the features; a batch of one is taken as one text
    R3 = np.stack([R, np.zeros_like(R)], axis=-1)
    np.testing.assert_array_equal(dimg.text_colors(TOKENS, R3).values[0], R)
    np.testing.assert_array_equal(dimg.text_colors(TOKENS, R[None]).values[0], R)


def test_text_heatmap_bad_input():
    with pytest.raises(ValueError, match="not one string"):
        dimg.text_html("a b c", [1, 2, 3])
    with pytest.raises(ValueError, match=r"shape \(4,\) does not fit 1 text\(s\) of \[6\]"):
        dimg.text_html(TOKENS, R[:4])
    with pytest.raises(ValueError, match="must be strings"):
        dimg.text_html(["a", 3], [1, 2])
    with pytest.raises(ValueError, match="NaN"):
        dimg.text_html(["a", "b"], [1, np.nan])
    with pytest.raises(ValueError, match="labels has 2 entries for 1"):
        dimg.text_html(["a"], [1.0], labels=["x", "y"])
    with pytest.raises(ValueError, match="unknown colormap"):
        dimg.text_html(["a"], [1.0], cmap="no_such_map")


def test_save_html_and_png_are_written_and_readable(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    page = dimg.save_text_html(TOKENS, R, tmp_path / "deep" / "t.html")
    assert page.read_text(encoding="utf-8") == dimg.text_html(TOKENS, R)
    rows = [TOKENS * 3, ["good", "good"]]
    values = [np.tile(R, 3), np.array([1.0, 1.0] + [0.0] * 16)]
    path = dimg.save_text_png(rows, values, tmp_path / "deep" / "t.png", labels=["x", "y"])
    with Image.open(path) as im:
        pixels = np.asarray(im.convert("RGB")).astype(int)
    assert pixels.shape[1] == 800 and pixels.shape[0] > 60  # 8 in at 100 dpi, wrapped lines

    def count(rgb):
        return int(np.all(np.abs(pixels - rgb) <= 2, axis=-1).sum())

    assert count((255, 0, 0)) > 100 and count((0, 0, 255)) > 100  # both signs drawn
    only_positive = dimg.text_figure(["good", "fine"], [1.0, 0.5])
    only_positive.canvas.draw()
    drawn = np.asarray(only_positive.canvas.buffer_rgba())[..., :3].astype(int)
    assert np.all(np.abs(drawn - (255, 0, 0)) <= 2, axis=-1).sum() > 100
    assert np.all(np.abs(drawn - (0, 0, 255)) <= 2, axis=-1).sum() == 0
