"""`benchmarks/mnist_quality.py`: progress lines cover every step of their chunk, and a run
interrupted after its last chunk resumes through `training.train` with its clock and marks."""

import json
import math
import pathlib
import sys

import keras
import numpy as np
import pytest

from helpers import Interrupted, stop_before_finish

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "benchmarks"))
import _runlog  # pylint: disable=g-import-not-at-top,wrong-import-position
import mnist_quality  # pylint: disable=g-import-not-at-top,wrong-import-position


def test_chunk_means_span_a_metric_reset():
  """Steps 1-3 then, after an evaluation resets Keras's metrics, steps 4-5."""
  values = [10.0, 8.0, 6.0, 4.0, 2.0]
  chunk = mnist_quality.ChunkMeans()
  assert all(math.isnan(v) for v in chunk.means().values())
  for segment in (values[:3], values[3:]):
    for count in range(1, len(segment) + 1):  # Keras logs running means since the reset.
      running = sum(segment[:count]) / count
      chunk.step({"loss": running, "bits_per_dim": running / 2})
    chunk.metrics_reset()
  assert chunk.steps == 5
  assert chunk.means() == pytest.approx({"loss": 6.0, "bits_per_dim": 3.0})
  chunk.start()
  assert chunk.steps == 0


def test_keep_lines_drops_later_and_cut_lines(tmp_path):
  path = tmp_path / "results.jsonl"
  for steps in (3, 6, 9):
    _runlog.append_jsonl(path, {"steps": steps})
  with open(path, "a", encoding="utf-8") as stream:
    stream.write('{"steps": 1')  # Cut by a kill.
  assert _runlog.keep_lines(path, lambda line: line["steps"] <= 6) == 2
  assert path.read_text() == '{"steps": 3}\n{"steps": 6}\n'
  assert _runlog.keep_lines(tmp_path / "missing.jsonl", bool) == 0


@pytest.fixture
def mnist_npz(tmp_path):
  """Random MNIST-shaped images: 256 for training, the benchmark's 10,000 for the test."""
  pixels = np.random.default_rng(0).integers(0, 256, (10256, 28, 28, 1), dtype=np.uint8)
  np.savez(tmp_path / "mnist.npz", x_train=pixels[:256], x_test=pixels[256:])
  return tmp_path / "mnist.npz"


@pytest.mark.slow  # Trains, is killed, resumes and evaluates: about 150 s of CPU.
def test_a_run_resumes_with_its_clock_and_marks(tmp_path, monkeypatch, mnist_npz):
  """Killed after 6 steps, rerun with 9, killed again, rerun: it ends without training.

  Both kills are during `train`'s final evaluation, after the last chunk's backup.
  """
  output = tmp_path / "run"
  argv = ["--data", str(mnist_npz), "--output", str(output), "--minutes", "60",
          "--num-scales", "1", "--num-filters", "4", "--num-blocks", "1", "--batch-size", "16",
          "--steps-per-epoch", "3", "--precise-bn-steps", "1", "--eval-batch-size", "5000",
          "--coupling", "affine"]  # What is tested is the clock, not the couplings.
  with monkeypatch.context() as patch:
    stop_before_finish(patch)
    for steps in ("6", "9"):
      with pytest.raises(Interrupted):
        mnist_quality.main(argv + ["--max-steps", steps])
  assert mnist_quality.main(argv + ["--max-steps", "9"]) == 0
  metrics = json.loads((output / "metrics.json").read_text())
  state = metrics["state"]
  assert metrics["status"] == "finished" and metrics["best_epoch"] is None
  assert [(r["epoch"], r["attempt"]) for r in metrics["history"]] == [(1, 1), (2, 1), (3, 2)]
  assert state["steps"] == 9 and len(state["trace_seconds"]) == 2
  assert [r["at_steps"] for r in state["resumes"]] == [6, 9]
  assert state["stopped_because"] == "max steps reached"
  results = [json.loads(line) for line in (output / "results.jsonl").read_text().splitlines()]
  assert [r["steps"] for r in results] == [6, 9]
  assert all(math.isfinite(r["test_bpd"]) and r["test_bpd_precise_bn"] for r in results)
  progress = [json.loads(line) for line in (output / "progress.jsonl").read_text().splitlines()]
  assert [(r["steps"], r["chunk_steps"]) for r in progress] == [(3, 3), (6, 3), (9, 3)]
  # The run record's chunk means are the progress lines' (all the steps of the chunk).
  assert [r["loss"] for r in metrics["history"]] == pytest.approx(
      [r["train_loss"] for r in progress])
  assert state["train_seconds"] / 60 == pytest.approx(results[-1]["train_minutes"])
  with pytest.raises(SystemExit, match="holds a finished run"):
    mnist_quality.main(argv + ["--max-steps", "9"])


def _glow_argv(mnist_npz, output):
  return ["--data", str(mnist_npz), "--output", str(output), "--minutes", "60",
          "--preset", "glow_mnist", "--num-levels", "1", "--num-steps", "1", "--num-filters", "4",
          "--coupling-network", "glow", "--coupling", "affine",  # Glow's networks: no batch norm.
          "--batch-size", "16", "--steps-per-epoch", "2", "--max-steps", "2",
          "--eval-batch-size", "5000"]


def test_a_real_nvp_setting_for_a_glow_preset_is_refused_before_any_work(tmp_path, mnist_npz):
  output = tmp_path / "glow"
  with pytest.raises(SystemExit, match="error: num_scales is a Real NVP setting; Glow presets"):
    mnist_quality.main(_glow_argv(mnist_npz, output) + ["--num-scales", "2"])
  assert not output.exists()


def test_a_glow_preset_trains_without_precise_bn(tmp_path, capsys, mnist_npz):
  """`--preset glow_mnist` trains a Glow; precise BN is skipped (no batch norm) with a message."""
  output = tmp_path / "glow"
  assert mnist_quality.main(_glow_argv(mnist_npz, output)) == 0
  assert "--precise-bn-steps skipped: the 'glow_mnist' model has no batch normalisation" in (
      capsys.readouterr().out)
  metrics = json.loads((output / "metrics.json").read_text())
  assert (metrics["config"]["preset"], metrics["config"]["flow_kind"]) == ("glow_mnist", "glow")
  assert metrics["state"]["config"]["precise_bn_steps"] == 0
  (result,) = [json.loads(line) for line in (output / "results.jsonl").read_text().splitlines()]
  assert math.isfinite(result["test_bpd"]) and result["test_bpd_precise_bn"] is None


@pytest.mark.slow  # About 100 s: the 10,000-image evaluation of a spline flow.
def test_spline_couplings_reach_the_flow(tmp_path, mnist_npz):
  """`--coupling spline` (a preset override) trains a Real NVP with spline couplings."""
  output = tmp_path / "spline"
  argv = ["--data", str(mnist_npz), "--output", str(output), "--minutes", "60",
          "--num-scales", "1", "--num-filters", "4", "--num-blocks", "1", "--batch-size", "16",
          "--steps-per-epoch", "2", "--max-steps", "2", "--precise-bn-steps", "0",
          "--eval-batch-size", "5000", "--coupling", "spline"]
  assert mnist_quality.main(argv) == 0
  metrics = json.loads((output / "metrics.json").read_text())
  assert metrics["config"]["flow"]["coupling"] == "spline"
  model = keras.models.load_model(output / "model.keras", compile=False)
  assert model.flow.coupling == "spline"
  (result,) = [json.loads(line) for line in (output / "results.jsonl").read_text().splitlines()]
  assert math.isfinite(result["test_bpd"])
