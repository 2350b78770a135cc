"""A complete, resumable training run of a preset's flow: `train`, and the pieces it is made of.

`train(data)` is what `tfp-realnvp train`, `examples/mnist.py`, `examples/glow_mnist.py` and
`examples/cifar10.py` run. It trains the Real NVP or Glow flow of a preset
(`tfp_realnvp.presets`; `flow="glow"` picks the Glow preset of the data). With its defaults it
trains the `"digits"` preset on the embedded 8x8 scikit-learn digits
(20 epochs of 24 steps; 2 to 5 minutes on two CPU cores) and writes, under
`runs/<data>/`:

* `samples/epoch_XXX.png`: a grid of samples after each epoch (fixed base-distribution seed,
  so the grids show how one set of latents evolves);
* `metrics.json`: the resolved configuration (the preset, the kind of flow `flow_kind` and the
  flow's keyword arguments `flow`, ...), the per-epoch history (`loss`, `bits_per_dim`,
  `val_loss`, `val_bits_per_dim`, seconds, and the `attempt` that ran the epoch), `best_epoch`
  (lowest validation bits/dim), the `state` of extra callbacks (see below) and the final
  `test_bits_per_dim`;
* `bits_per_dim.png`: training and validation bits/dim per epoch;
* `model.keras`: the `FlowModel` with the weights of the best epoch (`keras.models.load_model`
  after `import tfp_realnvp`);
* `logs/`: TensorBoard logs; `backup/`: the training state while the run is unfinished.

The best epoch: after the last epoch the weights of the epoch with the lowest validation
bits/dim are restored, and those are evaluated on the test split and saved. The validation
images are held out of the training split, so the test images play no part in choosing the
epoch (see `presets` for the figures of the default run).

Resuming: a run that is interrupted (crash, kill, preemption) continues after its last
finished epoch when `train` is called again with the same `output_dir`: `backup/` holds the
weights and optimizer state of the last two finished epochs (`latest.weights.h5` and its
previous copy `.bkp`), `training_metadata.json` (and `.bkp`) with the epoch, the SHA-256 of
the matching weights, the configuration, the epoch history and the best epoch so far, and
`best-epoch-XXX.weights.h5`. Every file is written atomically (`tfp_realnvp._files`), and a
damaged file (truncated, overwritten, missing) is recovered from the other copy; when no sound
copy is left, the error is one line naming the file and saying how to start afresh. The
epoch history is kept in the backup, so a damaged or deleted `metrics.json` loses nothing.
The backup is deleted once the model, metrics and plots of a finished run are written.

The optimizer (`make_optimizer`): Adam (`tfp_realnvp.FusedAdam`) with the preset's learning
rate, optionally warmed up (`warmup_steps`), with a global gradient-norm clip (`clipnorm`) and
an exponential moving average of the weights (`ema`), all off by default. With `ema`, the run
uses the averaged weights wherever it judges or keeps the model: Keras's `SwapEMAWeights` swaps
them in around every validation (so the validation bits/dim and the best epoch are the
average's), the sample grids and the best epoch's weights are those of the average
(`averaged_weights`), and at the end of training Keras puts the average in the model for good
(`finalize_variable_values`), so the test bits/dim and `model.keras` are the average's. The
backup holds the raw weights and the optimizer's variables, the averages included, so a resumed
run continues the same average; `ema` and `warmup_steps` must be those of the interrupted run,
since they change the optimizer's variables. The batch-norm moving statistics are not averaged
(Keras averages the trainable weights only).

Extending a run: `callbacks` are extra Keras callbacks (e.g. one that stops training when a
time budget is spent), and `state` is a small JSON dict that they may keep in the run record:
it is saved with every backup and in `metrics.json`, and when the run resumes it is updated in
place with the interrupted run's state before training starts, so that a callback holding the
same dict continues where it stopped. `validation_freq=0` turns the per-epoch validation off
(for data whose evaluation is too slow to repeat every epoch): no `val_` metrics, no best
epoch, and the final model is the last epoch's.

Splits (`ImageSource.training_splits`): the run validates on `HOLDOUT_FRACTION` (10 %) of the
training split, a fixed random subset (`train[90%:]`), and trains on the rest (`train[:90%]`);
it tests on the data set's test split. Data with a training split only (a plain folder of
images, an `.npz` holding `x` or `x_train` alone) hold out another 10 % for the test:
`train[:80%]`, `train[80%:90%]`, `train[90%:]`. Without validation (`validation_freq=0`) the
run trains on the whole training split (less the test slice, if any). `metrics.json` names the
three splits. The validation curve uses fresh dequantization noise every epoch; the final
`test_bits_per_dim` is computed on the full test split dequantized once with the fixed seed
`TEST_NOISE_SEED`, so that two models are compared on the same noise. Like the paper's numbers
it is the bits/dim of the dequantized data, an upper bound on those of the 8-bit data.

With `dequantization="variational"` the model owns a `tfp_realnvp.VariationalDequantizer`: the
pipelines hand it the quantized images `k / 256` (`load_images(..., dequantize=False)`), it
draws the noise from its learned `q(u | k)`, and every bits/dim of the run (training,
validation, test) is the variational bound `-E_q[log p((k + u) / 256) - log q(u | k)]`
converted to bits per dimension of the 8-bit data (Flow++), again an upper bound on them; the
test figure draws the noise once per test batch with the fixed seed `[TEST_NOISE_SEED, batch
index]`.
"""

