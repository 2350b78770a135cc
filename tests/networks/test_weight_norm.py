"""`WeightNormConv2D`: the convolution with the kernel `g * v / ||v||`, and its gradients."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfp_realnvp
from tfp_realnvp import networks


def built_layer(dtype="float64", in_channels=3, filters=4):
  layer = networks.WeightNormConv2D(filters, dtype=dtype, scale_initializer="random_normal")
  layer.build((None, 5, 6, in_channels))
  layer.bias.assign(tf.random.stateless_normal(layer.bias.shape, seed=[5, 6], dtype=dtype))
  return layer


def reference(layer, x):
  """The layer's output from autodiff-able operations on its variables, as the paper writes it."""
  v = layer.kernel
  kernel = layer.scale * v / tf.sqrt(tf.reduce_sum(v ** 2, axis=(0, 1, 2)) + layer.epsilon)
  return tf.nn.conv2d(x, kernel, strides=1, padding="SAME") + layer.bias


def test_output_is_the_convolution_with_the_normalised_kernel():
  layer = built_layer()
  x = tf.random.stateless_normal([2, 5, 6, 3], seed=[1, 2], dtype=tf.float64)
  np.testing.assert_allclose(layer(x).numpy(), reference(layer, x).numpy(), rtol=1e-12,
                             atol=1e-12)


@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
def test_gradients_equal_those_of_the_formula(jit_compile):
  layer = built_layer()
  x = tf.random.stateless_normal([2, 5, 6, 3], seed=[3, 4], dtype=tf.float64)
  upstream = tf.random.stateless_normal([2, 5, 6, 4], seed=[7, 8], dtype=tf.float64)

  @tf.function(jit_compile=jit_compile)
  def gradients(function, x):
    with tf.GradientTape() as tape:
      tape.watch(x)
      loss = tf.reduce_sum(function(x) * upstream)
    return tape.gradient(loss, [x] + layer.trainable_variables)

  ours = gradients(layer, x)
  theirs = gradients(lambda x: reference(layer, x), x)
  assert [v.name for v in layer.trainable_variables] == ["kernel", "scale", "bias"]
  for a, b in zip(ours, theirs, strict=True):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-11, atol=1e-12)


def test_mixed_bfloat16_normalises_in_float32_and_convolves_in_bfloat16():
  layer = networks.WeightNormConv2D(4, dtype="mixed_bfloat16")
  x = tf.random.stateless_normal([2, 5, 6, 3], seed=[1, 2])
  with tf.GradientTape() as tape:
    y = layer(x)
    loss = tf.reduce_sum(tf.cast(y, tf.float32) ** 2)
  grads = tape.gradient(loss, layer.trainable_variables)
  assert y.dtype == tf.bfloat16
  assert [g.dtype for g in grads] == [tf.float32] * 3
  assert all(np.isfinite(g.numpy()).all() for g in grads)


def test_zero_scales_output_the_bias_and_the_penalty_sees_them():
  layer = networks.WeightNormConv2D(4, scale_initializer="zeros")
  y = layer(tf.ones([1, 3, 3, 2]))
  np.testing.assert_array_equal(y.numpy(), 0.0)
  assert layer.weight_scales == [layer.scale]


def test_even_kernel_size_is_refused():
  with pytest.raises(tfp_realnvp.errors.InvalidValueError, match="kernel_size must be odd"):
    networks.WeightNormConv2D(4, kernel_size=2)


def test_keras_round_trip_keeps_the_configuration():
  layer = networks.WeightNormConv2D(4, kernel_size=5, epsilon=1e-9, name="conv")
  clone = keras.layers.deserialize(keras.layers.serialize(layer))
  assert (clone.filters, clone.kernel_size, clone.epsilon, clone.name) == (4, 5, 1e-9, "conv")
