"""The optimizer settings of a training run: EMA of the weights, learning-rate warm-up, clipping.

The EMA tests train a tiny Real NVP (`TINY`) on the embedded digits with data made
deterministic (`_same_batches_every_epoch`: no shuffling, no dequantization noise, two batches of
675 images per epoch), so that every epoch sees the same batches and an interrupted run that
resumes repeats exactly what the uninterrupted run did. A callback records the raw weights after
every step; the tests compute the moving average from them and check that the validation
figures, the best and final weights, the samples, the `.keras` file and the SavedModel are
those of the average.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import tfp_realnvp
from tfp_realnvp import _files
from tfp_realnvp import cli
from tfp_realnvp import configs
from tfp_realnvp import data
from tfp_realnvp import plotting
from tfp_realnvp import presets
from tfp_realnvp import training
from tfp_realnvp_launcher import build_parser

from helpers import Interrupted, stop_before_finish

TINY = {"num_scales": 1, "num_filters": 4, "num_blocks": 1}
MOMENTUM = 0.8
RUN = dict(data="digits", preset="digits", batch_size=675, learning_rate=1e-2, ema=MOMENTUM,
           warmup_steps=2, clipnorm=100.0, sample_count=4, verbose=0, **TINY)


def test_defaults_are_off_and_bad_values_are_named():
  preset = presets.resolve("digits", (8, 8, 1))
  assert (preset.training.ema, preset.training.warmup_steps, preset.training.clipnorm) == (
      0.0, 0, None)
  assert all(p.training.ema == 0 and p.training.warmup_steps == 0 and p.training.clipnorm is None
             for p in presets.PRESETS.values())
  for settings, message in [({"ema": 1.0}, "ema must be .* in \\[0, 1\\)"),
                            ({"ema": -0.5}, "ema must be"), ({"ema": "0.9"}, "ema must be"),
                            ({"warmup_steps": -1}, "warmup_steps must be a non-negative"),
                            ({"warmup_steps": 2.5}, "warmup_steps must be a non-negative"),
                            ({"clipnorm": 0.0}, "clipnorm must be a positive number"),
                            ({"clipnorm": -1}, "clipnorm must be a positive number"),
                            ({"clipnorm": float("inf")}, "clipnorm must be a positive")]:
    with pytest.raises(ValueError, match=message):
      presets.resolve("digits", (8, 8, 1), **settings)


def test_the_optimizer_warms_up_clips_globally_and_averages():
  preset = presets.resolve("digits", (8, 8, 1), learning_rate=2e-3, warmup_steps=4,
                           clipnorm=1.5, ema=0.99)
  optimizer = training.make_optimizer(preset.training)
  assert optimizer.global_clipnorm == 1.5 and optimizer.clipnorm is None
  assert optimizer.use_ema and optimizer.ema_momentum == 0.99
  schedule = optimizer.get_config()["learning_rate"]  # Serializable, as in a .keras file.
  rates = keras.optimizers.Adam.from_config(optimizer.get_config())._learning_rate
  np.testing.assert_allclose([float(rates(step)) for step in (0, 1, 2, 4, 5, 10**6)],
                             [0.0, 5e-4, 1e-3, 2e-3, 2e-3, 2e-3], rtol=1e-6)
  assert schedule["class_name"] == "CosineDecay"
  plain = training.make_optimizer(presets.resolve("digits", (8, 8, 1)).training)
  assert not plain.use_ema and plain.global_clipnorm is None
  assert float(plain.learning_rate) == pytest.approx(1e-3)
  # The clip is the global norm: two gradients of norms 3 and 4 (global 5) are scaled together.
  variables = [keras.Variable([0.0]), keras.Variable([0.0])]
  sgd = keras.optimizers.SGD(1.0, global_clipnorm=1.0)
  sgd.apply([tf.constant([3.0]), tf.constant([4.0])], variables)
  np.testing.assert_allclose([v.numpy()[0] for v in variables], [-0.6, -0.8], rtol=1e-6)


def test_command_line_options():
  parser = build_parser()
  args = parser.parse_args(["train", "--ema", "0.999", "--warmup-steps", "500", "--clipnorm",
                            "10"])
  options = cli.train_options(args)
  assert (options["ema"], options["warmup_steps"], options["clipnorm"]) == (0.999, 500, 10.0)
  defaults = cli.train_options(parser.parse_args(["train"]))
  assert (defaults["ema"], defaults["warmup_steps"], defaults["clipnorm"]) == (None,) * 3
  for option, value in [("--ema", "1"), ("--ema", "-0.1"), ("--warmup-steps", "-1"),
                        ("--clipnorm", "0")]:
    with pytest.raises(SystemExit):
      parser.parse_args(["train", option, value])


def _same_batches_every_epoch(patch):
  load_images = data.load_images
  patch.setattr(data, "load_images", lambda *args, **kwargs: load_images(
      *args, **dict(kwargs, shuffle=False, dequantize=False)))


class _Recorder(keras.callbacks.Callback):
  """Records the raw weights after every step, and at each epoch's end the bits/dim of the
  validation data with the raw and with the averaged weights."""

  def __init__(self, validation):
    super().__init__()
    self.validation, self.steps, self.epochs = validation, [], []

  def on_train_batch_end(self, batch, logs=None):
    self.steps.append([v.numpy() for v in self.model.trainable_variables])

  def on_epoch_end(self, epoch, logs=None):
    raw = self.model.evaluate(self.validation, return_dict=True, verbose=0)["bits_per_dim"]
    with training.averaged_weights(self.model):
      average = self.model.evaluate(self.validation, return_dict=True,
                                    verbose=0)["bits_per_dim"]
    self.epochs.append({"logged": logs["val_bits_per_dim"], "raw": raw, "average": average})


def _validation_data():
  return data.load_images("digits", "train[90%:]", batch_size=675, shuffle=False,
                          dequantize=False)


def _moving_average(steps):
  """Keras's EMA of the recorded weights: the first step's weights, then the momentum."""
  average = steps[0]
  for weights in steps[1:]:
    average = [MOMENTUM * a + (1 - MOMENTUM) * w for a, w in zip(average, weights, strict=True)]
  return average


@pytest.fixture(scope="module")
def ema_run(tmp_path_factory):
  """An uninterrupted 3-epoch run with EMA (and warm-up and clipping)."""
  recorder = _Recorder(_validation_data())
  with pytest.MonkeyPatch.context() as patch:
    _same_batches_every_epoch(patch)
    result = training.train(output_dir=tmp_path_factory.mktemp("ema") / "run", epochs=3,
                            callbacks=[recorder], **RUN)
  return result, recorder


def _weights(model):
  return [v.numpy() for v in model.trainable_variables]


def _assert_weights_close(actual, expected, atol):
  for a, e in zip(actual, expected, strict=True):
    np.testing.assert_allclose(a, e, atol=atol, rtol=0)


def test_validation_best_and_final_weights_are_the_averages(ema_run):
  result, recorder = ema_run
  assert len(recorder.steps) == 6 and result.metrics["config"]["ema"] == MOMENTUM
  for epoch in recorder.epochs:  # The logged figure is the averaged weights'.
    assert epoch["logged"] == pytest.approx(epoch["average"], abs=1e-5)
    assert abs(epoch["raw"] - epoch["average"]) > 1e-3
  best = result.best_epoch
  assert result.metrics["best_val_bits_per_dim"] == pytest.approx(
      min(e["average"] for e in recorder.epochs), abs=1e-5)
  expected = _moving_average(recorder.steps[:2 * best])
  _assert_weights_close(_weights(result.model), expected, atol=1e-5)
  # ... and the raw weights are far from it, so the comparison can fail.
  raw = recorder.steps[2 * best - 1]
  assert max(np.abs(r - e).max() for r, e in zip(raw, expected, strict=True)) > 1e-3


def test_samples_saved_model_and_keras_file_are_the_averages(ema_run, tmp_path, monkeypatch):
  result, _ = ema_run
  model = result.model
  x = next(iter(data.load_images("digits", "test", batch_size=16, shuffle=False, seed=0)))
  expected = model.log_prob(x).numpy()
  loaded = keras.models.load_model(result.folder.model)
  np.testing.assert_allclose(loaded.log_prob(x).numpy(), expected, rtol=1e-5, atol=1e-5)
  assert loaded.optimizer.use_ema  # The whole recipe is in the file, schedule included.
  served = tf.saved_model.load(str(tfp_realnvp.export_saved_model(loaded, tmp_path / "export")))
  np.testing.assert_allclose(served.signatures["log_prob"](x=x)["log_prob"].numpy(), expected,
                             rtol=1e-5, atol=1e-5)
  _same_batches_every_epoch(monkeypatch)  # As in the run.
  test_bpd, _ = training.evaluate_test(loaded, data.get_source("digits"), "test", 64)
  assert test_bpd == pytest.approx(result.test_bits_per_dim, abs=1e-5)
  # The grid of the best epoch is drawn from the averaged weights, the final model's.
  grid = result.folder.samples / f"epoch_{result.best_epoch:03d}.png"
  again = plotting.save_image_grid(model.sample(4, seed=2).numpy(),
                                   tmp_path / "again.png")
  np.testing.assert_array_equal(_pixels(grid), _pixels(again))


def _pixels(path):
  with Image.open(path) as image:
    return np.asarray(image)


def _load_backup_weights(path):
  """The trainable weights in a weights file of the backup of a run with `RUN`'s settings."""
  settings = {k: v for k, v in RUN.items() if k in configs.all_settings()}
  preset = presets.resolve(RUN["preset"], (8, 8, 1), **settings)
  model = tfp_realnvp.FlowModel(presets.build_flow(preset, (8, 8, 1)))
  model.compile(optimizer=training.make_optimizer(preset.training))
  model.optimizer.build(model.trainable_variables)
  model.load_weights(path)
  return _weights(model)


