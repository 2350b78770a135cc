"""A run's callbacks (`EpochCheckpoint`, `SampleGrid`, `StopOnDivergence`), `averaged_weights`."""

from __future__ import annotations

import contextlib
import math
import os
import pathlib
import time
import warnings
from typing import Any, Iterator

import keras

from tfp_realnvp import errors
from tfp_realnvp import plotting
from tfp_realnvp.training.folder import Backup
from tfp_realnvp.training.record import MONITOR
from tfp_realnvp.training.record import RunRecord

__all__ = ["EpochCheckpoint", "SampleGrid", "StopOnDivergence", "averaged_weights"]


@contextlib.contextmanager
def averaged_weights(model: keras.Model) -> Iterator[keras.Model]:
  """Holds the optimizer's moving averages in `model`'s weights for the block (EMA on).

  The swap is Keras's own (`keras.callbacks.SwapEMAWeights`, which `train` also uses around
  every validation): the raw weights go into the optimizer's average variables, and back when
  the block ends, even on an error. Without EMA (or without an optimizer) nothing changes.
  """
  optimizer = getattr(model.optimizer, "inner_optimizer", model.optimizer)  # LossScaleOptimizer.
  if not getattr(optimizer, "use_ema", False):
    yield model
    return
  swap = keras.callbacks.SwapEMAWeights()
  swap.set_model(model)
  swap.on_test_begin()
  try:
    yield model
  finally:
    swap.on_test_end()


class EpochCheckpoint(keras.callbacks.Callback):
  """After each epoch: records it, keeps the best weights, backs up the state, writes metrics.

  The best weights are the averaged ones (`averaged_weights`) when the optimizer keeps an EMA;
  the backup holds the raw weights and the optimizer's variables, the averages included.

  Args:
    record: the `RunRecord` of the run, updated in place.
    backup: the `Backup` that receives the best weights and the training state.
    metrics_path: where the record is written after each epoch (`RunFolder.metrics`).
  """

  def __init__(self, record: RunRecord, backup: Backup,
               metrics_path: str | os.PathLike[str]) -> None:
    super().__init__()
    self.record, self.backup, self.metrics_path = record, backup, metrics_path
    self._start = time.time()

  def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
    del epoch, logs
    self._start = time.time()

  def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
    if self.record.add_epoch(epoch + 1, logs, time.time() - self._start):
      with averaged_weights(self.model):
        sha = self.backup.save_best(self.model, epoch + 1)
      self.record.best = {"epoch": epoch + 1, MONITOR: self.record.history[-1][MONITOR],
                          "sha256": sha}
    self.backup.save(self.model, self.record.metadata())
    self.record.write(self.metrics_path)


class SampleGrid(keras.callbacks.Callback):
  """Saves `epoch_XXX.png` after each epoch, drawn from the same base-distribution seed.

  With an EMA optimizer the samples are those of the averaged weights (`averaged_weights`). An
  epoch whose samples overflow (`NonFiniteSamplesError`, as a flow can early in training) gets
  no grid and a warning that says so; training goes on.

  Args:
    folder: the folder of the grids (`RunFolder.samples`).
    count: images per grid.
    seed: seed of the base-distribution samples, the same every epoch.
  """

  def __init__(self, folder: str | os.PathLike[str], count: int, seed: int) -> None:
    super().__init__()
    self.folder, self.count, self.seed = pathlib.Path(folder), count, seed

  def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
    del logs
    try:
      with averaged_weights(self.model):
        images = self.model.sample(self.count, seed=self.seed)
    except errors.NonFiniteSamplesError as error:
      warnings.warn(f"No sample grid for epoch {epoch + 1}: {error}", RuntimeWarning,
                    stacklevel=2)
      return
    plotting.save_image_grid(images.numpy(), self.folder / f"epoch_{epoch + 1:03d}.png")


class StopOnDivergence(keras.callbacks.Callback):
  """Stops training at the first non-finite loss, before the epoch writes anything.

  Keras's `TerminateOnNaN` lets the epoch end, so its backup, sample grid and model would hold
  the non-finite weights. This callback raises `DivergenceError` from the batch whose running
  loss is not finite: `fit` stops there, no later callback of the epoch runs, and the backup of
  the last finished epoch stays as it was, for a corrected command to resume from. The record
  says where (`RunRecord.diverged`, status `"diverged"` in `metrics.json`). The check reads the
  loss that Keras already brings back to the host after each step: nothing runs in the graph.

  Args:
    record: the `RunRecord` of the run.
    metrics_path: where the record is written (`RunFolder.metrics`).
    advice: what the error message suggests, e.g. how to resume with a lower learning rate.
  """

  def __init__(self, record: RunRecord, metrics_path: str | os.PathLike[str],
               advice: str) -> None:
    super().__init__()
    self.record, self.metrics_path, self.advice = record, metrics_path, advice
    self._epoch = 0
    self._steps = 0

  def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
    del logs
    self._epoch = epoch

  def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
    self._steps += 1
    loss = (logs or {}).get("loss")
    if loss is None or math.isfinite(float(loss)):
      return
    self.record.diverged = {"epoch": self._epoch + 1, "step": batch + 1, "loss": str(float(loss)),
                            "steps_this_attempt": self._steps}
    self.record.write(self.metrics_path)
    done = self.record.epochs_done
    kept = (f"the state after epoch {done} is kept, and the run resumes from it" if done
            else "no epoch had finished: the run starts afresh")
    raise errors.DivergenceError(
        f"Training diverged: the loss was {float(loss)} at step {batch + 1} of epoch "
        f"{self._epoch + 1}; stopped without saving that epoch. {self.advice} ({kept}).")
