"""Small bias-free ReLU networks shared by the tests of hidden-layer relevance
(``test_layer_relevance.py``, ``test_crp.py``)."""

from collections.abc import Sequence

import keras
import numpy as np

L = keras.layers


def positive_top(model: keras.Model) -> keras.Model:
    """Non-negative weights in the layer named ``out``: the logits of the (ReLU) hidden
    layers are >= 0, so the top logit is positive and DTD conserves it."""
    out = model.get_layer("out")
    out.set_weights([np.abs(out.get_weights()[0])])
    return model


def bias_free_cnn(seed: int, size: int, filters: tuple[int, int], hidden: Sequence[int],
                  classes: int, name: str) -> keras.Model:
    """``conv1``, ``conv2`` (3×3, ReLU), ``pool``, ``flat``, ReLU Dense layers ``fc``
    (``hidden``: their widths, at most one) and ``out``; no biases; :func:`positive_top`."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((size, size, 1)),
        L.Conv2D(filters[0], 3, activation="relu", use_bias=False, name="conv1"),
        L.Conv2D(filters[1], 3, activation="relu", use_bias=False, name="conv2"),
        L.MaxPooling2D(name="pool"),
        L.Flatten(name="flat"),
        *(L.Dense(width, activation="relu", use_bias=False, name="fc") for width in hidden),
        L.Dense(classes, use_bias=False, name="out"),
    ], name=name)
    return positive_top(model)
