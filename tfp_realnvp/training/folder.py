"""The folder of a run (`RunFolder`), its crash-safe training state (`Backup`), `save_model`."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import shutil
import tempfile
from typing import TYPE_CHECKING, Any, Callable, NoReturn

from tfp_realnvp import _files
from tfp_realnvp import _keras_internals
from tfp_realnvp import plotting
from tfp_realnvp.errors import RunError

if TYPE_CHECKING:
  import keras
  import tensorflow as tf

__all__ = ["Backup", "RunFolder", "save_model"]


def save_model(model: keras.Model, path: str | os.PathLike[str]) -> pathlib.Path:
  """`model.save(path)` atomically: a killed process leaves the old file or the new one."""
  with _files.atomic_path(path) as temporary:
    model.save(temporary)
  return pathlib.Path(path)


def _is_chief(strategy: tf.distribute.Strategy) -> tuple[bool, int]:
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

  Attributes:
    root: the run's folder (`output_dir` of `train`).
    files: where this process writes its results: `root` for the chief, else `scratch`.
    backup: the folder of this process's `Backup`.
    scratch: a worker's scratch folder, `None` for the chief.
  """

  root: pathlib.Path
  files: pathlib.Path
  backup: pathlib.Path
  scratch: pathlib.Path | None = None

  @classmethod
  def for_process(cls, root: str | os.PathLike[str],
                  strategy: tf.distribute.Strategy) -> RunFolder:
    """The folders of this process (chief or worker of `strategy`) for a run in `root`."""
    root = pathlib.Path(os.fspath(root))
    is_chief, task_id = _is_chief(strategy)
    if is_chief:
      return cls(root, root, root / "backup")
    scratch = pathlib.Path(tempfile.mkdtemp(prefix=f"tfp-realnvp-worker-{task_id}-"))
    return cls(root, scratch, root / f"backup-worker-{task_id}", scratch)

  @property
  def is_chief(self) -> bool:
    """Whether this process writes the run's results (it has no scratch folder)."""
    return self.scratch is None

  @property
  def metrics(self) -> pathlib.Path:
    """`metrics.json`: the run record."""
    return self.files / "metrics.json"

  @property
  def model(self) -> pathlib.Path:
    """`model.keras`: the final model."""
    return self.files / "model.keras"

  @property
  def plot(self) -> pathlib.Path:
    """`bits_per_dim.png`: the training and validation curves."""
    return self.files / "bits_per_dim.png"

  @property
  def samples(self) -> pathlib.Path:
    """`samples/`: one grid of samples per epoch."""
    return self.files / "samples"

  @property
  def logs(self) -> pathlib.Path:
    """`logs/`: the TensorBoard logs."""
    return self.files / "logs"

  def sample_grids(self) -> list[pathlib.Path]:
    """The sample grids written so far, in epoch order."""
    return sorted(self.samples.glob("epoch_*.png"))

  def remove_damaged_grids(self) -> list[str]:
    """Deletes the sample grids that do not decode (damaged by hand); returns their names."""
    damaged = [grid for grid in self.sample_grids() if not plotting.is_image(grid)]
    for grid in damaged:
      grid.unlink()
    return [grid.name for grid in damaged]

  def clean_up(self) -> None:
    """Deletes the training state (and a worker's scratch folder) of a finished run."""
    shutil.rmtree(self.backup, ignore_errors=True)
    if self.scratch is not None:
      shutil.rmtree(self.scratch, ignore_errors=True)


def _sha256(path: pathlib.Path) -> str:
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
  one weights file with the same checksum are sound. The weights are written from memory after
  a check of the free space (`OutOfSpaceError` when it is short), so that a full disk never
  leaves HDF5 with a file it cannot close.

  Args:
    folder: the backup folder (`RunFolder.backup`); created by the first save.
  """

  WEIGHTS = "latest.weights.h5"
  METADATA = "training_metadata.json"
  PREVIOUS = ".bkp"

  def __init__(self, folder: str | os.PathLike[str]) -> None:
    self.folder = pathlib.Path(os.fspath(folder))

  def _path(self, name: str, previous: bool = False) -> pathlib.Path:
    return self.folder / (name + (self.PREVIOUS if previous else ""))

  def _fail(self, path: pathlib.Path, problem: str) -> NoReturn:
    raise RunError(f"{path} {problem}; the interrupted run cannot resume: delete {self.folder} "
                   "to start afresh (or pick another output folder).")

  def exists(self) -> bool:
    """Whether the folder holds the state of an interrupted run."""
    return any(self._path(name, previous).exists() for name in (self.WEIGHTS, self.METADATA)
               for previous in (False, True))

  def restore(self, model: keras.Model,
              check: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any] | None:
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

  def peek(self) -> dict[str, Any] | None:
    """The metadata of the newest state that reads (its weights unchecked), or `None`."""
    for previous in (False, True):
      try:
        metadata = _files.read_json(self._path(self.METADATA, previous))
        int(metadata["epoch"])
        return metadata
      except (OSError, ValueError, KeyError, TypeError):
        continue
    return None

  def saved_epoch(self) -> int:
    """The epoch of the newest state whose metadata reads (0 if none): where a run resumes."""
    metadata = self.peek()
    return 0 if metadata is None else int(metadata["epoch"])

  def _best_path(self, epoch: int) -> pathlib.Path:
    return self.folder / f"best-epoch-{epoch:03d}.weights.h5"

  def _best_is_sound(self, best: dict[str, Any] | None) -> bool:
    if best is None:
      return True
    path = self._best_path(best["epoch"])
    return path.exists() and _sha256(path) == best["sha256"]

  def save_best(self, model: keras.Model, epoch: int) -> str:
    """Writes the weights of `epoch` as the best ones; returns their SHA-256."""
    data = _keras_internals.weights_file_bytes(model)
    _files.write_bytes(self._best_path(epoch), data)
    return hashlib.sha256(data).hexdigest()

  def load_best(self, model: keras.Model, best: dict[str, Any]) -> None:
    """Loads the best weights recorded in the metadata's `best` entry.

    Raises:
      RunError: if those weights are missing or do not have the recorded checksum.
    """
    if not self._best_is_sound(best):
      self._fail(self._best_path(best["epoch"]), "(the weights of the best epoch) is damaged")
    model.load_weights(self._best_path(best["epoch"]))

  def save(self, model: keras.Model, metadata: dict[str, Any]) -> None:
    """Saves the weights and `metadata` (a dict with `"epoch"`) as the newest state."""
    staged = self.folder / "next.weights.h5"
    data = _keras_internals.weights_file_bytes(model)
    _files.write_bytes(staged, data)
    metadata = dict(metadata, weights_sha256=hashlib.sha256(data).hexdigest())
    for name in (self.WEIGHTS, self.METADATA):
      if self._path(name).exists():
        os.replace(self._path(name), self._path(name, previous=True))
    os.replace(staged, self._path(self.WEIGHTS))
    _files.write_json(self._path(self.METADATA), metadata)
    self._delete_stale_best()

  def _delete_stale_best(self) -> None:
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
