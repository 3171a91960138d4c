"""Relevance rules.

- :mod:`.linear`: the rules for layers that are linear in their input (Dense, Conv,
  EinsumDense, pooling, …): DTD's w², z, z⁺, zᴮ and LRP's ε, αβ, γ, flat, each a few
  term groups on one abstraction that :func:`~dtd_keras.engine.propagation.propagate`
  applies with the gradient trick.
- :mod:`.attention`: the non-linear rules of attention (AttnLRP's softmax and uniform
  bilinear rules, CP-LRP's constant attention), small tensor functions shared by every
  layer and operation that needs them.
"""

from .attention import bilinear_relevance, constant_left_relevance, softmax_relevance
from .linear import (  # noqa: F401  (re-exported: the rules' shared abstraction)
    TINY,
    W2,
    AlphaBeta,
    Epsilon,
    Flat,
    Gamma,
    Group,
    Rule,
    Term,
    Z,
    ZBox,
    ZFlat,
    ZPlus,
    ZSign,
    negative,
    positive,
    propagate,
    safe_divide,
    tile,
)

__all__ = ["AlphaBeta", "Epsilon", "Flat", "Gamma", "Rule", "W2", "Z", "ZBox", "ZFlat", "ZPlus",
           "ZSign", "bilinear_relevance", "constant_left_relevance", "softmax_relevance"]
