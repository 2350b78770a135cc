"""The networks' convolutions under XLA on a CPU: the same values and gradients as TensorFlow's,
and, inside a loop, only convolutions in the layout XLA's CPU compiler runs fast."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfp_realnvp import _tf_internals
from tfp_realnvp import networks
from tfp_realnvp.networks import _convolution

# The one layout XLA's CPU compiler gives its fast convolution: NHWC images, HWIO kernels.
FAST_LAYOUT = "b01f_01io->b01f"


def normal(shape, seed):
  return tf.random.stateless_normal(shape, seed=[seed, 0], dtype=tf.float64)


@pytest.mark.parametrize("kernel_shape", [(3, 3), (1, 1), (3, 5)], ids=str)
def test_values_and_gradients_equal_tensorflows_under_xla(kernel_shape):
  x = normal([2, 6, 7, 3], 1)
  kernel = normal([*kernel_shape, 3, 4], 2)
  upstream = normal([2, 6, 7, 4], 3)

  def value_and_gradients(convolve, x, kernel):
    with tf.GradientTape() as tape:
      tape.watch([x, kernel])
      y = convolve(x, kernel)
    return (y, *tape.gradient(y, [x, kernel], output_gradients=upstream))

  expected = value_and_gradients(lambda x, k: tf.nn.conv2d(x, k, 1, "SAME"), x, kernel)
  compiled = tf.function(lambda x, k: value_and_gradients(_convolution.conv2d_same, x, k),
                         jit_compile=True)
  for got, want in zip(compiled(x, kernel), expected, strict=True):
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-10, atol=1e-10)


def layers_under_test():
  """Every kind of the networks' convolutions, built for 4-channel 8x8 images (float64)."""
  layers = {"3x3 same": networks.Conv2D(4, 3, padding="same", dtype="float64"),
            "1x1 valid": networks.Conv2D(4, 1, dtype="float64"),
            "weight norm": networks.WeightNormConv2D(4, dtype="float64")}
  for layer in layers.values():
    layer.build((None, 8, 8, 4))
  return layers


@pytest.mark.parametrize("name", ["3x3 same", "1x1 valid", "weight norm"])
def test_loop_of_a_compiled_training_step_keeps_the_fast_layout(name):
  layer = layers_under_test()[name]

  @tf.function(jit_compile=True)
  def gradients(x):
    with tf.GradientTape() as tape:
      y = tf.while_loop(lambda i, h: i < 3, lambda i, h: (i + 1, tf.tanh(layer(h))), (0, x),
                        maximum_iterations=3)[1]
      loss = tf.reduce_sum(y ** 2)
    return tape.gradient(loss, [x, *layer.trainable_variables])

  x = normal([2, 8, 8, 4], 4)
  hlo = gradients.experimental_get_compiler_ir(x)(stage="optimized_hlo")
  layouts = re.findall(r"convolution\(.*?dim_labels=(\S+?),", hlo)
  # (XLA turns some 1x1 convolutions into matrix products.)
  assert layouts and set(layouts) == {FAST_LAYOUT}, layouts


def test_strided_convolutions_stay_kerass():
  layer = networks.Conv2D(4, 3, strides=2, padding="same", dtype="float64")
  x = normal([2, 8, 8, 4], 5)
  layer.build(x.shape)
  with tf.GradientTape() as tape:
    tape.watch(x)
    y = tf.function(layer, jit_compile=True)(x)
  expected = tf.nn.conv2d(x, layer.kernel, 2, "SAME") + layer.bias
  np.testing.assert_allclose(y.numpy(), expected.numpy(), rtol=1e-12)
  assert tape.gradient(y, x).shape == x.shape


def test_xla_context_is_seen_in_compiled_functions_only():
  seen = {}

  def record(key):
    seen[key] = _tf_internals.in_xla_context()
    return tf.constant(0.0)

  record("eager")
  tf.function(lambda: record("graph"))()
  tf.function(lambda: record("xla"), jit_compile=True)()
  tf.function(lambda: tf.function(lambda: record("nested"))(), jit_compile=True)()
  assert seen == {"eager": False, "graph": False, "xla": True, "nested": True}


def test_the_layer_is_kerass_conv2d_and_serializes_as_itself():
  layer = networks.Conv2D(6, 3, padding="same", name="conv")
  x = normal([2, 5, 5, 3], 6)
  y = layer(tf.cast(x, tf.float32))
  keras_layer = keras.layers.Conv2D(6, 3, padding="same")
  keras_layer.build(x.shape)
  keras_layer.set_weights(layer.get_weights())
  np.testing.assert_allclose(y.numpy(), keras_layer(tf.cast(x, tf.float32)).numpy(), rtol=1e-6)
  restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
  assert type(restored) is networks.Conv2D
  assert restored.get_config() == layer.get_config()
