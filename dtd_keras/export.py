"""Export an analyzer as a TensorFlow SavedModel that runs without dtd_keras.

>>> analyzer = dk.DTD(model, input_domain=dk.Box(0.0, 1.0))
>>> analyzer.export("explainer")          # or dk.export.export_analyzer(analyzer, ...)

Any TensorFlow 2.21 process loads it; dtd_keras need not be installed there:

>>> import tensorflow as tf
>>> explainer = tf.saved_model.load("explainer")
>>> out = explainer.signatures["serving_default"](input=tf.constant(x))
>>> out["relevance"], out["logit"], out["neuron"]
>>> out = explainer.signatures["analyze_neuron"](input=tf.constant(x),
...                                              neuron=tf.constant([3] * len(x)))

Signatures (every batch dimension is free):

``serving_default``
    inputs: the model inputs, float32, named ``input`` (one-input model) or
    ``input_0``, ``input_1``, … (multi-input model, in ``model.inputs`` order).
    outputs: ``relevance`` (shaped like the input; ``relevance_0``, ``relevance_1``, …
    for a multi-input model), ``logit`` (float32 ``[batch]``, the explained logit) and
    ``neuron`` (int32 ``[batch]``, the explained output neuron): each sample's top
    logit is explained.
``analyze_neuron``
    the same, plus an int32 input ``neuron`` of shape ``[batch]`` choosing the output
    neuron per sample (``-1``: the top logit). An index outside ``[-1, outputs)`` or a
    batch size differing from the inputs' raises ``InvalidArgumentError``.

Token models: an integer model input (token ids, segment ids, a padding mask) keeps its
integer dtype in the signatures; each embedding share of ``Explanation.embeddings``
(position, segment) is one more output, ``embedding_<layer name>`` (characters other
than letters, digits and ``_`` become ``_``); token ids outside an embedding's table
raise ``InvalidArgumentError`` naming the embedding (on GPU a lookup would return zeros).

The object also has ``explainer.description()`` (a string tensor: the analyzer and its
rules per layer) and ``explainer.model_variables`` (the model weights the explanation
reads, each stored once). Inputs are checked in the graph as ``analyzer.analyze`` checks
them: a wrong shape (naming the expected one), non-finite values, or values outside a
declared ``dk.Box`` / ``"positive"`` domain raise ``InvalidArgumentError`` naming the
input and the domain; an explanation that is not finite (float32 overflow, NaN weights)
raises ``InvalidArgumentError`` too, never returns NaN. An empty batch (0 samples)
returns empty outputs.
Outputs equal ``analyzer.analyze`` (same graph; at most float32 rounding apart).

Inspect an export with TensorFlow's command-line tool::

    $ saved_model_cli show --dir explainer --all

    signature_def['analyze_neuron']:
      The given SavedModel SignatureDef contains the following input(s):
        inputs['input'] tensor_info:
            dtype: DT_FLOAT
            shape: (-1, 8, 8, 1)
            name: analyze_neuron_input:0
        inputs['neuron'] tensor_info:
            dtype: DT_INT32
            shape: (-1)
            name: analyze_neuron_neuron:0
      The given SavedModel SignatureDef contains the following output(s):
        outputs['logit'] tensor_info:
            dtype: DT_FLOAT
            shape: (-1)
            name: StatefulPartitionedCall:0
        outputs['neuron'] tensor_info:
            dtype: DT_INT32
            shape: (-1)
            name: StatefulPartitionedCall:1
        outputs['relevance'] tensor_info:
            dtype: DT_FLOAT
            shape: (-1, 8, 8, 1)
            name: StatefulPartitionedCall:2
      Method name is: tensorflow/serving/predict

    signature_def['serving_default']:
      ... (the same without the ``neuron`` input)

``saved_model_cli run --dir explainer --tag_set serve --signature_def serving_default
--inputs input=x.npy`` computes explanations from the shell.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from .engine.tokens import empty_maps

__all__ = ["SIGNATURES", "export_analyzer"]

SIGNATURES = ("serving_default", "analyze_neuron")


def _input_names(count: int) -> list[str]:
    return ["input"] if count == 1 else [f"input_{i}" for i in range(count)]


def _output_names(count: int, shares: list[str] | tuple = ()) -> list[str]:
    maps = ["relevance"] if count == 1 else [f"relevance_{i}" for i in range(count)]
    return maps + ["embedding_" + re.sub(r"[^A-Za-z0-9_]", "_", name) for name in shares]


def _check_path(path: Any, overwrite: bool) -> Path:
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike folder name, got "
                        f"{type(path).__name__} {path!r}")
    target = Path(path)
    if str(path) == "":
        raise ValueError("path is empty; give the folder to write the SavedModel to")
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"{str(target)!r} is an existing file; a SavedModel is a folder: "
                              "give a new folder name")
    if target.is_dir() and any(target.iterdir()):
        if not (target / "saved_model.pb").exists():
            raise FileExistsError(f"{str(target)!r} is a folder that is not empty and holds no "
                                  "SavedModel; give a new or empty folder")
        if not overwrite:
            raise FileExistsError(f"{str(target)!r} already holds a SavedModel; pass "
                                  "overwrite=True to replace it, or give a new folder")
    parent = target.absolute().parent
    if parent.exists() and not parent.is_dir():
        raise NotADirectoryError(f"cannot create {str(target)!r}: {str(parent)!r} is a file")
    return target


def _build_module(analyzer: Any) -> tuple[tf.Module, list]:
    function = analyzer.function
    specs = list(analyzer.input_specs)
    names = _input_names(len(specs))
    outputs = _output_names(len(specs), getattr(analyzer, "embedding_names", ()))
    specs = [tf.TensorSpec(s.shape, s.dtype, name=n) for s, n in zip(specs, names)]
    neuron_spec = tf.TensorSpec((None,), tf.int32, name="neuron")
    size = analyzer.output_size
    description = repr(analyzer)

    def pack(maps, neuron, logit) -> dict:
        result = dict(zip(outputs, maps))
        result["logit"] = logit
        result["neuron"] = neuron
        return result

    domains = list(analyzer.input_domains)
    fake = [np.zeros((0, *(0 if d is None else d for d in s.shape[1:])), s.dtype.as_numpy_dtype)
            for s in specs]
    blank = (empty_maps(analyzer, fake, (0,)) if hasattr(analyzer, "embedding_names")
             else [np.zeros(f.shape, np.float32) for f in fake])  # an empty batch's outputs

    def shaped(x: tf.Tensor, spec: tf.TensorSpec, what: str) -> tf.Tensor:
        """``x`` after asserting its shape (signatures themselves do not check it)."""
        expected = spec.shape.as_list()
        shown = "(batch, " + ", ".join("any" if d is None else str(d)
                                      for d in expected[1:]) + ")"
        rank = len(expected)
        # the actual shape padded with -1 (or cut) to the expected rank: no cond needed
        actual = tf.concat([tf.shape(x), tf.fill([rank], -1)], 0)[:rank]
        fits = tf.reduce_all([tf.equal(tf.rank(x), rank)] + [
            tf.equal(actual[i], d) for i, d in enumerate(expected) if d is not None])
        check = tf.debugging.Assert(fits, [f"{what} must have shape {shown}; got shape",
                                           tf.shape(x)])
        with tf.control_dependencies([check]):
            return tf.ensure_shape(tf.identity(x), spec.shape)

    def checked(inputs: tuple) -> tuple:
        """The inputs, after asserting their shapes and the analyzer's declared domains
        (finite, in box)."""
        inputs = tuple(shaped(x, spec, f"input {i} ('{name}')")
                       for i, (x, spec, name) in enumerate(zip(inputs, specs, names)))
        checks = [c for i, (x, d) in enumerate(zip(inputs, domains)) if x.dtype.is_floating
                  for c in d.graph_checks(x, f"input {i}")]  # ids and masks: no domain
        with tf.control_dependencies(checks):
            return tuple(tf.identity(x) for x in inputs)

    def finite(maps, neuron, logit) -> tuple:
        """The outputs, after asserting they are finite (no silent NaN heatmaps)."""
        checks = [tf.debugging.assert_all_finite(
            t, "the explanation is not finite: the forward pass or a rule's denominators "
               "overflow float32, the weights hold NaN, or a neuron index lies beyond the "
               "output; dtd_keras' analyzer.explain names the cause") for t in (*maps, logit)]
        with tf.control_dependencies(checks):
            return tuple(tf.identity(m) for m in maps), tf.identity(neuron), tf.identity(logit)

    def explain(inputs: tuple, neuron: tf.Tensor) -> dict:
        """The checked explanation; empty outputs for an empty batch (the model's own
        layers, e.g. Flatten, cannot run on zero samples)."""
        def empty():
            maps = [tf.zeros(tf.shape(x), tf.float32) if b.ndim == len(x.shape)
                    else tf.constant(b) for x, b in zip(inputs, blank)]
            maps += [tf.constant(b) for b in blank[len(inputs):]]
            return tuple(maps), neuron, tf.zeros(tf.shape(neuron), tf.float32)

        def run():
            return finite(*function(tuple(inputs), neuron))

        return pack(*tf.cond(tf.shape(neuron)[0] > 0, run, empty))

    def top(*inputs):
        inputs = checked(inputs)
        batch = tf.shape(inputs[0])[0]
        return explain(inputs, tf.fill([batch], tf.constant(-1, tf.int32)))

    def chosen(*args):
        inputs, neuron = checked(args[:-1]), args[-1]
        batch = tf.shape(inputs[0])[0]
        checks = [
            tf.debugging.assert_equal(
                tf.shape(neuron)[0], batch,
                message="neuron needs one index per sample (shape [batch])"),
            tf.debugging.assert_greater_equal(
                neuron, tf.constant(-1, tf.int32),
                message="neuron index below -1 (-1 selects the top logit)"),
        ]
        if size is not None:
            checks.append(tf.debugging.assert_less(
                neuron, tf.constant(size, tf.int32),
                message=f"neuron index out of range: the explained output has {size} neurons"))
        with tf.control_dependencies(checks):
            neuron = tf.identity(neuron)
        return explain(inputs, neuron)

    module = tf.Module(name="dtd_keras_explainer")
    module.serving_default = tf.function(top, input_signature=specs, autograph=False)
    module.analyze_neuron = tf.function(chosen, input_signature=[*specs, neuron_spec],
                                        autograph=False)
    module.description = tf.function(lambda: tf.constant(description), input_signature=[],
                                      autograph=False)
    concrete = [module.serving_default.get_concrete_function(),
                module.analyze_neuron.get_concrete_function()]

    # Track exactly the variables the two signatures read (the model weights), each
    # once, so the checkpoint holds every weight a single time.
    seen: set[int] = set()
    variables = []
    for fn in concrete:
        for v in fn.variables:
            if id(v) not in seen:
                seen.add(id(v))
                variables.append(v)
    module.model_variables = variables
    return module, concrete


def export_analyzer(analyzer: Any, path: str | os.PathLike[str], *,
                    overwrite: bool = False) -> Path:
    """Write ``analyzer`` as a SavedModel folder at ``path``; returns the path.

    The SavedModel has the signatures ``serving_default`` (explain each sample's top
    logit) and ``analyze_neuron`` (explain the given neuron per sample); see the module
    docstring. It stores the model weights the explanation reads once each and needs
    only TensorFlow to load and run.

    Raises ``TypeError`` if ``analyzer`` is not a dtd_keras Analyzer or ``path`` is not
    a path, ``FileExistsError`` if ``path`` is a file or a non-empty folder (an existing
    SavedModel is replaced only with ``overwrite=True``), and ``OSError`` if TensorFlow
    cannot write there.
    """
    # what the export reads of an analyzer (not an import of the analyzers package:
    # analyzers reach this module through Analyzer.export, and the core never imports
    # its uses)
    needed = ("function", "input_specs", "output_size", "input_domains", "explain")
    if not all(hasattr(analyzer, name) for name in needed):
        hint = (" (a Keras model: build an analyzer first, e.g. dk.DTD(model))"
                if hasattr(analyzer, "layers") else "")
        raise TypeError(f"export_analyzer needs a dtd_keras Analyzer, got "
                        f"{type(analyzer).__name__}{hint}")
    target = _check_path(path, overwrite)
    module, concrete = _build_module(analyzer)
    signatures = {"serving_default": concrete[0], "analyze_neuron": concrete[1]}
    created = not target.exists()
    try:
        tf.saved_model.save(module, str(target), signatures=signatures)
    except (tf.errors.OpError, OSError) as error:
        if created and target.is_dir():
            import shutil

            shutil.rmtree(target, ignore_errors=True)
        message = getattr(error, "message", None) or str(error)
        raise OSError(f"could not write the SavedModel to {str(target)!r}: {message}") from error
    return target
