"""A long run survives divergence, a full disk and a busy folder, and says what happened.

Each case runs the real command (`tfp-realnvp train`) in a subprocess on the embedded digits
with a tiny flow; the state it must keep is the backup of the last finished epoch, which a
corrected command then resumes from until the run finishes.
"""

import contextlib
import json
import os
import subprocess
import sys
import textwrap

import pytest

import tfp_realnvp
from tfp_realnvp import training

from helpers import Interrupted, describe_process, stop_before_finish

TINY = ["--num-scales", "1", "--num-filters", "4", "--num-blocks", "1", "--steps-per-epoch",
        "3", "--sample-count", "4"]
TINY_SETTINGS = dict(num_scales=1, num_filters=4, num_blocks=1, steps_per_epoch=3,
                     sample_count=4, verbose=0)
LAUNCHER = [sys.executable, "-c", "import sys, tfp_realnvp_launcher; "
            "sys.exit(tfp_realnvp_launcher.main())"]


def _train(output, *options, timeout=600):
  """`tfp-realnvp train` in a subprocess; returns the finished process."""
  return subprocess.run([*LAUNCHER, "train", "--output-dir", str(output), *TINY, *options],
                        capture_output=True, text=True, timeout=timeout, check=False)


def _error_line(result):
  """The one error line of a failed command (and nothing like a traceback)."""
  assert result.returncode == 1, describe_process(result)
  assert "Traceback" not in result.stderr, describe_process(result)
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  assert lines[-1].startswith("tfp-realnvp: error: "), describe_process(result)
  return lines[-1]


def _metrics(output):
  return json.loads((output / "metrics.json").read_text())


def _backup_state(output):
  """`(epoch, weights bytes)` of the newest backup."""
  backup = output / "backup"
  return (training.Backup(backup).saved_epoch(),
          (backup / training.Backup.WEIGHTS).read_bytes())


def _interrupted_after_one_epoch(output):
  """A run of 2 epochs stopped (like a kill) after its first finished, in this process."""
  with pytest.MonkeyPatch.context() as patch:
    stop_before_finish(patch)
    with pytest.raises(Interrupted):
      training.train(output_dir=output, epochs=1, **TINY_SETTINGS)
  assert _backup_state(output)[0] == 1


def test_a_diverging_run_stops_at_once_and_writes_no_epoch(tmp_path):
  output = tmp_path / "run"
  with pytest.raises(tfp_realnvp.errors.DivergenceError,
                     match="loss was .* of epoch 1; stopped without saving that epoch"):
    training.train(output_dir=output, epochs=2, learning_rate=50.0, **TINY_SETTINGS)
  metrics = _metrics(output)
  assert metrics["status"] == "diverged" and metrics["history"] == []
  assert metrics["diverged"]["epoch"] == 1 and metrics["diverged"]["step"] <= 3
  assert not (output / "backup").exists() and not (output / "model.keras").exists()
  assert list((output / "samples").glob("*.png")) == []


@pytest.mark.slow  # About 60 s: three runs of the tiny flow, two of them command lines.
def test_a_diverging_run_stops_keeps_its_last_epoch_and_resumes_when_corrected(tmp_path):
  output = tmp_path / "run"
  _interrupted_after_one_epoch(output)
  epoch, weights = _backup_state(output)
  # Resumed with a learning rate that blows up: the loss leaves the finite numbers.
  diverged = _train(output, "--epochs", "2", "--learning-rate", "50")
  line = _error_line(diverged)
  assert "Training diverged: the loss was" in line and "of epoch 2" in line, line
  assert "--learning-rate; it was 50" in line and "--clipnorm" in line, line
  assert "state after epoch 1 is kept" in line, line
  assert _backup_state(output) == (epoch, weights)  # Untouched.
  metrics = _metrics(output)
  assert metrics["status"] == "diverged" and metrics["diverged"]["epoch"] == 2
  assert [r["epoch"] for r in metrics["history"]] == [1]
  assert not (output / "model.keras").exists()
  assert not (output / "samples" / "epoch_002.png").exists()
  # The corrected command resumes from epoch 1 and finishes.
  fixed = _train(output, "--epochs", "2", "--learning-rate", "1e-3")
  assert fixed.returncode == 0, describe_process(fixed)
  assert "Resuming from" in fixed.stdout and "1 of 2 epochs finished" in fixed.stdout
  metrics = _metrics(output)
  assert metrics["status"] == "finished" and "diverged" not in metrics
  assert [r["epoch"] for r in metrics["history"]] == [1, 2]
  assert metrics["config"]["learning_rate"] == 1e-3
  assert metrics["test_bits_per_dim"] is not None


def test_a_run_resumed_with_another_learning_rate_uses_it():
  # The backup holds the optimizer's learning-rate variable; the new command's must win.
  import keras  # pylint: disable=g-import-not-at-top

  optimizer = tfp_realnvp.FusedAdam(5.0)
  optimizer.build([keras.Variable(1.0)])
  training.set_learning_rate(optimizer, 1e-3)
  assert float(optimizer.learning_rate) == pytest.approx(1e-3)
  scaled = keras.optimizers.LossScaleOptimizer(tfp_realnvp.FusedAdam(5.0))
  training.set_learning_rate(scaled, 2e-3)
  assert float(scaled.inner_optimizer.learning_rate) == pytest.approx(2e-3)


