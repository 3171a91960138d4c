/* dtd_keras report page: start-up. Checks that the data (data/report.js: DTD_REPORT,
 * data/items.js: DTD_ITEMS) and the page's other scripts were read, builds the model,
 * draws the gallery first (timed in window.DTD_TIMING and the "dtd-gallery" mark), then
 * the sections below it, and wires a histogram bar click to the gallery's range filter.
 * Loaded last by index.html. */
(function (P) {
  "use strict";

  var R = window.DTD_REPORT;
  var D = window.DTD_ITEMS;

  function say(text) {
    var p = document.getElementById("problem");
    p.textContent = text;
    p.hidden = false;
  }

  if (!P || !P.model || !P.gallery || !P.histograms || !P.evaluations ||
      !P.header || !P.means || !P.concepts) {
    say("The page's scripts (assets/*.js) could not all be read. " +
        "Open index.html from the folder that dtd_keras wrote, with its assets/ folder.");
    return;
  }
  if (!R || !D) {
    P.problem("The report's data files (data/report.js, data/items.js) could not be read. " +
              "Open index.html from the folder that dtd_keras wrote, with its data/ folder.");
    return;
  }

  var m = P.model(R, D);
  var gallery = P.gallery(m);

  /* A histogram bar: show only the items in its range. */
  function filterTo(key, lo, hi) {
    m.state.min[key] = String(lo); m.state.max[key] = String(hi);
    m.state.page = 1; gallery.syncControls(); gallery.update(true);
    P.$("gallery-section").scrollIntoView();
  }

  var t0 = performance.now();
  if (m.pixelated) document.body.classList.add("pixelated");
  P.header(R, m.N);
  gallery.buildControls();
  gallery.loadState();
  gallery.syncControls();
  m.computeView();
  gallery.render();
  window.DTD_TIMING = {gallery_ms: performance.now() - t0};
  if (performance.mark) performance.mark("dtd-gallery");
  [function () { P.means(R, m.size); },
   function () { P.histograms(R, function (key) { return !!m.columns[key]; }, filterTo); },
   function () { P.evaluations(R); },
   function () { P.concepts(R, m.size); }].forEach(function (build) {
    try { build(); } catch (e) { console.error(e); }
  });
  window.DTD_TIMING.all_ms = performance.now() - t0;
})(window.DTD_PAGE);
