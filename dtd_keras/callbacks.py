"""Watch explanations change while a model trains.

>>> monitor = dk.callbacks.RelevanceMonitor(x_train[:8], log_dir="runs/x")
>>> model.fit(x_train, y_train, epochs=10, callbacks=[monitor])

After every ``every_n_epochs``-th epoch (and, optionally, every ``every_n_batches``-th
batch of each epoch) the monitor explains the same fixed samples with the current
weights and

* writes a PNG grid, one row per sample (input, then its relevance heatmap; the row
  label reads ``#sample → explained neuron (explained logit)``), to
  ``log_dir/heatmaps/epoch_0003.png`` (after the third epoch, as Keras prints it:
  ``Epoch 3/10``) or ``log_dir/heatmaps/epoch_0003_batch_00050.png`` (after the 50th
  batch of the third epoch);
* logs to TensorBoard (events in ``log_dir/relevance``, a run next to the ``train`` and
  ``validation`` runs of ``keras.callbacks.TensorBoard(log_dir)``) the scalars
  ``relevance/conservation_error`` (mean over the samples of
  ``|Σ relevance − logit| / |logit|``), ``relevance/fraction_positive`` (share of
  samples whose relevance is nowhere negative beyond float rounding: seed Definition
  2), ``relevance/negative_fraction`` (mean share of ``Σ|R|`` that is negative) and
  ``relevance/explained_logit`` (mean explained logit), and the images
  ``relevance/heatmaps`` (the heatmaps themselves) and ``relevance/grid`` (the PNG
  above). Epoch summaries use Keras' 0-based epoch index as
  step, like ``keras.callbacks.TensorBoard``, so they line up with ``epoch_loss``;
  per-batch summaries are tagged ``relevance_batch/…`` with the optimizer's step count.
  See :data:`SCALARS`.

Files are never overwritten unless ``overwrite=True``: before the first epoch of a
``fit`` the monitor lists the files that fit will write and raises
``FileExistsError`` if any exists (nothing has been trained yet), naming them. To
continue training into the same folder, pass ``initial_epoch`` to ``fit`` (the names
continue from it), or choose a new ``log_dir``.

The analyzer is built once, in ``on_train_begin``, and compiled once: its function
reads the live model variables, so it is traced one time for the whole fit. Explaining
does not touch the weights, the optimizer or any random state: training with and
without the monitor is identical. The monitor needs matplotlib
(``pip install 'dtd-keras[viz]'``) and, for ``tensorboard=True``, TensorBoard
(``pip install 'dtd-keras[tensorboard]'``).
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

__all__ = ["ANALYZERS", "SCALARS", "RelevanceMonitor"]

SCALARS = ("conservation_error", "fraction_positive", "negative_fraction", "explained_logit")
"""The scalar names logged per explanation (TensorBoard tags ``relevance/<name>``)."""

_PANEL_SIZE = 1.6
_DPI = 80


def _dtd(model: keras.Model, **options: Any):
    from .analyzers import DTD

    return DTD(model, **options)


def _lrp(rule_name: str, **fixed: Any) -> Callable[..., Any]:
    """A factory ``(model, **options) -> LRP`` with one rule; rule parameters (e.g.
    ``epsilon``) are taken from the options, the rest go to ``dk.LRP``."""

    def factory(model: keras.Model, **options: Any):
        from . import rules
        from .analyzers import LRP

        rule_class = getattr(rules, rule_name)
        names = {f.name for f in dataclasses.fields(rule_class)} - set(fixed)
        params = {k: options.pop(k) for k in list(options) if k in names}
        return LRP(model, rule=rule_class(**{**fixed, **params}), **options)

    factory.__name__ = f"lrp_{rule_name.lower()}"
    return factory


ANALYZERS: dict[str, Callable[..., Any]] = {
    "deep_taylor": _dtd,
    "lrp.z": _lrp("Epsilon", epsilon=0.0),
    "lrp.epsilon": _lrp("Epsilon", epsilon=1e-7),
    "lrp.z_plus": _lrp("ZPlus"),
    "lrp.w_square": _lrp("W2"),
    "lrp.flat": _lrp("Flat"),
    "lrp.gamma": _lrp("Gamma"),
    "lrp.alpha_1_beta_0": _lrp("AlphaBeta", alpha=1.0, beta=0.0),
    "lrp.alpha_2_beta_1": _lrp("AlphaBeta", alpha=2.0, beta=1.0),
}
"""Fallback analyzer names: name → ``factory(model, **options)``.

