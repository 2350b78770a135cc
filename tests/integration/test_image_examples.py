"""Smoke tests of `examples/mnist.py`, `glow_mnist.py` and `cifar10.py`: each runs `--tiny`.

Each example runs in a subprocess. The data are made here, so that nothing depends on the shared
data or the network: an `.npz` of random MNIST-shaped images, and a TensorFlow Datasets folder
holding a prepared `cifar10` of random images (written with
`tfds.dataset_builders.store_as_tfds_dataset` under the name, version and features of TFDS's own
`cifar10` builder). A prepared folder is what a user's `--data-dir` holds, and the subprocess
reads it through `--data-dir`. `tfds.testing.mock_data` would not reach the subprocess, and
under it a data set reads as not prepared (its data dir is empty), which the package's
`tfp-realnvp train` rejects.

Each run is checked for what the example is for: the tiny subset comes from the given data,
the test bits/dim in `metrics.json` is finite, printed, and below that of an untrained flow of
the same architecture on the same images, the saved `.keras` model reloads and gives the same
log-likelihood on the test batch as the trained model did, and the PNGs decode and are not
blank.
"""

import math
import os
import subprocess
import sys

import keras
import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

import tfp_realnvp
from tfp_realnvp import data
from tfp_realnvp import presets
from tfp_realnvp import training
from example_helpers import ROOT, TIMEOUT, assert_png, number_after, read_metrics, run_example

# What `--tiny` trains: the flow of each kind (the preset's keyword arguments with the tiny
# overrides of `examples/_image_example.py`), and the test images.
TINY_FLOW = {
    "realnvp": {"num_scales": 1, "num_filters": 4, "num_blocks": 1, "batch_norm": True},
    "glow": {"num_levels": 1, "num_steps": 1, "num_filters": 4}}
TINY_TEST_IMAGES = 32


def _sorted_images(images):
  """The images of a uint8 `[N, H, W, C]` array in a canonical order (by their bytes)."""
  return np.stack(sorted(images, key=lambda image: image.tobytes()))


def _check_tiny_run(output_dir, out, preset, event_shape, train_images, test_images):
  """Checks the outputs and the saved model of a finished `--tiny` run on the given images."""
  metrics = read_metrics(output_dir)
  config = metrics["config"]
  assert metrics["status"] == "finished"
  assert config["preset"] == preset and config["event_shape"] == list(event_shape)
  flow = presets.get_preset(preset).flow.kind
  # The tiny sizes, and the rest of the preset's architecture (e.g. mnist's spline couplings).
  resolved = presets.resolve(preset, event_shape, **TINY_FLOW[flow])
  expected = resolved.flow.flow_kwargs()
  assert config["flow_kind"] == flow and config["flow"] == expected
  assert set(TINY_FLOW[flow].items()) <= set(expected.items())
  assert not (output_dir / "backup").exists()  # Deleted once the run is finished.

  # The tiny subset holds the images given to the example (all of them: fewer than it takes).
  with np.load(output_dir / "tiny_subset.npz") as subset:
    np.testing.assert_array_equal(_sorted_images(subset["x_train"]),
                                  _sorted_images(train_images))
    np.testing.assert_array_equal(_sorted_images(subset["x_test"]), _sorted_images(test_images))

  assert [record["epoch"] for record in metrics["history"]] == [1, 2]
  for record in metrics["history"]:
    assert math.isfinite(record["bits_per_dim"]) and math.isfinite(record["val_bits_per_dim"])
  test_bpd = metrics["test_bits_per_dim"]
  assert math.isfinite(test_bpd) and metrics["test_examples"] == TINY_TEST_IMAGES
  assert number_after("Test bits/dim:", out) == pytest.approx(test_bpd, abs=1e-4)
  assert number_after(f"{preset}: test bits/dim", out) == pytest.approx(test_bpd, abs=1e-4)

  # The test bits/dim is that of one batch (the whole test subset) dequantized with the fixed
  # seed: the reloaded model gives the same figure on it. The noise of a seeded pipeline also
  # depends on TensorFlow's global seed, which the training run had set to its --seed when it
  # built this pipeline. A model with a variational dequantizer (the mnist preset's) takes the
  # quantized images and draws its own noise, seeded [TEST_NOISE_SEED, batch index].
  assert config["batch_size"] == TINY_TEST_IMAGES
  model = keras.models.load_model(output_dir / "model.keras")
  assert isinstance(model, tfp_realnvp.FlowModel) and model.event_shape == tuple(event_shape)
  assert (model.dequantizer is not None) == (config["dequantization"] == "variational")

  def pixels(dequantize):
    keras.utils.set_random_seed(config["seed"])
    (batch,) = list(data.load_images(config["data"], "test", batch_size=TINY_TEST_IMAGES,
                                     shuffle=False, seed=training.TEST_NOISE_SEED,
                                     dequantize=dequantize))
    return batch

  def bits_on_the_test_batch(flow_model):
    if flow_model.dequantizer is None:
      return flow_model.bits_from_log_prob(flow_model.log_prob(pixels(True))).numpy()
    return flow_model.bits_per_dim(pixels(False),
                                   seed=tf.constant([training.TEST_NOISE_SEED, 0])).numpy()

  bits = bits_on_the_test_batch(model)
  assert bits.shape == (TINY_TEST_IMAGES,) and np.all(np.isfinite(bits))
  assert float(np.mean(bits)) == pytest.approx(test_bpd, abs=1e-5)

  # Training helped: an untrained model of the same architecture does worse on the same batch.
  untrained = tfp_realnvp.FlowModel(presets.build_flow(preset, event_shape, **config["flow"]),
                                    dequantizer=presets.build_dequantizer(resolved, event_shape))
  untrained_bpd = float(np.mean(bits_on_the_test_batch(untrained)))
  assert test_bpd < untrained_bpd - 0.01, (test_bpd, untrained_bpd)

  channels = event_shape[-1]
  for epoch in (1, 2):
    grid = output_dir / "samples" / f"epoch_{epoch:03d}.png"
    assert_png(grid)
    with Image.open(grid) as image:
      assert image.mode == ("L" if channels == 1 else "RGB")
  assert_png(output_dir / "bits_per_dim.png")


