"""End-to-end tests of the `tfp-realnvp` command line, run as its console script runs.

Every command runs in a subprocess on the embedded 8x8 digits with a tiny flow (the
`--num-scales 1 --num-filters 4 --num-blocks 1` overrides), so that importing TensorFlow and
tracing the flow dominate. The commands that only read the trained model run two at a time.
A tiny Glow (`--flow glow --num-levels 1 --num-steps 1 --num-filters 4`) is trained and read
by every command in-process, and checked the same way.
Errors found before any TensorFlow work, and the presets and plotting helpers, are checked
in-process (`cli.main` is the console script's `tfp_realnvp_launcher.main`). The console
script's launcher is also run on its own, to check that `--help`, `--version` and argument
errors never import TensorFlow.
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
from tfp_realnvp import cli
from tfp_realnvp import plotting
from tfp_realnvp import presets
import tfp_realnvp_launcher

TINY = ["--num-scales", "1", "--num-filters", "4", "--num-blocks", "1"]
GLOW_TINY = ["--flow", "glow", "--num-levels", "1", "--num-steps", "1", "--num-filters", "4"]
TIMEOUT = 240  # Seconds for one command; a hang fails the test instead of the whole run.


# What the console script runs (`python -m tfp_realnvp` imports the package, and TensorFlow,
# before it parses), in the environment of a user who did not set TensorFlow's log level.
COMMAND = [sys.executable, "-m", "tfp_realnvp_launcher"]
ENV = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}


def _run(args, cwd, timeout=TIMEOUT, command=COMMAND):
  """Runs the command line with ARGS to completion; returns the CompletedProcess."""
  return subprocess.run([*command, *map(str, args)], cwd=cwd, env=ENV, capture_output=True,
                        text=True, timeout=timeout, check=False)


def _describe(result):
  return (f"exit {result.returncode}\nstdout:\n{result.stdout[-3000:]}\n"
          f"stderr:\n{result.stderr[-3000:]}")


def _png(path):
  """`(size, mode, pixels)` of a PNG, fully decoded."""
  with Image.open(path) as picture:
    picture.load()
    assert picture.format == "PNG"
    return picture.size, picture.mode, np.asarray(picture)


def _assert_one_line_error(result, expected_code=1, contains=None):
  assert result.returncode == expected_code, _describe(result)
  assert "Traceback" not in result.stderr, _describe(result)
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  # TensorFlow's own start-up logs may precede it; the command's error is one line, the last.
  errors = [line for line in lines if line.startswith("tfp-realnvp") and "error:" in line]
  assert len(errors) == 1 and lines[-1] == errors[0], _describe(result)
  if contains is not None:
    assert contains in errors[0], _describe(result)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A finished tiny training run: `(output_dir, CompletedProcess)`."""
  root = tmp_path_factory.mktemp("cli")
  output = root / "run"
  result = _run(["train", "--epochs", "2", "--steps-per-epoch", "3", "--sample-count", "9",
                 "--output-dir", output, *TINY], cwd=root)
  assert result.returncode == 0, _describe(result)
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
  assert "\r" not in log and "\x1b" not in log, _describe(result)
  assert len(log) < 4000, _describe(result)
  for noise in ("oneDNN", "cuInit", "cuda", "absl::InitializeLog"):
    assert noise not in log, _describe(result)
  assert result.stdout.count("Epoch 2/2") == 1


def _launch(code, *args):
  """Runs Python code in a fresh process with the console script's launcher importable."""
  return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                        timeout=TIMEOUT, check=False)


@pytest.mark.parametrize("args, code", [
    (["--version"], 0), (["--help"], 0), (["train", "--help"], 0),
    (["sample", "m.keras", "--count", "0"], 2), (["no-such-command"], 2)])
def test_launcher_answers_without_tensorflow(args, code):
  """What the console script answers from its arguments alone never imports TensorFlow."""
  probe = ("import sys, tfp_realnvp_launcher\n"
           "try:\n  tfp_realnvp_launcher.main(sys.argv[1:])\n"
           "except SystemExit as exit_:\n"
           "  print('exit', exit_.code, 'tensorflow' in sys.modules, 'tfp_realnvp' in sys.modules)")
  result = _launch(probe, *args)
  assert f"exit {code} False False" in result.stdout, _describe(result)


