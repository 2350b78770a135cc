"""`train`: a complete, resumable run of a preset's flow, and its end-of-run report."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import pathlib
import sys
import time
from typing import Any, Callable, Iterator, Sequence

import keras
import tensorflow as tf

from tfp_realnvp import data as data_lib
from tfp_realnvp import errors
from tfp_realnvp import hardware
from tfp_realnvp import model as model_lib
from tfp_realnvp import plotting
from tfp_realnvp import presets
from tfp_realnvp.training.callbacks import EpochCheckpoint
from tfp_realnvp.training.callbacks import SampleGrid
from tfp_realnvp.training.callbacks import StopOnDivergence
from tfp_realnvp.training.evaluation import TEST_NOISE_SEED
from tfp_realnvp.training.evaluation import dequantization_note
from tfp_realnvp.training.evaluation import evaluate_test
from tfp_realnvp.training.folder import Backup
from tfp_realnvp.training.folder import RunFolder
from tfp_realnvp.training.folder import save_model
from tfp_realnvp.training.lock import FolderLock
from tfp_realnvp.training.optimizer import make_optimizer
from tfp_realnvp.training.optimizer import set_learning_rate
from tfp_realnvp.training.record import MONITOR
from tfp_realnvp.training.record import RunRecord

__all__ = ["MIXED_PRECISIONS", "RunResult", "train"]

MIXED_PRECISIONS = ("auto", None, "bfloat16", "float16")
"""The values of `train`'s `mixed_precision`."""

@dataclasses.dataclass
class RunResult:
  """What `train` returns.

  Attributes:
    model: the trained `FlowModel` (weights of the best epoch).
    folder: the `RunFolder` of this process.
    metrics: the content of `metrics.json`.
    resumed_at: epochs that were finished before this call (0 for a new run).
  """

  model: model_lib.FlowModel
  folder: RunFolder
  metrics: dict[str, Any]
  resumed_at: int

  @property
  def test_bits_per_dim(self) -> float | None:
    """The final test bits/dim (`None` if not finite)."""
    return self.metrics["test_bits_per_dim"]

  @property
  def best_epoch(self) -> int | None:
    """The epoch whose weights the model has (`None` without validation)."""
    return self.metrics["best_epoch"]


@dataclasses.dataclass(frozen=True)
class _Plan:
  """What a run takes from its preset.

  Attributes:
    config: the preset's part of the run's configuration (`metrics.json`'s `config`).
    title: the kind of flow in words, e.g. `"Real NVP"`.
    description: the architecture in words, e.g. `"2 scales, 32 filters, 2 blocks, ..."`.
    build: `build(dtype_policy)` -> `(flow, dequantizer or None, optimizer)`, new.
  """

  config: dict[str, Any]
  title: str
  description: str
  build: Callable[[str], tuple[Any, Any, keras.optimizers.Optimizer]]


def _plan(preset: str | presets.Preset | None, shape: tuple[int, int, int], source_name: str,
          flow: str | None, settings: dict[str, Any], interrupted: dict[str, Any] | None
          ) -> _Plan:
  """Resolves the preset of a run (with its overrides); the one place that reads a preset.

  `interrupted` is the configuration of the run that the folder's backup holds, if any: the
  settings its record leaves out (`FlowConfig.LEGACY`, e.g. Glow's `scan` for a run begun
  before scanned levels existed) take the values they had then, unless `settings` sets them,
  so that its weights fit the rebuilt flow.
  """
  resolved = presets.resolve(preset, shape, source=source_name, flow=flow, **settings)
  if interrupted is not None and interrupted.get("flow_kind") == resolved.flow.kind:
    recorded = interrupted.get("flow", {})
    resolved = resolved.replace(**{
        name: value for name, value in resolved.flow.LEGACY.items()
        if name not in recorded and settings.get(name) is None})
  recipe = resolved.training
  return _Plan(
      config={"preset": resolved.name, "flow_kind": resolved.flow.kind,
              "flow": resolved.flow.flow_kwargs(), "epochs": recipe.epochs,
              "batch_size": recipe.batch_size, "learning_rate": recipe.learning_rate,
              "ema": recipe.ema, "warmup_steps": recipe.warmup_steps, "clipnorm": recipe.clipnorm,
              "dequantization": recipe.dequantization},
      title=resolved.title, description=resolved.describe(),
      build=lambda dtype: (presets.build_flow(resolved, shape, dtype=dtype),
                           presets.build_dequantizer(resolved, shape, dtype=dtype),
                           make_optimizer(recipe)))


