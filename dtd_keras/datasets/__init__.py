"""Explaining datasets: many samples, resumable, on one or many devices and workers.

>>> results = dk.analyze_dataset(analyzer, (x, y), "explained.zarr", neuron="label")
>>> results = dk.load_results("explained.zarr")
>>> results.relevance[:10], results.neuron, results.logit, results.properties

=================  ==============================================================
module             job
=================  ==============================================================
``arguments``      the run's arguments, checked before anything is written
``elements``       one element of the data: inputs, labels; dtype and shape checks
``sources``        reading the data: arrays, ``tf.data``, a folder of images
``identity``       what a run is: model, weights, analyzer (and its fitted state)
``store``          the Zarr v3 store, its per-chunk commits, lost chunk files
``create``         creating, replacing, reopening a store; the user's paths kept
``compute``        the analyzer's function on batches, under a strategy or not
``run``            :func:`analyze_dataset`: the chunk loop, resume checks, progress
``results``        :func:`load_results`: the store opened lazily
=================  ==============================================================
"""

from .results import Results, load_results
from .run import analyze_dataset

__all__ = ["Results", "analyze_dataset", "load_results"]