Where ``dtd_keras.create_analyzer(name, model, **options)`` exists (the presets of
:mod:`dtd_keras.presets`), the monitor uses it and its names instead of this table.
``"deep_taylor"`` is ``dk.DTD(model, **options)`` (e.g. ``input_domain=dk.Box(0, 1)``);
``"lrp.<rule>"`` is ``dk.LRP(model, rule=<Rule>(...))`` where the rule's own parameters
(``epsilon=``, ``gamma=``) and LRP's (``input_rule=``, ``layer_rules=``, …) come from
the options.
"""


def _presets() -> tuple[Callable[..., Any] | None, list[str]]:
    """``(create_analyzer, names)``: dtd_keras' presets where they exist, else ours."""
    import dtd_keras

    create = getattr(dtd_keras, "create_analyzer", None)
    if callable(create):
        names = getattr(dtd_keras, "PRESETS", None)
        return create, sorted(names) if names is not None else []
    return None, sorted(ANALYZERS)


def _require(module: str, extra: str, why: str) -> None:
    import importlib

    try:
        importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f"{why} needs {module}: pip install 'dtd-keras[{extra}]'") from error


def _positive_int(value: Any, name: str, allow_none: bool) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        allowed = "a positive int or None" if allow_none else "a positive int"
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return int(value)


def _as_arrays(samples: Any) -> list[np.ndarray]:
    items = list(samples) if isinstance(samples, (list, tuple)) else [samples]
    if not items:
        raise ValueError("samples is empty: pass the array of samples to explain, e.g. x[:8]")
    arrays = []
    for i, item in enumerate(items):
        if isinstance(item, (tf.Tensor, tf.Variable)) or hasattr(item, "numpy"):
            item = item.numpy()
        try:
            array = np.array(item, dtype=np.float32)  # a copy: later edits do not leak in
        except (TypeError, ValueError) as error:
            raise ValueError(f"samples[{i}] is not a numeric array: {error}") from error
        if array.ndim < 2 or array.shape[0] == 0:
            raise ValueError(f"samples{'' if len(items) == 1 else f'[{i}]'} must be a batch "
                             f"(samples first) with at least one sample; got shape "
                             f"{array.shape}")
        arrays.append(array)
    sizes = {a.shape[0] for a in arrays}
    if len(sizes) != 1:
        raise ValueError(f"the sample arrays have different batch sizes: {sorted(sizes)}")
    return arrays


