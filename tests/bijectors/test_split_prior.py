"""`SplitPrior`: Glow's learned prior of the factored-out half, as a coupling that whitens it.

Its TFP contract is checked by the conformance suite (`test_conformance.py`); here: a new
prior is the standard normal one, and the density it gives is that of a Gaussian.
"""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_realnvp import bijectors as rb
from tfp_realnvp import networks

tfd = tfp.distributions


def test_new_split_prior_is_the_standard_normal_prior():
  network = networks.SplitPriorNetwork(2, conditional_size=3)
  network.build((None, 4, 4, 2))
  prior = rb.SplitPrior(network, event_shape=(4, 4, 4))
  x = tf.random.stateless_normal([3, 4, 4, 4], seed=[5, 6])
  c = tf.random.stateless_normal([3, 3], seed=[7, 8])
  np.testing.assert_array_equal(prior.inverse(x, conditional_input=c).numpy(), x.numpy())
  np.testing.assert_array_equal(
      prior.inverse_log_det_jacobian(x, event_ndims=3, conditional_input=c).numpy(), 0.0)
  assert prior.mask == "channel" and prior.parity == 0  # Whitens what FactorOut factors out.
  assert isinstance(prior.copy(), rb.SplitPrior)


def test_split_prior_is_the_gaussian_density_of_the_factored_out_half():
  network = networks.SplitPriorNetwork(2, dtype="float64")
  network.build((None, 4, 4, 2))
  for variable in network.weights:
    variable.assign(np.random.default_rng(1).normal(0.0, 0.1, variable.shape))
  prior = rb.SplitPrior(network, event_shape=(4, 4, 4))
  x = tf.random.stateless_normal([2, 4, 4, 4], seed=[9, 10], dtype=tf.float64)
  shift, log_scale = network(x[..., 2:])
  mu, sigma = -shift / tf.exp(log_scale), tf.exp(-log_scale)  # eps = (z2 - mu) / sigma
  expected = tf.reduce_sum(tfd.Normal(mu, sigma).log_prob(x[..., :2]), axis=[1, 2, 3])
  whitened = prior.inverse(x)
  log_p = (tf.reduce_sum(tfd.Normal(0.0, 1.0).log_prob(
      tf.cast(whitened[..., :2], tf.float32)), axis=[1, 2, 3]).numpy()
           + prior.inverse_log_det_jacobian(x, event_ndims=3).numpy())
  np.testing.assert_allclose(log_p, expected.numpy(), rtol=1e-5)
  np.testing.assert_array_equal(whitened[..., 2:].numpy(), x[..., 2:].numpy())