def _check_arguments(steps_per_epoch: int | None, sample_count: int, validation_freq: int,
                     mixed_precision: str | None) -> None:
  """Raises `InvalidValueError` for an argument of `train` out of range, before any work."""
  for name, value, minimum in (("steps_per_epoch", steps_per_epoch, 1),
                               ("sample_count", sample_count, 1),
                               ("validation_freq", validation_freq, 0)):
    if value is None and name == "steps_per_epoch":
      continue
    if not isinstance(value, int) or value < minimum:
      kind = "non-negative" if minimum == 0 else "positive"
      optional = "None or " if name == "steps_per_epoch" else ""
      raise errors.InvalidValueError(
          f"{name} must be {optional}a {kind} integer, got {value!r}.")
  if mixed_precision not in MIXED_PRECISIONS:
    raise errors.InvalidValueError(
        f"mixed_precision must be 'auto', None, 'bfloat16' or 'float16', got "
        f"{mixed_precision!r}.")


def _choose_precision(mixed_precision: str | None, strategy: tf.distribute.Strategy,
                      interrupted: dict[str, Any] | None) -> hardware.Choice:
  """The run's `mixed_precision` (`None` for the caller's policy) and why.

  `"auto"` resumes an interrupted run in its own precision, and chooses a new run's for the
  hardware (`hardware.choose_precision`).
  """
  if mixed_precision != "auto":
    return hardware.Choice(mixed_precision or "none", "as asked")
  if interrupted is not None and "mixed_precision" in interrupted:
    return hardware.Choice(interrupted["mixed_precision"], "the interrupted run's")
  choice = hardware.choose_precision(strategy)
  return hardware.Choice("bfloat16" if choice.value == "bfloat16" else "none",
                         f"auto: {choice.reason}")


def _choose_jit_compile(jit_compile: bool | str, strategy: tf.distribute.Strategy
                        ) -> hardware.Choice:
  """The run's `jit_compile` and why: `"auto"` is `hardware.choose_jit_compile`'s."""
  if jit_compile != "auto":
    return hardware.Choice(bool(jit_compile), "as asked")
  choice = hardware.choose_jit_compile(strategy)
  return hardware.Choice(choice.value, f"auto: {choice.reason}")


def _fit_verbosity(verbose: int | str) -> int | str:
  """Keras's progress bar on a terminal, one line per epoch in a log file (`"auto"`)."""
  if verbose != "auto":
    return verbose
  return 1 if sys.stdout.isatty() else 2


