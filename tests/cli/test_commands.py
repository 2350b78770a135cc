"""End-to-end tests of the commands of `tfp-realnvp` (`tfp_realnvp.cli`), run as the console
script runs them.

Every command runs in a subprocess on the embedded 8x8 digits with a tiny flow (the
`--num-scales 1 --num-filters 4 --num-blocks 1` overrides), so that importing TensorFlow and
tracing the flow dominate. The commands that only read the trained model run two at a time.
A tiny Glow (`--flow glow --num-levels 1 --num-steps 1 --num-filters 4`) is trained and read
by every command in-process, and checked the same way. The errors of the commands are checked
in-process too, through the console script's `tfp_realnvp_launcher.main`.
"""

import concurrent.futures
import contextlib
import io
import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

import tfp_realnvp
from tfp_realnvp import plotting
import tfp_realnvp_launcher

from helpers import describe_process

TINY = ["--num-scales", "1", "--num-filters", "4", "--num-blocks", "1"]
GLOW_TINY = ["--flow", "glow", "--num-levels", "1", "--num-steps", "1", "--num-filters", "4"]
TIMEOUT = 240  # Seconds for one command; a hang fails the test instead of the whole run.


# What the console script runs (`python -m tfp_realnvp` imports the package, and TensorFlow,
# before it parses), in the environment of a user who did not set TensorFlow's log level.
COMMAND = [sys.executable, "-m", "tfp_realnvp_launcher"]
ENV = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}


def _run(args, cwd):
  """Runs the command line with ARGS to completion; returns the CompletedProcess."""
  return subprocess.run([*COMMAND, *map(str, args)], cwd=cwd, env=ENV, capture_output=True,
                        text=True, timeout=TIMEOUT, check=False)


def _png(path):
  """`(size, mode, pixels)` of a PNG, fully decoded."""
  with Image.open(path) as picture:
    picture.load()
    assert picture.format == "PNG"
    return picture.size, picture.mode, np.asarray(picture)