@pytest.mark.parametrize("example, published", [
    # Spline couplings make the mnist run's tracing about 35 s of CPU: slow.
    pytest.param("mnist", "Real NVP: 1.06", marks=pytest.mark.slow),
    ("glow_mnist", "Glow: 1.05")])
def test_mnist_tiny(tmp_path, example, published):
  rng = np.random.default_rng(0)
  npz = tmp_path / "random_mnist.npz"
  x_train = rng.integers(0, 256, (224, 28, 28, 1), dtype=np.uint8)
  x_test = rng.integers(0, 256, (TINY_TEST_IMAGES, 28, 28, 1), dtype=np.uint8)
  np.savez(npz, x_train=x_train, y_train=rng.integers(0, 10, 224, dtype=np.uint8),
           x_test=x_test, y_test=rng.integers(0, 10, TINY_TEST_IMAGES, dtype=np.uint8))
  output_dir = tmp_path / "run"
  out = run_example(example, output_dir, "--data", str(npz))
  _check_tiny_run(output_dir, out, example, (28, 28, 1), x_train, x_test)
  assert f"published {published}" in out


def _prepare_fake_cifar10(data_dir, num_train, num_test, seed=0):
  """Prepares TFDS `cifar10` in `data_dir` from random images; returns `(train, test)` images."""
  tfds = pytest.importorskip("tensorflow_datasets")
  builder = tfds.builder("cifar10", data_dir=os.fspath(data_dir))
  rng = np.random.default_rng(seed)
  images, examples = {}, {}
  for split, count in (("train", num_train), ("test", num_test)):
    images[split] = rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, count)
    examples[split] = [(i, {"id": f"{split}_{i:05d}", "image": image, "label": int(label)})
                       for i, (image, label) in enumerate(zip(images[split], labels, strict=True))]
  tfds.dataset_builders.store_as_tfds_dataset(
      name=builder.name, version=builder.version, features=builder.info.features,
      split_datasets=examples, data_dir=os.fspath(data_dir))
  assert tfds.builder("cifar10", data_dir=os.fspath(data_dir)).is_prepared()
  return images["train"], images["test"]


def test_cifar10_tiny_from_a_prepared_tfds_data_dir(tmp_path):
  data_dir = tmp_path / "tensorflow_datasets"
  x_train, x_test = _prepare_fake_cifar10(data_dir, num_train=64, num_test=TINY_TEST_IMAGES)
  output_dir = tmp_path / "run"
  out = run_example("cifar10", output_dir, "--data-dir", str(data_dir))
  _check_tiny_run(output_dir, out, "cifar10", (32, 32, 3), x_train, x_test)
  assert "published Real NVP: 3.49" in out


def test_cifar10_without_prepared_data_says_how_to_prepare_and_downloads_nothing(tmp_path):
  data_dir = tmp_path / "empty"
  data_dir.mkdir()
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow")
  proc = subprocess.run(
      [sys.executable, str(ROOT / "examples" / "cifar10.py"), "--data-dir", str(data_dir),
       "--output-dir", str(tmp_path / "run")],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False)
  assert proc.returncode == 1, proc.stderr[-3000:]
  error = proc.stderr.strip().splitlines()[-1]
  assert error.startswith("cifar10.py: error:") and "'cifar10' is not prepared" in error, error
  assert "download_and_prepare()" in error and "--download" in error, error
  assert not any(data_dir.iterdir())  # Nothing was downloaded or written.