def train(data: str | os.PathLike[str] = "digits",
          output_dir: str | os.PathLike[str] | None = None,
          preset: str | presets.Preset | None = None, *, flow: str | None = None,
          steps_per_epoch: int | None = None, seed: int = 0,
          strategy: tf.distribute.Strategy | None = None, mixed_precision: str | None = "auto",
          remat: str | None = None, jit_compile: bool | str = "auto", sample_count: int = 64,
          data_dir: str | os.PathLike[str] | None = None, download: bool = False,
          verbose: int | str = "auto", callbacks: Sequence[keras.callbacks.Callback] = (),
          validation_freq: int = 1, state: dict[str, Any] | None = None,
          **settings: Any) -> RunResult:
  """Trains (or resumes) a preset's Real NVP or Glow flow on `data`, keeping the best epoch.

  What a run writes, how it resumes and which epoch it keeps: the user guide's page "Training
  runs" (`docs/guide/training-runs.md`).

  Args:
    data: a `tfp_realnvp.data.load_images` source (`"digits"`, a TFDS name, an `.npz` file or
      a folder of images).
    output_dir: folder of the run (default `runs/<data>`); a run interrupted there resumes.
    preset: a preset name or `Preset`; `None` picks the data's default (`presets.resolve`).
    flow: `None` (the preset's flow; Real NVP when `preset` is `None`), `"realnvp"` or `"glow"`
      (with `preset=None`, the data's default Glow preset); a named preset must be of this kind.
    steps_per_epoch: cap on the training steps per epoch (default: one pass over the data).
    seed: seed of the initial weights, data order and noise.
    strategy: a `tf.distribute.Strategy` (default: the current one); create it before any
      other TensorFlow work (MultiWorkerMirroredStrategy requires it).
    mixed_precision: the networks' Keras mixed-precision policy (densities stay float32):
      `"auto"` (bfloat16 where the hardware computes it natively, float32 elsewhere:
      `tfp_realnvp.hardware.choose_precision`; an interrupted run resumes in its own),
      `None` (Keras's global policy, float32 unless set), `"bfloat16"` or `"float16"`.
    remat: `None`, `"recompute"` or `"reversible"`: how the backward pass gets the flow's
      activations (`FlowModel(remat=...)`, `tfp_realnvp.remat`): less training memory, the
      same gradients. Not part of the architecture: a run may resume in another mode.
    jit_compile: whether the training step is compiled with XLA: `"auto"` (on TPUs and
      single GPUs, off on CPUs: `tfp_realnvp.hardware.choose_jit_compile`), `True` or
      `False`.
    sample_count: images in each epoch's sample grid.
    data_dir: TensorFlow Datasets data directory.
    download: whether TensorFlow Datasets may download and prepare the data set.
    verbose: `"auto"` (progress bar on a terminal, one line per epoch otherwise), 0, 1 or 2;
      0 also silences this function's own lines.
    callbacks: extra `keras.callbacks.Callback`s, called after the sample grid and TensorBoard
      and before the backup, so that what they change at the end of an epoch (in `state`, or
      in the epoch's logs) is recorded and backed up with that epoch. A callback that stops
      training (`model.stop_training = True`) ends the run: it is finished as if its last
      epoch had been the last one.
    validation_freq: validate every this many epochs (as in `keras.Model.fit`); 0 turns
      validation off: no `val_` metrics, no best epoch, and the final model is the last
      epoch's. With a frequency above 1, the best epoch is the best of the validated ones.
    state: a dict of JSON values that `callbacks` may read and update (default: a new empty
      one, in `RunResult.metrics["state"]`). It is saved with every backup and in
      `metrics.json`, and when the run resumes it is updated in place with the state of the
      interrupted run before training starts.
    **settings: overrides of the preset, any of `configs.all_settings()` that its flow takes
      (`epochs`, `batch_size`, `learning_rate`, `ema`, `warmup_steps`, `clipnorm`,
      `dequantization`; Real NVP: `num_scales`, `num_filters`, `num_blocks`, `batch_norm`,
      `coupling`; Glow: `num_levels`, `num_steps`, `num_filters`, `coupling_network`,
      `coupling`). The optimizer is `make_optimizer(preset)`.

  Returns:
    A `RunResult`.

  Raises:
    RunError: for a backup of another run or a damaged one without a sound copy.
    InvalidValueError: for unknown data, presets, flows or settings, a preset of another flow
      than `flow`, a setting of another flow than the preset's, a shape the preset cannot
      squeeze, an unknown `mixed_precision` or `remat`, or a count out of range
      (`steps_per_epoch`, `sample_count`, `validation_freq`).
    DataError: for a data file or folder that cannot be used.
    FileNotFoundError: for a data path that does not exist.
  """
  _check_arguments(steps_per_epoch, sample_count, validation_freq, mixed_precision)
  strategy = strategy or tf.distribute.get_strategy()
  say: Callable[..., None] = print if verbose != 0 else (lambda *args, **kwargs: None)
  source = data_lib.get_source(data, data_dir=data_dir, download=download)
  shape = source.shape
  train_split, validation_split, test_split = source.training_splits(
      validation=validation_freq > 0)
  folder = RunFolder.for_process(output_dir or pathlib.Path("runs") / source.run_name, strategy)
  peeked = Backup(folder.backup).peek()
  interrupted = None if peeked is None else peeked.get("config")
  plan = _plan(preset, shape, source.name, flow, settings, interrupted)
  precision_choice = _choose_precision(mixed_precision, strategy, interrupted)
  mixed_precision = None if precision_choice.value == "none" else precision_choice.precision
  jit_choice = _choose_jit_compile(jit_compile, strategy)
  with FolderLock(folder.root) if folder.is_chief else contextlib.nullcontext():
    record = RunRecord(config={
        "data": os.fspath(data), "train_split": train_split,
        "validation_split": validation_split, "test_split": test_split,
        "event_shape": list(shape), **plan.config,
        "mixed_precision": precision_choice.value, "precision_choice": precision_choice.reason,
        "remat": remat or "none", "steps_per_epoch": steps_per_epoch,
        "num_replicas": strategy.num_replicas_in_sync, "jit_compile": jit_choice.value,
        "jit_compile_choice": jit_choice.reason, "seed": seed,
        "validation_freq": validation_freq},
        state={} if state is None else state)
    config = record.config

    tpu = isinstance(strategy, tf.distribute.TPUStrategy)
    keras.utils.set_random_seed(seed)
    # A variational dequantizer takes the quantized images and draws the noise itself.
    uniform = config["dequantization"] == "uniform"
    train_ds = data_lib.load_images(
        source, train_split, batch_size=config["batch_size"], shuffle=True, seed=seed,
        repeat=steps_per_epoch is not None, drop_remainder=tpu, dequantize=uniform)
    validation_ds = None
    if validation_split is not None:  # Held out exactly when validation_freq > 0.
      validation_ds = data_lib.load_images(source, validation_split,
                                           batch_size=config["batch_size"], shuffle=False,
                                           seed=seed + 1, drop_remainder=tpu, dequantize=uniform)
    # The model's own dtype policy rather than a new global one: a run leaves its caller's
    # process as it found it.
    precision = (f"mixed_{mixed_precision}" if mixed_precision
                 else keras.mixed_precision.global_policy().name)
    with strategy.scope():
      flow_bijector, dequantizer, optimizer = plan.build(precision)
      model = model_lib.FlowModel(flow_bijector, dequantizer=dequantizer, remat=remat)
      if mixed_precision == "float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
      model.compile(optimizer=optimizer, jit_compile=jit_choice.value)
      backup = Backup(folder.backup)
      metadata = backup.restore(
          model, check=lambda found: record.check_resumable(found, folder.backup))
    if metadata is not None:
      record.resume_from(metadata, folder.backup)
      # The backup holds the interrupted run's learning rate: this command's is the one to use.
      set_learning_rate(model.optimizer, config["learning_rate"])
      say(f"Resuming from {folder.backup}: {record.epochs_done} of {config['epochs']} epochs "
          "finished.")
    else:
      for old in folder.sample_grids():
        old.unlink()
    record.write(folder.metrics)

    # With EMA, Keras swaps the averaged weights in around each validation, and puts them in the
    # model for good at the end of `fit` (`finalize_variable_values`).
    swap = [keras.callbacks.SwapEMAWeights()] if config["ema"] and validation_freq else []
    divergence = StopOnDivergence(record, folder.metrics, _DIVERGENCE_ADVICE.format(**config))
    run_callbacks = [divergence, *swap, SampleGrid(folder.samples, sample_count, seed=seed + 2),
                     keras.callbacks.TensorBoard(os.fspath(folder.logs)), *callbacks,
                     EpochCheckpoint(record, backup, folder.metrics)]
    say(f"Training {plan.title} preset {config['preset']!r} ({plan.description}) on "
        f"{os.fspath(data)!r} {shape[0]}x{shape[1]}x{shape[2]} for {config['epochs']} epochs, "
        f"batch size {config['batch_size']}, learning rate {config['learning_rate']:g}"
        f"{_optimizer_settings(config)}, "
        f"{precision} networks ({precision_choice.reason}), XLA "
        f"{'on' if jit_choice.value else 'off'} ({jit_choice.reason}), "
        f"{'variational dequantization (bits/dim: the variational bound), ' if not uniform else ''}"
        f"{strategy.num_replicas_in_sync} replica(s); output in {folder.root}", flush=True)
    start = time.time()
    with _resumable_when_out_of_space(backup):
      model.fit(train_ds, epochs=config["epochs"], initial_epoch=record.epochs_done,
                steps_per_epoch=steps_per_epoch, validation_data=validation_ds,
                validation_freq=validation_freq or 1, callbacks=run_callbacks, shuffle=False,
                verbose=_fit_verbosity(verbose))
      train_seconds = round(time.time() - start, 3)
      if record.best is not None and record.best["epoch"] != record.epochs_done:
        backup.load_best(model, record.best)
      result = _finish(model, record, folder, source, f"{plan.title} '{config['preset']}'",
                       train_seconds, resumed_at=0 if metadata is None else metadata["epoch"],
                       tpu=tpu)
    if folder.is_chief:
      _report(result, say)
    return result


