"""The HTML report in a real browser: Debian's headless ``chromium`` driven by Playwright.

The page is opened from disk (``file://``) as a user would open it. Skipped when chromium or
Playwright is missing, unless ``DTD_KERAS_BROWSER=required`` (CI sets it: then it fails).
"""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from dtd_keras.image.png import write_png

REQUIRED = os.environ.get("DTD_KERAS_BROWSER", "") == "required"
ASSETS = Path(__file__).resolve().parents[1] / "dtd_keras" / "reporting" / "assets"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """One headless chromium for the module (a fresh profile in a temp folder)."""
    executable = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    missing = ("Playwright for Python (pip install playwright)" if sync_playwright is None
               else None if executable else "chromium (apt-get install chromium)")
    if missing:
        if REQUIRED:
            pytest.fail(f"DTD_KERAS_BROWSER=required but {missing} is not installed")
        pytest.skip(f"{missing} is not installed")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=executable, headless=True, args=FLAGS,
            viewport={"width": 1280, "height": 900})
        yield context
        context.close()


class Page:
    """A page opened from disk with every console message, page error and request kept."""

    def __init__(self, context, index_html: Path):
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page = context.new_page()
        self.page.on("console", lambda m: m.type in ("error", "warning")
                     and self.errors.append(f"console {m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("requestfailed", lambda r: self.errors.append(f"failed: {r.url}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(index_html.resolve().as_uri(), wait_until="load")

    def items(self, attribute: str) -> list[str]:
        return self.page.eval_on_selector_all(
            "#gallery .item", f"els => els.map(e => e.getAttribute('data-{attribute}'))")

    def count(self) -> int:
        text = self.page.inner_text("#count")
        assert text.endswith(" items"), text
        return int(text.split()[0].replace(",", ""))

    def select(self, selector: str, value: str) -> None:
        self.page.select_option(selector, value)

    def close(self) -> None:
        self.page.close()


def _floats(values: list[str]) -> list[float]:
    return [float("nan") if v == "" else float(v) for v in values]


def _distinct_colours(png: bytes) -> int:
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3)
    return len(np.unique(pixels, axis=0))


# ---------------------------------------------------------------- a report in the contract's format

def write_fixture_report(out: Path, count: int = 60, classes: int = 3, page_size: int = 48,
                         size: int = 8) -> dict:
    """A report folder in the writer's format (assets copied, data written here), with every
    optional section filled; returns the columns written."""
    rng = np.random.default_rng(0)
    (out / "assets").mkdir(parents=True)
    shutil.copy(ASSETS / "index.html", out / "index.html")
    for source in ASSETS.iterdir():  # every script and style sheet of the page
        if source.suffix in (".js", ".css"):
            shutil.copy(source, out / "assets" / source.name)
    label = rng.integers(0, classes, count)
    items = {"row": list(range(count)), "index": list(range(0, 2 * count, 2)),
             "label": label.tolist(), "neuron": label.tolist(),
             "logit": np.round(rng.normal(3, 1, count), 4).tolist(),
             "relative_error": np.round(rng.lognormal(-8, 2, count), 12).tolist(),
             "negative_fraction": np.round(rng.uniform(0, 0.4, count), 4).tolist()}
    if count > 7:
        items["relative_error"][7] = None
    for row in range(count):
        folder = out / "thumbs" / str(row // 1000)
        folder.mkdir(parents=True, exist_ok=True)
        write_png(rng.integers(0, 256, (size, size), dtype=np.uint8), folder / f"{row}-input.png")
        write_png(rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
                  folder / f"{row}-heatmap.png")
    (out / "means").mkdir()
    (out / "concepts" / "conv2").mkdir(parents=True)
    means = []
    for c in range(classes):
        write_png(rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
                  out / f"means/{c}-heatmap.png")
        write_png(rng.integers(0, 256, (size, size), dtype=np.uint8), out / f"means/{c}-input.png")
        means.append({"class": c, "name": str(c), "count": int((label == c).sum()),
                      "heatmap": f"means/{c}-heatmap.png", "input": f"means/{c}-input.png"})
    # a mean over the explained neuron (what a store without labels gets), no input picture
    means.append({"class": 6, "name": "6", "count": 20, "group": "neuron",
                  "heatmap": "means/0-heatmap.png", "input": None})
    channels = []
    for ch in (1, 4):
        samples = []
        for j in range(3):
            write_png(rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
                      out / f"concepts/conv2/{ch}-{j}.png")
            samples.append({"image": f"concepts/conv2/{ch}-{j}.png", "index": j,
                            "score": 0.5 - j / 10})
        channels.append({"channel": ch, "samples": samples})
    # a dead channel (deadch additions): no reference sample; an entry found=False is skipped
    channels.append({"channel": 7, "note": "no relevance on any sample", "samples": [
        {"image": None, "index": -1, "score": 0, "found": False, "heatmap": None}]})
    finite = [v for v in items["relative_error"] if v is not None]
    counts, edges = np.histogram(finite, bins=10)
    report = {
        "version": 1, "title": "dtd_keras report: fixture", "created": "2026-12-04T16:00:00Z",
        "store": str(out), "analyzer": "DTD(fixture)", "model": "fixture", "count": count,
        "page_size": page_size, "thumbs": {"shard": 1000, "size": [size, size], "input": True},
        "classes": {"count": classes, "names": None},
        "fields": [{"key": "label", "label": "class", "kind": "category"},
                   {"key": "neuron", "label": "explained neuron", "kind": "category"},
                   {"key": "logit", "label": "explained logit", "kind": "number"},
                   {"key": "relative_error", "label": "conservation error (relative)",
                    "kind": "number"},
                   {"key": "negative_fraction", "label": "negative fraction", "kind": "number"}],
        "class_means": means,
        "histograms": [
            {"key": "relative_error", "label": "conservation error (relative)",
             "edges": edges.tolist(), "counts": counts.tolist()},
            # nearly constant: a range of 8e-6 around 0.0357 (3 digits would repeat "0.0357")
            {"key": "logit", "label": "explained logit",
             "edges": np.linspace(0.0357, 0.035708, 11).tolist(), "counts": [3] * 10},
            # constant (all 0): the writer's bins over value ± 0.5
            {"key": "negative_fraction", "label": "negative fraction",
             "edges": np.linspace(-0.5, 0.5, 31).tolist(),
             "counts": [0] * 15 + [count] + [0] * 14}],
        "evaluations": [
            {"kind": "PixelFlipping", "title": "Pixel flipping (AOPC)",
             "x_label": "patches removed", "y_label": "logit",
             "numbers": {"AOPC": 0.12, "AOPC random": 0.03},
             "series": [{"label": "most relevant first", "x": [0, 1, 2, 3], "y": [3, 2, 1.5, 1]},
                        {"label": "random order", "x": [0, 1, 2, 3], "y": [3, 2.9, 2.7, None]}]},
            {"kind": "Randomization", "title": "Randomization cascade", "x_label": "layers",
             "y_label": "Spearman", "numbers": {},
             "series": [{"label": "Spearman", "x": ["dense_1", "conv2", "conv1"],
                         "y": [0.9, 0.4, 0.1]}]},
            # nearly constant curves: float noise around 0.0357, and a narrow range near -0.995
            {"kind": "PixelFlipping", "title": "Pixel flipping, flat", "x_label": "patches removed",
             "y_label": "explained logit (mean)", "numbers": {"AOPC": -1.8e-11},
             "series": [{"label": "most relevant first", "x": list(range(8)),
                         "y": (0.0357 + 1e-9 * rng.standard_normal(8)).tolist()}]},
            {"kind": "Curve", "title": "Narrow range", "x_label": "step",
             "y_label": "conservation error (relative)", "numbers": {},
             "series": [{"label": "error", "x": list(range(6)),
                         "y": [-0.9962, -0.9955, -0.9950, -0.9947, -0.9941, -0.9938]}]}],
        "concepts": [{"layer": "conv2", "method": "relevance", "channels": channels}],
    }
    (out / "data").mkdir()
    (out / "data" / "report.js").write_text(f"window.DTD_REPORT = {json.dumps(report)};\n")
    (out / "data" / "items.js").write_text(f"window.DTD_ITEMS = {json.dumps(items)};\n")
    return {"report": report, "items": items}


@pytest.fixture(scope="module")
def fixture_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("fixture-report")
    return out, write_fixture_report(out)


@pytest.fixture(scope="module")
def real_report(tmp_path_factory):
    """A report written by ``dk.report`` from a small store: 60 digits explained by LRP-ε
    on a tiny CNN, with their labels, the data (input thumbnails) and a pixel-flipping
    result."""
    import keras
    from sklearn.datasets import load_digits

    import dtd_keras as dk

    digits = load_digits()
    x = (digits.images[:60] / 16.0).astype("float32")[..., None]
    y = digits.target[:60].astype("int64")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dense(10)])
    analyzer = dk.LRP(model, rule=dk.rules.Epsilon(0.1))
    root = tmp_path_factory.mktemp("real-report")
    results = dk.analyze_dataset(analyzer, (x, y), root / "store", batch_size=32, progress=False)
    flipping = dk.evaluate.pixel_flipping(model, x[:4], np.asarray(results.relevance[:4]),
                                          neuron=results.neuron[:4], steps=4)
    index = dk.report(results, root / "report", data=(x, y), evaluations=[flipping],
                      page_size=24, thumb_size=16, progress=False)
    return index, results