def test_python_m_tfp_realnvp_still_works(tmp_path):
  result = _run(["--version"], tmp_path, command=[sys.executable, "-m", "tfp_realnvp"])
  assert result.returncode == 0 and result.stdout.startswith("tfp-realnvp "), _describe(result)


def test_console_script_version():
  script = os.path.join(os.path.dirname(sys.executable), "tfp-realnvp")
  result = subprocess.run([script, "--version"], capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)
  assert result.returncode == 0 and result.stdout.startswith("tfp-realnvp "), _describe(result)
  assert result.stderr == ""


def test_saved_model_loads(trained):
  import keras  # pylint: disable=g-import-not-at-top
  import tfp_realnvp  # pylint: disable=g-import-not-at-top

  output, _ = trained
  model = keras.models.load_model(output / "model.keras", compile=False)
  assert isinstance(model, tfp_realnvp.FlowModel)
  assert model.event_shape == (8, 8, 1)
  assert model.flow.num_filters == 4 and model.flow.num_scales == 1


def test_help_lists_the_commands(capsys):
  with pytest.raises(SystemExit) as exit_info:
    cli.main(["--help"])
  assert exit_info.value.code == 0
  text = capsys.readouterr().out
  for name in ("train", "evaluate", "sample", "interpolate", "export"):
    assert name in text


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
  assert result.returncode == 0, _describe(result)
  _assert_reproduces_test_bits_per_dim(output, result.stdout)


def test_export_writes_a_saved_model(commands):
  result = commands["export"]
  assert result.returncode == 0, _describe(result)
  _assert_serves(commands["root"] / "saved_model")
  again = _run(["export", commands["root"] / "saved_model"], commands["root"])
  assert again.returncode == 2  # OUTPUT missing: an argparse error, not a traceback.


def test_sample_writes_the_format_of_the_suffix(commands):
  result = commands["sample_jpeg"]
  assert result.returncode == 0, _describe(result)
  with Image.open(commands["root"] / "sample.jpg") as picture:
    assert picture.format == "JPEG"


def test_sample_writes_a_grid(commands):
  result = commands["sample"]
  assert result.returncode == 0, _describe(result)
  size, mode, _ = _png(commands["root"] / "sample.png")
  assert (size, mode) == (plotting.grid_size(6, (8, 8)), "L")
  assert size == (3 * 64 + 2 * plotting.PADDING, 2 * 64 + plotting.PADDING)


def test_interpolate_corners_are_the_test_images(commands):
  result = commands["interpolate"]
  assert result.returncode == 0, _describe(result)
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
    ("unknown_preset", 1, "Unknown preset 'no_such_preset'; the presets are 'digits'"),
    ("unknown_suffix", 1, "cannot write images of type '.xyz'"),
    ("damaged_model", 1, "cannot load the model"),
    ("random_bytes_npz", 1, "not a readable .npz file"),
    ("empty_npz", 1, "holds no images"),
    ("mismatched_npz", 1, "all splits must hold images of one shape"),
    ("preset_of_another_flow", 1, "Preset 'digits' is a Real NVP preset, not a Glow one"),
    ("real_nvp_setting_for_glow", 1,
     "num_scales is a Real NVP setting; Glow presets (such as 'glow_digits') take num_levels, "
     "num_steps, num_filters, coupling_network"),
    ("glow_setting_for_real_nvp", 1, "num_levels is a Glow setting; Real NVP presets"),
    ("unknown_flow", 2, "argument --flow: invalid choice: 'maf'"),
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
  }[name]
  try:
    returned = cli.main([str(arg) for arg in argv])
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
  assert result.returncode == 0, _describe(result)
  assert "Resuming" in result.stdout, _describe(result)
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
  """`cli.main(argv)` in-process: `(exit status, stdout, stderr)`."""
  out, err = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    code = cli.main([str(arg) for arg in argv])
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
                            "coupling_network": "glow"}
  assert ("Training Glow preset 'glow_digits' (1 level, 1 step, 4 filters, glow coupling "
          "networks)") in out
  model = keras.models.load_model(output / "model.keras", compile=False)
  assert isinstance(model.flow, tfp_realnvp.Glow)
  assert (model.flow.num_levels, model.flow.num_steps, model.flow.num_filters) == (1, 1, 4)


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


