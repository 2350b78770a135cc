"""Coupling transforms: the spline against TFP's."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_realnvp import bijectors as rb

from helpers import normal

BINS = 6


@pytest.mark.parametrize("spline_forward", [True, False], ids=["data_to_latent", "latent_to_data"])
def test_the_spline_transform_computes_tfps_rational_quadratic_spline(spline_forward):
  # The transform's own one-hot evaluation against `tfb.RationalQuadraticSpline` of the same
  # parameters, in float64: values, log-derivatives and the gradients with respect to the raw
  # parameters and the inputs (units inside and outside [-B, B], steep random splines).
  bound = 2.0
  transform = rb.SplineTransform(BINS, bound)
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
