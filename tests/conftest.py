"""Test settings: quiet TensorFlow, a private KERAS_HOME, no network; and the invariant
every explanation in the suite must satisfy."""

import os
import tempfile

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_HOME", tempfile.mkdtemp(prefix="dtd_keras_keras_home_"))
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


@pytest.fixture(autouse=True, scope="session")
def every_explanation_explains_the_model():
    """Invariant over every model in the suite (the zoo included): each explanation's
    forward pass is the model's own (see tests/invariants.py). Wraps Analyzer.explain."""
    from invariants import assert_explains_the_model

    from dtd_keras.analyzers import Analyzer

    original = Analyzer.explain

    def explain(self, x, neuron=None, **options):
        explanation = original(self, x, neuron, **options)
        assert_explains_the_model(self, x, explanation)
        return explanation

    Analyzer.explain = explain
    yield
    Analyzer.explain = original
