"""Test settings: quiet TensorFlow, a private KERAS_HOME, no network."""

import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_HOME", tempfile.mkdtemp(prefix="dtd_keras_keras_home_"))
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
