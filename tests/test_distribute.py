"""analyzer.function runs under tf.distribute (two logical CPU devices, in a subprocess
because devices must be configured before TensorFlow starts)."""

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import dtd_keras as dk
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, activation="relu"),
                                  keras.layers.Dense(3)])
    analyzer = dk.DTD(model, input_domain="positive")
    x = np.random.default_rng(0).uniform(0, 1, (8, 6)).astype("float32")
    data = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensor_slices(x).batch(8))
    for batch in data:
        top = strategy.run(lambda b: tf.fill(tf.shape(b)[:1], -1), args=(batch,))
        maps, _, _ = strategy.run(analyzer.function, args=((batch,), top))
        parts = strategy.experimental_local_results(maps[0])
    assert len(parts) == 2, parts
    got = np.concatenate([p.numpy() for p in parts])
    print("max_abs_diff", float(np.abs(got - analyzer.analyze(x)).max()))
""")


def test_strategy_run_matches_analyze():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    line = [s for s in done.stdout.splitlines() if s.startswith("max_abs_diff")][-1]
    assert float(line.split()[1]) <= 1e-6
