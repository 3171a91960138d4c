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

Every check happens before the first training step: in ``on_train_begin`` the
samples must fit the model, ``log_dir`` must be writable (a probe file is written and
removed) and no other monitor of the same ``fit`` may write to it; before the first
epoch the monitor lists the files that fit will write and raises ``FileExistsError``
if any exists, naming them (files are never overwritten unless ``overwrite=True``). To
continue training into the same folder, pass ``initial_epoch`` to ``fit`` (the names
continue from it), or choose a new ``log_dir``.

A fit that diverges is not stopped by the monitor: where the weights or the model's
outputs hold NaN or Inf, it skips that picture with a ``RuntimeWarning``.

The analyzer is built once, in ``on_train_begin``, and compiled once: its function
reads the live model variables, so it is traced one time for the whole fit. Explaining
does not touch the weights, the optimizer or any random state: training with and
without the monitor is identical. The monitor needs matplotlib
(``pip install 'dtd-keras[viz]'``); it logs to TensorBoard where TensorBoard is
installed (``pip install 'dtd-keras[tensorboard]'``) and says once when it is not.

Modules: :mod:`.monitor` (the callback), :mod:`.setup` (argument, analyzer and folder
checks), :mod:`.drawing` (the picture).
"""

from __future__ import annotations

from .monitor import SCALARS, RelevanceMonitor

__all__ = ["SCALARS", "RelevanceMonitor"]
