"""Relevance rules.

- :mod:`.linear`: the rules for layers that are linear in their input (Dense, Conv,
  EinsumDense, pooling, …): DTD's w², z, z⁺, zᴮ and LRP's ε, αβ, γ, flat, each a few
  term groups on one abstraction that :func:`~dtd_keras.engine.propagation.propagate`
  applies with the gradient trick.
"""

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
           "ZSign"]
