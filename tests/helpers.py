"""Builders and numerical checks shared by the tests."""

import numpy as np
import tensorflow as tf

from tfp_realnvp import networks


def randomize(layer, seed=0, stddev=0.2):
  """Moves every variable of a Keras layer away from its initial value (deterministically).

  Trainable variables receive Gaussian noise; batch-norm moving variances are scaled by a
  factor in [0.5, 1.5] and moving means shifted, so that a new flow is no longer the identity.
  """
  rng = np.random.default_rng(seed)
  for variable in layer.variables:
    value = variable.numpy()
    if "variance" in variable.path:
      value = value * rng.uniform(0.5, 1.5, size=value.shape)
    else:
      value = value + stddev * rng.standard_normal(value.shape)
    variable.assign(value.astype(value.dtype))
  return layer


def resnet_conditioner(input_shape, output_channels, dtype="float64", seed=0, name=None):
  """A tiny randomised `CouplingResNet`, built for `input_shape` `(h, w, c)`."""
  net = networks.CouplingResNet(output_channels, num_filters=4, num_blocks=1, dtype=dtype,
                                name=name)
  net.build((None,) + tuple(input_shape))
  return randomize(net, seed)


def fresh(x):
  """A new tensor equal to `x`, so that TFP's bijector cache cannot answer for it."""
  return tf.identity(tf.convert_to_tensor(x))


def autodiff_log_abs_det(fn, x):
  """`log |det J|` of `fn` at one event `x` (no batch dimension), from the autodiff Jacobian."""
  x = tf.convert_to_tensor(x)
  with tf.GradientTape() as tape:
    tape.watch(x)
    y = fn(x)
  jacobian = tape.jacobian(y, x, experimental_use_pfor=True)
  size = int(np.prod(x.shape))
  matrix = tf.reshape(jacobian, [int(np.prod(y.shape)), size]).numpy()
  sign, log_abs_det = np.linalg.slogdet(matrix)
  assert sign != 0, "the Jacobian is singular"
  return log_abs_det


def assert_close_relative(actual, expected, rtol):
  actual, expected = np.asarray(actual), np.asarray(expected)
  scale = np.maximum(1.0, np.abs(expected))
  error = np.max(np.abs(actual - expected) / scale)
  assert error <= rtol, f"relative error {error:.3g} > {rtol:g}: {actual} vs {expected}"
