"""SavedModel export: loads and runs in a process where dtd_keras cannot be imported."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import json
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import dtd_keras as dk
from dtd_keras.export import SIGNATURES, export_analyzer

# Runs in a fresh interpreter: isolated mode (-I: no cwd, user site or PYTHON* variables
# on the path) plus an import blocker, because the editable install would otherwise still
# make dtd_keras importable through site-packages. (Keras is not blocked: `import
# tensorflow` itself imports it.)
LOADER = r"""
import sys

class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "dtd_keras":
            raise ImportError(f"{name} is blocked in this process")
        return None

sys.meta_path.insert(0, _Block())
try:
    import dtd_keras  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("dtd_keras is importable in the loader process")

import json
import numpy as np
import tensorflow as tf

jobs = json.loads(sys.argv[1])
for job in jobs:
    loaded = tf.saved_model.load(job["path"])
    inputs = {name: tf.constant(np.load(file)) for name, file in job["inputs"].items()}
    neuron = tf.constant(np.load(job["neuron"]))
    top = loaded.signatures["serving_default"](**inputs)
    chosen = loaded.signatures["analyze_neuron"](**inputs, neuron=neuron)
    np.savez(job["out"], **{f"top/{k}": v.numpy() for k, v in top.items()},
             **{f"chosen/{k}": v.numpy() for k, v in chosen.items()},
             description=loaded.description().numpy())