# What a run stopped at a non-finite loss suggests (`StopOnDivergence`), filled from its config.
_DIVERGENCE_ADVICE = (
    "Run the same command again with a lower learning rate (--learning-rate; it was "
    "{learning_rate:g}) or a clip of the gradients' global norm (--clipnorm); a learning-rate "
    "warm-up (--warmup-steps) needs a new output folder")


@contextlib.contextmanager
def _resumable_when_out_of_space(backup: Backup) -> Iterator[None]:
  """Reports a full disk as an `OutOfSpaceError` that says how to resume.

  The run's own files are written from memory after a free-space check (`Backup`) or through
  `atomic_path`, which both raise `OutOfSpaceError`; TensorFlow's own writes (TensorBoard's
  event files) raise an `OpError` that names the device's error, converted here.
  """
  def hint() -> str:
    done = backup.saved_epoch()
    resume = (f"it resumes after epoch {done}, whose saved state is intact" if done
              else "no epoch was saved yet, so it starts afresh")
    return (f"Free some space (or choose another output folder) and run the same command "
            f"again: {resume}.")

  try:
    yield
  except errors.OutOfSpaceError as error:
    raise errors.OutOfSpaceError(f"{error} {hint()}") from error
  except (tf.errors.OpError, OSError) as error:
    if getattr(error, "errno", None) not in (errno.ENOSPC, errno.EDQUOT) and (
        "No space left on device" not in str(error)):
      raise
    raise errors.OutOfSpaceError(
        f"No space left on the device of the run ({type(error).__name__}: "
        f"{' '.join(str(error).split())[:300]}). {hint()}"
    ) from error


