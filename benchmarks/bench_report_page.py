"""The HTML report's page at scale: a 100,000-row report opened in headless Chromium.

The report folder is written in the format ``dk.report`` writes (``data/report.js``,
``data/items.js``, ``thumbs/<row // 1000>/<row>-….png``, the page's assets copied from
``dtd_keras/reporting/assets``), with seeded random columns; the 200,000 thumbnails are
hard links to two small PNGs (the page's cost does not depend on what they show). Then,
in Debian's ``chromium`` driven by Playwright, over ``--repeats`` fresh page loads:

* first gallery: from navigation start to the end of the first gallery render (the
  ``dtd-gallery`` performance mark; includes reading and running ``data/items.js``), and
  the page script's own part of it (building the typed columns, filtering, rendering);
* sort: choosing "conservation error (relative)" in ``#sort-field`` (first time: builds
  the sorted order of 100,000 rows), then switching to descending (order cached), each
  until the next frame is drawn;
* next page, and filtering one class, until the next frame.

The columns are those ``dk.report`` writes (row, index, label, neuron and six numbers).

Medians are printed as a table. With ``--screenshot PNG --report DIR`` it instead saves a
1280×900 screenshot of the report in ``DIR`` (how ``docs/report.png`` is made, from
``dtd-keras demo``'s ``report/``).

Usage::

    python benchmarks/bench_report_page.py                  # ~1 min on 2 busy cores
    python benchmarks/bench_report_page.py --rows 10000 --repeats 3
    python benchmarks/bench_report_page.py --screenshot docs/report.png --report demo_out/report
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

ASSETS = Path(__file__).resolve().parents[1] / "dtd_keras" / "reporting" / "assets"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHARD = 1000


def _png(pixels: np.ndarray, path: Path) -> None:
    from dtd_keras.image.png import write_png

    write_png(pixels, path)


def _numbers(values: np.ndarray) -> str:
    text = np.char.mod("%.7g", np.where(np.isfinite(values), values, 0.0))
    return "[" + ",".join(np.where(np.isfinite(values), text, "null").tolist()) + "]"


def write_report(out: Path, rows: int, classes: int = 10, page_size: int = 48) -> None:
    """A ``rows``-row report in ``dk.report``'s format, with random columns."""
    rng = np.random.default_rng(0)
    out.mkdir(parents=True)
    (out / "assets").mkdir()
    shutil.copyfile(ASSETS / "index.html", out / "index.html")
    for source in ASSETS.iterdir():  # every script and style sheet of the page
        if source.suffix in (".js", ".css"):
            shutil.copyfile(source, out / "assets" / source.name)
    label = rng.integers(0, classes, rows)
    columns = {"row": np.arange(rows), "index": np.arange(rows), "label": label,
               "neuron": np.where(rng.random(rows) < 0.9, label, rng.integers(0, classes, rows)),
               "logit": rng.normal(5, 2, rows), "relative_error": rng.lognormal(-9, 2, rows),
               "negative_fraction": rng.uniform(0, 0.5, rows)}
    columns["total"] = columns["logit"] * (1 + rng.normal(0, 1e-3, rows))
    columns["conservation_error"] = columns["total"] - columns["logit"]
    columns["negative_mass"] = -rng.exponential(0.5, rows)
    columns["relative_error"][rng.random(rows) < 0.001] = np.nan
    number = [("logit", "explained logit"), ("relative_error", "conservation error (relative)"),
              ("negative_fraction", "negative fraction"), ("total", "Σ relevance"),
              ("conservation_error", "conservation error (Σ R − logit)"),
              ("negative_mass", "negative relevance (sum)")]
    histograms = []
    for key, label_text in number:
        values = columns[key][np.isfinite(columns[key])]
        counts, edges = np.histogram(values, bins=30)
        histograms.append({"key": key, "label": label_text, "edges": edges.tolist(),
                           "counts": counts.tolist()})
    source = out / "means"
    source.mkdir(parents=True)
    _png(rng.integers(0, 256, (64, 64), dtype=np.uint8), source / "input.png")
    _png(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), source / "heatmap.png")
    for row in range(rows):  # hard links to one copy per shard (file systems cap links)
        folder = out / "thumbs" / str(row // SHARD)
        if row % SHARD == 0:
            folder.mkdir(parents=True)
            for kind in ("input", "heatmap"):
                shutil.copyfile(source / f"{kind}.png", folder / f"{row}-{kind}.png")
            first = row
            continue
        for kind in ("input", "heatmap"):
            os.link(folder / f"{first}-{kind}.png", folder / f"{row}-{kind}.png")
    for c in range(classes):
        for kind in ("input", "heatmap"):
            os.link(source / f"{kind}.png", out / "means" / f"{c}-{kind}.png")
    report = {
        "version": 1, "title": f"dtd_keras report: {rows:,} random rows",
        "created": "2026-12-04T16:00:00Z", "store": str(out), "analyzer": "", "model": "",
        "count": rows, "page_size": page_size,
        "thumbs": {"shard": SHARD, "size": [64, 64], "input": True},
        "classes": {"count": classes, "names": None},
        "fields": [{"key": "label", "label": "class", "kind": "category"},
                   {"key": "neuron", "label": "explained neuron", "kind": "category"}]
        + [{"key": k, "label": text, "kind": "number"} for k, text in number],
        "class_means": [{"class": c, "name": str(c), "count": int((label == c).sum()),
                         "heatmap": f"means/{c}-heatmap.png", "input": f"means/{c}-input.png"}
                        for c in range(classes)],
        "histograms": histograms, "evaluations": [], "concepts": []}
    (out / "data").mkdir()
    (out / "data" / "report.js").write_text(f"window.DTD_REPORT = {json.dumps(report)};\n")
    body = ",\n".join(f'"{k}": ' + (_numbers(v) if v.dtype.kind == "f" else json.dumps(v.tolist()))
                      for k, v in columns.items())
    (out / "data" / "items.js").write_text("window.DTD_ITEMS = {\n" + body + "\n};\n")


# Runs an action in the page and resolves after the next two animation frames (the frame
# that shows its result has been drawn), with the milliseconds it took.
_TIMED = """async (action) => {
  const t0 = performance.now();
  if (action.select) {
    const s = document.querySelector(action.select);
    s.value = action.value;
    s.dispatchEvent(new Event('change'));
  } else {
    document.querySelector(action.click).click();
  }
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  return performance.now() - t0;
}"""


def measure(browser, index: Path) -> dict[str, float]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    start = time.perf_counter()
    page.goto(index.as_uri(), wait_until="domcontentloaded")
    page.wait_for_selector("#gallery .item")
    wall = (time.perf_counter() - start) * 1000
    mark = page.evaluate("performance.getEntriesByName('dtd-gallery')[0].startTime")
    own = page.evaluate("window.DTD_TIMING.gallery_ms")
    got = {"first gallery (navigation → render)": mark, "  of which the page script": own,
           "first gallery (Python wall clock)": wall}
    got["sort by conservation error (first)"] = page.evaluate(
        _TIMED, {"select": "#sort-field", "value": "relative_error"})
    got["sort descending (order cached)"] = page.evaluate(
        _TIMED, {"select": "#sort-order", "value": "desc"})
    got["next page"] = page.evaluate(_TIMED, {"click": "#page-next"})
    got["filter one class"] = page.evaluate(_TIMED, {"select": "#filter-label", "value": "3"})
    if errors:
        raise RuntimeError(f"page errors: {errors}")
    page.close()
    return got


def _launch(playwright):
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        raise SystemExit("needs Debian's chromium: apt-get install chromium")
    return playwright.chromium.launch(executable_path=executable, headless=True, args=FLAGS)


def screenshot(report: Path, target: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = _launch(playwright)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto((report / "index.html").resolve().as_uri(), wait_until="load")
        page.wait_for_function("() => [...document.querySelectorAll('#gallery img')]"
                               ".every(i => i.complete)")
        page.screenshot(path=str(target))
        browser.close()
    print(f"wrote {target} ({target.stat().st_size / 1024:.0f} KiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--screenshot", type=Path, help="save a screenshot of --report")
    parser.add_argument("--report", type=Path, help="a report folder (with --screenshot)")
    args = parser.parse_args()
    if args.screenshot:
        if args.report is None:
            parser.error("--screenshot needs --report DIR")
        return screenshot(args.report, args.screenshot)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="bench_report_page_") as tmp:
        out = Path(tmp) / "report"
        start = time.perf_counter()
        write_report(out, args.rows)
        size = (out / "data" / "items.js").stat().st_size / 2**20
        print(f"{args.rows:,} rows written in {time.perf_counter() - start:.1f} s "
              f"(data/items.js {size:.1f} MiB)")
        with sync_playwright() as playwright:
            browser = _launch(playwright)
            print(f"Chromium {browser.version}, {args.repeats} fresh page loads, medians")
            runs = [measure(browser, out / "index.html") for _ in range(args.repeats)]
            browser.close()
    print("\n| step | ms (median) | min | max |\n| --- | ---: | ---: | ---: |")
    for key in runs[0]:
        values = [r[key] for r in runs]
        print(f"| {key.strip()} | {statistics.median(values):.0f} | {min(values):.0f} "
              f"| {max(values):.0f} |")


if __name__ == "__main__":
    main()
