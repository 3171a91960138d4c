/* dtd_keras report page: inline SVG charts, drawn without a library. Histograms of the
 * explanations' properties (#histograms .histogram; a bar click asks for a range filter)
 * and the evaluation curves (#evaluations .evaluation) with their legend and numbers.
 * Tick labels always differ from each other: they carry as many digits as the tick step
 * needs, and a (nearly) constant axis gets one tick and a note (p.axis-note) instead.
 * The left margin is made room for the longest tick label, so nothing overlaps. */
(function (P) {
  "use strict";

  var $ = P.$, el = P.el, svg = P.svg, append = P.append, fmt = P.fmt,
      thousands = P.thousands, none = P.none;

  var W = 360, H = 220, TOP = 12, BOTTOM = 44, RIGHT = 26;
  var MAX_DIGITS = 6;   // significant digits a tick label may need; more: "nearly constant"
  var palette = ["#1f5f8b", "#c2571a", "#3f8f4f", "#8b3f8f", "#8f7a1f", "#555555"];

  /* Width of `text` in the charts' 10px tick font (canvas measure; an estimate without). */
  var measure = (function () {
    var ctx = null;
    return function (text) {
      if (ctx === null) {
        try {
          ctx = document.createElement("canvas").getContext("2d") || false;
          if (ctx) ctx.font = "10px " + getComputedStyle(document.body).fontFamily;
        } catch (e) { ctx = false; }
      }
      return ctx ? ctx.measureText(text).width : 6.2 * text.length;
    };
  })();

  function widest(labels) {
    return labels.reduce(function (w, s) { return Math.max(w, measure(s)); }, 0);
  }

  /* text, cut short with "…" to fit `width` in the 11px axis-title font. */
  function fit(text, width) {
    text = text || "";
    if (measure(text) * 1.1 <= width) return text;
    while (text.length > 1 && measure(text + "…") * 1.1 > width) text = text.slice(0, -1);
    return text + "…";
  }

  /* v with up to `digits` significant digits, trailing zeros dropped. */
  function precise(v, digits) {
    if (v === 0) return "0";
    var a = Math.abs(v);
    var s = a >= 1e-3 && a < 1e6 ? String(Number(v.toPrecision(digits))) : v.toExponential(digits - 1)
      .replace(/\.?0+e/, "e");
    return s.replace("e+", "e");
  }

  /* Labels for values that step apart by at least `step` (= m·10^k): as many decimals as
   * 10^k needs, so that they all differ; null when that takes more than MAX_DIGITS. */
  function tickLabels(values, step) {
    var k = Math.floor(Math.log10(step) + 1e-9);
    var big = values.reduce(function (b, v) { return Math.max(b, Math.abs(v)); }, 0);
    if (big === 0) return values.map(function () { return "0"; });
    if (Math.floor(Math.log10(big)) - k + 1 > MAX_DIGITS) return null;
    if (big >= 1e-3 && big < 1e6) {
      var d = Math.max(0, -k);
      return values.map(function (v) { return v === 0 ? "0" : v.toFixed(d); });
    }
    var e = Math.floor(Math.log10(big) + 1e-12), scale = Math.pow(10, e);
    return values.map(function (v) {  // one exponent for all: -1.5e-4, -1.0e-4, -0.5e-4
      return v === 0 ? "0" : (v / scale).toFixed(Math.max(0, e - k)) + "e" + e;
    });
  }

  /* The ticks of an axis over [lo, hi], about n of them: {ticks, labels, note}. `integer`:
   * steps of at least 1 (counts). A constant or nearly constant axis (labels would need
   * more than MAX_DIGITS digits to differ) gets one tick at its middle and a note. */
  function axis(lo, hi, n, integer) {
    var mid = (lo + hi) / 2;
    if (!(hi > lo)) return flat(lo, "constant: every value is " + precise(lo, 7));
    var raw = (hi - lo) / n, step = Math.pow(10, Math.floor(Math.log10(raw)));
    var err = raw / step;
    step *= err >= 7.5 ? 10 : err >= 3.5 ? 5 : err >= 1.5 ? 2 : 1;
    if (integer) step = Math.max(1, step);
    var ticks = [];
    for (var j = Math.ceil(lo / step - 1e-9); j * step <= hi + step * 1e-9; j++) {
      ticks.push(j === 0 ? 0 : j * step);
    }
    if (!ticks.length) ticks = [mid];
    var labels = tickLabels(ticks, step);
    if (labels === null) {
      return flat(mid, "nearly constant: " + precise(mid, 7) + " ± " + precise((hi - lo) / 2, 2));
    }
    return {ticks: ticks, labels: labels, note: null};
  }

  function flat(v, note) { return {ticks: [v], labels: [precise(v, 7)], note: note}; }

  /* Keeps every other tick until the labels fit side by side in `width`. */
  function thin(ax, width) {
    var w = widest(ax.labels) + 8;
    while (ax.ticks.length > 2 && w * ax.ticks.length > width) {
      ax = {ticks: ax.ticks.filter(function (t, k) { return k % 2 === 0; }),
            labels: ax.labels.filter(function (t, k) { return k % 2 === 0; }), note: ax.note};
    }
    return ax;
  }

  /* The plot frame for the y tick labels: its left and right edges. */
  function frame(yLabels, xLabels) {
    var left = Math.max(40, Math.ceil(widest(yLabels)) + 30);
    var last = xLabels.length ? measure(xLabels[xLabels.length - 1]) / 2 + 4 : 0;
    return {l: left, r: W - Math.max(RIGHT, Math.ceil(last))};
  }

  /* Axes, ticks and titles into g. f: frame; x, y: scales; xa, ya: axis() results. */
  function axes(g, f, x, y, xa, ya, xLabel, yLabel) {
    var x0 = f.l, x1 = f.r, y0 = H - BOTTOM, y1 = TOP;
    append(g, [svg("line", {x1: x0, x2: x1, y1: y0, y2: y0, className: "axis"}),
               svg("line", {x1: x0, x2: x0, y1: y0, y2: y1, className: "axis"})]);
    xa.ticks.forEach(function (t, k) {
      append(g, [svg("line", {x1: x(t), x2: x(t), y1: y0, y2: y0 + 4, className: "axis"}),
                 svg("text", {x: x(t), y: y0 + 16, "text-anchor": "middle", className: "tick x",
                              text: xa.labels[k]})]);
    });
    ya.ticks.forEach(function (t, k) {
      append(g, [svg("line", {x1: x0, x2: x1, y1: y(t), y2: y(t), className: "gridline"}),
                 svg("text", {x: x0 - 6, y: y(t) + 4, "text-anchor": "end", className: "tick y",
                              text: ya.labels[k]})]);
    });
    var xMid = (x0 + x1) / 2;
    append(g, [svg("text", {x: xMid, y: H - 6, "text-anchor": "middle", className: "label",
                            text: fit(xLabel, 2 * Math.min(xMid, W - xMid) - 4)}, [svg("title", {text: xLabel || ""})]),
               svg("text", {x: 14, y: (y0 + y1) / 2, "text-anchor": "middle", className: "label",
                            transform: "rotate(-90 14 " + (y0 + y1) / 2 + ")", text: fit(yLabel, y0 - y1 + 20)},
                   [svg("title", {text: yLabel || ""})])]);
  }

  function notes(figure, list) {
    list.forEach(function (n) {
      // non-breaking hyphens: a line never breaks inside a number such as 2.6e-10
      if (n) figure.appendChild(el("p", {className: "axis-note", text: n.replace(/-/g, "\u2011")}));
    });
  }

  /* A formatter for the sorted values that tells neighbours apart (3 to 10 digits). */
  function distinct(values) {
    for (var p = 3; p < 10; p++) {
      var ok = true;
      for (var k = 1; k < values.length && ok; k++) {
        ok = values[k] === values[k - 1] || precise(values[k], p) !== precise(values[k - 1], p);
      }
      if (ok) break;
    }
    return function (v) { return precise(v, p); };
  }

  /* The value of a histogram the writer drew for constant data (all in one bin of the
   * range value ± 0.5), or null. */
  function constantValue(edges, counts) {
    var lo = edges[0], hi = edges[edges.length - 1], mid = (lo + hi) / 2;
    var full = counts.filter(function (c) { return c > 0; });
    if (full.length !== 1 || Math.abs(hi - lo - 1) > 1e-9 * Math.max(1, Math.abs(mid))) return null;
    var k = counts.indexOf(full[0]);
    return edges[k] <= mid && mid <= edges[k + 1] ? mid : null;
  }

  /* R.histograms into #histograms. A bar of a histogram whose key passes canFilter(key)
   * calls filterTo(key, lo, hi) with its edges when clicked. */
  P.histograms = function (R, canFilter, filterTo) {
    var box = $("histograms"), hists = R.histograms || [];
    if (!hists.length) return none(box, "No histograms in this report.");
    hists.forEach(function (h) {
      var edges = h.edges || [], counts = h.counts || [], title = h.label || h.key;
      if (!counts.length || edges.length !== counts.length + 1) {
        box.appendChild(el("figure", {className: "histogram chart", "data-key": h.key},
          [el("h3", {text: title}), el("p", {className: "empty", text: "No finite values."})]));
        return;
      }
      var top = Math.max.apply(null, counts.concat([1]));
      var lo = edges[0], hi = edges[edges.length - 1];
      var constant = constantValue(edges, counts);
      var total = counts.reduce(function (a, b) { return a + b; }, 0);
      var ya = axis(0, top, 4, true);
      var xa = constant === null ? axis(lo, hi, 4)
        : flat(constant, "constant: all " + thousands(total) + " values are " + precise(constant, 7));
      var f = frame(ya.labels, xa.labels);
      xa = thin(xa, f.r - f.l);
      f = frame(ya.labels, xa.labels);
      var x = function (v) { return f.l + (hi > lo ? (v - lo) / (hi - lo) : 0.5) * (f.r - f.l); };
      var y = function (v) { return H - BOTTOM - v / top * (H - TOP - BOTTOM); };
      var g = svg("svg", {viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "histogram of " + title});
      axes(g, f, x, y, xa, ya, title, h.y_label || "samples");
      var edge = distinct(edges);
      counts.forEach(function (c, k) {
        var bar = svg("rect", {x: x(edges[k]) + 0.5, y: y(c), width: Math.max(0.5, x(edges[k + 1]) - x(edges[k]) - 1),
                               height: Math.max(0, H - BOTTOM - y(c)), className: "bar"},
                      [svg("title", {text: edge(edges[k]) + " to " + edge(edges[k + 1]) + ": " + thousands(c)})]);
        if (canFilter(h.key)) {
          bar.addEventListener("click", function () { filterTo(h.key, edges[k], edges[k + 1]); });
        }
        g.appendChild(bar);
      });
      var figure = el("figure", {className: "histogram chart", "data-key": h.key}, [el("h3", {text: title}), g]);
      notes(figure, [xa.note && title + ": " + xa.note]);
      box.appendChild(figure);
    });
  };

  /* R.evaluations into #evaluations: one line chart per result (categorical x axis when
   * an x value is text), its legend and its table of numbers. A (nearly) constant curve
   * is drawn flat through the middle, with one y tick and a note. */
  P.evaluations = function (R) {
    var box = $("evaluations"), evals = R.evaluations || [];
    if (!evals.length) return none(box, "No evaluation results in this report.");
    evals.forEach(function (ev) {
      var series = ev.series || [];
      var categorical = series.some(function (s) { return (s.x || []).some(function (v) { return typeof v === "string"; }); });
      var labels = categorical ? (series[0].x || []).map(String) : null;
      var xs = [], ys = [];
      series.forEach(function (s) {
        (s.y || []).forEach(function (v, k) {
          if (v === null) return;
          ys.push(v); xs.push(categorical ? k : s.x[k]);
        });
      });
      var figure = el("figure", {className: "evaluation chart", "data-kind": ev.kind}, []);
      figure.appendChild(el("h3", {text: ev.title || ev.kind}));
      if (ys.length) {
        var xlo = Math.min.apply(null, xs), xhi = Math.max.apply(null, xs);
        var ylo = Math.min.apply(null, ys), yhi = Math.max.apply(null, ys);
        var pad = (yhi - ylo) * 0.05;
        var ya = axis(ylo - pad, yhi + pad, 4);
        if (ya.note) {  // flat: centre the line, give the axis some room
          var c = ya.ticks[0], half = Math.abs(c) > 0 ? Math.abs(c) / 2 : 0.5;
          ylo = c - half; yhi = c + half;
        } else { ylo -= pad; yhi += pad; }
        var xa;
        if (categorical) {
          var keep = labels.map(function (l, k) { return k; }).filter(function (k) {
            return labels.length <= 6 || k % Math.ceil(labels.length / 6) === 0; });
          xa = {ticks: keep, labels: keep.map(function (k) {
            var s = labels[k] || ""; return s.length > 9 ? s.slice(0, 8) + "…" : s; }), note: null};
        } else {
          xa = axis(xlo, xhi, 5);
        }
        var f = frame(ya.labels, xa.labels);
        xa = thin(xa, f.r - f.l);
        f = frame(ya.labels, xa.labels);
        var x = function (v) { return f.l + (xhi > xlo ? (v - xlo) / (xhi - xlo) : 0.5) * (f.r - f.l); };
        var y = function (v) { return H - BOTTOM - (v - ylo) / (yhi - ylo) * (H - TOP - BOTTOM); };
        var g = svg("svg", {viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": ev.title || ev.kind});
        axes(g, f, x, y, xa, ya, ev.x_label, ev.y_label);
        series.forEach(function (s, k) {
          var d = "", color = palette[k % palette.length];
          (s.y || []).forEach(function (v, j) {
            if (v === null) return;
            d += (d ? "L" : "M") + x(categorical ? j : s.x[j]).toFixed(1) + "," + y(v).toFixed(1);
          });
          g.appendChild(svg("path", {d: d, className: "line", stroke: color},
                            [svg("title", {text: s.label || ""})]));
        });
        figure.appendChild(g);
        figure.appendChild(el("div", {className: "legend"}, series.map(function (s, k) {
          var swatch = el("span", {className: "swatch"});
          swatch.style.background = palette[k % palette.length];
          return el("span", {}, [swatch, s.label || ""]);
        })));
        notes(figure, [ya.note && (ev.y_label || "y") + ": " + ya.note,
                       xa.note && (ev.x_label || "x") + ": " + xa.note]);
      }
      var numbers = ev.numbers || {};
      var keys = Object.keys(numbers);
      if (keys.length) {
        figure.appendChild(el("table", {className: "numbers"}, keys.map(function (k) {
          return el("tr", {}, [el("th", {text: k}), el("td", {text: fmt(numbers[k])})]);
        })));
      }
      box.appendChild(figure);
    });
  };
})(window.DTD_PAGE = window.DTD_PAGE || {});
