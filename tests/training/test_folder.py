"""`training.RunFolder` (where each process of a run writes) and the atomic writes of a run's
files; the backups and their recovery are in `test_run_faults.py`."""

import types

import numpy as np
import pytest
import tensorflow as tf

from tfp_realnvp import _files
from tfp_realnvp import plotting
from tfp_realnvp import training


def test_atomic_path_keeps_the_old_file_when_writing_fails(tmp_path):
  path = tmp_path / "sub" / "metrics.json"
  _files.write_json(path, {"a": 1})
  with pytest.raises(RuntimeError):
    with _files.atomic_path(path) as temporary:
      temporary.write_text("{\"a\": ")
      raise RuntimeError("killed")
  assert _files.read_json(path) == {"a": 1}
  assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]  # No temporary left.
  path.write_text("{\"a\": ")
  with pytest.raises(_files.DamagedFileError, match="metrics.json is damaged"):
    _files.read_json(path)




def _strategy(task_type, task_id, cluster):
  """A stand-in for a multi-worker strategy: its cluster resolver and nothing else."""
  resolver = types.SimpleNamespace(task_type=task_type, task_id=task_id,
                                   cluster_spec=lambda: types.SimpleNamespace(
                                       as_dict=lambda: cluster))
  return types.SimpleNamespace(cluster_resolver=resolver)


@pytest.mark.parametrize("strategy", [
    tf.distribute.get_strategy(),
    _strategy("chief", 0, {"chief": ["a:1"], "worker": ["b:1"]}),
    _strategy("worker", 0, {"worker": ["a:1", "b:1"]}),  # No chief: worker 0 is the chief.
])
def test_the_chief_writes_into_the_run_folder(tmp_path, strategy):
  folder = training.RunFolder.for_process(tmp_path / "run", strategy)
  assert folder.is_chief and folder.scratch is None
  assert folder.files == folder.root == tmp_path / "run"
  assert folder.backup == tmp_path / "run" / "backup"
  assert (folder.metrics, folder.model, folder.plot, folder.samples, folder.logs) == tuple(
      tmp_path / "run" / name for name in ("metrics.json", "model.keras", "bits_per_dim.png",
                                           "samples", "logs"))


@pytest.mark.parametrize("task_type, task_id", [("worker", 1), ("worker", 0)])
def test_a_worker_writes_into_a_scratch_folder(tmp_path, task_type, task_id):
  cluster = {"chief": ["a:1"], "worker": ["b:1", "c:1"]}
  folder = training.RunFolder.for_process(tmp_path / "run", _strategy(task_type, task_id, cluster))
  assert not folder.is_chief and folder.scratch.is_dir() and folder.files == folder.scratch
  assert folder.backup == tmp_path / "run" / f"backup-worker-{task_id}"
  folder.backup.mkdir(parents=True)
  folder.clean_up()
  assert not folder.scratch.exists() and not folder.backup.exists()


def test_damaged_sample_grids_are_removed(tmp_path):
  folder = training.RunFolder.for_process(tmp_path, tf.distribute.get_strategy())
  for epoch in (2, 1, 3):
    plotting.save_image_grid(np.full((1, 8, 8, 1), 0.5), folder.samples / f"epoch_{epoch:03d}.png")
  (folder.samples / "epoch_002.png").write_bytes(b"not an image")
  assert [grid.name for grid in folder.sample_grids()] == [
      "epoch_001.png", "epoch_002.png", "epoch_003.png"]
  assert folder.remove_damaged_grids() == ["epoch_002.png"]
  assert [grid.name for grid in folder.sample_grids()] == ["epoch_001.png", "epoch_003.png"]
