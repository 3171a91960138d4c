"""Watch deep Taylor explanations change while a model trains (RelevanceMonitor).

    python examples/monitor_training.py                       # 10 epochs, TensorBoard logs
    python examples/monitor_training.py --epochs 2 --no-tensorboard --log-dir /tmp/mon
    python examples/monitor_training.py --overwrite           # run again into runs/monitor
    tensorboard --logdir runs/monitor                         # then look at the logs

After every epoch ``dk.callbacks.RelevanceMonitor`` explains the same held-out digits
with the current weights and writes a heatmap grid to ``LOG_DIR/heatmaps/`` and, with
TensorBoard, the conservation error, the share of positive heatmaps, the negative
fraction and the mean explained logit under ``relevance/…`` next to Keras' own
``epoch_loss`` (``keras.callbacks.TensorBoard(LOG_DIR)``). Explaining does not change
training. Needs ``pip install 'dtd-keras[cpu,demo]'``; the TensorBoard logs need the
``tensorboard`` extra too (without it the script says so and writes the PNGs only).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10, help="training epochs (default 10)")
    parser.add_argument("--samples", type=int, default=6,
                        help="held-out digits the monitor explains (default 6)")
    parser.add_argument("--train-size", type=int, default=1400,
                        help="training digits (default 1400, at most 1497)")
    parser.add_argument("--log-dir", default="runs/monitor",
                        help="folder for heatmaps/ and the TensorBoard runs (default "
                             "runs/monitor)")
    parser.add_argument("--analyzer", default="deep_taylor",
                        help="analyzer preset (default deep_taylor, with the pixel box)")
    parser.add_argument("--no-tensorboard", action="store_true",
                        help="only write heatmap PNGs (no TensorBoard needed)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace heatmaps of an earlier run in the same --log-dir")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    heatmaps = Path(args.log_dir) / "heatmaps"
    if not args.overwrite and heatmaps.is_dir() and any(heatmaps.glob("epoch_*.png")):
        parser.exit(1, f"{parser.prog}: error: {heatmaps} holds the heatmaps of an earlier "
                       "run; pass --overwrite to replace them, or choose another --log-dir\n")

    import keras
    import numpy as np
    from sklearn.datasets import load_digits

    import dtd_keras as dk

    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")[..., None]
    y = digits.target
    order = np.random.default_rng(args.seed).permutation(len(x))
    x, y = x[order], y[order]
    train = min(args.train_size, len(x) - 300)
    x_train, y_train, x_test, y_test = x[:train], y[:train], x[-300:], y[-300:]

    keras.utils.set_random_seed(args.seed)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])

    # DTD presets take the input domain; the LRP presets keep their own rules.
    options = {"input_domain": dk.Box(0.0, 1.0)} if args.analyzer == "deep_taylor" else {}
    monitor = dk.callbacks.RelevanceMonitor(
        x_test[: args.samples], log_dir=args.log_dir, analyzer=args.analyzer,
        every_n_epochs=1, tensorboard=not args.no_tensorboard, overwrite=args.overwrite,
        **options)
    callbacks = [monitor]
    if monitor.tensorboard:  # TensorBoard is installed and wanted
        callbacks.append(keras.callbacks.TensorBoard(args.log_dir))
    model.fit(x_train, y_train, validation_data=(x_test, y_test), epochs=args.epochs,
              batch_size=32, callbacks=callbacks, verbose=0)

    print("epoch  val. accuracy  conservation error  fraction positive  negative fraction  "
          "mean logit")
    history = model.history.history
    for record in monitor.records:
        accuracy = history["val_accuracy"][record["epoch"] - 1]
        print(f"{record['epoch']:5d}  {accuracy:13.3f}  {record['conservation_error']:18.2e}  "
              f"{record['fraction_positive']:17.2f}  {record['negative_fraction']:17.3f}  "
              f"{record['explained_logit']:10.3f}")
    print(f"heatmaps: {monitor.heatmap_dir} ({len(monitor.records)} PNGs)")
    if monitor.tensorboard:
        print(f"TensorBoard: tensorboard --logdir {args.log_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