def _assert_one_line_error(result, expected_code=1, contains=None):
  assert result.returncode == expected_code, describe_process(result)
  assert "Traceback" not in result.stderr, describe_process(result)
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  # TensorFlow's own start-up logs may precede it; the command's error is one line, the last.
  errors = [line for line in lines if line.startswith("tfp-realnvp") and "error:" in line]
  assert len(errors) == 1 and lines[-1] == errors[0], describe_process(result)
  if contains is not None:
    assert contains in errors[0], describe_process(result)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A finished tiny training run: `(output_dir, CompletedProcess)`."""
  root = tmp_path_factory.mktemp("cli")
  output = root / "run"
  result = _run(["train", "--epochs", "2", "--steps-per-epoch", "3", "--sample-count", "9",
                 "--output-dir", output, *TINY], cwd=root)
  assert result.returncode == 0, describe_process(result)
  return output, result


@pytest.fixture(scope="module")
def commands(trained, tmp_path_factory):
  """Runs the commands that read the trained model, two at a time; name -> CompletedProcess."""
  output, _ = trained
  root = tmp_path_factory.mktemp("commands")
  model = output / "model.keras"
  mismatched = root / "images28.npz"
  rng = np.random.default_rng(0)
  np.savez(mismatched, x_train=rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
           x_test=rng.integers(0, 256, (4, 28, 28), dtype=np.uint8))
  todo = {
      "evaluate": ["evaluate", model, "--data", "digits"],
      "sample": ["sample", model, "--count", "6", "--temperature", "0.7", "--seed", "1",
                 "--output", root / "sample.png"],
      "sample_jpeg": ["sample", model, "--count", "4", "--output", root / "sample.jpg"],
      "interpolate": ["interpolate", model, "--data", "digits", "--steps", "4",
                      "--output", root / "interpolation.png"],
      "export": ["export", model, root / "saved_model"],
      "unknown_data": ["evaluate", model, "--data", "no_such_data_set"],
      "shape_mismatch": ["evaluate", model, "--data", mismatched],
  }
  with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
    futures = {name: pool.submit(_run, args, root) for name, args in todo.items()}
    results = {name: future.result() for name, future in futures.items()}
  results["root"] = root
  return results


def test_train_writes_metrics_samples_plot_and_model(trained):
  output, result = trained
  metrics = json.loads((output / "metrics.json").read_text())
  assert metrics["status"] == "finished"
  assert [record["epoch"] for record in metrics["history"]] == [1, 2]
  for record in metrics["history"]:
    assert math.isfinite(record["bits_per_dim"]) and math.isfinite(record["val_bits_per_dim"])
  assert math.isfinite(metrics["test_bits_per_dim"]) and metrics["test_bits_per_dim"] > 0
  assert metrics["test_examples"] == 297
  best = min(metrics["history"], key=lambda record: record["val_bits_per_dim"])
  assert metrics["best_epoch"] == best["epoch"]
  assert metrics["best_val_bits_per_dim"] == best["val_bits_per_dim"]
  assert metrics["config"]["flow"] == {"num_scales": 1, "num_filters": 4, "num_blocks": 1,
                                       "batch_norm": True}
  assert f"Test bits/dim: {metrics['test_bits_per_dim']:.4f}" in result.stdout
  assert str(output / "samples") in result.stdout
  assert not (output / "backup").exists()  # Deleted once the run is finished.
  assert any((output / "logs").rglob("events.out.tfevents.*"))  # TensorBoard logs.

  expected = plotting.grid_size(9, (8, 8))
  assert expected == (3 * 64 + 2 * plotting.PADDING,) * 2  # 8x8 digits shown 8x enlarged.
  for epoch in (1, 2):
    size, mode, _ = _png(output / "samples" / f"epoch_{epoch:03d}.png")
    assert (size, mode) == (expected, "L")
  size, _, _ = _png(output / "bits_per_dim.png")
  assert size[0] > 100 and size[1] > 100


def test_log_without_a_terminal_is_one_line_per_epoch(trained):
  """No progress-bar redraws, colour codes or TensorFlow start-up lines in a captured log."""
  _, result = trained
  log = result.stdout + result.stderr
  assert "\r" not in log and "\x1b" not in log, describe_process(result)
  assert len(log) < 4000, describe_process(result)
  for noise in ("oneDNN", "cuInit", "cuda", "absl::InitializeLog"):
    assert noise not in log, describe_process(result)
  assert result.stdout.count("Epoch 2/2") == 1


def test_saved_model_loads(trained):
  import keras  # pylint: disable=g-import-not-at-top
  import tfp_realnvp  # pylint: disable=g-import-not-at-top

  output, _ = trained
  model = keras.models.load_model(output / "model.keras", compile=False)
  assert isinstance(model, tfp_realnvp.FlowModel)
  assert model.event_shape == (8, 8, 1)
  assert model.flow.num_filters == 4 and model.flow.num_scales == 1


def _assert_reproduces_test_bits_per_dim(output, stdout):
  """`evaluate` printed the test bits/dim that `train` recorded in `output/metrics.json`."""
  metrics = json.loads((output / "metrics.json").read_text())
  reported = float(stdout.split("test bits/dim:")[1].split()[0])
  # Same test split, same fixed dequantization noise, same model.
  assert reported == pytest.approx(metrics["test_bits_per_dim"], abs=2e-4)


def _assert_serves(saved_model):
  """The exported SavedModel has every signature and its samples have finite densities."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  served = tf.saved_model.load(str(saved_model))
  assert {"log_prob", "bits_per_dim", "sample", "forward", "inverse",
          "serving_default"} <= set(served.signatures)
  images = served.signatures["sample"](count=tf.constant(2), seed=tf.constant(0),
                                       temperature=tf.constant(1.0))["images"]
  log_prob = served.signatures["log_prob"](x=images)["log_prob"].numpy()
  assert log_prob.shape == (2,) and np.all(np.isfinite(log_prob))


