"""A random baseline that behaves like an analyzer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from ..explanation import Explanation
from ._common import LogitFunction, as_batch

__all__ = ["RandomBaseline"]


class RandomBaseline:
    """Random relevance maps: ``R = u / Σu · f(x)`` with ``u ~ U(0, 1)`` per value.

    Independent of the model's weights, yet conservative and positive by construction
    (for ``f(x) > 0``): the seed's section-3 properties alone do not make a heatmap
    faithful, which is what the faithfulness metrics are for. Same API as the analyzers
    (``explain``, ``analyze``, ``neuron``); every call draws new maps from one seeded
    generator.
    """

    def __init__(self, model: keras.Model, *, seed: int = 0) -> None:
        self.model = model
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._logit = LogitFunction(model)

    def check_inputs(self, x: Any) -> list[np.ndarray]:
        """``x`` checked against the model as the analyzers' ``explain`` checks it (shape,
        finiteness): one float32 array per model input; a ValueError naming the expected
        shape otherwise."""
        return self._logit.check_inputs(x)

    def explain(self, x: Any, neuron: int | Sequence[int] | None = None) -> Explanation:
        """Random maps scaled to the explained logit (an empty batch gives empty maps)."""
        data = as_batch(x, against=self, empty=True)
        chosen, logit = self._logit(data, neuron)
        u = self._rng.uniform(size=data.shape)
        total = u.reshape(len(data), int(np.prod(data.shape[1:]))).sum(axis=1)
        scale = (logit / total).reshape(-1, *([1] * (data.ndim - 1)))
        return Explanation((u * scale).astype(np.float32), chosen, logit)

    def analyze(self, x: Any, neuron: int | Sequence[int] | None = None) -> np.ndarray:
        """The maps of :meth:`explain`."""
        return self.explain(x, neuron).relevance

    def __repr__(self) -> str:
        return f"RandomBaseline({self.model.name!r}, seed={self.seed})"
