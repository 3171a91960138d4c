/* dtd_keras report page: a gallery of explanations with sorting, filtering and
 * pagination, per-class mean maps, histograms, evaluation curves and concept samples.
 * Plain JavaScript with no library; the data comes from data/report.js (DTD_REPORT) and
 * data/items.js (DTD_ITEMS), loaded by <script> tags so the page works from file://.
 * Sorting and filtering work on typed arrays of row positions; only the shown page is
 * put into the DOM. */
(function () {
  "use strict";

  var SVG = "http://www.w3.org/2000/svg";
  var R = window.DTD_REPORT;
  var D = window.DTD_ITEMS;

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function svg(tag, attrs, children) {
    var node = document.createElementNS(SVG, tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function setAttrs(node, attrs) {
    for (var k in attrs || {}) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") node.textContent = v;
      else if (k === "className") node.setAttribute("class", v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
  }

  function append(node, children) {
    (children || []).forEach(function (c) {
      if (c === null || c === undefined) return;
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
  }

  /* Relative paths inside the report folder only: anything with a scheme or a host is
   * refused, so the page never reaches outside its folder. */
  function local(path) {
    if (typeof path !== "string" || path === "") return null;
    if (/^[a-z][a-z0-9+.\-]*:/i.test(path) || path.indexOf("//") === 0) return null;
    return path;
  }

  function fmt(v) {
    if (v === null || v === undefined || (typeof v === "number" && isNaN(v))) return "–";
    if (typeof v !== "number") return String(v);
    if (v === 0) return "0";
    var a = Math.abs(v);
    if (Number.isInteger(v) && a < 1e6) return String(v);
    if (a < 1e-3 || a >= 1e5) return v.toExponential(2);
    return String(Number(v.toPrecision(3)));
  }

  function thousands(n) { return n.toLocaleString("en-US"); }

  function problem(text) {
    var p = $("problem");
    p.textContent = text;
    p.hidden = false;
  }

  if (!R || !D) {
    problem("The report's data files (data/report.js, data/items.js) could not be read. " +
            "Open index.html from the folder that dtd_keras wrote, with its data/ folder.");
    return;
  }

  /* ---------- columns ---------- */
  var N = R.count | 0;
  var fields = R.fields || [];
  var classNames = (R.classes && R.classes.names) || null;
  var columns = {};     // key -> Float64Array (NaN = null) for numbers
  var codes = {};       // key -> {codes: Int32Array, values: [...]} for categories

  function numberColumn(values) {
    var out = new Float64Array(N);
    for (var i = 0; i < N; i++) {
      var v = values ? values[i] : null;
      out[i] = (v === null || v === undefined) ? NaN : +v;
    }
    return out;
  }

  function categoryColumn(values) {
    var index = new Map(), list = [], out = new Int32Array(N);
    for (var i = 0; i < N; i++) {
      var v = values[i];
      var key = v === null || v === undefined ? "" : String(v);
      var c = index.get(key);
      if (c === undefined) { c = list.length; index.set(key, c); list.push(key); }
      out[i] = c;
    }
    return {codes: out, values: list};
  }

  fields.forEach(function (f) {
    if (!D[f.key]) return;
    if (f.kind === "number") columns[f.key] = numberColumn(D[f.key]);
    else codes[f.key] = categoryColumn(D[f.key]);
  });
  var rowIds = D.row ? D.row : null;
  var sampleIndex = D.index ? numberColumn(D.index) : null;
  if (sampleIndex) columns.index = sampleIndex;
  var numberKeys = fields.filter(function (f) { return columns[f.key]; })
    .map(function (f) { return f.key; });
  var categoryKeys = fields.filter(function (f) { return codes[f.key]; })
    .map(function (f) { return f.key; });
  var labelOf = {index: "sample index"};
  fields.forEach(function (f) { labelOf[f.key] = f.label || f.key; });

  function categoryName(key, value) {
    if (value === "") return "–";
    if ((key === "label" || key === "neuron") && classNames) {
      var k = Number(value);
      if (Number.isInteger(k) && k >= 0 && k < classNames.length && classNames[k] !== String(k)) {
        return value + " · " + classNames[k];
      }
    }
    return value;
  }

  /* ---------- sort orders (one per field, built on first use, NaN last) ---------- */
  var orders = {};
  function orderOf(key) {
    if (orders[key]) return orders[key];
    var order = new Uint32Array(N);
    for (var i = 0; i < N; i++) order[i] = i;
    var finite = N;
    if (columns[key]) {
      var col = columns[key];
      order.sort(function (a, b) {
        var x = col[a], y = col[b];
        var nx = x !== x, ny = y !== y;
        if (nx || ny) return nx === ny ? a - b : (nx ? 1 : -1);
        return x < y ? -1 : (x > y ? 1 : a - b);
      });
      while (finite > 0 && col[order[finite - 1]] !== col[order[finite - 1]]) finite--;
    } else if (codes[key]) {
      var cat = codes[key], rank = new Float64Array(cat.values.length);
      var sorted = cat.values.map(function (v, c) { return [v, c]; }).sort(function (p, q) {
        var a = Number(p[0]), b = Number(q[0]);
        if (!isNaN(a) && !isNaN(b) && p[0] !== "" && q[0] !== "") return a - b;
        return p[0] < q[0] ? -1 : (p[0] > q[0] ? 1 : 0);
      });
      sorted.forEach(function (p, r) { rank[p[1]] = r; });
      order.sort(function (a, b) { return (rank[cat.codes[a]] - rank[cat.codes[b]]) || a - b; });
    }
    orders[key] = {order: order, finite: finite};
    return orders[key];
  }

  /* ---------- state ---------- */
  var pageSizes = [24, 48, 96, 192];
  var defaults = {sort: "", order: "asc", page: 1, cat: {}, min: {}, max: {},
                  size: R.page_size > 0 ? R.page_size | 0 : 48};
  var state = JSON.parse(JSON.stringify(defaults));
  var view = new Uint32Array(0);     // rows passing the filter, in sort order
  var mask = new Uint8Array(N);

  function computeView() {
    var cats = categoryKeys.filter(function (k) { return state.cat[k] !== undefined && state.cat[k] !== ""; })
      .map(function (k) { return [codes[k].codes, codes[k].values.indexOf(state.cat[k])]; });
    var ranges = numberKeys.map(function (k) {
      var lo = state.min[k], hi = state.max[k];
      return [columns[k], lo === undefined || lo === "" ? -Infinity : +lo,
              hi === undefined || hi === "" ? Infinity : +hi];
    }).filter(function (r) { return r[1] !== -Infinity || r[2] !== Infinity; });
    var i, j, pass = 0;
    for (i = 0; i < N; i++) {
      var ok = 1;
      for (j = 0; j < cats.length && ok; j++) if (cats[j][0][i] !== cats[j][1]) ok = 0;
      for (j = 0; j < ranges.length && ok; j++) {
        var v = ranges[j][0][i];
        if (!(v >= ranges[j][1] && v <= ranges[j][2])) ok = 0;   // NaN fails a range
      }
      mask[i] = ok;
      pass += ok;
    }
    var out = new Uint32Array(pass), n = 0;
    if (!state.sort) {
      for (i = 0; i < N; i++) if (mask[i]) out[n++] = i;
      if (state.order === "desc") out.reverse();
    } else {
      var o = orderOf(state.sort), order = o.order;
      if (state.order === "asc") {
        for (i = 0; i < N; i++) if (mask[order[i]]) out[n++] = order[i];
      } else {                                   // descending, nulls still last
        for (i = o.finite - 1; i >= 0; i--) if (mask[order[i]]) out[n++] = order[i];
        for (i = o.finite; i < N; i++) if (mask[order[i]]) out[n++] = order[i];
      }
    }
    view = out;
  }

  /* ---------- gallery ---------- */
  var thumbs = R.thumbs || {};
  var shard = thumbs.shard > 0 ? thumbs.shard : 1000;
  var size = thumbs.size || [64, 64];
  var pixelated = Math.max(size[0], size[1]) < 48;

  function thumb(row, kind) {
    return "thumbs/" + Math.floor(row / shard) + "/" + row + "-" + kind + ".png";
  }

  function image(src, alt, cls) {
    return el("img", {src: local(src), alt: alt, loading: "lazy", decoding: "async",
                      width: size[1], height: size[0], className: cls});
  }

  function itemAttrs(i) {
    var row = rowIds ? rowIds[i] : i;
    var attrs = {className: "item", tabindex: 0, "data-row": row, "data-pos": i};
    attrs["data-index"] = sampleIndex ? fmtRaw(sampleIndex[i]) : "";
    numberKeys.forEach(function (k) { attrs["data-" + k] = fmtRaw(columns[k][i]); });
    categoryKeys.forEach(function (k) { attrs["data-" + k] = codes[k].values[codes[k].codes[i]]; });
    return attrs;
  }

  function fmtRaw(v) { return v !== v ? "" : String(v); }

  function caption(i) {
    var parts = [el("b", {text: "#" + (sampleIndex ? fmt(sampleIndex[i]) : i)})];
    categoryKeys.forEach(function (k) {
      parts.push(el("span", {className: "tag", title: labelOf[k],
        text: (k === "label" ? "class " : k === "neuron" ? "neuron " : k + " ") +
              categoryName(k, codes[k].values[codes[k].codes[i]])}));
    });
    var dl = el("dl", {className: "nums"});
    cardKeys().forEach(function (k) {
      append(dl, [el("dt", {text: labelOf[k], title: labelOf[k]}), el("dd", {text: fmt(columns[k][i])})]);
    });
    return el("figcaption", {}, [el("div", {className: "tags"}, parts), dl]);
  }

  /* The numbers on a card: the first three fields and the one sorted by (all in the detail view). */
  function cardKeys() {
    var keys = numberKeys.filter(function (k) { return k !== "index"; }).slice(0, 3);
    if (columns[state.sort] && state.sort !== "index" && keys.indexOf(state.sort) < 0) keys.push(state.sort);
    return keys;
  }

  function renderGallery() {
    var pages = Math.max(1, Math.ceil(view.length / state.size));
    state.page = Math.min(Math.max(1, state.page), pages);
    var start = (state.page - 1) * state.size, stop = Math.min(view.length, start + state.size);
    var frag = document.createDocumentFragment();
    for (var p = start; p < stop; p++) {
      var i = view[p], row = rowIds ? rowIds[i] : i;
      var pair = el("div", {className: "pair"}, [
        thumbs.input ? image(thumb(row, "input"), "input " + row, "input") : null,
        image(thumb(row, "heatmap"), "heatmap " + row, "heatmap")]);
      frag.appendChild(el("figure", itemAttrs(i), [pair, caption(i)]));
    }
    var gallery = $("gallery");
    gallery.textContent = "";
    gallery.appendChild(frag);
    if (stop === start) gallery.appendChild(el("p", {className: "empty", text: "No item matches."}));
    $("count").textContent = thousands(view.length) + " items";
    $("total").textContent = view.length === N ? "" : "(of " + thousands(N) + ")";
    $("page").textContent = "page " + state.page + " of " + pages;
    $("page-prev").disabled = state.page <= 1;
    $("page-next").disabled = state.page >= pages;
    saveState();
  }

  function update(recompute) {
    if (recompute) computeView();
    renderGallery();
  }

  /* ---------- detail view ---------- */
  function showDetail(i) {
    var row = rowIds ? rowIds[i] : i;
    var rows = [["row", row]];
    if (sampleIndex) rows.push(["sample index", sampleIndex[i]]);
    categoryKeys.forEach(function (k) {
      rows.push([labelOf[k], categoryName(k, codes[k].values[codes[k].codes[i]])]);
    });
    numberKeys.forEach(function (k) { if (k !== "index") rows.push([labelOf[k], columns[k][i]]); });
    var body = $("detail-body");
    body.textContent = "";
    append(body, [
      el("div", {className: "pair big"}, [
        thumbs.input ? el("img", {src: local(thumb(row, "input")), alt: "input"}) : null,
        el("img", {src: local(thumb(row, "heatmap")), alt: "heatmap"})]),
      el("table", {}, rows.map(function (r) {
        return el("tr", {}, [el("th", {text: r[0]}), el("td", {text: fmt(r[1])})]);
      }))]);
    var dialog = $("detail");
    if (dialog.showModal) dialog.showModal();
  }

  /* ---------- state in the address (#sort=...&page=...) ---------- */
  function saveState() {
    var parts = [];
    if (state.sort) parts.push("sort=" + encodeURIComponent(state.sort));
    if (state.order !== "asc") parts.push("order=desc");
    if (state.page > 1) parts.push("page=" + state.page);
    if (state.size !== defaults.size) parts.push("size=" + state.size);
    Object.keys(state.cat).forEach(function (k) {
      if (state.cat[k] !== "") parts.push("f." + k + "=" + encodeURIComponent(state.cat[k]));
    });
    ["min", "max"].forEach(function (b) {
      Object.keys(state[b]).forEach(function (k) {
        if (state[b][k] !== "") parts.push(b + "." + k + "=" + encodeURIComponent(state[b][k]));
      });
    });
    var hash = parts.length ? "#" + parts.join("&") : "";
    if (hash !== location.hash) {
      try { history.replaceState(null, "", hash || location.pathname); } catch (e) { /* ignore */ }
    }
  }

  function loadState() {
    var hash = location.hash.replace(/^#/, "");
    if (!hash || hash.indexOf("=") < 0) return;
    hash.split("&").forEach(function (part) {
      var eq = part.indexOf("="), k = part.slice(0, eq), v = decodeURIComponent(part.slice(eq + 1));
      if (k === "sort" && (columns[v] || codes[v])) state.sort = v;
      else if (k === "order") state.order = v === "desc" ? "desc" : "asc";
      else if (k === "page") state.page = Math.max(1, parseInt(v, 10) || 1);
      else if (k === "size" && pageSizes.indexOf(+v) >= 0) state.size = +v;
      else if (k.indexOf("f.") === 0 && codes[k.slice(2)]) state.cat[k.slice(2)] = v;
      else if (/^(min|max)\./.test(k) && columns[k.slice(4)] && !isNaN(+v)) state[k.slice(0, 3)][k.slice(4)] = v;
    });
  }

  /* ---------- controls ---------- */
  function buildControls() {
    var sort = $("sort-field");
    sort.appendChild(el("option", {value: "", text: "store order"}));
    if (sampleIndex) sort.appendChild(el("option", {value: "index", text: "sample index"}));
    fields.forEach(function (f) {
      if (columns[f.key] || codes[f.key]) sort.appendChild(el("option", {value: f.key, text: labelOf[f.key]}));
    });
    var catBox = $("category-filters");
    categoryKeys.forEach(function (k) {
      var counts = new Int32Array(codes[k].values.length);
      for (var i = 0; i < N; i++) counts[codes[k].codes[i]]++;
      var select = el("select", {id: "filter-" + k, "data-key": k},
                      [el("option", {value: "", text: "all"})]);
      orderedValues(k).forEach(function (c) {
        var v = codes[k].values[c];
        select.appendChild(el("option", {value: v, text: categoryName(k, v) + " (" + thousands(counts[c]) + ")"}));
      });
      catBox.appendChild(el("label", {}, [labelOf[k] + " ", select]));
      select.addEventListener("change", function () {
        state.cat[k] = select.value; state.page = 1; update(true);
      });
    });
    var rangeBox = $("range-filters");
    numberKeys.filter(function (k) { return k !== "index"; }).forEach(function (k) {
      var col = columns[k], lo = Infinity, hi = -Infinity;
      for (var i = 0; i < N; i++) { if (col[i] < lo) lo = col[i]; if (col[i] > hi) hi = col[i]; }
      var min = el("input", {type: "number", step: "any", id: "range-min-" + k, placeholder: lo === Infinity ? "" : fmt(lo)});
      var max = el("input", {type: "number", step: "any", id: "range-max-" + k, placeholder: hi === -Infinity ? "" : fmt(hi)});
      rangeBox.appendChild(el("div", {className: "range"}, [el("span", {text: labelOf[k]}), min, "to", max]));
      [[min, "min"], [max, "max"]].forEach(function (pair) {
        pair[0].addEventListener("change", function () {
          state[pair[1]][k] = pair[0].value; state.page = 1; update(true);
        });
      });
    });
    var sizeSelect = el("select", {id: "page-size"}, pageSizes.concat(
      pageSizes.indexOf(defaults.size) < 0 ? [defaults.size] : []).sort(function (a, b) { return a - b; })
      .map(function (s) { return el("option", {value: s, text: String(s)}); }));
    $("controls").insertBefore(el("label", {}, ["Per page ", sizeSelect]), $("reset"));
    sizeSelect.addEventListener("change", function () {
      state.size = +sizeSelect.value; state.page = 1; update(false);
    });
    sort.addEventListener("change", function () { state.sort = sort.value; state.page = 1; update(true); });
    $("sort-order").addEventListener("change", function () {
      state.order = $("sort-order").value; state.page = 1; update(true);
    });
    $("page-prev").addEventListener("click", function () { state.page--; update(false); });
    $("page-next").addEventListener("click", function () { state.page++; update(false); });
    $("reset").addEventListener("click", function () {
      state = JSON.parse(JSON.stringify(defaults)); syncControls(); update(true);
    });
    $("controls").addEventListener("submit", function (e) { e.preventDefault(); });
    $("gallery").addEventListener("click", function (e) {
      var item = e.target.closest(".item");
      if (item) showDetail(+item.getAttribute("data-pos"));
    });
    $("gallery").addEventListener("keydown", function (e) {
      var item = e.target.closest(".item");
      if (item && e.key === "Enter") showDetail(+item.getAttribute("data-pos"));
    });
    document.addEventListener("keydown", function (e) {
      if (/^(INPUT|SELECT|TEXTAREA)$/.test(e.target.tagName) || $("detail").open) return;
      if (e.key === "ArrowRight" && !$("page-next").disabled) $("page-next").click();
      if (e.key === "ArrowLeft" && !$("page-prev").disabled) $("page-prev").click();
    });
  }

  function orderedValues(k) {
    var values = codes[k].values;
    return values.map(function (v, c) { return c; }).sort(function (a, b) {
      var x = Number(values[a]), y = Number(values[b]);
      if (!isNaN(x) && !isNaN(y)) return x - y;
      return values[a] < values[b] ? -1 : 1;
    });
  }

  function syncControls() {
    $("sort-field").value = state.sort;
    $("sort-order").value = state.order;
    $("page-size").value = String(state.size);
    categoryKeys.forEach(function (k) { $("filter-" + k).value = state.cat[k] || ""; });
    numberKeys.forEach(function (k) {
      if (!$("range-min-" + k)) return;
      $("range-min-" + k).value = state.min[k] || "";
      $("range-max-" + k).value = state.max[k] || "";
    });
    var anyRange = Object.keys(state.min).concat(Object.keys(state.max)).some(function (k) {
      return (state.min[k] || state.max[k]);
    });
    if (anyRange) $("ranges").open = true;
  }

  /* ---------- header ---------- */
  function buildHeader() {
    document.title = R.title || document.title;
    $("title").textContent = R.title || "dtd_keras report";
    var meta = $("meta");
    [["model", R.model], ["analyzer", R.analyzer], ["store", R.store],
     ["explanations", thousands(N)], ["written", R.created]].forEach(function (m) {
      if (m[1]) append(meta, [el("dt", {text: m[0]}), el("dd", {text: String(m[1])})]);
    });
  }

  /* ---------- sections below the gallery ---------- */
  function none(box, text) { box.appendChild(el("p", {className: "empty", text: text})); }

  function buildMeans() {
    var box = $("class-means"), means = R.class_means || [];
    if (!means.length) return none(box, "No per-class means in this report.");
    means.forEach(function (m) {
      box.appendChild(el("figure", {className: "mean", "data-class": m["class"]}, [
        el("div", {className: "pair"}, [
          m.input ? image(m.input, "mean input of class " + m.name, "input") : null,
          image(m.heatmap, "mean heatmap of class " + m.name, "heatmap")]),
        el("figcaption", {}, [el("b", {text: m.name === String(m["class"]) ? "class " + m.name : m["class"] + " · " + m.name}),
                              " (" + thousands(m.count) + ")"])]));
    });
  }

  var W = 360, H = 220, M = {l: 52, r: 26, t: 12, b: 44};

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

  function buildHistograms() {
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
        if (columns[h.key]) {
          bar.addEventListener("click", function () {
            state.min[h.key] = String(edges[k]); state.max[h.key] = String(edges[k + 1]);
            state.page = 1; syncControls(); update(true);
            $("gallery-section").scrollIntoView();
          });
        }
        g.appendChild(bar);
      });
      box.appendChild(el("figure", {className: "histogram chart", "data-key": h.key},
                         [el("h3", {text: h.label || h.key}), g]));
    });
  }

  var palette = ["#1f5f8b", "#c2571a", "#3f8f4f", "#8b3f8f", "#8f7a1f", "#555555"];

  function buildEvaluations() {
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
  }

  function buildConcepts() {
    var box = $("concepts"), concepts = R.concepts || [];
    if (!concepts.length) return none(box, "No concept reference samples in this report.");
    concepts.forEach(function (c) {
      var block = el("div", {className: "concept-layer"}, [el("h3", {text: "Layer " + c.layer + " — " +
        (c.method === "activation" ? "activation maximization" : "relevance maximization")})]);
      (c.channels || []).forEach(function (ch) {
        block.appendChild(el("div", {className: "concept", "data-layer": c.layer, "data-channel": ch.channel}, [
          el("div", {className: "channel", text: "channel " + ch.channel}),
          el("div", {className: "samples"}, (ch.samples || []).map(function (s) {
            return el("figure", {}, [image(s.image, "sample " + s.index, "concept-image"),
                                     el("figcaption", {text: "#" + s.index + " · " + fmt(s.score)})]);
          }))]));
      });
      box.appendChild(block);
    });
  }

  /* ---------- start ---------- */
  var t0 = performance.now();
  if (pixelated) document.body.classList.add("pixelated");
  buildHeader();
  buildControls();
  loadState();
  syncControls();
  computeView();
  renderGallery();
  window.DTD_TIMING = {gallery_ms: performance.now() - t0};
  if (performance.mark) performance.mark("dtd-gallery");
  [buildMeans, buildHistograms, buildEvaluations, buildConcepts].forEach(function (build) {
    try { build(); } catch (e) { console.error(e); }
  });
  window.DTD_TIMING.all_ms = performance.now() - t0;
})();