def _assert_corners_are_the_test_images(path, steps):
  """The corners of an interpolation grid of the digits are test images 0, 1, 2, 3."""
  from tfp_realnvp import data  # pylint: disable=g-import-not-at-top

  size, _, pixels = _png(path)
  assert size == plotting.grid_size(steps * steps, (8, 8), ncols=steps)
  images = next(iter(data.load_images("digits", "test", batch_size=4, shuffle=False,
                                      dequantize=False))).numpy()
  levels = np.round(images[..., 0] * 256).astype(int)
  step = 64 + plotting.PADDING  # One enlarged tile and its gap.
  last = steps - 1
  corners = {0: (0, 0), 1: (0, last), 2: (last, 0), 3: (last, last)}  # z1, z2 top; z3, z4.
  for index, (row, col) in corners.items():
    tile = pixels[row * step:row * step + 64:8, col * step:col * step + 64:8].astype(int)
    # data -> latent -> data: the same 8-bit levels, up to float32 rounding at a bin edge.
    assert np.max(np.abs(tile - levels[index])) <= 1, index


def test_evaluate_reproduces_the_test_bits_per_dim(trained, commands):
  output, _ = trained
  result = commands["evaluate"]
  assert result.returncode == 0, describe_process(result)
  _assert_reproduces_test_bits_per_dim(output, result.stdout)


def test_export_writes_a_saved_model(commands):
  result = commands["export"]
  assert result.returncode == 0, describe_process(result)
  _assert_serves(commands["root"] / "saved_model")
  again = _run(["export", commands["root"] / "saved_model"], commands["root"])
  assert again.returncode == 2  # OUTPUT missing: an argparse error, not a traceback.


def test_sample_writes_the_format_of_the_suffix(commands):
  result = commands["sample_jpeg"]
  assert result.returncode == 0, describe_process(result)
  with Image.open(commands["root"] / "sample.jpg") as picture:
    assert picture.format == "JPEG"


def test_sample_writes_a_grid(commands):
  result = commands["sample"]
  assert result.returncode == 0, describe_process(result)
  size, mode, _ = _png(commands["root"] / "sample.png")
  assert (size, mode) == (plotting.grid_size(6, (8, 8)), "L")
  assert size == (3 * 64 + 2 * plotting.PADDING, 2 * 64 + plotting.PADDING)


def test_interpolate_corners_are_the_test_images(commands):
  result = commands["interpolate"]
  assert result.returncode == 0, describe_process(result)
  _assert_corners_are_the_test_images(commands["root"] / "interpolation.png", steps=4)


@pytest.mark.parametrize("name, fragment", [
    ("unknown_data", "Unknown image source 'no_such_data_set'"),
    ("shape_mismatch", "shape mismatch"),
])
def test_errors_are_one_line(commands, name, fragment):
  _assert_one_line_error(commands[name], expected_code=1, contains=fragment)


