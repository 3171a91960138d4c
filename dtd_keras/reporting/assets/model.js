/* dtd_keras report page: the data model. DTD_ITEMS becomes typed columns (Float64Array
 * with NaN for null, category codes in Int32Array), sort orders are built per field on
 * first use, and the filter/sort state gives the view: the rows that pass, in order.
 * No DOM here; gallery.js draws the view. */
(function (P) {
  "use strict";

  /* The model of report R (DTD_REPORT) and its columns D (DTD_ITEMS). */
  P.model = function (R, D) {
    var m = {};
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

    var valueNames = {};  // a field's own names of its values ({"0": "no", "1": "yes"})
    fields.forEach(function (f) { if (f.names) valueNames[f.key] = f.names; });

    function categoryName(key, value) {
      if (value === "") return "–";
      if (valueNames[key] && valueNames[key][value] !== undefined) return valueNames[key][value];
      if ((key === "label" || key === "neuron") && classNames) {
        var k = Number(value);
        if (Number.isInteger(k) && k >= 0 && k < classNames.length && classNames[k] !== String(k)) {
          return value + " · " + classNames[k];
        }
      }
      return value;
    }

    /* The codes of category `k` in display order (numbers by value, then text). */
    function orderedValues(k) {
      var values = codes[k].values;
      return values.map(function (v, c) { return c; }).sort(function (a, b) {
        var x = Number(values[a]), y = Number(values[b]);
        if (!isNaN(x) && !isNaN(y)) return x - y;
        return values[a] < values[b] ? -1 : 1;
      });
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

    /* ---------- state and view ---------- */
    var defaults = {sort: "", order: "asc", page: 1, cat: {}, min: {}, max: {},
                    size: R.page_size > 0 ? R.page_size | 0 : 48};
    var mask = new Uint8Array(N);

    /* Fills m.view with the rows passing m.state's filters, in its sort order. */
    function computeView() {
      var state = m.state;
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
      m.view = out;
    }

    /* Back to the defaults (a fresh copy: m.state is replaced, never shared). */
    function reset() { m.state = JSON.parse(JSON.stringify(defaults)); }

    /* ---------- thumbnails ---------- */
    var thumbs = R.thumbs || {};
    var size = thumbs.size || [64, 64];

    m.N = N; m.fields = fields; m.columns = columns; m.codes = codes;
    m.rowIds = rowIds; m.sampleIndex = sampleIndex;
    m.numberKeys = numberKeys; m.categoryKeys = categoryKeys; m.labelOf = labelOf;
    m.categoryName = categoryName; m.orderedValues = orderedValues; m.orderOf = orderOf;
    m.pageSizes = [24, 48, 96, 192]; m.defaults = defaults;
    m.view = new Uint32Array(0); m.computeView = computeView; m.reset = reset;
    m.thumbs = thumbs; m.shard = thumbs.shard > 0 ? thumbs.shard : 1000; m.size = size;
    m.pixelated = Math.max(size[0], size[1]) < 48;
    reset();
    return m;
  };
})(window.DTD_PAGE = window.DTD_PAGE || {});
