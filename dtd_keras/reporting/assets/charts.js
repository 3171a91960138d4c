/* dtd_keras report page: inline SVG charts, drawn without a library. Histograms of the
 * explanations' properties (#histograms .histogram; a bar click asks for a range filter)
 * and the evaluation curves (#evaluations .evaluation) with their legend and numbers. */
(function (P) {
  "use strict";

  var $ = P.$, el = P.el, svg = P.svg, append = P.append, fmt = P.fmt,
      thousands = P.thousands, none = P.none;

  var W = 360, H = 220, M = {l: 52, r: 26, t: 12, b: 44};
  var palette = ["#1f5f8b", "#c2571a", "#3f8f4f", "#8b3f8f", "#8f7a1f", "#555555"];

  function ticks(lo, hi, n) {
    if (!(hi > lo)) return [lo];
    var step = Math.pow(10, Math.floor(Math.log10((hi - lo) / n)));
    var err = (hi - lo) / n / step;
    step *= err >= 7.5 ? 10 : err >= 3.5 ? 5 : err >= 1.5 ? 2 : 1;
    var out = [];
    for (var t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(Math.abs(t) < step * 1e-9 ? 0 : t);
    return out;
  }

  function axes(g, x, y, xt, yt, xLabel, yLabel, xText) {
    var x0 = M.l, x1 = W - M.r, y0 = H - M.b, y1 = M.t;
    append(g, [svg("line", {x1: x0, x2: x1, y1: y0, y2: y0, className: "axis"}),
               svg("line", {x1: x0, x2: x0, y1: y0, y2: y1, className: "axis"})]);
    xt.forEach(function (t, k) {
      append(g, [svg("line", {x1: x(t), x2: x(t), y1: y0, y2: y0 + 4, className: "axis"}),
                 svg("text", {x: x(t), y: y0 + 16, "text-anchor": "middle", text: xText ? xText(t, k) : fmt(t)})]);
    });
    yt.forEach(function (t) {
      append(g, [svg("line", {x1: x0, x2: x1, y1: y(t), y2: y(t), className: "gridline"}),
                 svg("text", {x: x0 - 6, y: y(t) + 4, "text-anchor": "end", text: fmt(t)})]);
    });
    append(g, [svg("text", {x: (x0 + x1) / 2, y: H - 6, "text-anchor": "middle", className: "label", text: xLabel || ""}),
               svg("text", {x: 12, y: (y0 + y1) / 2, "text-anchor": "middle", className: "label",
                            transform: "rotate(-90 12 " + (y0 + y1) / 2 + ")", text: yLabel || ""})]);
  }

  /* R.histograms into #histograms. A bar of a histogram whose key passes canFilter(key)
   * calls filterTo(key, lo, hi) with its edges when clicked. */
  P.histograms = function (R, canFilter, filterTo) {
    var box = $("histograms"), hists = R.histograms || [];
    if (!hists.length) return none(box, "No histograms in this report.");
    hists.forEach(function (h) {
      var edges = h.edges || [], counts = h.counts || [];
      if (!counts.length || edges.length !== counts.length + 1) {
        box.appendChild(el("figure", {className: "histogram chart", "data-key": h.key},
          [el("h3", {text: h.label || h.key}), el("p", {className: "empty", text: "No finite values."})]));
        return;
      }
      var top = Math.max.apply(null, counts.concat([1]));
      var lo = edges[0], hi = edges[edges.length - 1];
      var x = function (v) { return M.l + (hi > lo ? (v - lo) / (hi - lo) : 0.5) * (W - M.l - M.r); };
      var y = function (v) { return H - M.b - v / top * (H - M.t - M.b); };
      var g = svg("svg", {viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "histogram of " + (h.label || h.key)});
      axes(g, x, y, ticks(lo, hi, 4), ticks(0, top, 4), h.label || h.key, "samples");
      counts.forEach(function (c, k) {
        var bar = svg("rect", {x: x(edges[k]) + 0.5, y: y(c), width: Math.max(0.5, x(edges[k + 1]) - x(edges[k]) - 1),
                               height: Math.max(0, H - M.b - y(c)), className: "bar"},
                      [svg("title", {text: fmt(edges[k]) + " to " + fmt(edges[k + 1]) + ": " + thousands(c)})]);
        if (canFilter(h.key)) {
          bar.addEventListener("click", function () { filterTo(h.key, edges[k], edges[k + 1]); });
        }
        g.appendChild(bar);
      });
      box.appendChild(el("figure", {className: "histogram chart", "data-key": h.key},
                         [el("h3", {text: h.label || h.key}), g]));
    });
  };

  /* R.evaluations into #evaluations: one line chart per result (categorical x axis when
   * an x value is text), its legend and its table of numbers. */
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
        if (!(yhi > ylo)) { ylo -= 0.5; yhi += 0.5; }
        var pad = (yhi - ylo) * 0.05; ylo -= pad; yhi += pad;
        var x = function (v) { return M.l + (xhi > xlo ? (v - xlo) / (xhi - xlo) : 0.5) * (W - M.l - M.r); };
        var y = function (v) { return H - M.b - (v - ylo) / (yhi - ylo) * (H - M.t - M.b); };
        var g = svg("svg", {viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": ev.title || ev.kind});
        var xt = categorical ? labels.map(function (l, k) { return k; }).filter(function (k) {
          return labels.length <= 6 || k % Math.ceil(labels.length / 6) === 0; }) : ticks(xlo, xhi, 5);
        axes(g, x, y, xt, ticks(ylo, yhi, 4), ev.x_label, ev.y_label,
             categorical ? function (t) { var s = labels[t] || ""; return s.length > 9 ? s.slice(0, 8) + "…" : s; } : null);
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