@pytest.mark.parametrize("name, code, fragment", [
    ("missing_model", 1, "no such model file"),
    ("not_a_model", 1, "expected a .keras model file"),
    ("incompatible_preset", 1, "cannot be used for images of shape (8, 8, 1)"),
    ("bad_count", 2, "argument --count: expected an integer >= 1"),
    ("unknown_preset", 1, "Unknown preset 'no_such_preset'; the registered ones are 'digits'"),
    ("unknown_suffix", 1, "cannot write images of type '.xyz'"),
    ("damaged_model", 1, "cannot load the model"),
    ("random_bytes_npz", 1, "not a readable .npz file"),
    ("empty_npz", 1, "holds no images"),
    ("mismatched_npz", 1, "all splits must hold images of one shape"),
    ("preset_of_another_flow", 1, "Preset 'digits' is a Real NVP preset, not a Glow one"),
    ("real_nvp_setting_for_glow", 1,
     "num_scales is a Real NVP setting; Glow presets (such as 'glow_digits') take num_filters, "
     "coupling, num_levels, num_steps, coupling_network"),
    ("glow_setting_for_real_nvp", 1, "num_levels is a Glow setting; Real NVP presets"),
    ("unknown_flow", 2, "argument --flow: invalid choice: 'maf'"),
    ("no_tpu", 1, "--strategy tpu: "),
])
def test_errors_in_process(trained, tmp_path, monkeypatch, capsys, name, code, fragment):
  """The same `main` as the console script, in-process (no TensorFlow start-up to wait for)."""
  output, _ = trained
  damaged = tmp_path.parent / f"{name}-damaged.keras"
  damaged.write_bytes((output / "model.keras").read_bytes()[:1000])
  bad_data = tmp_path.parent / f"{name}.npz"  # Outside tmp_path, which must stay empty.
  if name == "random_bytes_npz":
    bad_data.write_bytes(np.random.default_rng(0).bytes(4096))
  elif name == "empty_npz":
    np.savez(bad_data, x_train=np.zeros((0, 8, 8, 1), np.uint8),
             x_test=np.zeros((0, 8, 8, 1), np.uint8))
  else:
    np.savez(bad_data, x_train=np.zeros((4, 8, 8, 1), np.uint8),
             x_test=np.zeros((4, 16, 16, 1), np.uint8))
  monkeypatch.chdir(tmp_path)
  argv = {
      "missing_model": ["evaluate", "missing.keras"],
      "not_a_model": ["sample", output / "metrics.json"],
      "incompatible_preset": ["train", "--preset", "imagenet64"],
      "bad_count": ["sample", output / "model.keras", "--count", "0"],
      "unknown_preset": ["train", "--preset", "no_such_preset"],
      "unknown_suffix": ["sample", output / "model.keras", "--output", "grid.xyz"],
      "damaged_model": ["evaluate", damaged],
      "random_bytes_npz": ["train", "--data", bad_data],
      "empty_npz": ["train", "--data", bad_data],
      "mismatched_npz": ["train", "--data", bad_data],
      "preset_of_another_flow": ["train", "--preset", "digits", "--flow", "glow"],
      "real_nvp_setting_for_glow": ["train", "--flow", "glow", "--num-scales", "2"],
      "glow_setting_for_real_nvp": ["train", "--num-levels", "2"],
      "unknown_flow": ["train", "--flow", "maf"],
      "no_tpu": ["train", "--strategy", "tpu"],  # On a machine without a TPU.
  }[name]
  try:
    returned = tfp_realnvp_launcher.main([str(arg) for arg in argv])
  except SystemExit as exit_:  # argparse's own errors.
    returned = exit_.code
  stderr = capsys.readouterr().err
  assert returned == code, stderr
  lines = stderr.strip().splitlines()
  assert lines[-1].startswith("tfp-realnvp") and "error:" in lines[-1], stderr
  assert fragment in lines[-1], stderr
  assert not list(tmp_path.iterdir())  # Nothing written (no runs/ folder for a failed train).


def test_killed_training_resumes_without_losing_epochs(tmp_path):
  """SIGKILL during epoch 2 of 3; the same command then finishes epochs 2 and 3 only."""
  output = tmp_path / "run"
  metrics_path = output / "metrics.json"
  backup_metadata = output / "backup" / "training_metadata.json"
  args = ["train", "--epochs", "3", "--steps-per-epoch", "60", "--sample-count", "4",
          "--output-dir", output, *TINY]
  log = (tmp_path / "first.log").open("w")
  process = subprocess.Popen([*COMMAND, *map(str, args)], cwd=tmp_path, env=ENV, stdout=log,
                             stderr=subprocess.STDOUT)
  try:
    deadline = time.monotonic() + TIMEOUT
    finished_before_kill = None
    while time.monotonic() < deadline and process.poll() is None:
      try:
        metrics = json.loads(metrics_path.read_text())
        backed_up = json.loads(backup_metadata.read_text())["epoch"]
      except (OSError, ValueError, KeyError):
        metrics, backed_up = None, 0
      if metrics and backed_up >= 1 and len(metrics["history"]) >= 1:
        finished_before_kill = metrics
        break
      time.sleep(0.1)
    assert process.poll() is None, "the first run ended before it could be killed: " + (
        (tmp_path / "first.log").read_text()[-3000:])
    assert finished_before_kill is not None, "no epoch finished within the timeout"
    time.sleep(0.3)  # Into epoch 2.
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
  finally:
    if process.poll() is None:
      process.kill()
      process.wait()
    log.close()

  at_kill = json.loads(metrics_path.read_text())
  assert at_kill["status"] == "running", "the run finished before the kill"
  # The epochs that were finished and backed up when the process died.
  backed_up = json.loads(backup_metadata.read_text())["epoch"]
  kept = [record for record in at_kill["history"] if record["epoch"] <= backed_up]
  assert 1 <= len(kept) < 3

  result = _run(args, cwd=tmp_path)
  assert result.returncode == 0, describe_process(result)
  assert "Resuming" in result.stdout, describe_process(result)
  final = json.loads(metrics_path.read_text())
  assert final["status"] == "finished" and final["attempt"] == 2
  assert [record["epoch"] for record in final["history"]] == [1, 2, 3]
  # The epochs finished before the kill are kept as they were, not trained again ...
  assert final["history"][:len(kept)] == kept
  assert all(record["attempt"] == 1 for record in kept)
  # ... and the second attempt ran only the others.
  assert all(record["attempt"] == 2 for record in final["history"][len(kept):])
  assert math.isfinite(final["test_bits_per_dim"])
  for epoch in (1, 2, 3):
    assert (output / "samples" / f"epoch_{epoch:03d}.png").exists()
  assert (output / "model.keras").exists() and not (output / "backup").exists()


