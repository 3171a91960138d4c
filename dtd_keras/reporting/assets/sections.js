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

  /* R.class_means into #class-means; size = [h, w] of the pictures. An entry's `group`
   * says what its maps average over: "label" (the class, the default) or "neuron" (the
   * explained neuron, for a store without labels); the titles and heading say which. */
  P.means = function (R, size) {
    var box = $("class-means"), means = R.class_means || [];
    var groups = means.map(function (m) { return m.group === "neuron" ? "neuron" : "label"; });
    var byNeuron = groups.filter(function (g) { return g === "neuron"; }).length;
    var heading = !byNeuron ? null : byNeuron === means.length ? ["Mean maps per explained neuron", "Neuron means"]
      : ["Mean maps per class and per explained neuron", "Mean maps"];
    if (heading) { $("class-means-title").textContent = heading[0]; $("class-means-link").textContent = heading[1]; }
    if (!means.length) return none(box, "No per-class means in this report.");
    means.forEach(function (m, k) {
      var what = (groups[k] === "neuron" ? "neuron " : "class ") + m["class"];
      var title = m.name === undefined || m.name === null || m.name === String(m["class"]) ? what : what + " · " + m.name;
      box.appendChild(el("figure", {className: "mean", "data-class": m["class"], "data-group": groups[k]}, [
        el("div", {className: "pair"}, [
          m.input ? P.image(m.input, "mean input of " + title, "input", size) : null,
          P.image(m.heatmap, "mean heatmap of " + title, "heatmap", size)]),
        el("figcaption", {}, [el("b", {text: title}), " (" + thousands(m.count) + ")"])]));
    });
  };

  /* R.concepts into #concepts: per layer, per channel, its reference samples. A sample
   * with found === false is no reference sample and is skipped; a channel's `note` (or,
   * with no sample left, "no relevance on any sample") is shown in .concept-note. */
  P.concepts = function (R, size) {
    var box = $("concepts"), concepts = R.concepts || [];
    if (!concepts.length) return none(box, "No concept reference samples in this report.");
    concepts.forEach(function (c) {
      var what = c.method === "activation" ? "activation" : "relevance";
      var block = el("div", {className: "concept-layer"}, [el("h3", {text: "Layer " + c.layer + " — " +
        what + " maximization"})]);
      (c.channels || []).forEach(function (ch) {
        var shown = (ch.samples || []).filter(function (s) { return s.found !== false; });
        var note = ch.note || (shown.length ? null : "no " + what + " on any sample");
        block.appendChild(el("div", {className: "concept", "data-layer": c.layer, "data-channel": ch.channel,
                                     "data-found": shown.length}, [
          el("div", {className: "channel", text: "channel " + ch.channel}),
          shown.length ? el("div", {className: "samples"}, shown.map(function (s) {
            return el("figure", {}, [P.image(s.image, "sample " + s.index, "concept-image", size),
                                     el("figcaption", {text: "#" + s.index + " · " + fmt(s.score)})]);
          })) : null,
          note ? el("p", {className: "empty concept-note", text: note}) : null]));
      });
      box.appendChild(block);
    });
  };
})(window.DTD_PAGE = window.DTD_PAGE || {});
