"""Glow's coupling network, `GlowCouplingNetwork`: its initial state and its ActNorm layers."""

import numpy as np
import tensorflow as tf

import tfp_realnvp
from tfp_realnvp import networks


def actnorm_layers(layer):
  """Every `ActNormParameters` inside `layer`: the flow's steps' and the networks'."""
  return [sub for sub in layer._flatten_layers()  # pylint: disable=protected-access
          if isinstance(sub, tfp_realnvp.bijectors.ActNormParameters)]


def test_new_coupling_network_has_glow_scale_and_no_shift():
  network = networks.GlowCouplingNetwork(3, num_filters=8)
  network.build((None, 4, 4, 2))
  shift, log_scale = network(tf.random.stateless_normal([5, 4, 4, 2], seed=[1, 2]))
  assert shift.shape == log_scale.shape == (5, 4, 4, 3)
  np.testing.assert_array_equal(shift.numpy(), 0.0)
  np.testing.assert_allclose(log_scale.numpy(), np.log(1.0 / (1.0 + np.exp(-2.0))), rtol=1e-6)


def test_network_actnorm_initialises_on_the_first_training_call_only():
  network = networks.GlowCouplingNetwork(2, num_filters=8)
  network.build((None, 4, 4, 2))
  x = 3.0 + 2.0 * tf.random.stateless_normal([16, 4, 4, 2], seed=[3, 4])
  network(x)
  assert not any(layer.initialized.numpy() for layer in actnorm_layers(network))
  conv = network.conv_in(x)
  h = network.norm_in(conv, training=True)  # Normalises this batch, and initialises.
  mean, variance = tf.nn.moments(h, axes=[0, 1, 2])
  np.testing.assert_allclose(mean.numpy(), 0.0, atol=1e-5)
  np.testing.assert_allclose(variance.numpy(), 1.0, rtol=1e-4)
  before = [v.numpy() for v in network.norm_in.parameters_layer.weights]
  network.norm_in(conv * 5.0, training=True)
  for a, b in zip(before, network.norm_in.parameters_layer.weights, strict=True):
    np.testing.assert_array_equal(a, b.numpy())