def _check_clean(page: Page) -> None:
    assert page.errors == [], page.errors
    outside = [u for u in page.requests if not u.startswith(("file://", "data:"))]
    assert outside == [], f"requests outside the report folder: {outside}"


_TICKS = """svg => {
  const texts = sel => [...svg.querySelectorAll(sel)];
  const box = e => { const r = e.getBoundingClientRect();
                     return {l: r.left, r: r.right, t: r.top, b: r.bottom, text: e.textContent}; };
  const figure = svg.closest("figure");
  return {key: figure.querySelector("h3").textContent, svg: box(svg),
          x: texts("text.tick.x").map(box), y: texts("text.tick.y").map(box),
          titles: texts("text.label").map(box),
          note: [...figure.querySelectorAll(".axis-note")].map(e => e.textContent).join(" ")};
}"""


def _overlap(a: dict, b: dict) -> bool:
    return a["l"] < b["r"] and b["l"] < a["r"] and a["t"] < b["b"] and b["t"] < a["b"]


def _check_charts(p) -> dict:
    """Every chart: its tick labels differ, lie inside the chart and overlap neither each
    other nor the axis titles. Returns each chart's ticks and note by key."""
    charts = {}
    for handle in p.query_selector_all("#histograms svg, #evaluations svg"):
        chart = handle.evaluate(_TICKS)
        for axis in ("x", "y"):
            labels = [t["text"] for t in chart[axis]]
            assert len(set(labels)) == len(labels) >= 1, (chart["key"], axis, labels)
        ticks = chart["x"] + chart["y"]
        for k, a in enumerate(ticks):
            assert chart["svg"]["l"] <= a["l"] and a["r"] <= chart["svg"]["r"], (chart["key"], a)
            others = ticks[k + 1:] + chart["titles"]
            assert not any(_overlap(a, b) for b in others), (chart["key"], a)
        charts[chart["key"]] = chart
    return charts