import contextlib
import dataclasses
import hashlib
import math
import os
import pathlib
import shutil
import sys
import tempfile
import time

import keras
import tensorflow as tf

from tfp_realnvp import _files
from tfp_realnvp import errors
from tfp_realnvp import data as data_lib
from tfp_realnvp import model as model_lib
from tfp_realnvp import optimizers
from tfp_realnvp import plotting
from tfp_realnvp import presets
from tfp_realnvp.errors import RunError

__all__ = ["MONITOR", "TEST_NOISE_SEED", "Backup", "EpochCheckpoint", "RunError", "RunFolder",
           "RunRecord", "RunResult", "SampleGrid", "averaged_weights", "evaluate_test",
           "finite_or_none", "make_optimizer", "save_model", "train"]

# Seed of the dequantization noise of the test split when computing test bits/dim.
TEST_NOISE_SEED = 0
# Settings of a run that an interrupted run must share with the command that resumes it (`ema`
# and `warmup_steps` change the optimizer's variables, which the backup holds; a variational
# dequantizer adds its own).
_ARCHITECTURE = ("data", "event_shape", "preset", "flow_kind", "flow", "mixed_precision", "ema",
                 "warmup_steps", "dequantization")
# The validation metric whose lowest value picks the best epoch.
MONITOR = "val_bits_per_dim"


def finite_or_none(value):
  """`float(value)`, or `None` if it is not finite (JSON has no NaN)."""
  value = float(value)
  return value if math.isfinite(value) else None


def save_model(model, path):
  """`model.save(path)` atomically: a killed process leaves the old file or the new one."""
  with _files.atomic_path(path) as temporary:
    model.save(temporary)
  return pathlib.Path(path)


def make_optimizer(settings):
  """The Adam optimizer of a preset's training settings (`tfp_realnvp.configs.TrainingSettings`).

  It is `tfp_realnvp.FusedAdam`: Keras's Adam with one kernel per variable update, which makes
  the first (traced) training step about twice as fast.

  * `learning_rate`, after `warmup_steps` steps of linear warm-up from 0 when `warmup_steps` is
    not 0: Keras's `CosineDecay` schedule with `warmup_target`, held constant after the warm-up
    (`alpha=1`), so that the optimizer (and a `.keras` file) stays serializable;
  * `clipnorm`: Keras's `global_clipnorm`, which scales all the gradients together so that their
    global norm is at most `clipnorm` (not Keras's `clipnorm`, which clips each variable's
    gradient on its own and changes the direction of the update);
  * `ema`: Keras's exponential moving average of the trainable weights (`use_ema=True`,
    `ema_momentum=ema`), kept in the optimizer's variables; see `averaged_weights` and `train`
    for where the averaged weights are used.
  """
  learning_rate = settings.learning_rate
  if settings.warmup_steps:
    learning_rate = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=1, alpha=1.0, warmup_target=settings.learning_rate,
        warmup_steps=settings.warmup_steps)
  return optimizers.FusedAdam(learning_rate, global_clipnorm=settings.clipnorm,
                              use_ema=settings.ema > 0, ema_momentum=settings.ema)


