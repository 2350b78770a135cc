"""Glow's invertible 1x1 convolution, `InvertibleConv1x1`, and its kernel's parameterisations.

The TFP contract of the bijector is checked by the conformance suite (`test_conformance.py`);
here: the LU and full parameterisations of the kernel, its gradients and restoring it.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfp_realnvp
from tfp_realnvp import bijectors as rb

from helpers import normal, randomize


def conv_layer(lu=True, seed=3, channels=5):
  layer = tfp_realnvp.bijectors.InvertibleConv1x1Parameters(lu=lu, seed=seed, dtype="float64")
  layer.build((None, 2, 3, channels))
  return layer


def test_kernel_starts_as_the_same_random_rotation_in_both_parameterisations():
  lu, full = conv_layer(lu=True), conv_layer(lu=False)
  w = lu.kernel(tf.float64).numpy()
  np.testing.assert_allclose(w @ w.T, np.eye(5), atol=1e-12)
  np.testing.assert_allclose(full.kernel(tf.float64).numpy(), w, atol=1e-12)
  assert abs(lu.log_abs_det(tf.float64).numpy()) < 1e-12
  assert abs(full.log_abs_det(tf.float64).numpy()) < 1e-12
  assert not np.allclose(conv_layer(seed=4).kernel(tf.float64).numpy(), w)
  assert {v.name for v in lu.trainable_variables} == {"log_scale", "lower", "upper"}
  assert {v.name for v in lu.non_trainable_variables} == {"permutation", "sign"}
  assert [v.name for v in full.trainable_variables] == ["kernel"]


@pytest.mark.parametrize("lu", [True, False])
def test_kernel_inverse_and_log_det_follow_the_parameterisation(lu):
  layer = conv_layer(lu=lu)
  randomize(layer, seed=1)
  if lu:  # Restore the constants, then build W = P L (U + diag(sign * exp(log_s))) by hand.
    permutation = np.argsort(np.random.default_rng(0).random(5)).astype(np.int32)
    sign = np.array([1.0, -1.0, -1.0, 1.0, -1.0])
    layer.permutation.assign(permutation)
    layer.sign.assign(sign)
    lower = np.tril(layer.lower.numpy(), -1) + np.eye(5)
    upper = np.triu(layer.upper.numpy(), 1) + np.diag(sign * np.exp(layer.log_scale.numpy()))
    expected = np.eye(5)[:, permutation] @ lower @ upper
    assert np.isclose(layer.log_abs_det(tf.float64).numpy(), layer.log_scale.numpy().sum())
  else:
    expected = layer.kernel_variable.numpy()
  w = layer.kernel(tf.float64).numpy()
  np.testing.assert_allclose(w, expected, atol=1e-12)
  np.testing.assert_allclose(layer.inverse_kernel(tf.float64).numpy(), np.linalg.inv(w),
                             atol=1e-10)
  np.testing.assert_allclose(layer.log_abs_det(tf.float64).numpy(), np.linalg.slogdet(w)[1],
                             atol=1e-12)

  bijector = rb.InvertibleConv1x1(layer)
  x = normal((4, 2, 3, 5), seed=2)
  np.testing.assert_allclose(bijector.inverse(x).numpy(), np.einsum("ij,...j->...i", w, x),
                             atol=1e-12)
  np.testing.assert_allclose(bijector.inverse_log_det_jacobian(x, event_ndims=3).numpy(),
                             np.full(4, 6 * np.linalg.slogdet(w)[1]), atol=1e-10)


@pytest.mark.parametrize("lu", [True, False])
def test_every_trainable_variable_gets_a_gradient(lu):
  layer = conv_layer(lu=lu)
  bijector = rb.InvertibleConv1x1(layer)
  x = normal((4, 2, 3, 5), seed=2)
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(bijector.inverse(x) ** 2) - tf.reduce_sum(
        bijector.inverse_log_det_jacobian(x, event_ndims=3))
  gradients = tape.gradient(loss, layer.trainable_variables)
  assert all(g is not None and np.any(g.numpy() != 0) for g in gradients)


def test_conv_layer_restores_the_same_kernel_from_config_and_weights():
  layer = conv_layer(seed=None)  # A fresh rotation: the constants must come with the weights.
  clone = tfp_realnvp.bijectors.InvertibleConv1x1Parameters.from_config(layer.get_config())
  clone.build((None, 2, 3, 5))
  assert not np.allclose(clone.kernel(tf.float64).numpy(), layer.kernel(tf.float64).numpy())
  clone.set_weights(layer.get_weights())
  np.testing.assert_array_equal(clone.kernel(tf.float64).numpy(),
                                layer.kernel(tf.float64).numpy())


def test_a_parameter_layer_of_another_class_is_refused():
  with pytest.raises(TypeError, match="must be an instance of the Keras layer "
                                      "InvertibleConv1x1Parameters, got Dense"):
    rb.InvertibleConv1x1(keras.layers.Dense(3))
