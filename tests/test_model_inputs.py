"""Raw pixels and meaningless arguments meet a clear message, never NaN or a deep traceback."""

import keras
import numpy as np
import pytest

import tfp_realnvp
from tfp_realnvp import bijectors as rb
from tfp_realnvp import data
from tfp_realnvp import errors
from tfp_realnvp import networks

PIXELS = np.random.default_rng(0).integers(0, 256, (8, 8, 8, 1))


def tiny(**kwargs):
  return tfp_realnvp.RealNVP((8, 8, 1), num_scales=1, num_filters=4, num_blocks=1, **kwargs)


@pytest.fixture(scope="module")
def model():
  model = tfp_realnvp.FlowModel(tiny())
  model.compile(optimizer=tfp_realnvp.FusedAdam(1e-3))
  return model


def test_float_images_in_0_255_are_refused_with_how_to_convert(model):
  with pytest.raises(errors.InvalidValueError,
                     match=r"values in \[0, 1\].*got values in 0\.\.255\. For 8-bit pixels, "
                           r"pass them as integers"):
    model.log_prob(PIXELS.astype(np.float32))
  with pytest.raises(errors.InvalidValueError, match=r"values in \[0, 1\]"):
    model.fit(PIXELS.astype(np.float32), epochs=1, batch_size=4, verbose=0)
  with pytest.raises(errors.InvalidValueError, match=r"values in \[0, 1\]"):
    model.evaluate(PIXELS.astype(np.float32), verbose=0)
  with pytest.raises(errors.InvalidValueError, match="non-finite"):
    model.log_prob(np.full((2, 8, 8, 1), np.nan, np.float32))


def test_integer_pixels_are_dequantized_as_the_pipeline_does(model):
  log_p = model.log_prob(PIXELS.astype(np.uint8)).numpy()
  assert log_p.shape == (8,) and np.all(np.isfinite(log_p))
  # The same pixels dequantized by the data module give log-densities of the same size.
  reference = model.log_prob(data.dequantize(PIXELS.astype(np.uint8), seed=0)).numpy()
  np.testing.assert_allclose(log_p.mean(), reference.mean(), rtol=0.2)
  history = model.fit(PIXELS.astype(np.uint8), epochs=1, batch_size=4, verbose=0).history
  assert np.isfinite(history["loss"][0])
  with pytest.raises(errors.InvalidValueError, match=r"integer pixels in 0\.\.255, got values "
                                                     r"in 0\.\.300"):
    model.log_prob(np.concatenate([PIXELS[:1], np.full((1, 8, 8, 1), 300)]))


def test_a_dequantizing_model_refuses_floats_out_of_range():
  model = tfp_realnvp.FlowModel(
      tiny(), dequantizer=tfp_realnvp.VariationalDequantizer((8, 8, 1), num_couplings=1,
                                                             num_filters=4))
  assert np.all(np.isfinite(model.bits_per_dim(PIXELS.astype(np.uint8)).numpy()))
  with pytest.raises(errors.InvalidValueError, match=r"quantized images k / L"):
    model.bits_per_dim(PIXELS.astype(np.float32))


@pytest.mark.parametrize("temperature", [-1.0, float("nan"), float("inf"), "hot"])
def test_a_temperature_out_of_range_is_named(model, temperature):
  with pytest.raises(errors.InvalidValueError, match="temperature must be a finite number >= 0"):
    model.sample(2, temperature=temperature)


def test_temperature_zero_is_the_image_of_the_mode(model):
  a, b = model.sample(2, temperature=0.0, seed=1).numpy()
  np.testing.assert_array_equal(a, b)


def test_a_condition_the_flow_was_not_built_for_is_refused():
  model = tfp_realnvp.FlowModel(tiny(num_classes=3))
  model.compile(optimizer=tfp_realnvp.FusedAdam(1e-3))
  images = PIXELS[:2].astype(np.uint8)
  with pytest.raises(errors.InvalidValueError, match=r"class labels must lie in 0\.\.2"):
    model.sample(2, condition=7)
  with pytest.raises(errors.InvalidValueError, match=r"class labels must lie in 0\.\.2"):
    model.log_prob(images, np.array([0, 3]))
  with pytest.raises(errors.InvalidValueError, match=r"class labels must lie in 0\.\.2"):
    model.fit(images, np.array([0, 5]), epochs=1, verbose=0)
  with pytest.raises(errors.InvalidValueError, match=r"class labels must lie in 0\.\.2"):
    model.interpolate(np.zeros((4, 8, 8, 1), np.float32), 2, condition=4)


BAD_ARGUMENTS = [
    ("num_blocks", lambda: tfp_realnvp.RealNVP((8, 8, 1), num_scales=1, num_filters=4,
                                               num_blocks=-1)),
    ("num_filters", lambda: tfp_realnvp.RealNVP((8, 8, 1), num_filters=2.5)),
    ("batch_norm_momentum", lambda: tiny(batch_norm=True, batch_norm_momentum=1.5)),
    ("batch_norm_momentum", lambda: tiny(batch_norm=True, batch_norm_momentum=float("nan"))),
    ("num_steps", lambda: tfp_realnvp.Glow((8, 8, 1), num_levels=1, num_steps=0)),
    ("num_levels", lambda: tfp_realnvp.Glow((8, 8, 1), num_levels=1.5, num_steps=1)),
    ("l2", lambda: tfp_realnvp.FlowModel(tiny(), l2=-1.0)),
    ("alpha", lambda: tfp_realnvp.FlowModel(tiny(), alpha=0.5)),
    ("num_levels", lambda: tfp_realnvp.FlowModel(tiny(), num_levels=1)),
    ("momentum", lambda: rb.BatchNormStatistics(momentum=2.0)),
    ("epsilon", lambda: rb.BatchNormStatistics(epsilon=-1.0)),
    ("epsilon", lambda: rb.ActNormParameters(epsilon=float("inf"))),
    ("epsilon", lambda: networks.ActNormalization(epsilon=-1.0)),
    ("learning_rate", lambda: tfp_realnvp.FusedAdam(-1.0)),
    ("beta_1", lambda: tfp_realnvp.FusedAdam(beta_1=1.0)),
    ("epsilon", lambda: tfp_realnvp.FusedAdam(epsilon=-1e-7)),
    ("num_levels", lambda: data.dequantize(np.zeros(3, np.uint8), num_levels=1)),
    ("steps", lambda: tfp_realnvp.FlowModel(tiny()).interpolate(np.zeros((4, 8, 8, 1)), 0)),
]


@pytest.mark.parametrize("name, make", BAD_ARGUMENTS,
                         ids=[f"{name}-{i}" for i, (name, _) in enumerate(BAD_ARGUMENTS)])
def test_an_argument_out_of_its_range_names_itself_its_value_and_range(name, make):
  with pytest.raises(errors.Error, match=f"{name} must "):
    make()


def test_keras_variables_do_not_count_as_bad_learning_rates():
  schedule = keras.optimizers.schedules.ExponentialDecay(1e-3, 10, 0.9)
  assert tfp_realnvp.FusedAdam(schedule).get_config()["learning_rate"]["class_name"] == (
      "ExponentialDecay")
