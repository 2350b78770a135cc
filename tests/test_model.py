"""Tests of `FlowModel`: training with Keras 3, metrics, batch norm, saving, sampling."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfp_realnvp
from tfp_realnvp import data
from tfp_realnvp import errors

from helpers import poison_a_coupling, randomize


def digits(split="train", batch_size=100, seed=0):
  return data.load_images("digits", split=split, batch_size=batch_size, seed=seed,
                          shuffle=split == "train")


def small_model(batch_norm=False, l2=5e-5, seed=0):
  keras.utils.set_random_seed(seed)
  flow = tfp_realnvp.RealNVP((8, 8, 1), num_scales=2, num_filters=16, num_blocks=1,
                             batch_norm=batch_norm)
  return tfp_realnvp.FlowModel(flow, l2=l2)


EPOCHS = 8


@pytest.fixture(scope="module")
def trained():
  """A small flow trained on the embedded digits, shared by the tests below."""
  keras.utils.set_random_seed(1)
  model = small_model(batch_norm=True)
  moving_before = [v.numpy().copy() for v in model.flow.batch_norms[0].variables
                   if "moving" in v.path]
  model.compile(optimizer=keras.optimizers.Adam(1e-3))
  history = model.fit(digits(batch_size=64), epochs=EPOCHS, validation_data=digits("test"),
                      verbose=0)
  return model, history, moving_before


def test_fit_reports_real_loss_and_bits_per_dim(trained):
  model, history, _ = trained
  for key in ("loss", "bits_per_dim", "val_loss", "val_bits_per_dim"):
    assert key in history.history and len(history.history[key]) == EPOCHS
  losses = history.history["loss"]
  assert all(np.isfinite(losses)) and min(np.abs(losses)) > 1.0, losses
  # The reported loss is the NLL in nats per example (+ the small L2 term), consistent with
  # the reported bits/dim: bpd = (NLL + D ln 256) / (D ln 2).
  d = 64
  for loss, bpd in zip(losses, history.history["bits_per_dim"], strict=True):
    assert abs((loss + d * math.log(256)) / (d * math.log(2)) - bpd) < 0.02
  assert losses[-1] < losses[0] - 20, "training must lower the NLL"


def test_trained_model_reaches_a_bits_per_dim_target(trained):
  # A uniform density over the pixel bins is 8 bits/dim and the new model is above it; 8 short
  # epochs (192 steps) of a tiny flow on the 8x8 digits must get clearly below it.
  model, history, _ = trained
  result = model.evaluate(digits("test"), return_dict=True, verbose=0)
  assert result["bits_per_dim"] < 7.2, result
  # Each pass over the test set draws new dequantization noise: close, not identical.
  assert abs(result["bits_per_dim"] - history.history["val_bits_per_dim"][-1]) < 0.02


def test_evaluate_loss_is_the_mean_negative_log_likelihood(trained):
  model, _, _ = trained
  test = digits("test", batch_size=297, seed=3)
  x = next(iter(test))
  result = model.evaluate(x, batch_size=297, return_dict=True, verbose=0)
  nll = -np.mean(model.log_prob(x).numpy())
  penalty = float(model.regularization_penalty())
  assert penalty > 0
  assert abs(result["loss"] - (nll + penalty)) < 1e-3 * abs(nll)
  bpd = np.mean(model.bits_per_dim(x).numpy())
  assert abs(result["bits_per_dim"] - bpd) < 1e-4
  np.testing.assert_allclose(model.predict(x, batch_size=297, verbose=0),
                             model.log_prob(x).numpy(), rtol=1e-5)


def test_batch_norm_follows_the_keras_training_flag(trained):
  model, _, moving_before = trained
  statistics = model.flow.batch_norms[0]
  moving = [v for v in statistics.variables if "moving" in v.path]
  after_fit = [v.numpy().copy() for v in moving]
  assert any(np.max(np.abs(a - b)) > 1e-3 for a, b in zip(after_fit, moving_before, strict=True)), \
      "fit must update the moving averages"
  model.evaluate(digits("test"), verbose=0)
  model.predict(digits("test"), verbose=0)
  model.sample(8, seed=1)
  model.log_prob(next(iter(digits("test"))))
  for v, before in zip(moving, after_fit, strict=True):
    np.testing.assert_array_equal(v.numpy(), before)
  assert all(not v.trainable for v in moving)
  assert {v.path for v in moving} <= {v.path for v in model.non_trainable_variables}


def test_sample_returns_images_in_the_unit_interval(trained):
  model, _, _ = trained
  images = model.sample(16, seed=4).numpy()
  assert images.shape == (16, 8, 8, 1)
  assert images.min() >= 0.0 and images.max() < 1.0
  np.testing.assert_array_equal(model.sample(4, seed=4).numpy(), model.sample(4, seed=4).numpy())
  cold = model.sample(3, temperature=0.0, seed=5).numpy()
  np.testing.assert_allclose(cold[0], cold[1], atol=1e-6)  # temperature 0: the mode's image


def test_keras_file_round_trip(trained, tmp_path):
  model, _, _ = trained
  path = tmp_path / "flow.keras"
  model.save(path)
  restored = keras.models.load_model(path)  # safe mode
  assert isinstance(restored, tfp_realnvp.FlowModel)
  x = next(iter(digits("test", seed=9)))
  np.testing.assert_allclose(restored.log_prob(x).numpy(), model.log_prob(x).numpy(), rtol=1e-6)
  for a, b in zip(restored.non_trainable_variables, model.non_trainable_variables, strict=True):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_l2_penalty_is_on_by_default_and_can_be_turned_off():
  with_l2, without = small_model(seed=2), small_model(l2=0.0, seed=2)
  randomize(with_l2.flow, seed=5)
  randomize(without.flow, seed=5)
  x = next(iter(digits(seed=1)))
  log_prob = with_l2.log_prob(x)
  scales = with_l2.flow.weight_scales
  assert len(scales) == 10 * 4  # 4 weight-normalised convolutions per coupling network
  expected = 5e-5 * sum(float(tf.reduce_sum(g ** 2)) for g in scales)
  assert abs(float(with_l2.regularization_penalty()) - expected) < 1e-6 * expected
  loss = float(with_l2.compute_loss(y_pred=log_prob))
  assert abs(loss - (-float(tf.reduce_mean(log_prob)) + expected)) < 1e-4
  np.testing.assert_allclose(without.log_prob(x).numpy(), log_prob.numpy(), rtol=1e-6)
  assert float(without.compute_loss(y_pred=log_prob)) == pytest.approx(
      -float(tf.reduce_mean(log_prob)), rel=1e-6)


def test_new_model_density_is_the_logit_of_a_gaussian():
  model = small_model()
  x = next(iter(digits(seed=2)))
  logit = tfp_realnvp.bijectors.Logit(0.05)
  base = model.distribution.distribution
  expected = base.log_prob(logit.inverse(x)) + logit.inverse_log_det_jacobian(x, event_ndims=3)
  np.testing.assert_allclose(model.log_prob(x).numpy(), expected.numpy(), rtol=1e-5)


def test_bad_arguments_are_named():
  flow = tfp_realnvp.RealNVP((8, 8, 1), num_scales=1, num_filters=4, num_blocks=1)
  with pytest.raises(ValueError, match="preprocessing"):
    tfp_realnvp.FlowModel(flow, preprocessing="tanh")
  with pytest.raises(TypeError, match="bijector"):
    tfp_realnvp.FlowModel(keras.layers.Dense(3))
  model = tfp_realnvp.FlowModel(flow, validate_args=True)
  with pytest.raises(ValueError, match=r"values in \[0, 1\]"):  # Known on the host.
    model.log_prob(tf.fill([2, 8, 8, 1], 3.0))
  traced = tf.function(model.log_prob)  # Seen by the graph only: validate_args checks it.
  with pytest.raises(tf.errors.InvalidArgumentError, match="pixels must lie in"):
    traced(tf.fill([2, 8, 8, 1], 3.0))
  with pytest.raises(TypeError, match="floating-point"):
    tfp_realnvp.FlowModel(flow, preprocessing=None).log_prob(tf.zeros([2, 8, 8, 1], tf.uint8))


@pytest.mark.slow  # XLA compilation of a training step: about 50 s on 2 cores.
def test_jit_compile_passes_through_compile():
  x = next(iter(digits(batch_size=64, seed=4))).numpy()
  losses = {}
  for jit in (False, True):
    keras.utils.set_random_seed(0)
    flow = tfp_realnvp.RealNVP((8, 8, 1), num_scales=1, num_filters=8, num_blocks=1)
    model = tfp_realnvp.FlowModel(flow)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=jit)
    assert model.jit_compile is jit
    losses[jit] = model.fit(x, batch_size=32, epochs=1, shuffle=False, verbose=0).history["loss"]
  np.testing.assert_allclose(losses[True], losses[False], rtol=1e-4)


def test_float64_data_is_cast_to_the_model_dtype_and_integer_pixels_dequantized():
  model = small_model(batch_norm=True)
  randomize(model.flow, seed=3, stddev=0.1)
  x = next(iter(digits(seed=5))).numpy()
  images = np.floor(x * 256.0).astype(np.uint8) / 256.0  # float64, as `images / 256.0` gives
  assert images.dtype == np.float64
  log_prob = model.log_prob(images)
  assert log_prob.dtype == tf.float32
  np.testing.assert_allclose(log_prob.numpy(), model.log_prob(images.astype(np.float32)).numpy(),
                             rtol=1e-6)
  np.testing.assert_allclose(model.bits_per_dim(images).numpy(),
                             model.bits_from_log_prob(log_prob).numpy(), rtol=1e-6)
  for pixels in (np.zeros([2, 8, 8, 1], np.int64), tf.zeros([2, 8, 8, 1], tf.uint8)):
    assert np.all(np.isfinite(model.log_prob(pixels).numpy()))  # Dequantized as k + u.


def test_empty_batches_give_empty_results():
  model = small_model(batch_norm=True)
  moving = [v.numpy().copy() for v in model.non_trainable_variables]
  empty = np.zeros([0, 8, 8, 1], np.float32)
  assert model.log_prob(empty).shape == (0,)
  assert model.bits_per_dim(empty).shape == (0,)
  assert model(empty, training=True).shape == (0,)
  assert model(empty, training=False).shape == (0,)
  assert tf.function(model.log_prob)(empty).shape == (0,)
  assert model.sample(0).shape == (0, 8, 8, 1)
  assert model.sample(np.int64(0), seed=2).dtype == tf.float32
  for variable, before in zip(model.non_trainable_variables, moving, strict=True):
    np.testing.assert_array_equal(variable.numpy(), before)


def test_the_number_of_samples_must_be_a_non_negative_integer():
  model = small_model()
  with pytest.raises(ValueError, match="non-negative, got -1"):
    model.sample(-1)
  for n in (2.5, True, "3", np.float32(2.0), tf.constant([2])):
    with pytest.raises(TypeError, match="must be an integer"):
      model.sample(n)
  assert model.sample(np.int64(2), seed=1).shape == (2, 8, 8, 1)
  assert model.sample(tf.constant(3), seed=1).shape == (3, 8, 8, 1)


def weighted(x, weights):
  """A batch of `x` with sample weights (Keras drops weights of arrays without targets)."""
  return tf.data.Dataset.from_tensor_slices((x, None, weights)).batch(len(x))


def weighted_means(model, log_prob, weights):
  nll = np.average(-log_prob, weights=weights) + float(model.regularization_penalty())
  bits = np.average(np.asarray(model.bits_from_log_prob(log_prob)), weights=weights)
  return nll, bits


def test_evaluate_reports_weighted_means(trained):
  model, _, _ = trained
  x = next(iter(digits("test", batch_size=120, seed=6))).numpy()
  weights = np.random.default_rng(0).uniform(0.0, 3.0, size=len(x)).astype(np.float32)
  result = model.evaluate(weighted(x, weights), return_dict=True, verbose=0)
  loss, bits = weighted_means(model, model.predict(x, batch_size=len(x), verbose=0), weights)
  assert result["loss"] == pytest.approx(loss, rel=1e-5)
  assert result["bits_per_dim"] == pytest.approx(bits, rel=1e-5)
  unweighted = model.evaluate(x, batch_size=len(x), return_dict=True, verbose=0)
  assert abs(unweighted["bits_per_dim"] - result["bits_per_dim"]) > 1e-3


def test_fit_reports_weighted_means():
  model = small_model(seed=4)
  randomize(model.flow, seed=4, stddev=0.1)
  model.compile(optimizer=keras.optimizers.Adam(0.0))  # Reports the loss of fixed weights.
  x = next(iter(digits(batch_size=64, seed=7))).numpy()
  weights = np.random.default_rng(1).uniform(0.0, 3.0, size=len(x)).astype(np.float32)
  reported = model.fit(weighted(x, weights), epochs=1, verbose=0).history
  loss, bits = weighted_means(model, model(x, training=True).numpy(), weights)
  assert reported["loss"][0] == pytest.approx(loss, rel=1e-5)
  assert reported["bits_per_dim"][0] == pytest.approx(bits, rel=1e-5)


def test_calling_the_model_follows_the_training_flag():
  model = small_model(batch_norm=True)
  randomize(model.flow, seed=6, stddev=0.1)
  x = next(iter(digits(seed=8))).numpy()
  inference = model(x, training=False).numpy()
  assert np.max(np.abs(model(x, training=True).numpy() - inference)) > 1e-2
  np.testing.assert_allclose(model(x, training=False).numpy(),
                             model.predict(x, batch_size=len(x), verbose=0), rtol=1e-5)


class Identity(tfp_realnvp.FlowLayer):
  """The smallest flow: no network, an identity bijector on vectors `[3]`."""

  def __init__(self, **kwargs):
    super().__init__(event_shape=(3,), **kwargs)
    self._set_bijector(tfp_realnvp.bijectors.ConditionalChain([]))


def test_flow_layer_carries_the_protocol_of_flow_model():
  flow = Identity(name="identity")
  assert flow.event_shape == (3,) and flow.condition_spec is None
  assert flow.bijector_kwargs() == {} and flow.bijector_kwargs(None) == {}
  with pytest.raises(ValueError, match="Identity 'identity' is unconditional"):
    flow.bijector_kwargs(1)
  model = tfp_realnvp.FlowModel(flow, preprocessing=None)
  x = np.array([[0.0, 1.0, 2.0]])
  expected = -0.5 * (np.sum(x ** 2) + 3 * math.log(2 * math.pi))
  np.testing.assert_allclose(model.log_prob(x).numpy(), [expected], rtol=1e-6)
  np.testing.assert_array_equal(flow(x).numpy(), x)
  with pytest.raises(ValueError, match="is unconditional"):
    model.log_prob(x, 1)
  with pytest.raises(TypeError, match=r"FlowLayer .*got Dense\. Use tfp_realnvp\.RealNVP"):
    tfp_realnvp.FlowModel(keras.layers.Dense(3))


def test_tfp_objects_are_untracked_so_each_variable_is_saved_once(tmp_path):
  model = small_model(batch_norm=True)
  model.log_prob(next(iter(digits(seed=3))))  # Creates the model's traced functions.
  assert "log_prob" in model._graph_functions  # pylint: disable=protected-access
  path = tfp_realnvp.export_saved_model(model, tmp_path / "flow")
  saved = [name for name, _ in tf.train.list_variables(str(path / "variables" / "variables"))
           if name.endswith("/.ATTRIBUTES/VARIABLE_VALUE")]
  assert len(saved) == len(model.variables) == len({id(v) for v in model.variables})
  assert all(name.startswith("model/flow/") for name in saved), saved


def test_interpolate_corners_are_the_inputs():
  flow = tfp_realnvp.RealNVP((8, 8, 1), num_scales=2, num_filters=4, num_blocks=1,
                             batch_norm=True)  # The digits preset, tiny.
  model = tfp_realnvp.FlowModel(flow)
  images = next(iter(data.load_images("digits", "test", batch_size=4, shuffle=False,
                                      seed=0))).numpy()
  grid = model.interpolate(images, 5).numpy()
  assert grid.shape == (25, 8, 8, 1)
  for index, corner in enumerate((0, 4, 20, 24)):  # z1, z2 top; z3, z4 bottom.
    np.testing.assert_allclose(grid[corner], images[index], atol=1e-4)
  assert np.all((grid >= 0) & (grid < 1))
  # The middle is none of the corners.
  assert min(np.abs(grid[12] - image).max() for image in images) > 1e-3
  with pytest.raises(ValueError, match="corners must be 4 images"):
    model.interpolate(images[:3], 5)


def test_samples_that_overflow_are_an_error_not_nan_or_saturated_pixels():
  model = small_model()
  poison_a_coupling(model.flow)
  with pytest.raises(errors.NonFiniteSamplesError, match="4 of 4 samples hold NaN"):
    model.sample(4, seed=1)
  # Without the logit preprocessing: an overflow to infinity (before any clipping) is caught.
  keras.utils.set_random_seed(0)
  plain = tfp_realnvp.FlowModel(tfp_realnvp.RealNVP((8, 8, 1), num_scales=1, num_filters=4,
                                                    num_blocks=1), preprocessing=None)
  assert np.all(np.isfinite(plain.sample(4, seed=1, temperature=1e30)))
  with pytest.raises(errors.NonFiniteSamplesError, match=r"of 64 samples .* temperature 1e\+38"):
    plain.sample(64, seed=1, temperature=1e38)
  # A traced call (a SavedModel signature, a user's tf.function) is not checked.
  assert np.any(np.isnan(tf.function(lambda: model.sample(2, seed=1))()))