def _optimizer_settings(config: dict[str, Any]) -> str:
  """The warm-up, clipping and averaging that are on, e.g. `" (200 warm-up steps, EMA 0.999)"`."""
  on = [f"{config['warmup_steps']} warm-up steps" if config["warmup_steps"] else None,
        f"global gradient norm clipped at {config['clipnorm']:g}" if config["clipnorm"] else None,
        f"EMA {config['ema']:g}" if config["ema"] else None]
  texts = [text for text in on if text]
  return f" ({', '.join(texts)})" if texts else ""


def _dequantized(config: dict[str, Any]) -> str:
  """How the test images were dequantized, for the report."""
  if config.get("dequantization", "uniform") == "uniform":
    return "dequantized"
  return "variational bound, dequantizer noise"


def _report(result: RunResult, say: Callable[..., None]) -> None:
  """Prints where the results of a finished run are."""
  folder, metrics = result.folder, result.metrics
  bpd = metrics["test_bits_per_dim"]
  bpd_text = "nan" if bpd is None else f"{bpd:.4f}"
  epochs = len(metrics["history"])
  weights = (f"weights of epoch {metrics['best_epoch']}, the best of {epochs} by validation "
             "bits/dim" if metrics["best_epoch"] is not None
             else f"weights of the last of {epochs} epochs, not validated")
  say(f"Test bits/dim: {bpd_text} ({metrics['config']['data']!r} split "
      f"{metrics['test_split']!r}, "
      f"{metrics['test_examples']} images, {_dequantized(metrics['config'])} with fixed seed "
      f"{TEST_NOISE_SEED}; "
      f"{weights})")
  grids = folder.sample_grids()
  if grids:
    say(f"Samples: {grids[-1]} (one grid per epoch in {folder.samples})")
  if metrics["damaged_samples_removed"]:
    say(f"Removed damaged sample grids: {', '.join(metrics['damaged_samples_removed'])}")
  if metrics["plot"]:
    say(f"Bits/dim plot: {folder.plot}")
  say(f"Metrics: {folder.metrics}")
  say(f"Model: {folder.model}")
  if folder.logs.is_dir():
    say(f"TensorBoard: tensorboard --logdir {folder.logs}")


def _finish(model: model_lib.FlowModel, record: RunRecord, folder: RunFolder,
            source: data_lib.ImageSource, title: str, train_seconds: float, resumed_at: int,
            tpu: bool) -> RunResult:
  """Evaluates the final model on the test split and writes the model, plot and metrics."""
  config = record.config
  test_split = config["test_split"]
  test_bpd, num_test = evaluate_test(model, source, test_split, config["batch_size"],
                                     drop_remainder=tpu)
  save_model(model, folder.model)
  history = {"epoch": [r["epoch"] for r in record.history]}
  for key in ("bits_per_dim", MONITOR):
    values = [r.get(key) for r in record.history]
    if any(value is not None for value in values):  # No validation curve without validation.
      history[key] = values
  plotted = len(history) > 1
  if plotted:
    plotting.save_bits_per_dim_plot(history, folder.plot, title=f"{title} on {source.name}")
  damaged = folder.remove_damaged_grids()
  record.results = {
      "train_seconds_this_attempt": train_seconds, "test_bits_per_dim": test_bpd,
      "test_examples": num_test, "test_split": test_split,
      "test_dequantization": dequantization_note(config),
      "model": folder.model.name, "plot": folder.plot.name if plotted else None,
      "samples": [os.fspath(g.relative_to(folder.files)) for g in folder.sample_grids()],
      "damaged_samples_removed": damaged}
  record.write(folder.metrics)
  folder.clean_up()
  return RunResult(model, folder, record.as_json(), resumed_at)
