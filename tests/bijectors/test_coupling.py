"""`Coupling`, `AffineCoupling` and `SplineCoupling`: what the conformance suite does not check.

The conformance suite (`test_conformance.py`) checks the log-determinants, round trips, shapes
and XLA of the couplings of every registered transform; here: the errors on bad arguments and
bad conditioner outputs, the conditioner's calls, the additive coupling's shift-only
conditioner, and what is particular to splines: the identity at initialisation and outside
`[-B, B]`. (Conditions: `test_conditional.py`.)
"""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_realnvp import bijectors as rb

from helpers import fresh, normal, resnet_conditioner

tfd = tfp.distributions

BINS = 6


def zero_conditioner(shape):
  """Returns raw spline parameters 0 for every transformed unit of `[N, h, w, c]` images."""
  def conditioner(h):
    return tf.zeros(tf.concat([tf.shape(h), [rb.spline_params_per_unit(BINS)]], axis=0),
                    h.dtype)
  del shape
  return conditioner


# Affine and additive couplings.


def test_bad_arguments_are_named():
  with pytest.raises(ValueError, match="mask must be one of"):
    rb.AffineCoupling(lambda h: (h, h), mask="stripes")
  with pytest.raises(ValueError, match="parity"):
    rb.AffineCoupling(lambda h: (h, h), parity=2)
  with pytest.raises(TypeError, match="callable"):
    rb.AffineCoupling("not a network")
  with pytest.raises(ValueError, match="at least 2 channels"):
    rb.AffineCoupling(lambda h: (h, h), mask="channel", event_shape=(4, 4, 1))


def test_conditioner_output_errors_are_named():
  x = tf.zeros([2, 4, 4, 2])
  with pytest.raises(TypeError, match=r"pair \(shift, log_scale\)"):
    rb.AffineCoupling(lambda h: h).inverse(x)
  with pytest.raises(ValueError, match="returned parameters of shape"):
    rb.AffineCoupling(lambda h: (h[..., :1], h[..., :1])).inverse(x)


def test_additive_coupling_accepts_a_shift_only_conditioner():
  coupling = rb.AffineCoupling(lambda h: 0.5 * h + 1.0, mask="channel", additive=True)
  x = tf.random.stateless_normal([3, 4, 4, 2], seed=[1, 1])
  z = coupling.inverse(x)
  np.testing.assert_allclose(z[..., 1:].numpy(), x[..., 1:].numpy())
  np.testing.assert_allclose(z[..., :1].numpy(), (x[..., :1] + 0.5 * x[..., 1:] + 1.0).numpy(),
                             rtol=1e-6)
  np.testing.assert_array_equal(coupling.inverse_log_det_jacobian(x, event_ndims=3).numpy(),
                                np.zeros(3))


def test_log_prob_runs_each_conditioner_once():
  calls = []

  def conditioner(h):
    calls.append(1)
    return 0.1 * h, 0.1 * tf.tanh(h)

  coupling = rb.AffineCoupling(conditioner, mask="checkerboard")
  dist = tfd.TransformedDistribution(tfd.Sample(tfd.Normal(0., 1.), [4, 4, 2]), coupling)
  dist.log_prob(tf.random.stateless_normal([2, 4, 4, 2], seed=[2, 2]))
  assert len(calls) == 1


# Spline couplings.


def test_raw_parameters_zero_give_exactly_the_identity():
  coupling = rb.SplineCoupling(zero_conditioner(None), mask="channel", num_bins=BINS, bound=2.0)
  x = 3.0 * normal((5, 4, 4, 4), seed=1)  # Inside and outside [-2, 2].
  np.testing.assert_allclose(coupling.inverse(x).numpy(), x.numpy(), rtol=0, atol=1e-14)
  np.testing.assert_allclose(coupling.forward(fresh(x)).numpy(), x.numpy(), rtol=0, atol=1e-14)
  np.testing.assert_allclose(
      coupling.inverse_log_det_jacobian(fresh(x), event_ndims=3).numpy(), 0.0, atol=1e-13)


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


@pytest.mark.parametrize("bound", [0.0, -1.0, float("inf"), float("nan"), "3", 1e-4])
def test_bad_bound_is_named(bound):
  with pytest.raises(ValueError, match="bound must be a finite number"):
    rb.SplineCoupling(zero_conditioner(None), num_bins=8, bound=bound)


def test_conditioner_outputs_of_the_wrong_kind_or_shape_are_named():
  x = normal((2, 4, 4, 2))
  pair = rb.SplineCoupling(lambda h: (h, h), mask="channel", num_bins=BINS)
  with pytest.raises(TypeError, match="one tensor of raw parameters"):
    pair.inverse(x)
  short = rb.SplineCoupling(lambda h: tf.zeros(tf.concat([tf.shape(h), [5]], 0), h.dtype),
                            mask="channel", num_bins=BINS)
  with pytest.raises(ValueError, match=r"SplineTransform needs \[N, 4, 4, 1, 17\]"):
    short.inverse(x)
