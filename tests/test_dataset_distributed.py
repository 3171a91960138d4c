"""dk.analyze_dataset in other processes: killed with SIGKILL at random points and resumed;
under MirroredStrategy (two logical CPU devices); under MultiWorkerMirroredStrategy with two
worker processes on 127.0.0.1. Each store must equal an uninterrupted single-process run's.

Six TensorFlow subprocesses in all (two of them at the same time)."""

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import dtd_keras as dk

N, BATCH, CHUNK = 480, 4, 8  # 60 chunks: long enough to be killed in the middle
ROOT = Path(__file__).resolve().parents[1]

WORKER = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    mode, work, out, batch, chunk = sys.argv[1:6]
    strategy = None
    if mode == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    elif mode == "multiworker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    import keras
    import dtd_keras as dk
    from dtd_keras.datasets.compute import worker_share
    model = keras.models.load_model(f"{work}/model.keras")
    analyzer = dk.DTD(model, input_domain=dk.Box(0.0, 1.0))
    data = (np.load(f"{work}/x.npy"), np.load(f"{work}/y.npy"))
    dk.analyze_dataset(analyzer, data, out, batch_size=int(batch), chunk_size=int(chunk),
                       strategy=strategy, progress=False)
    print("RESULT", json.dumps({"share": worker_share(strategy),
                                "traces": analyzer.trace_count}), flush=True)
""")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """model.keras, x.npy, y.npy, the worker script and the uninterrupted reference store."""
    from sklearn.datasets import load_digits
    from test_dataset import digits_model

    path = tmp_path_factory.mktemp("work")
    digits = load_digits()
    x = (digits.images[:N] / 16.0).astype("float32")[..., None]
    y = digits.target[:N].astype("int64")
    model = digits_model(seed=5)
    model.save(path / "model.keras")
    np.save(path / "x.npy", x)
    np.save(path / "y.npy", y)
    (path / "worker.py").write_text(WORKER)
    analyzer = dk.DTD(model, input_domain=dk.Box(0.0, 1.0))
    dk.analyze_dataset(analyzer, (x, y), path / "reference", batch_size=BATCH,
                       chunk_size=CHUNK, progress=False)
    return path


def environment(**extra):
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def start(work, mode, out, batch=BATCH, chunk=CHUNK, **env):
    return subprocess.Popen(
        [sys.executable, str(work / "worker.py"), mode, str(work), str(out), str(batch),
         str(chunk)], env=environment(**env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)


def finish(process, timeout=300):
    stdout, stderr = process.communicate(timeout=timeout)
    assert process.returncode == 0, stderr[-3000:]
    return json.loads(stdout.split("RESULT", 1)[1])


def markers(out):
    try:
        return sum(name.isdigit() for name in os.listdir(out / "done" / "c"))
    except FileNotFoundError:
        return 0


def assert_same_store(out, reference, exact=True):
    got, want = dk.load_results(out), dk.load_results(reference)
    compare = (np.testing.assert_array_equal if exact else
               lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7))
    compare(np.asarray(got.relevance), np.asarray(want.relevance))
    compare(got.logit, want.logit)
    np.testing.assert_array_equal(got.neuron, want.neuron)
    np.testing.assert_array_equal(got.index, want.index)
    np.testing.assert_array_equal(got.label, want.label)
    for field in got.properties:
        compare(got.properties[field], want.properties[field])


def test_killed_runs_resume_to_the_uninterrupted_store(work, tmp_path):
    out = tmp_path / "r.zarr"
    seed = int(np.random.SeedSequence().entropy % 2**32)
    rng = np.random.default_rng(seed)
    for _ in range(2):
        at = markers(out) + int(rng.integers(1, 16))  # kill once this many chunks are done
        process = start(work, "single", out)
        deadline = time.monotonic() + 240
        while markers(out) < at and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        process.kill()
        _, stderr = process.communicate()
        assert process.returncode == -9, (f"seed {seed}: the run ended before the kill "
                                          f"({process.returncode}): {stderr[-2000:]}")
        assert at <= markers(out) < N // CHUNK, f"seed {seed}"
        with pytest.raises(ValueError, match="incomplete"):
            dk.load_results(out)
    finish(start(work, "single", out))
    assert_same_store(out, work / "reference")


def test_mirrored_strategy_on_two_devices(work, tmp_path):
    out = tmp_path / "r.zarr"
    result = finish(start(work, "mirrored", out))
    assert result == {"share": [0, 1], "traces": 1}
    # each replica explains half of each batch: equal up to float rounding
    assert_same_store(out, work / "reference", exact=False)


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_write_one_store(work, tmp_path):
    out = tmp_path / "r.zarr"
    cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(2)]}
    workers = [start(work, "multiworker", out, TF_CONFIG=json.dumps(
        {"cluster": cluster, "task": {"type": "worker", "index": i}})) for i in range(2)]
    results = [finish(w) for w in workers]
    assert sorted(r["share"] for r in results) == [[0, 2], [1, 2]]
    assert all(r["traces"] == 1 for r in results)
    assert_same_store(out, work / "reference")