@contextlib.contextmanager
def _small_disk(path, size):
  """A tmpfs of `size` mounted at `path` (skips the test where mounting is not allowed)."""
  path.mkdir()
  mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                           capture_output=True, text=True, check=False)
  if mounted.returncode != 0:
    pytest.skip(f"cannot mount a small filesystem here: {mounted.stderr.strip()}")
  try:
    yield path
  finally:
    subprocess.run(["umount", "-l", str(path)], check=False)


def _half_written(folder):
  return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if ".tmp-" in p.name)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="mounting a small filesystem needs root")
def test_a_disk_too_small_for_the_backup_is_one_line_and_leaves_nothing_half_written(tmp_path):
  with _small_disk(tmp_path / "disk", "1m") as disk:
    output = disk / "run"
    result = _train(output, "--epochs", "2")
    line = _error_line(result)  # Exit 1: no crash (a segmentation fault was exit 139).
    assert "No space left on the device of" in line and "backup" in line, line
    assert "nothing was written" in line and "starts afresh" in line, line
    assert _half_written(output) == []
    assert not (output / "backup" / training.Backup.WEIGHTS).exists()


FILL_AT_EPOCH_2 = textwrap.dedent("""
    import pathlib, sys
    import keras
    from tfp_realnvp import training

    class FillTheDisk(keras.callbacks.Callback):
      def on_epoch_end(self, epoch, logs=None):  # Runs before the epoch's backup.
        if epoch == 1:
          with open(sys.argv[2], "wb") as filler:
            try:
              while True:
                filler.write(bytes(1 << 16))
                filler.flush()
            except OSError:
              pass

    training.train(output_dir=sys.argv[1], epochs=2, callbacks=[FillTheDisk()],
                   num_scales=1, num_filters=4, num_blocks=1, steps_per_epoch=3,
                   sample_count=4, verbose=0)
""")


@pytest.mark.slow  # About 40 s: a run that fills its disk, and its resumption.
@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="mounting a small filesystem needs root")
def test_a_disk_that_fills_up_keeps_the_last_backup_and_the_run_resumes(tmp_path):
  with _small_disk(tmp_path / "disk", "16m") as disk:
    output, filler = disk / "run", disk / "filler"
    full = subprocess.run([sys.executable, "-c", FILL_AT_EPOCH_2, str(output), str(filler)],
                          capture_output=True, text=True, timeout=600, check=False)
    assert full.returncode == 1 and "OutOfSpaceError" in full.stderr, describe_process(full)
    assert "it resumes after epoch 1, whose saved state is intact" in full.stderr
    assert _backup_state(output)[0] == 1 and _half_written(output) == []
    assert _metrics(output)["status"] == "running"
    filler.unlink()  # Space is freed: the same run resumes and finishes.
    resumed = _train(output, "--epochs", "2")
    assert resumed.returncode == 0, describe_process(resumed)
    assert "1 of 2 epochs finished" in resumed.stdout
    assert [r["epoch"] for r in _metrics(output)["history"]] == [1, 2]


HOLD_THE_LOCK = textwrap.dedent("""
    import sys, time
    from tfp_realnvp.training import FolderLock
    with FolderLock(sys.argv[1]):
      print("locked", flush=True)
      time.sleep(600)
""")


def test_a_folder_in_use_by_a_live_run_is_refused_at_once(tmp_path):
  output = tmp_path / "run"
  holder = subprocess.Popen([sys.executable, "-c", HOLD_THE_LOCK, str(output)],
                            stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "locked"
    result = _train(output, "--epochs", "1")
    line = _error_line(result)
    assert f"{output} is in use by another run (process {holder.pid} on" in line, line
    assert "choose another output folder" in line, line
    assert not (output / "metrics.json").exists()  # Nothing of the other run was touched.
  finally:
    holder.kill()
    holder.wait()


def test_a_lock_left_by_a_dead_process_does_not_block_the_run(tmp_path):
  output = tmp_path / "run"
  dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                        capture_output=True, text=True, check=True)
  output.mkdir()
  (output / ".lock").write_text(json.dumps({"pid": int(dead.stdout), "host": "here"}))
  result = _train(output, "--epochs", "1")
  assert result.returncode == 0, describe_process(result)
  assert not (output / ".lock").exists()  # Released, and removed, at the end of the run.


def test_the_lock_is_exclusive_within_a_process_too(tmp_path):
  with training.FolderLock(tmp_path):
    with pytest.raises(training.RunError, match=f"process {os.getpid()} on"):
      with training.FolderLock(tmp_path):
        pass
  with training.FolderLock(tmp_path):  # Released: it can be taken again.
    assert (tmp_path / ".lock").exists()


def test_the_bits_per_dim_plot_labels_whole_epochs():
  from tfp_realnvp import plotting  # pylint: disable=g-import-not-at-top

  figure = plotting._bits_per_dim_figure(  # pylint: disable=protected-access
      {"bits_per_dim": [3.0, 2.5, 2.2, 2.1, 2.0], "val_bits_per_dim": [3.1, 2.6, 2.3, 2.2, 2.1]},
      title=None)
  ticks = [t for t in figure.axes[0].get_xticks() if 1 <= t <= 5]
  assert ticks and all(float(t).is_integer() for t in ticks), ticks
