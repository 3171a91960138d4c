"""A report to browse: a results store as a static HTML site that opens from disk.

>>> dk.report("explained.zarr", "report/", data=x)        # → report/index.html
>>> dk.reporting.attach("explained.zarr", dk.evaluate.pixel_flipping(...))

=================  ==============================================================
module             job
=================  ==============================================================
``writer``         :func:`report`: opens the store, draws thumbnails and mean maps,
                   writes the data files
``folder``         the folder ``out``: its layout and checks, the manifest of which
                   thumbnails a rerun keeps, the page's files (copy / remove)
``tables``         the gallery's rows and columns, fields, histograms, ``window.X``
``thumbnails``     heatmap / input thumbnails, mean maps, crops (PNG, numpy only)
``inputs``         the data behind a store, read again for input thumbnails
``sections``       evaluations (and :func:`attach`), concept reference samples
``assets/``        the page itself: index.html, report.css and its scripts (dom,
                   model, gallery, charts, sections, report)
=================  ==============================================================
"""

from __future__ import annotations

from .sections import attach, attachments
from .writer import report

__all__ = ["attach", "attachments", "report"]
