"""Dequantization: uniform noise (`dequantize`); variational q(u | k), its bound, saving."""

import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfp_realnvp
from tfp_realnvp.dequantization import dequantize

from helpers import autodiff_log_abs_det, normal, randomize, reload_in_fresh_process

LEVELS = 4  # Wide bins, inside which the toy density varies a lot.


def toy_model(dequantizer_stddev=0.3):
  """A randomised flow on 1x2x1 images of `LEVELS` levels with a randomised dequantizer."""
  keras.utils.set_random_seed(0)
  flow = tfp_realnvp.RealNVP((1, 2, 1), num_scales=1, num_filters=4, num_blocks=1,
                             dtype="float64")
  randomize(flow, seed=1, stddev=0.3)
  dequantizer = tfp_realnvp.VariationalDequantizer((1, 2, 1), num_couplings=2, num_filters=4,
                                                   num_levels=LEVELS, dtype="float64")
  randomize(dequantizer, seed=2, stddev=dequantizer_stddev)
  return tfp_realnvp.FlowModel(flow, dequantizer=dequantizer, num_levels=LEVELS)


def every_image():
  """All `LEVELS ** 2` images of the toy model, as int32 pixels `[16, 1, 2, 1]`."""
  return np.array(list(itertools.product(range(LEVELS), repeat=2)),
                  np.int32).reshape(-1, 1, 2, 1)


def exact_log_prob(model, pixels, points=32):
  """`log P(k) + D log L = log of the mean of p((k + u) / L) over u in [0, 1)^2`, by quadrature.

  A Gauss-Legendre product rule of `points ** 2` nodes per image.
  """
  nodes, weights = np.polynomial.legendre.leggauss(points)
  nodes, weights = (nodes + 1) / 2, weights / 2
  u = np.stack(np.meshgrid(nodes, nodes, indexing="ij"), axis=-1).reshape(-1, 1, 2, 1)
  x = (pixels[:, None] + u[None]) / LEVELS
  log_p = model.log_prob(x.reshape(-1, 1, 2, 1)).numpy().reshape(len(pixels), -1)
  return np.log(np.sum(np.exp(log_p) * np.outer(weights, weights).reshape(-1), axis=1))


def draws(model, pixels, count, num_samples, seed):
  """`count` estimates of `log_prob_bound` per image, `[images, count]`."""
  bounds = model.log_prob_bound(np.repeat(pixels, count, axis=0), num_samples=num_samples,
                                seed=seed)
  return bounds.numpy().reshape(len(pixels), count)


def test_the_bound_is_a_bound_and_importance_sampling_tightens_it_towards_the_exact_value():
  model = toy_model()
  pixels = every_image()
  exact = exact_log_prob(model, pixels)
  np.testing.assert_allclose(exact_log_prob(model, pixels, points=24), exact, atol=1e-4)
  gaps = {}
  for num_samples, count in ((1, 2000), (8, 250), (64, 40)):
    bounds = draws(model, pixels, count, num_samples, seed=num_samples)
    error = bounds.std(axis=1) / np.sqrt(count)
    # Below the exact value for every image, up to the Monte Carlo error of the mean ...
    assert np.all(bounds.mean(axis=1) <= exact + 4 * error), num_samples
    gaps[num_samples] = np.mean(exact - bounds.mean(axis=1))
  # ... and closer to it with more samples (the randomised q is far from p on each bin: the
  # bound of one sample is 0.39 nats below, 64 samples 0.1).
  assert 0.2 < gaps[1] < 1.0
  assert gaps[64] < gaps[8] < gaps[1]
  assert gaps[64] < 0.4 * gaps[1]


