"""A damaged run folder is recovered from its sound copy, or stopped with one clear line.

One tiny run (`--num-scales 1 --num-filters 4 --num-blocks 1`, 2 epochs of 2 steps on the
embedded digits) is interrupted after its last epoch, before its final evaluation, which leaves
the backup of an unfinished run: epoch 2 in `latest.weights.h5` / `training_metadata.json`,
epoch 1 in their `.bkp` copies. Each test damages a copy of that folder the way a kill, a full
disk or a stray write would (truncated, random bytes, missing) and checks that
`training.Backup.restore` picks the newest sound state, or raises a `RunError` that names the
file and says how to start afresh. Two tests resume the run for real; others resume it with
another preset, kind of flow or architecture, which is refused.
"""

import os
import shutil

import keras
import numpy as np
import pytest

import tfp_realnvp
from tfp_realnvp import presets
from tfp_realnvp import training

from helpers import Interrupted, stop_before_finish

TINY = {"num_scales": 1, "num_filters": 4, "num_blocks": 1}
RUN = dict(data="digits", steps_per_epoch=2, sample_count=4, verbose=0, **TINY)


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
  """The folder of a run killed after 2 finished epochs, before its final evaluation."""
  output = tmp_path_factory.mktemp("faults") / "run"
  with pytest.MonkeyPatch.context() as patch:
    stop_before_finish(patch)
    with pytest.raises(Interrupted):
      training.train(output_dir=output, epochs=2, **RUN)
  return output


@pytest.fixture
def run(interrupted, tmp_path):
  """A fresh copy of the interrupted run's folder."""
  copy = tmp_path / "run"
  shutil.copytree(interrupted, copy)
  return copy


def _damage(path, how):
  if how == "truncated":
    path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
  elif how == "random":
    path.write_bytes(np.random.default_rng(0).bytes(max(64, path.stat().st_size)))
  else:
    path.unlink()


def _restore(run):
  model = tfp_realnvp.FlowModel(presets.build_flow("digits", (8, 8, 1), **TINY))
  model.compile(optimizer=keras.optimizers.Adam(1e-3))
  return training.Backup(run / "backup").restore(model)


def test_the_interrupted_run_has_two_sound_states(run):
  names = sorted(os.listdir(run / "backup"))
  assert {"latest.weights.h5", "latest.weights.h5.bkp", "training_metadata.json",
          "training_metadata.json.bkp"} <= set(names), names
  assert not [name for name in names if name.startswith(".")]  # No temporary files left.
  metadata = _restore(run)
  assert metadata["epoch"] == 2 and [r["epoch"] for r in metadata["history"]] == [1, 2]
  # The tiny flow improves in both epochs: each state has its own best weights.
  assert metadata["best"]["epoch"] == 2
  assert {"best-epoch-001.weights.h5", "best-epoch-002.weights.h5"} <= set(names)


@pytest.mark.parametrize("how", ["truncated", "random", "missing"])
@pytest.mark.parametrize("name", ["training_metadata.json", "latest.weights.h5"])
def test_a_damaged_file_is_recovered_from_its_copy(run, name, how):
  _damage(run / "backup" / name, how)
  metadata = _restore(run)
  assert metadata["epoch"] == 1 and [r["epoch"] for r in metadata["history"]] == [1]


@pytest.mark.parametrize("how", ["truncated", "random", "missing"])
@pytest.mark.parametrize("name", ["training_metadata.json", "latest.weights.h5"])
def test_without_a_sound_copy_the_error_is_one_line(run, name, how):
  for suffix in ("", ".bkp"):
    _damage(run / "backup" / (name + suffix), how)
  with pytest.raises(training.RunError) as error:
    _restore(run)
  message = str(error.value)
  assert "\n" not in message
  assert f"{run / 'backup'}" in message and "delete" in message and "start afresh" in message
  assert name in message


def test_damaged_best_weights(run):
  """The newest state's best weights damaged: the previous state; both: one line."""
  both = run.with_name("both")
  shutil.copytree(run, both)
  _damage(run / "backup" / "best-epoch-002.weights.h5", "truncated")
  assert _restore(run)["epoch"] == 1
  for epoch in (1, 2):
    _damage(both / "backup" / f"best-epoch-00{epoch}.weights.h5", "random")
  with pytest.raises(training.RunError,
                     match="best-epoch-002.weights.h5 is damaged or missing.*delete"):
    _restore(both)


def test_resume_after_a_damaged_metadata_file_keeps_the_history(run, capsys):
  _damage(run / "backup" / "training_metadata.json", "truncated")
  result = training.train(output_dir=run, epochs=3, **dict(RUN, verbose=1))
  assert "Resuming from" in capsys.readouterr().out
  history = result.metrics["history"]
  assert [r["epoch"] for r in history] == [1, 2, 3]
  assert [r["attempt"] for r in history] == [1, 2, 2]  # Epoch 2 is trained again.
  assert result.metrics["status"] == "finished" and result.resumed_at == 1
  assert not (run / "backup").exists()


def test_resume_after_damaged_metrics_and_samples(run):
  _damage(run / "metrics.json", "random")
  _damage(run / "samples" / "epoch_001.png", "truncated")
  result = training.train(output_dir=run, epochs=3, **RUN)
  metrics = result.metrics
  assert [r["epoch"] for r in metrics["history"]] == [1, 2, 3]
  assert [r["attempt"] for r in metrics["history"]] == [1, 1, 2]
  assert metrics["damaged_samples_removed"] == ["epoch_001.png"]
  assert metrics["samples"] == ["samples/epoch_002.png", "samples/epoch_003.png"]
  best = min(metrics["history"], key=lambda r: r["val_bits_per_dim"])["epoch"]
  assert metrics["best_epoch"] == best
  assert keras.models.load_model(run / "model.keras").event_shape == (8, 8, 1)


@pytest.mark.parametrize("other, changed", [
    ({"flow": "glow", "num_levels": 1, "num_steps": 1, "num_filters": 4},
     "preset, flow_kind, flow \\(it had preset='digits', flow_kind='realnvp'\\)"),
    # The digits' couplings and dequantization: only the preset differs.
    ({"preset": "mnist", **TINY, "coupling": "affine", "dequantization": "uniform"},
     "preset \\(it had preset='digits'\\)"),
    ({**TINY, "num_filters": 8}, "flow"),
    # E.g. a run begun before its preset's default changed: the message gives the old value.
    ({**TINY, "warmup_steps": 100}, "warmup_steps \\(it had warmup_steps=0\\)"),
])
def test_resuming_another_flow_or_preset_is_refused_before_loading_weights(run, other, changed):
  """The same one-line error for every mismatch, raised before the weights would not fit."""
  settings = {key: value for key, value in RUN.items() if key not in TINY}
  with pytest.raises(training.RunError,
                     match=f"holds an interrupted run with a different {changed}; run its "
                           "command again to resume it, or delete"):
    training.train(output_dir=run, epochs=3, **settings, **other)
  assert (run / "backup" / "training_metadata.json").exists()  # Left as it was.