# ------------------------------------------------------------------------------------------------
# Glow: a tiny training run and every command on its model, in-process.


def _main(argv):
  """`tfp_realnvp_launcher.main(argv)` in-process: `(exit status, stdout, stderr)`."""
  out, err = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    code = tfp_realnvp_launcher.main([str(arg) for arg in argv])
  return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def glow_trained(tmp_path_factory):
  """A finished tiny Glow run on the digits: `(output_dir, stdout)`."""
  output = tmp_path_factory.mktemp("glow") / "run"
  code, out, err = _main(["train", "--data", "digits", "--epochs", "1", "--steps-per-epoch",
                          "2", "--batch-size", "16", "--sample-count", "4", "--output-dir",
                          output, *GLOW_TINY])
  assert code == 0, out + err
  return output, out


def test_glow_train_records_the_flow_and_saves_a_glow(glow_trained):
  import keras  # pylint: disable=g-import-not-at-top

  output, out = glow_trained
  metrics = json.loads((output / "metrics.json").read_text())
  config = metrics["config"]
  assert metrics["status"] == "finished" and math.isfinite(metrics["test_bits_per_dim"])
  assert (config["preset"], config["flow_kind"]) == ("glow_digits", "glow")
  assert config["flow"] == {"num_levels": 1, "num_steps": 1, "num_filters": 4,
                            "coupling_network": "glow", "scan": True}
  assert ("Training Glow preset 'glow_digits' (1 level, 1 step, 4 filters, glow coupling "
          "networks)") in out
  model = keras.models.load_model(output / "model.keras", compile=False)
  assert isinstance(model.flow, tfp_realnvp.Glow)
  assert (model.flow.num_levels, model.flow.num_steps, model.flow.num_filters) == (1, 1, 4)
  assert model.flow.scan


def test_glow_evaluate(glow_trained):
  output, _ = glow_trained
  code, out, err = _main(["evaluate", output / "model.keras", "--data", "digits"])
  assert code == 0, err
  _assert_reproduces_test_bits_per_dim(output, out)


def test_glow_sample(glow_trained, tmp_path):
  output, _ = glow_trained
  code, _, err = _main(["sample", output / "model.keras", "--count", "6", "--seed", "1",
                        "--output", tmp_path / "sample.png"])
  assert code == 0, err
  size, mode, pixels = _png(tmp_path / "sample.png")
  assert (size, mode) == (plotting.grid_size(6, (8, 8)), "L") and pixels.std() > 0


def test_glow_interpolate(glow_trained, tmp_path):
  output, _ = glow_trained
  code, _, err = _main(["interpolate", output / "model.keras", "--data", "digits", "--steps",
                        "3", "--output", tmp_path / "interpolation.png"])
  assert code == 0, err
  _assert_corners_are_the_test_images(tmp_path / "interpolation.png", steps=3)


def test_glow_export(glow_trained, tmp_path):
  output, _ = glow_trained
  code, _, err = _main(["export", output / "model.keras", tmp_path / "saved_model"])
  assert code == 0, err
  _assert_serves(tmp_path / "saved_model")
