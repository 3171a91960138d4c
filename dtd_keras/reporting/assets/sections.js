/* dtd_keras report page: the parts built once from DTD_REPORT. The header (title and
 * facts about the store), the per-class mean maps (#class-means .mean) and the concept
 * reference samples (#concepts .concept). The charts are in charts.js. */
(function (P) {
  "use strict";

  var $ = P.$, el = P.el, append = P.append, fmt = P.fmt, thousands = P.thousands,
      none = P.none;

  /* The page title and the facts list; count is the number of explanations. */
  P.header = function (R, count) {
    document.title = R.title || document.title;
    $("title").textContent = R.title || "dtd_keras report";
    var meta = $("meta");
    [["model", R.model], ["analyzer", R.analyzer], ["store", R.store],
     ["explanations", thousands(count)], ["written", R.created]].forEach(function (m) {
      if (m[1]) append(meta, [el("dt", {text: m[0]}), el("dd", {text: String(m[1])})]);
    });
  };

  /* R.class_means into #class-means; size = [h, w] of the pictures. */
  P.means = function (R, size) {
    var box = $("class-means"), means = R.class_means || [];
    if (!means.length) return none(box, "No per-class means in this report.");
    means.forEach(function (m) {
      box.appendChild(el("figure", {className: "mean", "data-class": m["class"]}, [
        el("div", {className: "pair"}, [
          m.input ? P.image(m.input, "mean input of class " + m.name, "input", size) : null,
          P.image(m.heatmap, "mean heatmap of class " + m.name, "heatmap", size)]),
        el("figcaption", {}, [el("b", {text: m.name === String(m["class"]) ? "class " + m.name : m["class"] + " · " + m.name}),
                              " (" + thousands(m.count) + ")"])]));
    });
  };

  /* R.concepts into #concepts: per layer, per channel, its reference samples. */
  P.concepts = function (R, size) {
    var box = $("concepts"), concepts = R.concepts || [];
    if (!concepts.length) return none(box, "No concept reference samples in this report.");
    concepts.forEach(function (c) {
      var block = el("div", {className: "concept-layer"}, [el("h3", {text: "Layer " + c.layer + " — " +
        (c.method === "activation" ? "activation maximization" : "relevance maximization")})]);
      (c.channels || []).forEach(function (ch) {
        block.appendChild(el("div", {className: "concept", "data-layer": c.layer, "data-channel": ch.channel}, [
          el("div", {className: "channel", text: "channel " + ch.channel}),
          el("div", {className: "samples"}, (ch.samples || []).map(function (s) {
            return el("figure", {}, [P.image(s.image, "sample " + s.index, "concept-image", size),
                                     el("figcaption", {text: "#" + s.index + " · " + fmt(s.score)})]);
          }))]));
      });
      box.appendChild(block);
    });
  };
})(window.DTD_PAGE = window.DTD_PAGE || {});
