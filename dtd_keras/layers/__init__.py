"""Per-layer relevance: one small behaviour per kind of layer, chosen by a type table.

- :mod:`.base`: forward/relevance protocol, identities, re-indexing ops;
- :mod:`.linear`: Dense/Conv/… — the rule does the relevance;
- :mod:`.activations`: ReLU and other activations, preprocessing maps;
- :mod:`.pooling`: max pooling (winner or proportional);
- :mod:`.merge`: Add and gating Multiply;
- :mod:`.registry`: layer class → behaviour, :func:`register_layer`.
"""

from .activations import HEAD_ACTIVATIONS, activation_name
from .base import Identity, LayerRelevance, Reindex
from .linear import Linear
from .registry import LAYER_RELEVANCE, register_layer, relevance_for

__all__ = ["HEAD_ACTIVATIONS", "LAYER_RELEVANCE", "Identity", "LayerRelevance", "Linear",
           "Reindex", "activation_name", "register_layer", "relevance_for"]
