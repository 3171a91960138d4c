/* dtd_keras report page: DOM helpers and number formatting shared by the other scripts.
 * The page is plain scripts (no modules: they are blocked under file://) that share one
 * global, window.DTD_PAGE; index.html loads dom.js, model.js, gallery.js, charts.js,
 * sections.js and report.js, in that order, after data/report.js and data/items.js. */
(function (P) {
  "use strict";

  var SVG = "http://www.w3.org/2000/svg";

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

  /* A lazily loaded picture of `size` = [height, width] pixels. */
  function image(src, alt, cls, size) {
    return el("img", {src: local(src), alt: alt, loading: "lazy", decoding: "async",
                      width: size[1], height: size[0], className: cls});
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

  function fmtRaw(v) { return v !== v ? "" : String(v); }

  function thousands(n) { return n.toLocaleString("en-US"); }

  function problem(text) {
    var p = $("problem");
    p.textContent = text;
    p.hidden = false;
  }

  /* The "nothing here" line of an empty section. */
  function none(box, text) { box.appendChild(el("p", {className: "empty", text: text})); }

  P.$ = $; P.el = el; P.svg = svg; P.append = append; P.local = local; P.image = image;
  P.fmt = fmt; P.fmtRaw = fmtRaw; P.thousands = thousands; P.problem = problem; P.none = none;
})(window.DTD_PAGE = window.DTD_PAGE || {});