# ------------------------------------------------------------------------------------------------
# In-process checks of the presets and plotting helpers.


def test_launcher_choices_are_the_library_s():
  from tfp_realnvp import glow  # pylint: disable=g-import-not-at-top
  from tfp_realnvp import remat  # pylint: disable=g-import-not-at-top
  from tfp_realnvp.bijectors import coupling  # pylint: disable=g-import-not-at-top

  assert tfp_realnvp_launcher.FLOWS == tuple(presets.FLOWS)
  assert tfp_realnvp_launcher.COUPLING_NETWORKS == glow.COUPLING_NETWORKS
  assert tfp_realnvp_launcher.COUPLINGS == coupling.COUPLINGS
  assert tfp_realnvp_launcher.DEQUANTIZATIONS == presets.DEQUANTIZATIONS
  assert tfp_realnvp_launcher.REMAT_MODES == ("none", *remat.MODES)


def test_glow_defaults_per_shape_and_data():
  for shape, source, expected in [((8, 8, 1), None, "glow_digits"),
                                  ((28, 28, 1), None, "glow_mnist"),
                                  ((32, 32, 3), None, "glow_cifar10"),
                                  ((64, 64, 3), None, "glow_imagenet64"),
                                  ((32, 32, 3), "downsampled_imagenet/32x32", "glow_imagenet32"),
                                  ((64, 64, 3), "celeb_a", "glow_celeba")]:
    preset = presets.resolve(None, shape, source=source, flow="glow")
    assert (preset.name, preset.flow, preset.title) == (expected, "glow", "Glow")
    assert presets.resolve(None, shape, source=source).flow == "realnvp"  # The default flow.
  assert presets.resolve("glow_mnist", (28, 28, 1)).flow == "glow"  # The preset's flow.
  with pytest.raises(ValueError, match="Unknown flow 'maf'; the flows are 'realnvp', 'glow'"):
    presets.resolve(None, (8, 8, 1), flow="maf")
  with pytest.raises(ValueError, match="Preset 'glow_mnist' is a Glow preset, not a Real NVP"):
    presets.resolve("glow_mnist", (28, 28, 1), flow="realnvp")
  with pytest.raises(ValueError, match="batch_norm is a Real NVP setting; Glow presets"):
    presets.resolve("glow_digits", (8, 8, 1), batch_norm=False)
  with pytest.raises(ValueError, match="coupling_network must be one of 'glow', 'resnet'"):
    presets.resolve("glow_digits", (8, 8, 1), coupling_network="unet")
  with pytest.raises(ValueError, match="coupling must be one of 'affine', 'spline'"):
    presets.resolve("digits", (8, 8, 1), coupling="cubic")
  # Settings of the other flow are ignored when unset (None), as the command line passes them.
  assert presets.resolve("glow_digits", (8, 8, 1), num_scales=None).num_scales is None


def test_glow_supports_shapes_that_every_level_squeezes():
  glow = presets.get_preset("glow_cifar10")  # L=3: squeezed 3 times.
  assert glow.supports((32, 32, 3)) and glow.supports((8, 8, 3))
  assert not glow.supports((28, 28, 1)) and not glow.supports((4, 4, 3))
  assert presets.get_preset("cifar10").supports((28, 28, 1))  # Real NVP 2 scales: one squeeze.
  assert presets.compatible_presets((28, 28, 1), flow="glow") == ["glow_digits", "glow_mnist"]
  with pytest.raises(ValueError, match="'glow_cifar10' with num_levels=3 cannot be used for "
                                       "images of shape \\(28, 28, 1\\): height and width must "
                                       "be divisible by 8. Glow presets that fit this shape: "
                                       "'glow_digits', 'glow_mnist'\\.$"):
    presets.resolve("glow_cifar10", (28, 28, 1))
  for preset in presets.PRESETS.values():  # Affine couplings: `coupling` is left out.
    assert preset.flow in presets.FLOWS and set(preset.flow_kwargs()) | {"coupling"} == set(
        presets.FLOW_SETTINGS[preset.flow])