@contextlib.contextmanager
def averaged_weights(model):
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


def _is_chief(strategy):
  """`(is_chief, task_id)` of this process in a multi-worker cluster (`(True, 0)` otherwise)."""
  resolver = getattr(strategy, "cluster_resolver", None)
  task_type = getattr(resolver, "task_type", None)
  if resolver is None or task_type is None:
    return True, 0
  task_id = int(resolver.task_id or 0)
  if task_type == "chief":
    return True, task_id
  if task_type == "worker" and task_id == 0:
    return "chief" not in resolver.cluster_spec().as_dict(), task_id
  return False, task_id


@dataclasses.dataclass(frozen=True)
class RunFolder:
  """Where one process of a run writes.

  The chief writes the results into `root` and its training state into `root/backup`; the other
  workers of a cluster write theirs to a scratch folder (deleted at the end) and keep their
  state in `root/backup-worker-N`.
  """

  root: pathlib.Path
  files: pathlib.Path
  backup: pathlib.Path
  scratch: pathlib.Path = None

  @classmethod
  def for_process(cls, root, strategy):
    """The folders of this process (chief or worker of `strategy`) for a run in `root`."""
    root = pathlib.Path(os.fspath(root))
    is_chief, task_id = _is_chief(strategy)
    if is_chief:
      return cls(root, root, root / "backup")
    scratch = pathlib.Path(tempfile.mkdtemp(prefix=f"tfp-realnvp-worker-{task_id}-"))
    return cls(root, scratch, root / f"backup-worker-{task_id}", scratch)

  @property
  def is_chief(self):
    return self.scratch is None

  @property
  def metrics(self):
    return self.files / "metrics.json"

  @property
  def model(self):
    return self.files / "model.keras"

  @property
  def plot(self):
    return self.files / "bits_per_dim.png"

  @property
  def samples(self):
    return self.files / "samples"

  @property
  def logs(self):
    return self.files / "logs"

  def sample_grids(self):
    """The sample grids written so far, in epoch order."""
    return sorted(self.samples.glob("epoch_*.png"))

  def remove_damaged_grids(self):
    """Deletes the sample grids that do not decode (damaged by hand); returns their names."""
    damaged = [grid for grid in self.sample_grids() if not plotting.is_image(grid)]
    for grid in damaged:
      grid.unlink()
    return [grid.name for grid in damaged]

  def clean_up(self):
    """Deletes the training state (and a worker's scratch folder) of a finished run."""
    shutil.rmtree(self.backup, ignore_errors=True)
    if self.scratch is not None:
      shutil.rmtree(self.scratch, ignore_errors=True)


