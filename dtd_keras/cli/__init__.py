"""The ``dtd-keras`` command line: explain a saved model's decisions, export an explainer,
run the demo.

    $ dtd-keras explain model.keras digits.npy photo.png --domain 0,1 --out explained
    $ dtd-keras export model.keras explainer --preset deep_taylor --domain 0,1
    $ dtd-keras demo --out demo_out
    $ python -m dtd_keras --help          # the same command

Every command has ``--help``; ``--help`` and ``--version`` answer without importing
TensorFlow (also where it is not installed), and TensorFlow's own log lines stay off the
terminal unless ``--verbose``. Each command checks its arguments and files (``--out``,
``--domain``, ``--preset``, missing inputs or model) before TensorFlow loads. Errors
(missing file, a model that does not load, inputs that do not fit the model, an
unsupported layer, inputs outside ``--domain``, an ``--out`` folder that is not empty,
TensorFlow not installed) end the command with exit status 1 and one line on stderr,
``dtd-keras: error: …``; add ``--traceback`` to see the Python traceback instead. Usage
mistakes exit with status 2.

Models are loaded with ``keras.models.load_model(path, safe_mode=True, compile=False)``:
a model file cannot run Python code (e.g. a ``Lambda`` layer's) unless ``--unsafe`` is
given. Only single-input models are supported here; use the Python API for others.

Modules, one job each: :mod:`.parser` (the arguments), :mod:`.run` (``main``: errors,
negative ``--domain`` values, importing TensorFlow), :mod:`.options` (``--domain``,
``--preset``), :mod:`.models` (loading), :mod:`.explain` and :mod:`.commands` (the
commands). INPUTS are read by :mod:`dtd_keras.reading`.
"""

from __future__ import annotations

from ..reading import read_inputs
from .errors import CLIError, UsageError
from .explain import heatmap_picture
from .models import load_model
from .options import analyzer_options, parse_domain
from .parser import build_parser
from .run import main

__all__ = ["CLIError", "UsageError", "analyzer_options", "build_parser", "heatmap_picture",
           "load_model", "main", "parse_domain", "read_inputs"]