def test_one_sample_is_the_training_bound_of_the_dequantizer_draw():
  model = toy_model()
  pixels = np.repeat(every_image(), 4, axis=0)
  u, log_q = model.dequantizer(pixels, seed=5)
  assert np.all((u.numpy() > 0) & (u.numpy() < 1))
  expected = model.log_prob((pixels + u.numpy()) / LEVELS) - log_q
  np.testing.assert_array_equal(model.log_prob_bound(pixels, seed=5), expected)
  # Images k / L and their pixels k (or dequantized images) are the same data.
  np.testing.assert_array_equal(model.log_prob_bound(pixels / LEVELS, seed=5), expected)
  np.testing.assert_array_equal(model.log_prob_bound((pixels + 0.7) / LEVELS, seed=5), expected)
  # What fit trains on and evaluate reports: a fresh draw of the same bound.
  keras.utils.set_random_seed(3)
  model.compile(optimizer="sgd")
  results = model.evaluate(pixels, batch_size=len(pixels), return_dict=True, verbose=0)
  bits = model.bits_from_log_prob(model.log_prob_bound(np.repeat(pixels, 50, 0), seed=1))
  assert results["bits_per_dim"] == pytest.approx(np.mean(bits), abs=0.05)
  assert results["bits_per_dim"] != pytest.approx(np.mean(bits), abs=1e-6)


def test_log_q_is_the_density_of_the_noise():
  dequantizer = tfp_realnvp.VariationalDequantizer((2, 2, 2), num_couplings=4, num_filters=4,
                                                   dtype="float64")
  randomize(dequantizer, seed=4, stddev=0.3)
  pixels = np.random.default_rng(0).integers(0, 256, (3, 2, 2, 2))
  eps = normal((3, 2, 2, 2), seed=6)
  features = dequantizer.features(tf.constant(pixels, tf.float64))
  _, log_q = dequantizer(pixels, seed=7)
  eps = tf.random.stateless_normal([3, 2, 2, 2], seed=[0, 7], dtype=tf.float64)
  for i in range(3):
    def noise(e, i=i):
      return dequantizer.bijector.forward(e[None], conditional_input=features[i:i + 1])[0]
    expected = (np.sum(-0.5 * eps[i] ** 2 - 0.5 * np.log(2 * np.pi))
                - autodiff_log_abs_det(noise, eps[i]))
    assert log_q[i].numpy() == pytest.approx(float(expected), abs=1e-9)
  assert dequantizer.bijector.bijectors[0].name == "sigmoid"
  assert {c.mask for c in dequantizer.bijector.bijectors[1:]} == {"checkerboard", "channel"}


def test_bits_per_dim_of_a_dequantized_model():
  model = toy_model()
  pixels = every_image()
  bound = model.log_prob_bound(pixels, num_samples=3, seed=2)
  np.testing.assert_allclose(model.bits_per_dim(pixels, num_samples=3, seed=2),
                             (-bound / 2 + np.log(LEVELS)) / np.log(2), rtol=1e-12)
  assert model.bits_per_dim(pixels[:0]).shape == (0,)


@pytest.mark.slow  # About 15-20 s of CPU; the bound's tests stay in the default run.
def test_fit_trains_the_flow_and_the_dequantizer_together():
  keras.utils.set_random_seed(0)
  flow = tfp_realnvp.RealNVP((4, 4, 1), num_scales=1, num_filters=4, num_blocks=1)
  dequantizer = tfp_realnvp.VariationalDequantizer((4, 4, 1), num_couplings=2, num_filters=4)
  model = tfp_realnvp.FlowModel(flow, dequantizer=dequantizer)
  model.compile(optimizer=keras.optimizers.Adam(1e-2))
  pixels = np.random.default_rng(0).integers(100, 140, (64, 4, 4, 1)).astype(np.uint8)
  before = [v.numpy() for v in dequantizer.trainable_variables]
  history = model.fit(pixels, batch_size=32, epochs=4, verbose=0)
  losses = history.history["loss"]
  assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
  assert all(np.any(b != v.numpy()) for b, v in zip(before, dequantizer.trainable_variables,
                                                     strict=True))
  assert model.sample(2).shape == (2, 4, 4, 1)


