"""Training under tf.distribute strategies gives the single-device numbers."""

import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

SCRIPT = pathlib.Path(__file__).parent / "scripts" / "distributed_training.py"


# Two logical devices in a subprocess: 47-55 s. The default run keeps Glow's (tests/flows).
@pytest.mark.slow
def test_mirrored_strategy_matches_one_device(tmp_path):
  out = tmp_path / "mirrored.json"
  result = subprocess.run([sys.executable, str(SCRIPT), "mirrored", str(out)],
                          capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(out.read_text())
  assert report["replicas"] == 2
  # The loss is reported per example for the global batch (not summed over replicas) ...
  assert report["mirrored_loss"] == pytest.approx(report["single_loss"], rel=1e-5)
  # ... and the gradients are those of the global batch's mean loss: the error of the whole
  # gradient, and of each variable's part of it, relative to the gradient's norm.
  errors = np.array(report["gradient_errors"])
  assert report["gradient_norm"] > 0 and np.count_nonzero(report["gradient_norms"]) > 100
  assert np.sqrt(np.sum(errors ** 2)) <= 1e-5 * report["gradient_norm"]
  assert errors.max() <= 1e-5 * report["gradient_norm"]


@pytest.mark.slow  # A model with a variational dequantizer, trained twice: about 60 s of CPU.
def test_mirrored_strategy_trains_a_variational_dequantizer(tmp_path):
  out = tmp_path / "vardeq.json"
  result = subprocess.run([sys.executable, str(SCRIPT), "mirrored", str(out), "vardeq"],
                          capture_output=True, text=True, timeout=900, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(out.read_text())
  assert report["replicas"] == 2
  # Each replica draws its own noise, so the numbers differ by its Monte Carlo error only (0.7 %
  # on the loss, a gradient cosine of 0.99996 when measured); a loss or gradient summed over the
  # replicas instead of averaged would be twice the single-device one.
  assert report["mirrored_loss"] == pytest.approx(report["single_loss"], rel=0.03)
  assert report["mirrored_gradient_norm"] == pytest.approx(report["gradient_norm"], rel=0.1)
  assert report["gradient_cosine"] > 0.99


def _free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  try:
    for s in sockets:
      s.bind(("127.0.0.1", 0))
    return [s.getsockname()[1] for s in sockets]
  finally:
    for s in sockets:
      s.close()


@pytest.mark.slow  # Two TensorFlow worker processes: about 80 s on 2 cores.
def test_multi_worker_mirrored_strategy_trains_identical_weights(tmp_path):
  ports = _free_ports(2)
  cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
  workers = []
  try:
    for index in range(2):
      env = dict(os.environ, TF_CONFIG=json.dumps(
          {"cluster": cluster, "task": {"type": "worker", "index": index}}))
      log = open(tmp_path / f"worker{index}.log", "w")  # pylint: disable=consider-using-with
      workers.append((subprocess.Popen(
          [sys.executable, str(SCRIPT), "multiworker", str(tmp_path / f"worker{index}.npz")],
          env=env, stdout=log, stderr=subprocess.STDOUT), log))
    for process, _ in workers:
      process.wait(timeout=600)
  finally:
    for process, log in workers:
      if process.poll() is None:
        process.kill()
        process.wait()
      log.close()
  for index, (process, _) in enumerate(workers):
    assert process.returncode == 0, (tmp_path / f"worker{index}.log").read_text()[-3000:]
  first, second = (np.load(tmp_path / f"worker{i}.npz") for i in range(2))
  assert np.all(np.isfinite(first["losses"]))
  assert len(first.files) > 100
  for key in first.files:
    np.testing.assert_array_equal(first[key], second[key], err_msg=key)