def test_a_resumed_run_continues_the_same_average(ema_run, tmp_path):
  uninterrupted, recorder = ema_run
  steps = recorder.steps
  with pytest.MonkeyPatch.context() as patch:
    _same_batches_every_epoch(patch)
    stop_before_finish(patch)
    with pytest.raises(Interrupted):
      training.train(output_dir=tmp_path / "run", epochs=2, **RUN)
    patch.undo()
    # The interrupted run's best weights so far are the average at the end of its best epoch.
    best = _files.read_json(tmp_path / "run" / "backup" / training.Backup.METADATA)["best"]
    _assert_weights_close(_load_backup_weights(tmp_path / "run" / "backup" / (
        f"best-epoch-{best['epoch']:03d}.weights.h5")), _moving_average(steps[:2 * best["epoch"]]),
        atol=1e-5)
    _same_batches_every_epoch(patch)
    resumed = training.train(output_dir=tmp_path / "run", epochs=3, **RUN)
  assert resumed.resumed_at == 2 and resumed.best_epoch == uninterrupted.best_epoch
  assert [r["attempt"] for r in resumed.metrics["history"]] == [1, 1, 2]
  assert [r["val_bits_per_dim"] for r in resumed.metrics["history"]] == pytest.approx(
      [r["val_bits_per_dim"] for r in uninterrupted.metrics["history"]], abs=1e-5)
  _assert_weights_close(_weights(resumed.model), _weights(uninterrupted.model), atol=1e-5)
