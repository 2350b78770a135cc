"""Smoke tests of the runnable scripts in `examples/`: each runs `--tiny` in a subprocess.

Each test checks what the script is for (a likelihood that improves, gradients that reach every
variable, ...) from its printed numbers and its `metrics.json`, and that its PNGs decode.
"""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from example_helpers import ROOT, TIMEOUT, assert_png, number_after, read_metrics, run_example


def test_two_moons(tmp_path):
  out = run_example("two_moons", tmp_path)
  metrics = read_metrics(tmp_path)
  before, after = metrics["before"], metrics["after"]
  for key in ("train_nll", "test_nll"):
    assert math.isfinite(before[key]) and math.isfinite(after[key])
  # The printed numbers are the ones saved.
  assert number_after("before training: train NLL", out) == pytest.approx(before["train_nll"],
                                                                            abs=1e-4)
  assert number_after("test NLL", out.split("after training:")[1]) == pytest.approx(
      after["test_nll"], abs=1e-4)
  # A new flow is the identity: standardised data under N(0, I) costs about 2.84 nats.
  assert 2.6 < before["train_nll"] < 3.1
  # Training lowers the NLL of the held-out points too.
  assert after["train_nll"] < before["train_nll"] - 0.2
  assert after["test_nll"] < before["test_nll"] - 0.2
  # The flow is a normalised density: its mass on the plotted square is close to 1.
  assert 0.9 < metrics["grid_mass"] < 1.05
  assert_png(tmp_path / "samples.png")
  assert_png(tmp_path / "density.png")


@pytest.mark.slow  # Trains the example's models: 17 s.
def test_maf_prior(tmp_path):
  rng = np.random.default_rng(0)
  data = tmp_path / "tiny_mnist.npz"
  np.savez(data, x_train=rng.integers(0, 256, (96, 28, 28, 1), dtype=np.uint8),
           x_test=rng.integers(0, 256, (32, 28, 28, 1), dtype=np.uint8))
  out = run_example("maf_prior", tmp_path / "run", "--data", str(data))
  metrics = read_metrics(tmp_path / "run")
  before, after = metrics["bits_per_dim_before"], metrics["bits_per_dim_after"]
  assert number_after("test bits/dim before training:", out) == pytest.approx(before, abs=1e-3)
  assert math.isfinite(before) and math.isfinite(after)
  # Uniform noise images cost about 8 bits/dim; a few steps already lower it.
  assert 7.0 < after < before
  for part in ("realnvp", "made"):
    counts = metrics["gradients"][part]
    assert counts["variables"] > 0
    assert counts["nonzero"] == counts["variables"], (part, counts)
    assert metrics["changed"][part] == counts["variables"], (part, metrics["changed"])
    assert f"{part}: {counts['variables']}/{counts['variables']} variables with a non-zero " \
        f"gradient" in out
  pixels = assert_png(tmp_path / "run" / "samples.png")
  assert pixels.shape[0] >= 2 * 28


def test_maf_prior_names_a_missing_data_file(tmp_path):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  missing = tmp_path / "nowhere.npz"
  proc = subprocess.run(
      [sys.executable, str(ROOT / "examples" / "maf_prior.py"), "--tiny", "--data",
       str(missing), "--output-dir", str(tmp_path)],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False)
  assert proc.returncode != 0
  assert str(missing) in proc.stderr and "--data" in proc.stderr


@pytest.mark.slow  # Trains the example's models: 12 s.
def test_variational_inference(tmp_path):
  out = run_example("variational_inference", tmp_path, "--target", "ring")
  metrics = read_metrics(tmp_path)
  log_z = metrics["log_z_quadrature"]
  assert number_after("log Z =", out) == pytest.approx(log_z, abs=1e-3)
  # The ring's mass: about 2 pi r * sqrt(2 pi) 0.4 (a thin ring of radius 2) times the lobes.
  assert 1.5 < log_z < 2.5
  before, after = metrics["before"], metrics["after"]
  assert all(math.isfinite(v) for m in (before, after) for v in m.values())
  # Reverse KL training: the ELBO rises towards log Z, which it bounds from below.
  assert after["kl"] < 0.5 * before["kl"]
  assert after["elbo"] > before["elbo"] + 0.5
  assert after["elbo"] < log_z + 0.02
  # Importance sampling with the trained flow recovers log Z.
  assert after["log_z_importance"] == pytest.approx(log_z, abs=0.1)
  assert number_after("KL(q||p)", out.split("after ")[-1]) == pytest.approx(after["kl"],
                                                                            abs=1e-3)
  assert_png(tmp_path / "target_vs_flow.png")