def test_keras_file_round_trip(tmp_path):
  model = toy_model()
  path = tmp_path / "model.keras"
  model.save(path)
  restored = keras.models.load_model(path)
  assert isinstance(restored.dequantizer, tfp_realnvp.VariationalDequantizer)
  assert restored.dequantizer.get_config() == model.dequantizer.get_config()
  pixels = every_image()
  np.testing.assert_allclose(restored.log_prob_bound(pixels, num_samples=4, seed=9),
                             model.log_prob_bound(pixels, num_samples=4, seed=9), atol=1e-5)


@pytest.mark.slow  # Tracing every signature, then a fresh TensorFlow process: about 20 s.
def test_saved_model_serves_the_bound_of_8_bit_images(tmp_path):
  keras.utils.set_random_seed(0)
  flow = tfp_realnvp.RealNVP((4, 4, 1), num_scales=1, num_filters=4, num_blocks=1,
                             batch_norm=True)
  randomize(flow, seed=1, stddev=0.1)
  dequantizer = tfp_realnvp.VariationalDequantizer((4, 4, 1), num_couplings=2, num_filters=4)
  randomize(dequantizer, seed=2, stddev=0.1)
  model = tfp_realnvp.FlowModel(flow, dequantizer=dequantizer)
  path = tfp_realnvp.export_saved_model(model, tmp_path / "flow")
  pixels = np.random.default_rng(0).integers(0, 256, (5, 4, 4, 1)).astype(np.uint8)
  x = (pixels + 0.5) / 256
  served = reload_in_fresh_process(path, {
      "bound": ("log_prob_bound", {"pixels": pixels, "num_samples": np.int32(1),
                                   "seed": np.int32(3)}),
      "weighted": ("log_prob_bound", {"pixels": pixels, "num_samples": np.int32(6),
                                      "seed": np.int32(4)}),
      "log_prob": ("log_prob", {"x": x.astype(np.float32)})})
  assert served["modules"] == []
  np.testing.assert_allclose(served["bound"], model.log_prob_bound(pixels, seed=3), atol=1e-5)
  np.testing.assert_allclose(served["weighted"],
                             model.log_prob_bound(pixels, num_samples=6, seed=4), atol=1e-5)
  np.testing.assert_allclose(served["log_prob"], model.log_prob(x), atol=1e-5)
  assert served["specs"]["log_prob_bound"]["pixels"][1] == "uint8"


def test_bad_settings_are_clear_errors():
  flow = tfp_realnvp.RealNVP((4, 4, 1), num_scales=1, num_filters=4, num_blocks=1)
  dequantizer = tfp_realnvp.VariationalDequantizer((4, 4, 1), num_couplings=1, num_filters=4)
  with pytest.raises(ValueError, match="needs preprocessing='logit'"):
    tfp_realnvp.FlowModel(flow, preprocessing=None, dequantizer=dequantizer)
  with pytest.raises(ValueError, match="num_levels=256, the model num_levels=16"):
    tfp_realnvp.FlowModel(flow, num_levels=16, dequantizer=dequantizer)
  with pytest.raises(TypeError, match="or a tfp_realnvp.VariationalDequantizer"):
    tfp_realnvp.FlowModel(flow, dequantizer="variational")
  other = tfp_realnvp.VariationalDequantizer((4, 2, 1), num_couplings=1, num_filters=4)
  with pytest.raises(ValueError, match=r"images of shape \(4, 2, 1\)"):
    tfp_realnvp.FlowModel(flow, dequantizer=other)
  with pytest.raises(ValueError, match="num_levels must be at least 2"):
    tfp_realnvp.VariationalDequantizer((4, 4, 1), num_levels=1)
  model = tfp_realnvp.FlowModel(flow, dequantizer=dequantizer)
  pixels = np.zeros((2, 4, 4, 1), np.uint8)
  with pytest.raises(ValueError, match="must be at least 1, got 0"):
    model.log_prob_bound(pixels, num_samples=0)
  with pytest.raises(ValueError, match=r"pixels of shape \(4, 4, 1\)"):
    dequantizer(np.zeros((2, 4, 2, 1)))
  uniform = tfp_realnvp.FlowModel(flow)
  with pytest.raises(ValueError, match="has no dequantizer"):
    uniform.log_prob_bound(pixels)
  with pytest.raises(ValueError, match="importance sampling needs a VariationalDequantizer"):
    uniform.bits_per_dim(pixels / 256, num_samples=4)