def _panels(x: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One sample's input and relevance as uint8 RGB pictures."""
    from . import image

    if x.ndim == 3 and x.shape[-1] in (1, 3, 4):
        return image.to_rgb(x), image.heatmap(r)
    if x.ndim == 3:  # many channels: the mean input, the channel-summed relevance
        return image.to_rgb(x.mean(axis=-1)), image.heatmap(r)
    if x.ndim == 2:
        return image.to_rgb(x), image.heatmap(r, reduce=None)
    x, r = x.reshape(1, -1), r.reshape(1, -1)  # a vector: a strip, a few pixels high
    height = max(1, x.shape[1] // 8)
    return (np.repeat(image.to_rgb(x), height, axis=0),
            np.repeat(image.heatmap(r, reduce=None), height, axis=0))


class RelevanceMonitor(keras.callbacks.Callback):
    """Explain fixed samples during training; save heatmap PNGs and TensorBoard summaries.

    Parameters
    ----------
    samples:
        The inputs to explain (a batch; a list of batches for a multi-input model).
        Copied at construction; checked against the model in ``on_train_begin``.
    log_dir:
        Folder for ``heatmaps/*.png`` and the TensorBoard run ``relevance/``.
    analyzer:
        An analyzer name (``"deep_taylor"``, ``"lrp.epsilon"``, ``"lrp.alpha_2_beta_1"``,
        ``"lrp.z_plus"``, …: ``dk.create_analyzer``'s presets, or :data:`ANALYZERS`
        where there are none), a built ``dk.Analyzer`` of the trained model, or a
        callable ``model -> Analyzer``.
    every_n_epochs:
        Explain after every n-th epoch (None: never per epoch).
    every_n_batches:
        Also explain after every n-th batch of each epoch (None: never per batch),
        counting the batch index Keras reports to ``on_train_batch_end``.
    overwrite:
        Replace existing PNG files; by default an existing file raises
        ``FileExistsError`` before the first epoch.
    tensorboard:
        Write TensorBoard summaries (needs ``dtd-keras[tensorboard]``).
    **analyzer_options:
        Passed to the named analyzer's factory (e.g. ``input_domain=dk.Box(0, 1)``,
        ``epsilon=0.1``).

    Attributes
    ----------
    analyzer:
        The analyzer in use (set in ``on_train_begin``).
    records:
        One dict per explanation: ``epoch`` (1-based), ``batch`` (1-based or None),
        ``step``, ``path`` of the PNG and the :data:`SCALARS` values.
    """

    def __init__(self, samples: Any, log_dir: str | os.PathLike[str],
                 analyzer: Any = "deep_taylor", every_n_epochs: int | None = 1,
                 every_n_batches: int | None = None, overwrite: bool = False,
                 tensorboard: bool = True, **analyzer_options: Any) -> None:
        super().__init__()
        self.every_n_epochs = _positive_int(every_n_epochs, "every_n_epochs", True)
        self.every_n_batches = _positive_int(every_n_batches, "every_n_batches", True)
        if self.every_n_epochs is None and self.every_n_batches is None:
            raise ValueError("every_n_epochs and every_n_batches are both None: the monitor "
                             "would never run; set at least one")
        if not isinstance(log_dir, (str, os.PathLike)) or str(log_dir) == "":
            raise TypeError(f"log_dir must be a folder name (str or os.PathLike), got "
                            f"{log_dir!r}")
        if isinstance(analyzer, str):
            _, names = _presets()
            if names and analyzer not in names:
                raise ValueError(f"unknown analyzer {analyzer!r}; choose one of {names}, or "
                                 "pass a dk.Analyzer or a callable model -> Analyzer")
        elif analyzer_options:
            raise TypeError(f"analyzer options {sorted(analyzer_options)} apply only to an "
                            "analyzer given by name; build the analyzer with them instead")
        elif not callable(analyzer) and not _is_analyzer(analyzer):
            raise TypeError(f"analyzer must be a name, a dk.Analyzer or a callable "
                            f"model -> Analyzer; got {type(analyzer).__name__}")
        _require("matplotlib", "viz", "RelevanceMonitor (heatmap PNGs)")
        if tensorboard:
            _require("tensorboard", "tensorboard",
                     "RelevanceMonitor(tensorboard=True) (TensorBoard summaries)")
        self.samples = _as_arrays(samples)
        self.log_dir = Path(log_dir)
        self.heatmap_dir = self.log_dir / "heatmaps"
        self.tensorboard_dir = self.log_dir / "relevance"
        self.overwrite = bool(overwrite)
        self.tensorboard = bool(tensorboard)
        self.analyzer_spec = analyzer
        self.analyzer_options = analyzer_options
        self.analyzer = analyzer if _is_analyzer(analyzer) else None
        self._built_for = None
        self.records: list[dict[str, Any]] = []
        self._writer = None
        self._epoch = 0
        self._checked = False

    # ---------------------------------------------------------------- set-up
    def _build_analyzer(self, model: keras.Model):
        spec = self.analyzer_spec
        if _is_analyzer(spec):
            analyzer = spec
        elif isinstance(spec, str):
            create, _ = _presets()
            if create is not None:
                analyzer = create(spec, model, **self.analyzer_options)
            else:
                analyzer = ANALYZERS[spec](model, **dict(self.analyzer_options))
        else:
            analyzer = spec(model)
            if not _is_analyzer(analyzer):
                raise TypeError(f"the analyzer callable {spec!r} returned "
                                f"{type(analyzer).__name__}, not a dk.Analyzer")
        own = {id(v) for v in model.weights}
        foreign = [v.path for v in analyzer.model.weights if id(v) not in own]
        if foreign:
            raise ValueError(f"the analyzer explains model '{analyzer.model.name}', whose "
                             f"weights {foreign[:3]} are not those of the trained model "
                             f"'{model.name}'")
        return analyzer

    def on_train_begin(self, logs: dict | None = None) -> None:
        model = self.model
        # Built once per model, so one fit (or several) traces it once; a given
        # Analyzer is re-checked to belong to the model.
        if _is_analyzer(self.analyzer_spec) or self._built_for is not model:
            self.analyzer = self._build_analyzer(model)
            self._built_for = model
        try:
            self._inputs = self.analyzer.check_inputs(
                self.samples if len(self.samples) > 1 else self.samples[0])
        except ValueError as error:
            shapes = ", ".join(str(a.shape) for a in self.samples)
            raise type(error)(f"RelevanceMonitor samples (shape {shapes}) do not fit model "
                              f"'{model.name}': {error}") from error
        self._checked = False
        self.on_train_end()  # a fit that raised never reached on_train_end
        if self.tensorboard:
            self._writer = tf.summary.create_file_writer(str(self.tensorboard_dir))

    def _name(self, epoch: int, batch: int | None) -> str:
        name = f"epoch_{epoch + 1:04d}"
        return f"{name}.png" if batch is None else f"{name}_batch_{batch + 1:05d}.png"

    def _check_files(self, first_epoch: int) -> None:
        """Before any training: refuse to overwrite files this fit would write."""
        if self.overwrite or not self.heatmap_dir.is_dir():
            return
        last = int((self.params or {}).get("epochs", first_epoch + 1))
        clashes = []
        for epoch in range(first_epoch, last):
            if self.every_n_epochs and (epoch + 1) % self.every_n_epochs == 0:
                path = self.heatmap_dir / self._name(epoch, None)
                if path.exists():
                    clashes.append(path)
            if self.every_n_batches:
                clashes.extend(sorted(self.heatmap_dir.glob(f"epoch_{epoch + 1:04d}_batch_*.png")))
        if clashes:
            self.on_train_end()  # Keras skips on_train_end when a callback raises
            shown = ", ".join(str(p) for p in clashes[:3])
            more = f" and {len(clashes) - 3} more" if len(clashes) > 3 else ""
            raise FileExistsError(
                f"RelevanceMonitor would overwrite {shown}{more}. Use a new log_dir, pass "
                "initial_epoch to fit to continue the numbering, or overwrite=True")

    # --------------------------------------------------------------- hooks
    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch = epoch
        if not self._checked:
            self._check_files(epoch)
            self._checked = True

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if self.every_n_batches and (batch + 1) % self.every_n_batches == 0:
            step = int(self.model.optimizer.iterations) if self.model.optimizer else batch
            self._record(self._epoch, batch, step)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.every_n_epochs and (epoch + 1) % self.every_n_epochs == 0:
            self._record(epoch, None, epoch)

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # ------------------------------------------------------------- the work
    def explain(self):
        """Explain the samples with the current weights (an ``Explanation``)."""
        if self.analyzer is None:
            raise RuntimeError("the monitor has no analyzer before training begins")
        return self.analyzer.explain(self._inputs if len(self._inputs) > 1 else self._inputs[0])

    def _figure(self, explanation, title: str):
        from . import image

        maps = explanation.relevance
        maps = maps if isinstance(maps, list) else [maps]
        count = len(maps)
        rows, heat = [], [[] for _ in maps]
        for i in range(self._inputs[0].shape[0]):
            row = []
            for k in range(count):
                picture, relevance = _panels(self._inputs[k][i], maps[k][i])
                row += [picture, relevance]
                heat[k].append(relevance)
            rows.append(row)
        titles = (["input", "relevance"] if count == 1 else
                  [t for k in range(count) for t in (f"input {k}", f"relevance {k}")])
        labels = [f"#{i} → {int(n)} ({float(v):.3g})"
                  for i, (n, v) in enumerate(zip(explanation.neuron, explanation.explained))]
        figure = image.grid(rows, titles=titles, row_labels=labels, panel_size=_PANEL_SIZE,
                            dpi=_DPI, suptitle=title)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")  # a pyplot-free Figure: freed with its last ref
        return buffer.getvalue(), [np.stack(h) for h in heat]

    def _record(self, epoch: int, batch: int | None, step: int) -> None:
        explanation = self.explain()
        props = explanation.properties()
        values = {
            "conservation_error": float(np.mean(np.abs(props.relative_error))),
            "fraction_positive": float(np.mean(props.positive)),
            "negative_fraction": float(np.mean(props.negative_fraction)),
            "explained_logit": float(np.mean(props.explained)),
        }
        title = f"epoch {epoch + 1}" + ("" if batch is None else f", batch {batch + 1}")
        png, heatmaps = self._figure(explanation, title)
        path = self.heatmap_dir / self._name(epoch, batch)
        self.heatmap_dir.mkdir(parents=True, exist_ok=True)
        try:
            with open(path, "wb" if self.overwrite else "xb") as file:
                file.write(png)
        except FileExistsError:
            raise FileExistsError(f"RelevanceMonitor would overwrite {path}; use a new "
                                  "log_dir or overwrite=True") from None
        if self._writer is not None:
            prefix = "relevance" if batch is None else "relevance_batch"
            with self._writer.as_default(step=step):
                for name, value in values.items():
                    tf.summary.scalar(f"{prefix}/{name}", value)
                for k, h in enumerate(heatmaps):
                    tag = "heatmaps" if len(heatmaps) == 1 else f"heatmaps_{k}"
                    tf.summary.image(f"{prefix}/{tag}", h, max_outputs=len(h))
                tf.summary.image(f"{prefix}/grid", tf.image.decode_png(png, channels=3)[None])
            self._writer.flush()
        self.records.append({"epoch": epoch + 1, "batch": None if batch is None else batch + 1,
                             "step": step, "path": path, **values})


def _is_analyzer(value: Any) -> bool:
    from .analyzers import Analyzer

    return isinstance(value, Analyzer)