def test_build_flow_of_a_glow_preset():
  flow = presets.build_flow("glow_digits", (8, 8, 1), num_filters=4, num_steps=1)
  preset = presets.get_preset("glow_digits")
  assert isinstance(flow, tfp_realnvp.Glow)
  assert (flow.num_levels, flow.num_steps, flow.num_filters, flow.coupling_network) == (
      preset.num_levels, 1, 4, preset.coupling_network)
  assert preset.describe() == "2 levels, 4 steps, 64 filters, glow coupling networks"
  assert presets.get_preset("digits").describe() == (
      "2 scales, 32 filters, 2 blocks, batch norm on")
  assert presets.resolve("glow_digits", (8, 8, 1), num_levels=1, num_steps=1).describe() == (
      "1 level, 1 step, 64 filters, glow coupling networks")


@pytest.mark.parametrize("preset", ["digits", "glow_digits"])
def test_spline_couplings_through_the_presets_overrides(preset):
  resolved = presets.resolve(preset, (8, 8, 1), coupling="spline")
  assert resolved.flow_kwargs()["coupling"] == "spline"
  assert resolved.describe().endswith(", spline couplings")
  flow = presets.build_flow(preset, (8, 8, 1), coupling="spline", num_filters=4)
  assert flow.coupling == "spline" and flow.get_config()["coupling"] == "spline"
  assert isinstance(flow.conditioners[0].params_per_unit, int)
  args = tfp_realnvp_launcher.build_parser().parse_args(
      ["train", "--preset", preset, "--coupling", "spline"])
  assert cli.train_options(args)["coupling"] == "spline"


def test_preset_for_shape_and_unknown_sizes():
  assert presets.preset_for_shape((8, 8, 1)) == "digits"
  assert presets.preset_for_shape((28, 28, 1)) == "mnist"
  assert presets.preset_for_shape((32, 32, 3)) == "cifar10"
  assert presets.preset_for_shape((64, 64, 3)) == "imagenet64"
  assert presets.default_preset("celeb_a", (64, 64, 3)) == "celeba"
  assert presets.default_preset("downsampled_imagenet/32x32", (32, 32, 3)) == "imagenet32"
  with pytest.raises(ValueError, match="No default preset for images of size 30x30.*'digits'"):
    presets.preset_for_shape((30, 30, 1))
  with pytest.raises(ValueError, match="Unknown preset 'big'; the presets are 'digits'"):
    presets.get_preset("big")
  for preset in presets.PRESETS.values():
    assert preset.batch_size == 64 and preset.learning_rate == 1e-3
    assert preset.supports(preset.image_size + (3,))


def test_build_flow_checks_the_shape():
  flow = presets.build_flow("digits", (8, 8, 1), num_filters=4, num_blocks=1)
  assert (flow.num_scales, flow.num_filters, flow.num_blocks, flow.batch_norm) == (2, 4, 1, True)
  with pytest.raises(ValueError, match="'imagenet64' with num_scales=5 cannot be used.*'digits'"):
    presets.build_flow("imagenet64", (8, 8, 1))


def test_image_grid_rgb_and_errors(tmp_path):
  images = np.random.default_rng(0).uniform(size=(5, 32, 32, 3))
  path = plotting.save_image_grid(images, tmp_path / "sub" / "rgb.png", ncols=5)
  size, mode, pixels = _png(path)
  assert (size, mode) == ((5 * 64 + 4 * plotting.PADDING, 64), "RGB")
  # Nearest-neighbour enlargement by 2 of the exact 8-bit levels.
  np.testing.assert_array_equal(pixels[:64:2, :64:2], np.floor(images[0] * 256).astype(np.uint8))
  with pytest.raises(ValueError, match="got shape"):
    plotting.save_image_grid(np.zeros((2, 8, 8, 2)), tmp_path / "bad.png")
  with pytest.raises(ValueError, match="no 'bits_per_dim'"):
    plotting.save_bits_per_dim_plot({"loss": [1.0]}, tmp_path / "bad_plot.png")