def test_report_sections_render(browser, fixture_report):
    """Every section of a report with all of them: means, histogram bars, curves, concepts,
    and a range filter on the conservation error."""
    out, data = fixture_report
    page = Page(browser, out / "index.html")
    try:
        p = page.page
        report = data["report"]
        assert p.locator("#class-means .mean").count() == len(report["class_means"])
        titles = p.eval_on_selector_all("#class-means .mean b",
                                        "els => els.map(e => e.textContent)")
        assert titles == ["class 0", "class 1", "class 2", "neuron 6"]
        assert "neuron" in p.inner_text("#class-means-title")
        assert p.locator("#histograms .histogram").count() == 3
        assert p.locator("#histograms .histogram rect.bar").count() == 10 + 10 + 30
        assert p.locator("#evaluations .evaluation").count() == 4
        assert p.locator("#evaluations .evaluation path.line").count() == 5
        charts = _check_charts(p)
        # a tiny range with more digits; a constant or nearly constant one: one tick and a note
        narrow = [t["text"] for t in charts["explained logit"]["x"]]
        assert len(narrow) >= 2 and all(t.startswith("0.0357") for t in narrow), narrow
        assert [t["text"] for t in charts["negative fraction"]["x"]] == ["0"]
        assert "constant: all 60 values are 0" in charts["negative fraction"]["note"]
        flat = charts["Pixel flipping, flat"]
        assert [t["text"] for t in flat["y"]] == ["0.0357"]
        assert "nearly constant" in flat["note"]
        assert len(charts["Narrow range"]["y"]) >= 3
        assert charts["Narrow range"]["note"] == ""
        # the cards' numbers: short names (full name in the tooltip), none cut off at 1280 px
        cards = p.eval_on_selector_all("#gallery .item:first-child dt", "els => els.map(e => "
                                       "[e.textContent, e.title, e.scrollWidth <= e.clientWidth])")
        assert ["cons. error", "conservation error (relative)", True] in cards
        assert all(fits for _, _, fits in cards), cards
        assert p.locator("#concepts .concept").count() == 3
        assert p.locator("#concepts .concept img").count() == 6
        dead = p.locator('#concepts .concept[data-channel="7"]')
        assert dead.locator(".concept-note").inner_text() == "no relevance on any sample"
        assert dead.locator("figure").count() == 0
        assert p.locator("#concepts .concept-note").count() == 1
        errors = np.array([np.nan if v is None else v for v in data["items"]["relative_error"]])
        lo, hi = np.nanquantile(errors, [0.25, 0.75])
        p.click("#ranges summary")
        p.fill("#range-min-relative_error", repr(float(lo)))
        p.press("#range-min-relative_error", "Enter")
        p.fill("#range-max-relative_error", repr(float(hi)))
        p.press("#range-max-relative_error", "Enter")
        expected = int(((errors >= lo) & (errors <= hi)).sum())
        assert page.count() == expected
        shown = _floats(page.items("relative_error"))
        assert len(shown) == expected and all(lo <= v <= hi for v in shown)
        p.click("#reset")
        assert page.count() == len(errors)
        _check_clean(page)
    finally:
        page.close()