assert "dtd_keras" not in sys.modules, "dtd_keras was imported"
print("LOADED", len(jobs))
"""


def conv_model():
    keras.utils.set_random_seed(1)
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(3, 3, activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(4),
    ])


def dense_model():
    keras.utils.set_random_seed(2)
    return keras.Sequential([
        keras.Input((6,)),
        keras.layers.Dense(5, activation="relu"),
        keras.layers.Dense(3),
        keras.layers.Softmax(),
    ])


def two_input_model():
    """Two inputs; the second one does not reach the output (zero relevance)."""
    keras.utils.set_random_seed(3)
    a, b = keras.Input((5,), name="a"), keras.Input((2,), name="b")
    return keras.Model([a, b], keras.layers.Dense(3)(keras.layers.Dense(4, activation="relu")(a)))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Three analyzers exported, then run once in a dtd_keras-free subprocess."""
    root = tmp_path_factory.mktemp("export")
    rng = np.random.default_rng(0)
    cases = {
        "conv": (dk.DTD(conv_model(), input_domain=dk.Box(0.0, 1.0)),
                 [rng.random((5, 8, 8, 1), dtype=np.float32)]),
        "dense": (dk.LRP(dense_model(), dk.rules.Epsilon(0.01)),
                  [rng.normal(size=(1, 6)).astype(np.float32)]),
        "multi": (dk.LRP(two_input_model(), dk.rules.AlphaBeta(2, 1)),
                  [rng.normal(size=(3, 5)).astype(np.float32),
                   rng.normal(size=(3, 2)).astype(np.float32)]),
    }
    jobs, results = [], {}
    for name, (analyzer, xs) in cases.items():
        path = root / name
        if name == "conv":
            analyzer.export(str(path))  # the Analyzer.export hook
        else:
            assert export_analyzer(analyzer, path) == path
        size = analyzer.output_size
        neuron = (np.arange(len(xs[0])) % size).astype(np.int32)
        neuron[-1] = -1  # -1: the top logit
        files = {}
        for i, x in enumerate(xs):
            key = "input" if len(xs) == 1 else f"input_{i}"
            files[key] = str(root / f"{name}_{key}.npy")
            np.save(files[key], x)
        np.save(root / f"{name}_neuron.npy", neuron)
        jobs.append({"path": str(path), "inputs": files, "neuron": str(root / f"{name}_neuron.npy"),
                     "out": str(root / f"{name}_out.npz")})
        results[name] = (analyzer, xs, neuron, path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    proc = subprocess.run([sys.executable, "-I", "-c", LOADER, json.dumps(jobs)], cwd=root,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "LOADED 3" in proc.stdout, proc.stdout
    outputs = {name: dict(np.load(root / f"{name}_out.npz")) for name in cases}
    return results, outputs


@pytest.mark.parametrize("name", ["conv", "dense", "multi"])
def test_signatures_match_analyze_without_dtd_keras(exported, name):
    results, outputs = exported
    analyzer, xs, neuron, _ = results[name]
    out = outputs[name]
    x = xs if len(xs) > 1 else xs[0]
    keys = ["relevance"] if len(xs) == 1 else [f"relevance_{i}" for i in range(len(xs))]

    top = analyzer.explain(x)
    maps = top.relevance if isinstance(top.relevance, list) else [top.relevance]
    assert sorted(k for k in out if k.startswith("top/")) == sorted(
        ["top/logit", "top/neuron", *(f"top/{k}" for k in keys)])
    for key, expected in zip(keys, maps):
        got = out[f"top/{key}"]
        assert got.shape == expected.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())
    np.testing.assert_array_equal(out["top/neuron"], top.neuron)
    np.testing.assert_allclose(out["top/logit"], top.explained, rtol=1e-6)

    wanted = np.where(neuron < 0, top.neuron, neuron)
    chosen = analyzer.explain(x, neuron=wanted)
    maps = chosen.relevance if isinstance(chosen.relevance, list) else [chosen.relevance]
    for key, expected in zip(keys, maps):
        np.testing.assert_allclose(out[f"chosen/{key}"], expected, rtol=1e-6,
                                   atol=1e-6 * np.abs(expected).max())
    np.testing.assert_array_equal(out["chosen/neuron"], wanted)
    np.testing.assert_allclose(out["chosen/logit"], chosen.explained, rtol=1e-6)
    assert out["description"].item().decode() == repr(analyzer)


@pytest.mark.parametrize("name", ["conv", "dense", "multi"])
def test_weights_are_stored_once(exported, name):
    results, _ = exported
    analyzer, _, _, path = results[name]
    stored = [(k, s) for k, s in tf.train.list_variables(str(path / "variables" / "variables"))
              if k != "_CHECKPOINTABLE_OBJECT_GRAPH"]
    model = analyzer.model
    assert len(stored) == len(model.weights)
    assert sum(int(np.prod(s)) for _, s in stored) == model.count_params()
    saved = sorted(tf.train.load_variable(str(path / "variables" / "variables"), k).tobytes()
                   for k, _ in stored)
    assert saved == sorted(w.numpy().tobytes() for w in model.weights)


def test_signature_specs(exported):
    results, _ = exported
    loaded = tf.saved_model.load(str(results["multi"][3]))
    assert set(loaded.signatures) == set(SIGNATURES)
    assert len(loaded.model_variables) == len(results["multi"][0].model.weights)
    spec = loaded.signatures["analyze_neuron"].structured_input_signature[1]
    assert spec["input_0"].shape.as_list() == [None, 5]
    assert spec["input_1"].shape.as_list() == [None, 2]
    assert spec["neuron"].shape.as_list() == [None] and spec["neuron"].dtype == tf.int32
    outputs = loaded.signatures["serving_default"].structured_outputs
    assert set(outputs) == {"relevance_0", "relevance_1", "logit", "neuron"}
    assert outputs["relevance_0"].shape.as_list() == [None, 5]


def test_bad_neuron_is_refused(exported):
    results, _ = exported
    analyzer, xs, _, path = results["dense"]
    serve = tf.saved_model.load(str(path)).signatures["analyze_neuron"]
    x = tf.constant(np.repeat(xs[0], 2, axis=0))
    for bad in ([0, 3], [-2, 0], [0]):
        with pytest.raises(tf.errors.InvalidArgumentError, match="neuron"):
            serve(input=x, neuron=tf.constant(bad, tf.int32))


def test_exported_graph_checks_the_declared_domain(exported):
    results, _ = exported
    analyzer, xs, _, path = results["conv"]  # DTD with dk.Box(0, 1)
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    for bad in (xs[0] + 2.0, xs[0] - 2.0, np.full_like(xs[0], np.nan)):
        with pytest.raises(tf.errors.InvalidArgumentError, match="input 0"):
            serve(input=tf.constant(bad))
    assert np.all(np.isfinite(serve(input=tf.constant(xs[0]))["relevance"].numpy()))


def test_bad_arguments(exported, tmp_path):
    results, _ = exported
    analyzer, _, _, path = results["dense"]
    with pytest.raises(TypeError, match="Analyzer.*Keras model"):
        export_analyzer(analyzer.model, tmp_path / "m")
    with pytest.raises(TypeError, match="Analyzer"):
        export_analyzer("deep_taylor", tmp_path / "m")
    with pytest.raises(TypeError, match="path"):
        export_analyzer(analyzer, None)
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="existing file"):
        export_analyzer(analyzer, tmp_path / "file")
    with pytest.raises(NotADirectoryError, match="is a file"):
        export_analyzer(analyzer, tmp_path / "file" / "m")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        export_analyzer(analyzer, tmp_path / "busy")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_analyzer(analyzer, path)
    assert not (tmp_path / "m").exists()


def test_overwrite_and_empty_folder(tmp_path):
    analyzer = dk.LRP(dense_model())
    (tmp_path / "empty").mkdir()
    export_analyzer(analyzer, tmp_path / "empty")
    export_analyzer(analyzer, tmp_path / "empty", overwrite=True)
    x = np.ones((2, 6), np.float32)
    out = tf.saved_model.load(str(tmp_path / "empty")).signatures["serving_default"](
        input=tf.constant(x))
    np.testing.assert_allclose(out["relevance"].numpy(), analyzer.analyze(x), rtol=1e-6,
                               atol=1e-7)
