/* dtd_keras report page: the gallery. Draws the shown page of the model's view as
 * input/heatmap pairs (#gallery .item), the pager and counts, the detail dialog, the sort,
 * filter and page-size controls, and keeps the state in the address (#sort=...&page=...). */
(function (P) {
  "use strict";

  var $ = P.$, el = P.el, append = P.append, local = P.local, fmt = P.fmt, fmtRaw = P.fmtRaw,
      thousands = P.thousands;

  /* The gallery of model m: {buildControls, loadState, syncControls, render, update}. */
  P.gallery = function (m) {
    var N = m.N, columns = m.columns, codes = m.codes, rowIds = m.rowIds,
        sampleIndex = m.sampleIndex, numberKeys = m.numberKeys, categoryKeys = m.categoryKeys,
        labelOf = m.labelOf, categoryName = m.categoryName, thumbs = m.thumbs,
        shard = m.shard, size = m.size, pageSizes = m.pageSizes, defaults = m.defaults;

    /* Short names for the numbers on a card (the full name is the tooltip): a field's
     * own "short", else these, else its label. */
    var shortOf = {logit: "logit", relative_error: "cons. error", negative_fraction: "neg. fraction",
                   total: "Σ relevance", conservation_error: "Σ R − logit", negative_mass: "neg. relevance"};
    m.fields.forEach(function (f) { if (f.short) shortOf[f.key] = f.short; });

    function thumb(row, kind) {
      return "thumbs/" + Math.floor(row / shard) + "/" + row + "-" + kind + ".png";
    }

    /* The input picture of a row: one per sample (thumbs.input_per "sample": row // K with
     * neuron="all") or, in older reports, one per row. */
    var perSample = thumbs.input_per === "sample" ? Math.max(1, thumbs.rows_per_sample | 0) : 0;
    function inputThumb(row) {
      return thumb(perSample ? Math.floor(row / perSample) : row, "input");
    }

    function image(src, alt, cls) { return P.image(src, alt, cls, size); }

    function itemAttrs(i) {
      var row = rowIds ? rowIds[i] : i;
      var attrs = {className: "item", tabindex: 0, "data-row": row, "data-pos": i};
      attrs["data-index"] = sampleIndex ? fmtRaw(sampleIndex[i]) : "";
      numberKeys.forEach(function (k) { attrs["data-" + k] = fmtRaw(columns[k][i]); });
      categoryKeys.forEach(function (k) { attrs["data-" + k] = codes[k].values[codes[k].codes[i]]; });
      return attrs;
    }

    function caption(i) {
      var parts = [el("b", {text: "#" + (sampleIndex ? fmt(sampleIndex[i]) : i)})];
      categoryKeys.forEach(function (k) {
        parts.push(el("span", {className: "tag", title: labelOf[k],
          text: (k === "label" ? "class " : k === "neuron" ? "neuron " : (shortOf[k] || k) + " ") +
                categoryName(k, codes[k].values[codes[k].codes[i]])}));
      });
      var dl = el("dl", {className: "nums"});
      cardKeys().forEach(function (k) {
        append(dl, [el("dt", {text: shortOf[k] || labelOf[k], title: labelOf[k]}),
                    el("dd", {text: fmt(columns[k][i])})]);
      });
      return el("figcaption", {}, [el("div", {className: "tags"}, parts), dl]);
    }

    /* The numbers on a card: the first three fields and the one sorted by (all in the detail view). */
    function cardKeys() {
      var sort = m.state.sort;
      var keys = numberKeys.filter(function (k) { return k !== "index"; }).slice(0, 3);
      if (columns[sort] && sort !== "index" && keys.indexOf(sort) < 0) keys.push(sort);
      return keys;
    }

    function renderGallery() {
      var state = m.state, view = m.view;
      var pages = Math.max(1, Math.ceil(view.length / state.size));
      state.page = Math.min(Math.max(1, state.page), pages);
      var start = (state.page - 1) * state.size, stop = Math.min(view.length, start + state.size);
      var frag = document.createDocumentFragment();
      for (var p = start; p < stop; p++) {
        var i = view[p], row = rowIds ? rowIds[i] : i;
        var pair = el("div", {className: "pair"}, [
          thumbs.input ? image(inputThumb(row), "input " + row, "input") : null,
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
      if (recompute) m.computeView();
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
          thumbs.input ? el("img", {src: local(inputThumb(row)), alt: "input"}) : null,
          el("img", {src: local(thumb(row, "heatmap")), alt: "heatmap"})]),
        el("table", {}, rows.map(function (r) {
          return el("tr", {}, [el("th", {text: r[0]}), el("td", {text: fmt(r[1])})]);
        }))]);
      var dialog = $("detail");
      if (dialog.showModal) dialog.showModal();
    }

    /* ---------- state in the address (#sort=...&page=...) ---------- */
    function saveState() {
      var state = m.state, parts = [];
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
      var state = m.state, hash = location.hash.replace(/^#/, "");
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
      m.fields.forEach(function (f) {
        if (columns[f.key] || codes[f.key]) sort.appendChild(el("option", {value: f.key, text: labelOf[f.key]}));
      });
      var catBox = $("category-filters");
      categoryKeys.forEach(function (k) {
        var counts = new Int32Array(codes[k].values.length);
        for (var i = 0; i < N; i++) counts[codes[k].codes[i]]++;
        var select = el("select", {id: "filter-" + k, "data-key": k},
                        [el("option", {value: "", text: "all"})]);
        m.orderedValues(k).forEach(function (c) {
          var v = codes[k].values[c];
          select.appendChild(el("option", {value: v, text: categoryName(k, v) + " (" + thousands(counts[c]) + ")"}));
        });
        catBox.appendChild(el("label", {}, [labelOf[k] + " ", select]));
        select.addEventListener("change", function () {
          m.state.cat[k] = select.value; m.state.page = 1; update(true);
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
            m.state[pair[1]][k] = pair[0].value; m.state.page = 1; update(true);
          });
        });
      });
      var sizeSelect = el("select", {id: "page-size"}, pageSizes.concat(
        pageSizes.indexOf(defaults.size) < 0 ? [defaults.size] : []).sort(function (a, b) { return a - b; })
        .map(function (s) { return el("option", {value: s, text: String(s)}); }));
      $("controls").insertBefore(el("label", {}, ["Per page ", sizeSelect]), $("reset"));
      sizeSelect.addEventListener("change", function () {
        m.state.size = +sizeSelect.value; m.state.page = 1; update(false);
      });
      sort.addEventListener("change", function () { m.state.sort = sort.value; m.state.page = 1; update(true); });
      $("sort-order").addEventListener("change", function () {
        m.state.order = $("sort-order").value; m.state.page = 1; update(true);
      });
      $("page-prev").addEventListener("click", function () { m.state.page--; update(false); });
      $("page-next").addEventListener("click", function () { m.state.page++; update(false); });
      $("reset").addEventListener("click", function () {
        m.reset(); syncControls(); update(true);
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

    /* Sets every control from m.state (after loading the address, a reset or a chart click). */
    function syncControls() {
      var state = m.state;
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

    return {buildControls: buildControls, loadState: loadState, syncControls: syncControls,
            render: renderGallery, update: update};
  };
})(window.DTD_PAGE = window.DTD_PAGE || {});
