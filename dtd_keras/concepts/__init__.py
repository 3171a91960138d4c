"""Concepts (CRP): which samples show a layer's channel, by relevance maximization.

>>> refs = dk.concepts.reference_samples(analyzer, (x, y), "conv2", [0, 5], k=8,
...                                      out="conv2_scores")
>>> refs.indices, refs.scores, refs.crops[0][0], refs.heatmaps[0][0]
>>> refs.save("conv2_refs"); dk.concepts.load_reference_samples("conv2_refs")

===========  ===================================================================
module       job
===========  ===================================================================
``scores``   stage 1: every sample's score per channel, into a resumable store
``search``   :func:`reference_samples`: top-k per channel, conditional heatmaps
``samples``  :class:`ReferenceSamples`, crop boxes, saving and loading
===========  ===================================================================
"""

from .samples import ReferenceSamples, load_reference_samples
from .search import reference_samples

__all__ = ["ReferenceSamples", "load_reference_samples", "reference_samples"]