def test_the_dequantization_setting_and_its_options():
  from tfp_realnvp import cli, presets, training  # pylint: disable=g-import-not-at-top
  from tfp_realnvp_launcher import build_parser  # pylint: disable=g-import-not-at-top

  # Uniform noise everywhere but the mnist preset, where the learned dequantizer won.
  assert {name for name, p in presets.PRESETS.items()
          if p.training.dequantization != "uniform"} == {"mnist"}
  uniform = presets.resolve("digits", (8, 8, 1))
  assert presets.build_dequantizer(uniform, (8, 8, 1)) is None
  variational = presets.resolve("digits", (8, 8, 1), dequantization="variational")
  dequantizer = presets.build_dequantizer(variational, (8, 8, 1))
  assert isinstance(dequantizer, tfp_realnvp.VariationalDequantizer)
  assert dequantizer.event_shape == (8, 8, 1)
  with pytest.raises(ValueError, match="dequantization must be one of 'uniform', 'variational'"):
    presets.resolve("digits", (8, 8, 1), dequantization="learned")
  parser = build_parser()
  options = cli.train_options(parser.parse_args(["train", "--dequantization", "variational"]))
  assert options["dequantization"] == "variational"
  assert cli.train_options(parser.parse_args(["train"]))["dequantization"] is None
  assert parser.parse_args(["evaluate", "m.keras", "--importance-samples", "8"]
                           ).importance_samples == 8
  for argv in (["train", "--dequantization", "learned"],
               ["evaluate", "m.keras", "--importance-samples", "0"]):
    with pytest.raises(SystemExit):
      parser.parse_args(argv)
  # A variational dequantizer adds weights to the backup: a run resumes with the same setting.
  record = training.RunRecord(config={"dequantization": "uniform"})
  with pytest.raises(training.RunError, match="different dequantization"):
    record.check_resumable({"config": {"dequantization": "variational"}}, "backup")


@pytest.mark.slow  # A training run, its evaluations and three command-line evaluations: ~60 s.
def test_a_variational_run_reports_the_bound_and_evaluate_tightens_it(tmp_path, capsys):
  from tfp_realnvp import training  # pylint: disable=g-import-not-at-top
  import tfp_realnvp_launcher  # pylint: disable=g-import-not-at-top

  result = training.train("digits", tmp_path / "run", "digits", epochs=2, steps_per_epoch=5,
                          num_scales=1, num_filters=4, num_blocks=1, batch_size=32,
                          dequantization="variational", sample_count=4, verbose=2)
  assert "variational dequantization (bits/dim: the variational bound)" in (
      capsys.readouterr().out)
  metrics = result.metrics
  assert metrics["config"]["dequantization"] == "variational"
  assert "variational bound" in metrics["test_dequantization"]
  assert isinstance(result.model.dequantizer, tfp_realnvp.VariationalDequantizer)
  assert np.isfinite(metrics["test_bits_per_dim"])
  model_path = str(result.folder.model)
  figures = {}
  for samples in (1, 16):
    tfp_realnvp_launcher.main(["evaluate", model_path, "--data", "digits", "--batch-size",
                               "32", "--importance-samples", str(samples)])
    line = capsys.readouterr().out.strip().splitlines()[-1]
    figures[samples] = float(line.split("bits/dim: ")[1].split()[0])
  assert "importance-weighted bound of 16 dequantizer draws" in line
  assert figures[1] == pytest.approx(metrics["test_bits_per_dim"], abs=1e-4)
  assert figures[16] < figures[1]
  uniform = training.train("digits", tmp_path / "uniform", "digits", epochs=1, steps_per_epoch=2,
                           num_scales=1, num_filters=4, num_blocks=1, sample_count=4, verbose=0)
  assert tfp_realnvp_launcher.main(["evaluate", str(uniform.folder.model), "--data",
                                    "digits", "--importance-samples", "2"]) == 1
  assert "need a model with a variational dequantizer" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------