def _sha256(path):
  digest = hashlib.sha256()
  with open(path, "rb") as stream:
    for block in iter(lambda: stream.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


class Backup:
  """The training state of an unfinished run in one folder, written so that it survives a kill.

  Files: `latest.weights.h5` (weights and optimizer state after the last finished epoch) and
  its previous version `latest.weights.h5.bkp`; `training_metadata.json` and its previous
  version `.bkp`, each naming its epoch and the SHA-256 of its weights; and the weights of the
  best epoch so far, `best-epoch-XXX.weights.h5`. The names are those of
  `keras.callbacks.BackupAndRestore(double_checkpoint=True)`, which this replaces because its
  writes are not atomic and it recovers only from weights that raise `OSError`, not from a
  damaged JSON file. A save writes the new weights to a temporary file, then moves the current
  files to `.bkp` and the new ones in place, so that at every instant one metadata file and
  one weights file with the same checksum are sound.
  """

  WEIGHTS = "latest.weights.h5"
  METADATA = "training_metadata.json"
  PREVIOUS = ".bkp"

  def __init__(self, folder):
    self.folder = pathlib.Path(os.fspath(folder))

  def _path(self, name, previous=False):
    return self.folder / (name + (self.PREVIOUS if previous else ""))

  def _fail(self, path, problem):
    raise RunError(f"{path} {problem}; the interrupted run cannot resume: delete {self.folder} "
                   "to start afresh (or pick another output folder).")

  def exists(self):
    """Whether the folder holds the state of an interrupted run."""
    return any(self._path(name, previous).exists() for name in (self.WEIGHTS, self.METADATA)
               for previous in (False, True))

  def restore(self, model, check=None):
    """Loads the newest sound state into `model`; returns its metadata (`None` if none).

    A state is sound when its metadata parses and a weights file (and the best epoch's
    weights) have the checksums it records; the newest sound one of the two is restored.

    Args:
      model: the compiled `FlowModel` that receives the weights and optimizer state.
      check: called with the metadata of the sound state before its weights are loaded, to
        refuse (by raising) the state of another run, whose weights would not fit `model`.

    Raises:
      RunError: if neither state is sound, naming the first damaged file.
    """
    if not self.exists():
      return None
    damaged = []
    for previous in (False, True):
      path = self._path(self.METADATA, previous)
      try:
        metadata = _files.read_json(path)
        expected = metadata["weights_sha256"]
      except FileNotFoundError:
        continue
      except (_files.DamagedFileError, KeyError, TypeError):
        damaged.append(path)
        continue
      sound = [weights for weights in (self._path(self.WEIGHTS), self._path(self.WEIGHTS, True))
               if weights.exists() and _sha256(weights) == expected]
      if not sound:
        damaged.append(self._path(self.WEIGHTS))
      elif not self._best_is_sound(metadata.get("best")):
        damaged.append(self._best_path(metadata["best"]["epoch"]))
      else:
        if check is not None:
          check(metadata)
        if sound[0] != self._path(self.WEIGHTS):  # Keras reads only `.weights.h5` names.
          with _files.atomic_path(self._path(self.WEIGHTS)) as temporary:
            shutil.copyfile(sound[0], temporary)
        if not model.optimizer.built:  # Its variables are part of the weights file.
          model.optimizer.build(model.trainable_variables)
        model.load_weights(self._path(self.WEIGHTS))
        return metadata
    if not damaged:
      self._fail(self._path(self.METADATA), "is missing")
    self._fail(damaged[0], "is damaged or missing, and has no sound copy")

  def _best_path(self, epoch):
    return self.folder / f"best-epoch-{epoch:03d}.weights.h5"

  def _best_is_sound(self, best):
    if best is None:
      return True
    path = self._best_path(best["epoch"])
    return path.exists() and _sha256(path) == best["sha256"]

  def save_best(self, model, epoch):
    """Writes the weights of `epoch` as the best ones; returns their SHA-256."""
    path = self._best_path(epoch)
    with _files.atomic_path(path) as temporary:
      model.save_weights(temporary)
    return _sha256(path)

  def load_best(self, model, best):
    """Loads the best weights recorded in the metadata's `best` entry."""
    if not self._best_is_sound(best):
      self._fail(self._best_path(best["epoch"]), "(the weights of the best epoch) is damaged")
    model.load_weights(self._best_path(best["epoch"]))

  def save(self, model, metadata):
    """Saves the weights and `metadata` (a dict with `"epoch"`) as the newest state."""
    staged = self.folder / "next.weights.h5"
    with _files.atomic_path(staged) as temporary:
      model.save_weights(temporary)
    metadata = dict(metadata, weights_sha256=_sha256(staged))
    for name in (self.WEIGHTS, self.METADATA):
      if self._path(name).exists():
        os.replace(self._path(name), self._path(name, previous=True))
    os.replace(staged, self._path(self.WEIGHTS))
    _files.write_json(self._path(self.METADATA), metadata)
    self._delete_stale_best()

  def _delete_stale_best(self):
    """Deletes the best weights that neither copy of the metadata refers to any more."""
    keep = set()
    for previous in (False, True):
      try:
        best = _files.read_json(self._path(self.METADATA, previous)).get("best")
      except (OSError, ValueError):
        continue
      if best is not None:
        keep.add(self._best_path(best["epoch"]))
    for path in self.folder.glob("best-epoch-*.weights.h5"):
      if path not in keep:
        path.unlink()


@dataclasses.dataclass
class RunRecord:
  """What `metrics.json` says about a run: its configuration, epochs, best epoch and results.

  `state` is the JSON dict that the run's callbacks keep (see `train`): saved with every
  backup, and restored in place by `resume_from`.
  """

  config: dict
  attempt: int = 1
  history: list = dataclasses.field(default_factory=list)
  best: dict = None
  results: dict = dataclasses.field(default_factory=dict)
  state: dict = dataclasses.field(default_factory=dict)

  @property
  def epochs_done(self):
    return self.history[-1]["epoch"] if self.history else 0

  def check_resumable(self, metadata, backup_folder):
    """Raises unless the interrupted run whose backup metadata is `metadata` is this run's.

    Raises:
      RunError: if the interrupted run was for other data, another preset, kind of flow or
        architecture.
    """
    previous = metadata.get("config", {})
    changed = [key for key in _ARCHITECTURE
               if key in previous and previous[key] != self.config[key]]
    if changed:
      # The interrupted run's values of the one-value settings (not the architecture's dict):
      # a setting whose default changed since that run is then given back explicitly.
      values = ", ".join(f"{key}={previous[key]!r}" for key in changed
                         if not isinstance(previous[key], dict))
      had = f" (it had {values})" if values else ""
      raise RunError(
          f"{backup_folder} holds an interrupted run with a different {', '.join(changed)}{had}; "
          f"run its command again to resume it, or delete {backup_folder} (or pick another "
          "output folder) to start a new run.")

  def resume_from(self, metadata, backup_folder):
    """Continues the interrupted run whose backup metadata is `metadata`.

    Raises:
      RunError: if the interrupted run was another (`check_resumable`).
    """
    self.check_resumable(metadata, backup_folder)
    self.attempt = int(metadata.get("attempt", 0)) + 1
    self.history = [r for r in metadata.get("history", []) if r["epoch"] <= metadata["epoch"]]
    self.best = metadata.get("best")
    self.state.clear()  # In place: callbacks hold this dict.
    self.state.update(metadata.get("state", {}))

  def add_epoch(self, epoch, logs, seconds):
    """Records finished epoch `epoch` (1-based); returns whether it is the best so far."""
    record = {"epoch": epoch}
    record.update({key: finite_or_none(value) for key, value in (logs or {}).items()
                   if isinstance(value, (int, float)) or hasattr(value, "__float__")})
    record["seconds"] = round(seconds, 3)
    record["attempt"] = self.attempt
    self.history = [r for r in self.history if r["epoch"] < epoch] + [record]
    value = record.get(MONITOR)
    return value is not None and (self.best is None or value < self.best[MONITOR])

  def metadata(self):
    """The part of the record kept with each backup (everything a resumed run needs)."""
    return {"epoch": self.epochs_done, "attempt": self.attempt, "config": self.config,
            "history": self.history, "best": self.best, "state": self.state}

  def as_json(self):
    status = "finished" if self.results else "running"
    best = self.best or {}
    return {"status": status, "attempt": self.attempt, "config": self.config,
            "history": self.history, "best_epoch": best.get("epoch"),
            f"best_{MONITOR}": best.get(MONITOR), "state": self.state, **self.results}

  def write(self, path):
    _files.write_json(path, self.as_json())


class EpochCheckpoint(keras.callbacks.Callback):
  """After each epoch: records it, keeps the best weights, backs up the state, writes metrics.

  The best weights are the averaged ones (`averaged_weights`) when the optimizer keeps an EMA;
  the backup holds the raw weights and the optimizer's variables, the averages included.
  """

  def __init__(self, record, backup, metrics_path):
    super().__init__()
    self.record, self.backup, self.metrics_path = record, backup, metrics_path

  def on_epoch_begin(self, epoch, logs=None):
    del epoch, logs
    self._start = time.time()

  def on_epoch_end(self, epoch, logs=None):
    if self.record.add_epoch(epoch + 1, logs, time.time() - self._start):
      with averaged_weights(self.model):
        sha = self.backup.save_best(self.model, epoch + 1)
      self.record.best = {"epoch": epoch + 1, MONITOR: self.record.history[-1][MONITOR],
                          "sha256": sha}
    self.backup.save(self.model, self.record.metadata())
    self.record.write(self.metrics_path)


class SampleGrid(keras.callbacks.Callback):
  """Saves `epoch_XXX.png` after each epoch, drawn from the same base-distribution seed.

  With an EMA optimizer the samples are those of the averaged weights (`averaged_weights`).
  """

  def __init__(self, folder, count, seed):
    super().__init__()
    self.folder, self.count, self.seed = pathlib.Path(folder), count, seed

  def on_epoch_end(self, epoch, logs=None):
    del logs
    with averaged_weights(self.model):
      images = self.model.sample(self.count, seed=self.seed)
    plotting.save_image_grid(images.numpy(), self.folder / f"epoch_{epoch + 1:03d}.png")


def evaluate_test(model, source, split, batch_size=64, drop_remainder=False,
                  seed=TEST_NOISE_SEED, num_samples=1):
  """Bits/dim of `model` on a whole split of `source`, dequantized with the fixed `seed`.

  For a model with a dequantizer, the mean over the images of `model.bits_per_dim(images,
  num_samples=num_samples, seed=[seed, batch index])`: the variational bound (or, for
  `num_samples > 1`, the importance-weighted bound) in bits per dimension of the 8-bit data.

  Args:
    model: a `FlowModel`.
    source: a `tfp_realnvp.data.ImageSource`.
    split: the split to evaluate, e.g. the last split of `source.training_splits()`.
    batch_size: images per evaluation batch.
    drop_remainder: drop a last, smaller batch (static shapes on TPUs).
    seed: seed of the noise (uniform noise of the pipeline, or the dequantizer's).
    num_samples: importance samples per image (a model with a dequantizer only).

  Returns:
    `(bits_per_dim or None if not finite, number of images)`.

  Raises:
    ValueError: `num_samples > 1` for a model without a dequantizer.
  """
  uniform = model.dequantizer is None
  if uniform and num_samples != 1:
    raise errors.InvalidValueError(
        "Importance samples need a model with a variational dequantizer; this "
        "one was trained on uniformly dequantized data.")
  test_ds = data_lib.load_images(source, split, batch_size=batch_size, shuffle=False,
                                 seed=seed, drop_remainder=drop_remainder, dequantize=uniform)
  if uniform:
    results = model.evaluate(test_ds, return_dict=True, verbose=0)
    return finite_or_none(results["bits_per_dim"]), source.num_examples(split)
  bits = [model.bits_per_dim(images, num_samples=num_samples, seed=tf.constant([seed, index]))
          for index, images in enumerate(test_ds)]
  return finite_or_none(float(tf.reduce_mean(tf.concat(bits, axis=0)))), source.num_examples(split)


@dataclasses.dataclass
class RunResult:
  """What `train` returns.

  Attributes:
    model: the trained `FlowModel` (weights of the best epoch).
    folder: the `RunFolder` of this process.
    metrics: the content of `metrics.json`.
    resumed_at: epochs that were finished before this call (0 for a new run).
  """

  model: object
  folder: RunFolder
  metrics: dict
  resumed_at: int

  @property
  def test_bits_per_dim(self):
    return self.metrics["test_bits_per_dim"]

  @property
  def best_epoch(self):
    return self.metrics["best_epoch"]


def _fit_verbosity(verbose):
  """Keras's progress bar on a terminal, one line per epoch in a log file (`"auto"`)."""
  if verbose != "auto":
    return verbose
  return 1 if sys.stdout.isatty() else 2


def train(data="digits", output_dir=None, preset=None, *, flow=None, steps_per_epoch=None, seed=0,
          strategy=None, mixed_precision=None, remat=None, jit_compile="auto", sample_count=64,
          data_dir=None, download=False, verbose="auto", callbacks=(), validation_freq=1,
          state=None, **settings):
  """Trains (or resumes) a preset's Real NVP or Glow flow on `data`, keeping the best epoch.

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
    mixed_precision: `None`, `"bfloat16"` or `"float16"` (Keras mixed-precision policy of the
      networks; densities stay float32).
    remat: `None`, `"recompute"` or `"reversible"`: how the backward pass gets the flow's
      activations (`FlowModel(remat=...)`, `tfp_realnvp.remat`): less training memory, the
      same gradients. Not part of the architecture: a run may resume in another mode.
    jit_compile: `"auto"`, `True` or `False`, as for `keras.Model.compile`.
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
    **settings: overrides of the preset, any of `presets.all_settings()` that its flow takes
      (`epochs`, `batch_size`, `learning_rate`, `ema`, `warmup_steps`, `clipnorm`; Real NVP:
      `num_scales`, `num_filters`, `num_blocks`, `batch_norm`, `coupling`; Glow: `num_levels`,
      `num_steps`, `num_filters`, `coupling_network`, `coupling`). The optimizer is
      `make_optimizer(preset.training)`.

  Returns:
    A `RunResult`.

  Raises:
    RunError: for a backup of another run or a damaged one without a sound copy.
    ValueError: for unknown data, presets, flows or settings, a preset of another flow than
      `flow`, a setting of another flow than the preset's, a shape the preset cannot squeeze,
      or a negative `validation_freq`.
  """
  if not isinstance(validation_freq, int) or validation_freq < 0:
    raise errors.InvalidValueError(
        f"validation_freq must be a non-negative integer, got {validation_freq!r}.")
  strategy = strategy or tf.distribute.get_strategy()
  say = print if verbose != 0 else (lambda *args, **kwargs: None)
  source = data_lib.get_source(data, data_dir=data_dir, download=download)
  shape = source.shape
  train_split, validation_split, test_split = source.training_splits(
      validation=validation_freq > 0)
  preset = presets.resolve(preset, shape, source=source.name, flow=flow, **settings)
  recipe = preset.training
  folder = RunFolder.for_process(output_dir or pathlib.Path("runs") / source.run_name, strategy)
  record = RunRecord(config={
      "data": os.fspath(data), "train_split": train_split,
      "validation_split": validation_split, "test_split": test_split,
      "preset": preset.name, "event_shape": list(shape), "flow_kind": preset.flow.kind,
      "flow": preset.flow.flow_kwargs(), "mixed_precision": mixed_precision or "none",
      "remat": remat or "none", "epochs": recipe.epochs, "batch_size": recipe.batch_size,
      "learning_rate": recipe.learning_rate, "ema": recipe.ema,
      "warmup_steps": recipe.warmup_steps, "clipnorm": recipe.clipnorm,
      "dequantization": recipe.dequantization, "steps_per_epoch": steps_per_epoch,
      "num_replicas": strategy.num_replicas_in_sync, "jit_compile": jit_compile, "seed": seed,
      "validation_freq": validation_freq}, state={} if state is None else state)

  tpu = isinstance(strategy, tf.distribute.TPUStrategy)
  keras.utils.set_random_seed(seed)
  # A variational dequantizer takes the quantized images and draws the noise itself.
  uniform = recipe.dequantization == "uniform"
  train_ds = data_lib.load_images(
      source, train_split, batch_size=recipe.batch_size, shuffle=True, seed=seed,
      repeat=steps_per_epoch is not None, drop_remainder=tpu, dequantize=uniform)
  validation_ds = None
  if validation_freq:
    validation_ds = data_lib.load_images(source, validation_split, batch_size=recipe.batch_size,
                                         shuffle=False, seed=seed + 1, drop_remainder=tpu,
                                         dequantize=uniform)
  # The model's own dtype policy rather than a new global one: a run leaves its caller's
  # process as it found it.
  precision = (f"mixed_{mixed_precision}" if mixed_precision
               else keras.mixed_precision.global_policy().name)
  with strategy.scope():
    model = model_lib.FlowModel(
        presets.build_flow(preset, shape, dtype=precision),
        dequantizer=presets.build_dequantizer(preset, shape, dtype=precision), remat=remat)
    optimizer = make_optimizer(preset.training)
    if mixed_precision == "float16":
      optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(optimizer=optimizer, jit_compile=jit_compile)
    backup = Backup(folder.backup)
    metadata = backup.restore(
        model, check=lambda found: record.check_resumable(found, folder.backup))
  if metadata is not None:
    record.resume_from(metadata, folder.backup)
    say(f"Resuming from {folder.backup}: {record.epochs_done} of {recipe.epochs} epochs "
        "finished.")
  else:
    for old in folder.sample_grids():
      old.unlink()
  record.write(folder.metrics)

  # With EMA, Keras swaps the averaged weights in around each validation, and puts them in the
  # model for good at the end of `fit` (`finalize_variable_values`).
  swap = [keras.callbacks.SwapEMAWeights()] if recipe.ema and validation_freq else []
  run_callbacks = [*swap, SampleGrid(folder.samples, sample_count, seed=seed + 2),
                   keras.callbacks.TensorBoard(os.fspath(folder.logs)), *callbacks,
                   EpochCheckpoint(record, backup, folder.metrics)]
  say(f"Training {preset.title} preset {preset.name!r} ({preset.describe()}) on "
      f"{os.fspath(data)!r} {shape[0]}x{shape[1]}x{shape[2]} for {recipe.epochs} epochs, "
      f"batch size {recipe.batch_size}, learning rate {recipe.learning_rate:g}"
      f"{_optimizer_settings(recipe)}, "
      f"{precision} networks, "
      f"{'variational dequantization (bits/dim: the variational bound), ' if not uniform else ''}"
      f"{strategy.num_replicas_in_sync} replica(s); output in {folder.root}", flush=True)
  start = time.time()
  model.fit(train_ds, epochs=recipe.epochs, initial_epoch=record.epochs_done,
            steps_per_epoch=steps_per_epoch, validation_data=validation_ds,
            validation_freq=validation_freq or 1, callbacks=run_callbacks, shuffle=False,
            verbose=_fit_verbosity(verbose))
  train_seconds = round(time.time() - start, 3)
  if record.best is not None and record.best["epoch"] != record.epochs_done:
    backup.load_best(model, record.best)
  result = _finish(model, record, folder, source, test_split, preset, train_seconds,
                   resumed_at=0 if metadata is None else metadata["epoch"], tpu=tpu)
  if folder.is_chief:
    _report(result, say)
  return result


def _optimizer_settings(recipe):
  """The warm-up, clipping and averaging that are on, e.g. `" (200 warm-up steps, EMA 0.999)"`."""
  on = [f"{recipe.warmup_steps} warm-up steps" if recipe.warmup_steps else None,
        f"global gradient norm clipped at {recipe.clipnorm:g}" if recipe.clipnorm else None,
        f"EMA {recipe.ema:g}" if recipe.ema else None]
  on = [text for text in on if text]
  return f" ({', '.join(on)})" if on else ""


def _dequantized(config):
  """How the test images were dequantized, for the report."""
  if config.get("dequantization", "uniform") == "uniform":
    return "dequantized"
  return "variational bound, dequantizer noise"


def _report(result, say):
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


def _test_dequantization(recipe):
  """What the test bits/dim of a run are, for `metrics.json`."""
  if recipe.dequantization == "uniform":
    return (f"uniform noise (k + u) / 256 drawn once with the fixed seed {TEST_NOISE_SEED}; "
            "bits/dim of the dequantized data, an upper bound on those of the 8-bit data")
  return (f"variational: noise u ~ q(u | k) of the learned dequantizer, drawn once with the "
          f"fixed seed {TEST_NOISE_SEED}; the variational bound -E_q[log p((k + u) / 256) - "
          "log q(u | k)] in bits/dim, an upper bound on those of the 8-bit data")


def _finish(model, record, folder, source, test_split, preset, train_seconds, resumed_at, tpu):
  """Evaluates the final model on the test split and writes the model, plot and metrics."""
  recipe = preset.training
  test_bpd, num_test = evaluate_test(model, source, test_split, recipe.batch_size,
                                     drop_remainder=tpu)
  save_model(model, folder.model)
  history = {"epoch": [r["epoch"] for r in record.history]}
  for key in ("bits_per_dim", MONITOR):
    values = [r.get(key) for r in record.history]
    if any(value is not None for value in values):  # No validation curve without validation.
      history[key] = values
  plotted = len(history) > 1
  if plotted:
    plotting.save_bits_per_dim_plot(history, folder.plot,
                                    title=f"{preset.title} '{preset.name}' on {source.name}")
  damaged = folder.remove_damaged_grids()
  record.results = {
      "train_seconds_this_attempt": train_seconds, "test_bits_per_dim": test_bpd,
      "test_examples": num_test, "test_split": test_split,
      "test_dequantization": _test_dequantization(recipe),
      "model": folder.model.name, "plot": folder.plot.name if plotted else None,
      "samples": [os.fspath(g.relative_to(folder.files)) for g in folder.sample_grids()],
      "damaged_samples_removed": damaged}
  record.write(folder.metrics)
  folder.clean_up()
  return RunResult(model, folder, record.as_json(), resumed_at)