def test_report_gallery_in_chromium(browser, real_report):
    """The gallery of a report that ``dk.report`` wrote, opened from disk: item count, sorting
    by the conservation error both ways, a class filter, the next page, the evaluation curve,
    a screenshot that is not blank; no console error, nothing fetched outside the folder."""
    index, results = real_report
    count, page_size = len(results), 24
    page = Page(browser, index)
    try:
        p = page.page
        assert page.count() == count
        assert p.locator("#gallery .item").count() == min(count, page_size)
        assert p.inner_text("#page") == f"page 1 of {-(-count // page_size)}"
        assert p.locator("#class-means .mean").count() == len(np.unique(results.label))
        assert p.locator("#histograms .histogram").count() >= 2
        assert p.locator("#evaluations .evaluation path.line").count() >= 1
        first = page.items("row")
        assert first == [str(i) for i in range(page_size)]
        # sort by the conservation error, ascending then descending (nulls last both ways)
        errors = np.asarray(results.properties["relative_error"], np.float64)
        finite = np.array([float(f"{v:.7g}") for v in np.sort(errors[np.isfinite(errors)])])
        page.select("#sort-field", "relative_error")
        page.select("#sort-order", "asc")
        ascending = _floats(page.items("relative_error"))
        assert ascending == finite[:page_size].tolist()
        assert page.items("row") != first
        page.select("#sort-order", "desc")
        descending = _floats(page.items("relative_error"))
        assert descending == finite[::-1][:page_size].tolist()
        # next page: the rest, still in order
        p.click("#page-next")
        assert p.inner_text("#page") == f"page 2 of {-(-count // page_size)}"
        rest = _floats(page.items("relative_error"))
        assert len(rest) == min(page_size, count - page_size)
        tail = [v for v in rest if v == v]
        assert tail == finite[::-1][page_size:page_size + len(tail)].tolist()
        assert all(v != v for v in rest[len(tail):])  # nulls last
        # filter by class: the store's count for that class
        labels = np.asarray(results.label)
        for c in np.unique(labels)[:2]:
            page.select("#filter-label", str(c))
            assert page.count() == int((labels == c).sum())
            assert set(page.items("label")) == {str(c)}
        page.select("#filter-label", "")
        assert page.count() == count
        # images loaded and the page drawn
        p.wait_for_function("() => { const i = document.querySelector('#gallery .item img');"
                            " return i && i.complete && i.naturalWidth > 0; }")
        assert _distinct_colours(p.screenshot()) > 50
        # the mean maps (lazy images) load once scrolled to
        p.locator("#class-means").scroll_into_view_if_needed()
        p.wait_for_function("() => [...document.querySelectorAll('#class-means img')]"
                            ".every(i => i.complete && i.naturalWidth > 0)")
        _check_clean(page)
    finally:
        page.close()


def test_neuron_all_report_in_chromium(browser, tmp_path):
    """A ``neuron="all"`` store (rows: sample × class): the rows of one sample show the one
    input thumbnail of that sample, the "explains the top logit" filter leaves one row per
    sample, and the histograms count explanations."""
    import keras

    import dtd_keras as dk

    x = np.random.default_rng(1).random((6, 4, 4, 1)).astype("float32")
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(3)])
    results = dk.analyze_dataset(dk.LRP(model), x, tmp_path / "store", neuron="all",
                                 progress=False)
    index = dk.report(results, tmp_path / "report", data=x, thumb_size=8, progress=False)
    page = Page(browser, index)
    try:
        p = page.page
        assert page.count() == 18
        sources = p.eval_on_selector_all("#gallery .item img.input",
                                         "els => els.map(e => e.getAttribute('src'))")
        assert len(sources) == 18 and sources[0] == sources[2] != sources[3]
        assert (index.parent / sources[3]).is_file()
        page.select("#filter-top", "1")
        assert page.count() == 6 and sorted(page.items("index")) == [str(i) for i in range(6)]
        top = np.asarray(results.logit).argmax(axis=1)
        assert [int(r) % 3 for r in page.items("row")] == top.tolist()
        labels = p.eval_on_selector_all("#histograms svg text.label",
                                        "els => els.map(e => e.textContent)")
        counted = [t for t in labels if t.startswith("explanations")]
        assert len(counted) == p.locator("#histograms .histogram svg").count() > 0
        assert not any(t.startswith("samples") for t in labels)
        _check_clean(page)
    finally:
        page.close()
