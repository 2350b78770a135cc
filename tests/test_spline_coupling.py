"""Focused tests of `SplineCoupling` and of the flows built with `coupling="spline"`.

The conformance suite (tests/test_conformance.py) checks the log-determinants, round trips,
shapes and XLA of spline couplings and spline flows; these tests check what is particular to
splines: the identity at initialisation, the identity outside `[-B, B]`, saving, and the errors.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import tfp_realnvp
from tfp_realnvp import bijectors as rb
from tfp_realnvp import data

from helpers import fresh, normal, resnet_conditioner

BINS = 6


def zero_conditioner(shape):
  """Returns raw spline parameters 0 for every transformed unit of `[N, h, w, c]` images."""
  def conditioner(h):
    return tf.zeros(tf.concat([tf.shape(h), [rb.spline_params_per_unit(BINS)]], axis=0),
                    h.dtype)
  del shape
  return conditioner


def test_raw_parameters_zero_give_exactly_the_identity():
  coupling = rb.SplineCoupling(zero_conditioner(None), mask="channel", num_bins=BINS, bound=2.0)
  x = 3.0 * normal((5, 4, 4, 4), seed=1)  # Inside and outside [-2, 2].
  np.testing.assert_allclose(coupling.inverse(x).numpy(), x.numpy(), rtol=0, atol=1e-14)
  np.testing.assert_allclose(coupling.forward(fresh(x)).numpy(), x.numpy(), rtol=0, atol=1e-14)
  np.testing.assert_allclose(
      coupling.inverse_log_det_jacobian(fresh(x), event_ndims=3).numpy(), 0.0, atol=1e-13)


@pytest.mark.parametrize("coupling_network", ["glow", "resnet"])
def test_new_networks_start_spline_couplings_at_the_identity(coupling_network):
  flow = tfp_realnvp.Glow((8, 8, 1), num_levels=2, num_steps=1, num_filters=8,
                          coupling_network=coupling_network, coupling="spline", num_bins=BINS,
                          dtype="float64")
  # The first level's coupling sees the first half of the squeezed [4, 4, 4] channels.
  for network in flow.conditioners[:1]:
    raw = network(normal((2, 4, 4, 2), seed=2))
    assert raw.shape == (2, 4, 4, 2, rb.spline_params_per_unit(BINS))
    np.testing.assert_array_equal(raw.numpy(), 0.0)
  real_nvp = tfp_realnvp.RealNVP((8, 8, 1), num_scales=2, num_filters=4, num_blocks=1,
                                 coupling="spline", num_bins=BINS, dtype="float64")
  x = 3.0 * normal((3, 8, 8, 1), seed=3)
  np.testing.assert_allclose(real_nvp.bijector.inverse(x).numpy(), x.numpy(), rtol=0, atol=1e-12)
  np.testing.assert_allclose(
      real_nvp.bijector.inverse_log_det_jacobian(fresh(x), event_ndims=3).numpy(), 0.0,
      atol=1e-12)


@pytest.mark.parametrize("spline_forward", [True, False], ids=["data_to_latent", "latent_to_data"])
def test_the_coupling_computes_tfps_rational_quadratic_spline(spline_forward):
  # The coupling's own one-hot evaluation against `tfb.RationalQuadraticSpline` of the same
  # parameters, in float64: values, log-derivatives and the gradients with respect to the raw
  # parameters and the inputs (units inside and outside [-B, B], steep random splines).
  bound = 2.0
  coupling = rb.SplineCoupling(zero_conditioner(None), mask="channel", num_bins=BINS,
                               bound=bound)
  transform = coupling.transform
  raw = 2.0 * normal((16, 3, 3, 2, rb.spline_params_per_unit(BINS)), seed=4)
  values = 1.5 * normal((16, 3, 3, 2), seed=5)

  def both(raw, values):
    params = transform.check_parameters(raw, values, "test")
    ours, ours_log_det = (transform.inverse if spline_forward else transform.forward)(
        values, params)
    spline = tfp.bijectors.RationalQuadraticSpline(*params, range_min=-bound)
    theirs = spline.forward(values) if spline_forward else spline.inverse(values)
    theirs_log_det = spline.forward_log_det_jacobian(
        values if spline_forward else theirs, event_ndims=0)
    return (ours, ours_log_det), (theirs, theirs_log_det)

  with tf.GradientTape(persistent=True) as tape:
    tape.watch([raw, values])
    ours, theirs = both(raw, values)
    # A scalar that weighs every output differently, so the gradients are specific.
    losses = [tf.reduce_sum(tf.sin(y) + 0.3 * log_det) for y, log_det in (ours, theirs)]
  assert np.abs(values.numpy()).max() > bound  # Some units lie outside the splines.
  for mine, reference in zip(ours, theirs, strict=True):
    np.testing.assert_allclose(mine.numpy(), reference.numpy(), rtol=1e-10, atol=1e-10)
  for variable in (raw, values):
    mine, reference = (tape.gradient(loss, variable) for loss in losses)
    np.testing.assert_allclose(mine.numpy(), reference.numpy(), rtol=1e-7, atol=1e-9)


def test_units_outside_the_bound_pass_unchanged_and_add_no_log_det():
  bound = 1.5
  input_shape, channels = rb.ChannelMask(0).conditioner_shape((4, 4, 4))
  conditioner = resnet_conditioner(input_shape, channels, seed=4,
                                   params_per_unit=rb.spline_params_per_unit(BINS))
  coupling = rb.SplineCoupling(conditioner, mask="channel", parity=0, num_bins=BINS, bound=bound)
  x = normal((6, 4, 4, 4), seed=5).numpy()
  transformed = x[..., :2]  # parity 0 transforms the first C // 2 channels.
  outside = np.abs(transformed) >= bound
  assert outside.any() and not outside.all()
  z = coupling.inverse(tf.constant(x)).numpy()
  np.testing.assert_array_equal(z[..., :2][outside], transformed[outside])
  assert np.min(np.abs(z[..., :2][~outside] - transformed[~outside])) > 0
  np.testing.assert_array_equal(z[..., 2:], x[..., 2:])  # The conditioning half.
  # All transformed units outside: the identity, log-det 0, whatever the conditioner says.
  far = x.copy()
  far[..., :2] = np.where(far[..., :2] < 0, -bound - 1.0, bound + 1.0)
  z_far = coupling.inverse(tf.constant(far))
  np.testing.assert_array_equal(z_far.numpy(), far)
  np.testing.assert_array_equal(
      coupling.inverse_log_det_jacobian(tf.constant(far), event_ndims=3).numpy(), 0.0)


@pytest.mark.parametrize("num_bins", [1, 0, 2.5, True, "8"])
def test_bad_num_bins_is_named(num_bins):
  with pytest.raises(ValueError, match="num_bins must be an integer >= 2"):
    rb.SplineCoupling(zero_conditioner(None), num_bins=num_bins)
  with pytest.raises(ValueError, match="num_bins"):
    tfp_realnvp.RealNVP((8, 8, 1), num_filters=4, num_blocks=1, coupling="spline",
                        num_bins=num_bins)


@pytest.mark.parametrize("bound", [0.0, -1.0, float("inf"), float("nan"), "3", 1e-4])
def test_bad_bound_is_named(bound):
  with pytest.raises(ValueError, match="bound must be a finite number"):
    rb.SplineCoupling(zero_conditioner(None), num_bins=8, bound=bound)
  with pytest.raises(ValueError, match="bound"):
    tfp_realnvp.Glow((8, 8, 1), num_levels=1, num_steps=1, num_filters=4, coupling="spline",
                     spline_bound=bound)


def test_flow_options_are_checked():
  with pytest.raises(ValueError, match=r"Unknown coupling transform 'quadratic'; the registered "
                     r"ones are .*'affine', .*'spline'"):
    tfp_realnvp.RealNVP((8, 8, 1), num_filters=4, num_blocks=1, coupling="quadratic")
  with pytest.raises(ValueError, match="additive=True .* coupling='spline'"):
    tfp_realnvp.RealNVP((8, 8, 1), num_filters=4, num_blocks=1, coupling="spline",
                        additive=True)


def test_conditioner_outputs_of_the_wrong_kind_or_shape_are_named():
  x = normal((2, 4, 4, 2))
  pair = rb.SplineCoupling(lambda h: (h, h), mask="channel", num_bins=BINS)
  with pytest.raises(TypeError, match="one tensor of raw parameters"):
    pair.inverse(x)
  short = rb.SplineCoupling(lambda h: tf.zeros(tf.concat([tf.shape(h), [5]], 0), h.dtype),
                            mask="channel", num_bins=BINS)
  with pytest.raises(ValueError, match=r"SplineTransform needs \[N, 4, 4, 1, 17\]"):
    short.inverse(x)


@pytest.mark.slow  # About 55 s, most of it building and tracing the spline flow.
def test_keras_file_round_trip_of_a_trained_spline_flow(tmp_path):
  keras.utils.set_random_seed(0)
  flow = tfp_realnvp.RealNVP((8, 8, 1), num_scales=2, num_filters=8, num_blocks=1,
                             batch_norm=True, coupling="spline", num_bins=BINS,
                             spline_bound=2.5)
  model = tfp_realnvp.FlowModel(flow)
  model.compile(optimizer=keras.optimizers.Adam(1e-3))
  images = data.load_images("digits", split="train", batch_size=64, seed=0, shuffle=True)
  # A few steps move the weights and the batch-norm statistics away from their initial values.
  assert np.all(np.isfinite(model.fit(images, epochs=1, steps_per_epoch=3,
                                      verbose=0).history["loss"]))
  model.save(tmp_path / "spline.keras")
  loaded = keras.models.load_model(tmp_path / "spline.keras", safe_mode=True)
  assert loaded.flow.get_config() == flow.get_config()
  assert (loaded.flow.coupling, loaded.flow.num_bins, loaded.flow.spline_bound) == (
      "spline", BINS, 2.5)
  x = next(iter(data.load_images("digits", split="test", batch_size=16, seed=1)))
  np.testing.assert_allclose(loaded.log_prob(x).numpy(), model.log_prob(x).numpy(), rtol=1e-5)