@pytest.mark.slow  # Trains the example's models: 13 s.
def test_distillation(tmp_path):
  out = run_example("distillation", tmp_path)
  metrics = read_metrics(tmp_path)
  trajectory = metrics.pop("kl_trajectory")
  assert all(math.isfinite(v) for v in metrics.values())
  # The printed numbers are the ones saved.
  assert number_after("before distillation:", out) == pytest.approx(metrics["kl_before"],
                                                                     abs=1e-3)
  assert number_after("teacher NLL of the real test digits", out) == pytest.approx(
      metrics["teacher_test_nll"], abs=1e-2)
  # The KL trajectory: from the estimate before distillation to the one after, falling.
  assert trajectory[0]["step"] == 0 and trajectory[0]["kl"] == metrics["kl_before"]
  assert trajectory[-1]["kl"] == metrics["kl_after"]
  kls = [p["kl"] for p in trajectory]
  assert len(kls) >= 3 and all(np.isfinite(kls))
  assert kls[-1] < kls[len(kls) // 2] < kls[0], kls
  # The student approaches the teacher; a KL estimate is (up to noise) non-negative.
  noise = 3 * metrics["kl_after_standard_error"]
  assert -noise < metrics["kl_after"] < 0.5 * metrics["kl_before"]
  # On the same student samples, KL = teacher's NLL of them - the student's entropy.
  assert metrics["teacher_nll_of_student_samples"] - metrics["student_entropy"] == pytest.approx(
      metrics["kl_after"], abs=1e-2)
  # The teacher is a proper density of the test digits (bits/dim of 8-bit data: 0 < bpd < 9).
  assert 0 < metrics["teacher_test_bits_per_dim"] < 9
  # One parallel pass beats 64 sequential ones.
  assert metrics["student_sample_seconds"] < metrics["teacher_sample_seconds"]
  for name in ("teacher_samples.png", "student_samples.png"):
    assert_png(tmp_path / name)


@pytest.mark.slow  # Trains, exports, serves in a new process: 50 s (see tests/test_export.py).
def test_export_and_serve(tmp_path):
  out = run_example("export_and_serve", tmp_path)
  served = json.loads((tmp_path / "served.json").read_text())
  assert not served["imports_tfp"]
  assert served["max_log_prob_difference"] <= 1e-3
  assert served["sample_shape"] == [4, 8, 8, 1]
  assert math.isfinite(number_after("test bits/dim of the trained model:", out))
  assert (tmp_path / "saved_model" / "saved_model.pb").exists()


@pytest.mark.slow  # Two replicas training: about 60 s (see tests/integration/test_distribute.py).
def test_distributed_training(tmp_path):
  out = run_example("distributed_training", tmp_path)
  metrics = json.loads((tmp_path / "metrics.json").read_text())
  assert metrics["replicas"] == 2 and "per replica 32" in out
  history = metrics["history"]
  assert len(history["bits_per_dim"]) == 2
  assert all(math.isfinite(v) for v in history["bits_per_dim"] + history["val_bits_per_dim"])
  # The reported loss is per example for the global batch, not summed over the replicas.
  for loss, bpd in zip(history["loss"], history["bits_per_dim"], strict=True):
    assert abs((loss + 64 * math.log(256)) / (64 * math.log(2)) - bpd) < 0.05


@pytest.mark.slow  # Trains the example's models: 17 s.
def test_spline_vs_affine(tmp_path):
  out = run_example("spline_vs_affine", tmp_path)
  metrics = read_metrics(tmp_path)
  affine, spline = metrics["affine"], metrics["spline"]
  for result, name in ((affine, "affine"), (spline, "spline")):
    assert number_after(f"{name}: test log-likelihood", out) == pytest.approx(
        result["test_log_likelihood"], abs=1e-4)
    # A new flow is the identity: the ring under N(0, I) scores about -4.99 nats per point.
    assert -4.8 < result["test_log_likelihood"] < metrics["true_test_log_likelihood"]
  # The same size: as many couplings, and the affine flow widened to the spline's budget.
  assert affine["couplings"] == spline["couplings"]
  assert spline["parameters"] <= affine["parameters"] < 1.05 * spline["parameters"]
  assert affine["hidden_units"] > spline["hidden_units"]
  assert_png(tmp_path / "samples.png")