# Uniform dequantization.


def test_dequantize_is_also_tfp_realnvp_data_dequantize():
  assert tfp_realnvp.data.dequantize is dequantize


def test_dequantize_stays_in_the_bin_of_each_pixel():
  pixels = np.tile(np.arange(256, dtype=np.uint8), 400)
  x = dequantize(pixels, seed=3).numpy()
  assert x.dtype == np.float32
  assert np.all(x >= 0.0) and np.all(x < 1.0)
  np.testing.assert_array_equal(np.floor(x * 256).astype(np.int64), pixels)
  # The noise covers the bin: its mean is about 1/2.
  assert abs(np.mean(x * 256 - pixels) - 0.5) < 0.02


def test_dequantize_seed_is_stateless_and_no_seed_is_random():
  pixels = tf.constant(np.arange(64, dtype=np.int32).reshape(8, 8))
  np.testing.assert_array_equal(dequantize(pixels, seed=7), dequantize(pixels, seed=7))
  np.testing.assert_array_equal(dequantize(pixels, seed=[7, 0]),
                                dequantize(pixels, seed=7))
  assert not np.array_equal(dequantize(pixels, seed=7), dequantize(pixels, seed=8))
  assert not np.array_equal(dequantize(pixels), dequantize(pixels))


def test_seeded_noise_is_the_same_under_xla():
  # Philox by name: XLA would otherwise pick another generator for the same seed.
  pixels = tf.constant(np.arange(64, dtype=np.int32).reshape(8, 8))
  xla_dequantize = tf.function(lambda k: dequantize(k, seed=7), jit_compile=True)
  np.testing.assert_array_equal(xla_dequantize(pixels), dequantize(pixels, seed=7))
  dequantizer = toy_model().dequantizer
  every = every_image()
  xla_noise = tf.function(lambda k: dequantizer(k, seed=3), jit_compile=True)(every)
  for a, b in zip(xla_noise, dequantizer(every, seed=3), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_dequantize_rejects_float_pixels():
  with pytest.raises(TypeError, match="integer pixels"):
    dequantize(np.zeros([2, 2], np.float32))


@pytest.mark.parametrize("pixels", [
    [300, -4], np.array([0, 256], np.int64), tf.constant([-1, 5]), np.array([-3], np.int8),
])
def test_dequantize_rejects_static_out_of_range_values(pixels):
  with pytest.raises(ValueError, match=r"0\.\.255"):
    dequantize(pixels)


def test_dequantize_checks_the_range_at_run_time_in_a_traced_function():
  @tf.function(input_signature=[tf.TensorSpec([None], tf.int32)])
  def traced(pixels):
    return dequantize(pixels, seed=1)

  x = traced(tf.constant([0, 255])).numpy()
  np.testing.assert_array_equal(np.floor(x * 256), [0, 255])
  with pytest.raises(tf.errors.InvalidArgumentError, match=r"0\.\.255"):
    traced(tf.constant([0, 300]))

  @tf.function
  def constant():
    return dequantize(tf.constant([300]))

  with pytest.raises(ValueError, match=r"0\.\.255"):
    constant()


def test_dequantize_adds_no_check_for_uint8():
  graph = tf.function(dequantize).get_concrete_function(
      tf.TensorSpec([None], tf.uint8)).graph
  op_types = {op.type for op in graph.get_operations()}
  assert not op_types & {"Assert", "GreaterEqual", "LessEqual"}
  graph = tf.function(dequantize).get_concrete_function(
      tf.TensorSpec([None], tf.int32)).graph
  assert "Assert" in {op.type for op in graph.get_operations()}
