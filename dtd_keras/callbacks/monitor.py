"""``RelevanceMonitor``: explain fixed samples while a model trains."""

from __future__ import annotations

import os
import warnings
import weakref
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from .drawing import figure_png
from .setup import (
    analyzer_names,
    as_arrays,
    build_analyzer,
    check_writable,
    is_analyzer,
    positive_int,
    require,
    tensorboard_installed,
)

__all__ = ["SCALARS", "RelevanceMonitor"]

SCALARS = ("conservation_error", "fraction_positive", "negative_fraction", "explained_logit")
"""The scalar names logged per explanation (TensorBoard tags ``relevance/<name>``)."""

_NO_TENSORBOARD = ("RelevanceMonitor: TensorBoard is not installed, so the monitor writes "
                   "heatmap PNGs only; pip install 'dtd-keras[tensorboard]' to log to "
                   "TensorBoard, or pass tensorboard=False to say you do not want it")


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
        ``"lrp.z_plus"``, …: ``dk.PRESETS``), a built ``dk.Analyzer`` of the trained
        model, or a callable ``model -> Analyzer``.
    every_n_epochs:
        Explain after every n-th epoch (None: never per epoch).
    every_n_batches:
        Also explain after every n-th batch of each epoch (None: never per batch),
        counting the batch index Keras reports to ``on_train_batch_end``.
    overwrite:
        Replace existing PNG files; by default an existing file raises
        ``FileExistsError`` before the first training step.
    tensorboard:
        Also log to TensorBoard when it is installed (``dtd-keras[tensorboard]``);
        where it is not, the monitor says so once (a ``UserWarning`` at construction)
        and writes the PNGs only. ``False``: PNGs only, no warning.
    **analyzer_options:
        Passed to the named preset (e.g. ``input_domain=dk.Box(0, 1)``, ``epsilon=0.1``).

    Attributes
    ----------
    analyzer:
        The analyzer in use (set in ``on_train_begin``).
    records:
        One dict per picture written: ``epoch`` (1-based), ``batch`` (1-based or None),
        ``step``, ``path`` of the PNG and the :data:`SCALARS` values.
    tensorboard:
        Whether summaries are written (False where TensorBoard is missing).

    Raises
    ------
    ValueError, TypeError
        At construction: bad arguments. In ``on_train_begin`` (before the first training
        step): samples that do not fit the model, an analyzer of another model, a
        ``log_dir`` that another monitor of the same ``fit`` writes to.
    OSError
        In ``on_train_begin``: ``log_dir`` cannot be written (e.g. a path through a
        file, no permission). ``FileExistsError`` before the first epoch: this fit would
        overwrite earlier PNGs (see ``overwrite``).
    """

    _monitors: weakref.WeakSet = weakref.WeakSet()

    def __init__(self, samples: Any, log_dir: str | os.PathLike[str],
                 analyzer: Any = "deep_taylor", every_n_epochs: int | None = 1,
                 every_n_batches: int | None = None, overwrite: bool = False,
                 tensorboard: bool = True, **analyzer_options: Any) -> None:
        super().__init__()
        self.every_n_epochs = positive_int(every_n_epochs, "every_n_epochs", True)
        self.every_n_batches = positive_int(every_n_batches, "every_n_batches", True)
        if self.every_n_epochs is None and self.every_n_batches is None:
            raise ValueError("every_n_epochs and every_n_batches are both None: the monitor "
                             "would never run; set at least one")
        if not isinstance(log_dir, (str, os.PathLike)) or str(log_dir) == "":
            raise TypeError(f"log_dir must be a folder name (str or os.PathLike), got "
                            f"{log_dir!r}")
        if isinstance(analyzer, str):
            names = analyzer_names()
            if analyzer not in names:
                raise ValueError(f"unknown analyzer {analyzer!r}; choose one of {names}, or "
                                 "pass a dk.Analyzer or a callable model -> Analyzer")
        elif analyzer_options:
            raise TypeError(f"analyzer options {sorted(analyzer_options)} apply only to an "
                            "analyzer given by name; build the analyzer with them instead")
        elif not callable(analyzer) and not is_analyzer(analyzer):
            raise TypeError(f"analyzer must be a name, a dk.Analyzer or a callable "
                            f"model -> Analyzer; got {type(analyzer).__name__}")
        require("matplotlib", "viz", "RelevanceMonitor (heatmap PNGs)")
        if tensorboard and not tensorboard_installed():
            warnings.warn(_NO_TENSORBOARD, UserWarning, stacklevel=2)
            tensorboard = False
        self.samples = as_arrays(samples)
        self.log_dir = Path(log_dir)
        self.heatmap_dir = self.log_dir / "heatmaps"
        self.tensorboard_dir = self.log_dir / "relevance"
        self.overwrite = bool(overwrite)
        self.tensorboard = bool(tensorboard)
        self.analyzer_spec = analyzer
        self.analyzer_options = analyzer_options
        self.analyzer = analyzer if is_analyzer(analyzer) else None
        self._built_for = None
        self.records: list[dict[str, Any]] = []
        self._writer = None
        self._epoch = 0
        self._checked = False
        RelevanceMonitor._monitors.add(self)

    # ---------------------------------------------------------------- set-up
    def on_train_begin(self, logs: dict | None = None) -> None:
        """Build the analyzer and check samples and ``log_dir``: all before training."""
        model = self.model
        # Built once per model, so one fit (or several) traces it once; a given
        # Analyzer is re-checked to belong to the model.
        if is_analyzer(self.analyzer_spec) or self._built_for is not model:
            self.analyzer = build_analyzer(self.analyzer_spec, self.analyzer_options, model)
            self._built_for = model
        try:
            self._inputs = self.analyzer.check_inputs(
                self.samples if len(self.samples) > 1 else self.samples[0])
        except ValueError as error:
            shapes = ", ".join(str(a.shape) for a in self.samples)
            raise type(error)(f"RelevanceMonitor samples (shape {shapes}) do not fit model "
                              f"'{model.name}': {error}") from error
        self._check_shared_log_dir()
        check_writable(self.heatmap_dir, self.log_dir)
        self._checked = False
        self.on_train_end()  # a fit that raised never reached on_train_end
        if self.tensorboard:
            self._writer = tf.summary.create_file_writer(str(self.tensorboard_dir))

    def _check_shared_log_dir(self) -> None:
        """Two monitors of one fit (Keras gives its callbacks one ``params`` dict) must
        not write to the same folder."""
        if not self.params:
            return
        mine = self.log_dir.resolve()
        for other in list(RelevanceMonitor._monitors):
            if other is not self and other.params is self.params and (
                    other.log_dir.resolve() == mine):
                raise ValueError(f"RelevanceMonitor log_dir {str(self.log_dir)!r} is also "
                                 "used by another RelevanceMonitor in this fit; give each "
                                 "monitor its own log_dir")

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

    def _weights_problem(self) -> str | None:
        """Non-finite weights (a diverged fit), named; else None."""
        bad = [v.path for v in self.model.weights
               if np.issubdtype(np.dtype(v.dtype), np.floating)
               and not np.all(np.isfinite(keras.ops.convert_to_numpy(v)))]
        if not bad:
            return None
        more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
        return f"the model's weights hold NaN or Inf ({', '.join(bad[:3])}{more})"

    def _outputs_problem(self) -> str | None:
        """Non-finite model outputs on the samples (e.g. overflow); else None."""
        inputs = self._inputs if len(self._inputs) > 1 else self._inputs[0]
        outputs = tf.nest.flatten(self.model(inputs, training=False))
        if all(np.all(np.isfinite(keras.ops.convert_to_numpy(o))) for o in outputs):
            return None
        return "the model's outputs on the samples are NaN or Inf"

    def _explain_finite(self, where: str):
        """The explanation, or None (with a warning) when training has diverged."""
        reason = self._weights_problem()
        if reason is None:
            try:
                explanation = self.explain()
            except (ValueError, tf.errors.InvalidArgumentError):
                reason = self._outputs_problem()
                if reason is None:
                    raise
            else:
                maps = explanation.relevance
                values = [*(maps if isinstance(maps, list) else [maps]), explanation.explained]
                if all(np.all(np.isfinite(v)) for v in values):
                    return explanation
                reason = self._outputs_problem() or "the explanation holds NaN or Inf"
        warnings.warn(f"RelevanceMonitor skipped the picture {where}: {reason} (has training "
                      "diverged?)", RuntimeWarning, stacklevel=3)
        return None

    def _record(self, epoch: int, batch: int | None, step: int) -> None:
        title = f"epoch {epoch + 1}" + ("" if batch is None else f", batch {batch + 1}")
        explanation = self._explain_finite(f"after {title}")
        if explanation is None:
            return
        props = explanation.properties()
        values = {
            "conservation_error": float(np.mean(np.abs(props.relative_error))),
            "fraction_positive": float(np.mean(props.positive)),
            "negative_fraction": float(np.mean(props.negative_fraction)),
            "explained_logit": float(np.mean(props.explained)),
        }
        png, heatmaps = figure_png(self._inputs, explanation, title)
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
