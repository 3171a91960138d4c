"""Analyzers: a model in, a compiled relevance function out.

:class:`Analyzer` (:mod:`.base`) walks the model and compiles forward and backward pass
(what ``explain`` does with inputs: :mod:`.explaining`);
:class:`DTD` (:mod:`.dtd`) chooses each layer's rule by its input domain (the seed's
training-free deep Taylor decomposition); :class:`LRP` (:mod:`.lrp`) applies the rules it
is given; :class:`AttnLRP` (:mod:`.attention`) is LRP for transformers (AttnLRP or CP-LRP
rules on attention).
"""

from .attention import AttnLRP
from .base import Analyzer
from .dtd import DTD
from .lrp import LRP

__all__ = ["DTD", "LRP", "Analyzer", "AttnLRP"]

# their public home (what stores record as the analyzer's type, as before the split)
for _cls in (Analyzer, DTD, LRP, AttnLRP):
    _cls.__module__ = __name__
