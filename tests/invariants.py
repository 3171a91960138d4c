"""Invariants every explanation in the test suite must satisfy (checked by conftest.py).

The analyzer runs its own forward pass (BatchNorm folded, padding folded, heads
stripped); it must compute what the model computes, or the relevance explains a
different function than the one the user sees.
"""

from __future__ import annotations

import keras
import numpy as np


def model_output(analyzer, x) -> np.ndarray:
    """The explained output as the model itself computes it (inference mode)."""
    out = analyzer.model(x, training=False)
    return np.asarray(keras.tree.flatten(out)[analyzer.graph.output_index])


def assert_explains_the_model(analyzer, x, explanation, rtol: float = 1e-4) -> None:
    """``analyzer.predict(x)`` equals ``model(x)`` (the explained output) and each
    explained logit is the analyzer's logit of the chosen neuron (or neurons)."""
    if explanation.explained.size == 0:
        return
    if any(getattr(layer, "compute_dtype", "float32") in ("float16", "bfloat16")
           for layer in analyzer.model._flatten_layers()):
        rtol = 2e-2  # mixed precision: the model rounds to float16, the analyzer does not
    expected = model_output(analyzer, x)
    ours = analyzer.predict(x)
    scale = float(np.abs(expected).max())
    np.testing.assert_allclose(ours, expected, rtol=rtol, atol=rtol * scale + 1e-6,
                               err_msg=f"{analyzer!r} computes another function than the model")
    logits = analyzer.logits(x).reshape(len(explanation.explained), -1)
    rows = np.arange(len(logits))
    picked = logits[rows if explanation.neuron.ndim == 1 else rows[:, None], explanation.neuron]
    np.testing.assert_allclose(explanation.explained, picked, rtol=rtol,
                               atol=rtol * float(np.abs(logits).max()) + 1e-6)
