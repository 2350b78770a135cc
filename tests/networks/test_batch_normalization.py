"""FusedBatchNormalization: Keras's batch normalisation, trained with the fused kernel."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfp_realnvp
from tfp_realnvp import _distribute

SHAPE = (8, 5, 6, 4)


def images(dtype="float32", seed=0):
  rng = np.random.default_rng(seed)
  return tf.cast(rng.normal(2.0, 3.0, size=SHAPE), dtype)


def pair(**kwargs):
  """Keras's layer and ours, built alike with the same non-trivial scale and offset."""
  layers = (keras.layers.BatchNormalization(**kwargs),
            tfp_realnvp.networks.FusedBatchNormalization(**kwargs))
  for layer in layers:
    layer.build(SHAPE)
    layer.gamma.assign([1.0, 2.0, 0.5, -1.0])
    layer.beta.assign([0.1, 0.2, -0.3, 0.4])
  return layers


def step(layer, x, training):
  """Output, and gradients of a weighted sum of it w.r.t. input, gamma and beta."""
  weights = tf.cast(np.random.default_rng(1).normal(size=SHAPE), "float32")

  @tf.function(autograph=False)
  def run(x):
    with tf.GradientTape() as tape:
      tape.watch(x)
      y = layer(x, training=training)
      loss = tf.reduce_sum(tf.cast(y, "float32") * weights)
    return y, tape.gradient(loss, [x, layer.gamma, layer.beta])

  return run, run(x)


def op_types(function, x):
  return {op.type for op in function.get_concrete_function(x).graph.get_operations()}


@pytest.mark.parametrize("momentum,epsilon,synchronized",
                         [(0.9, 1e-3, True), (0.99, 1e-5, False)])
def test_training_step_matches_keras(momentum, epsilon, synchronized):
  keras_layer, fused_layer = pair(momentum=momentum, epsilon=epsilon, synchronized=synchronized)
  x = images()
  _, (y_keras, grads_keras) = step(keras_layer, x, training=True)
  run, (y_fused, grads_fused) = step(fused_layer, x, training=True)
  assert "FusedBatchNormV3" in op_types(run, x)
  np.testing.assert_allclose(y_fused, y_keras, rtol=1e-5, atol=1e-5)
  for fused, reference in zip(grads_fused, grads_keras, strict=True):
    np.testing.assert_allclose(fused, reference, rtol=1e-4, atol=1e-4)
  # The moving averages take the biased batch variance, as Keras's do.
  np.testing.assert_allclose(fused_layer.moving_mean, keras_layer.moving_mean, rtol=1e-6)
  np.testing.assert_allclose(fused_layer.moving_variance, keras_layer.moving_variance, rtol=1e-6)
  mean, variance = tf.nn.moments(x, axes=[0, 1, 2])
  np.testing.assert_allclose(fused_layer.moving_mean, (1 - momentum) * mean, rtol=1e-5)
  np.testing.assert_allclose(fused_layer.moving_variance, momentum + (1 - momentum) * variance,
                             rtol=1e-5)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_inputs_are_normalised_in_float32_and_returned_as_they_came(dtype):
  keras_layer, fused_layer = pair(dtype=f"mixed_{dtype}")
  x = images(dtype)
  _, (y_keras, _) = step(keras_layer, x, training=True)
  run, (y_fused, _) = step(fused_layer, x, training=True)
  assert "FusedBatchNormV3" in op_types(run, x)
  assert y_fused.dtype == dtype
  np.testing.assert_allclose(tf.cast(y_fused, "float32"), tf.cast(y_keras, "float32"),
                             rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("dtype,tolerance",
                         [("float32", 1e-5), ("mixed_bfloat16", 2e-2), ("mixed_float16", 2e-3)])
@pytest.mark.parametrize("trainable", [True, False])
def test_inference_uses_the_moving_averages_like_keras(dtype, tolerance, trainable):
  # A frozen layer (trainable=False) normalises with its moving averages even in training.
  keras_layer, fused_layer = pair(dtype=dtype)
  for layer in (keras_layer, fused_layer):
    layer.moving_mean.assign([0.5, -0.5, 1.0, 2.0])
    layer.moving_variance.assign([4.0, 9.0, 0.25, 1.0])
    layer.trainable = trainable
  x = images(dtype.replace("mixed_", ""))
  training = not trainable
  traced = tf.function(lambda x: fused_layer(x, training=training), autograph=False)
  assert "FusedBatchNormV3" in op_types(traced, x)
  y = traced(x)
  assert y.dtype == x.dtype
  np.testing.assert_allclose(tf.cast(y, "float32"),
                             tf.cast(keras_layer(x, training=training), "float32"),
                             rtol=tolerance, atol=tolerance)
  np.testing.assert_allclose(fused_layer.moving_mean, [0.5, -0.5, 1.0, 2.0])


@pytest.mark.parametrize("case", ["float64", "rank 2"])
def test_falls_back_to_keras_where_the_kernel_does_not_apply(case):
  dtype, shape = {"float64": ("float64", SHAPE), "rank 2": ("float32", (40, 4))}[case]
  keras_layer, fused_layer = (
      keras.layers.BatchNormalization(dtype=dtype),
      tfp_realnvp.networks.FusedBatchNormalization(dtype=dtype))
  x = tf.cast(np.random.default_rng(0).normal(2.0, 3.0, size=shape), dtype)
  for layer in (keras_layer, fused_layer):
    layer.build(shape)
  traced = tf.function(lambda x: fused_layer(x, training=True), autograph=False)
  assert "FusedBatchNormV3" not in op_types(traced, x)
  np.testing.assert_allclose(traced(x), keras_layer(x, training=True), rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(fused_layer.moving_mean, keras_layer.moving_mean, rtol=1e-6)


def test_batch_moments_are_the_biased_moments_over_the_axes():
  x = images()
  mean, variance = _distribute.batch_moments(x, axes=[0, 1, 2])
  values = x.numpy().reshape(-1, SHAPE[-1])
  np.testing.assert_allclose(mean, values.mean(axis=0), rtol=1e-5)
  np.testing.assert_allclose(variance, values.var(axis=0), rtol=1e-5)


def test_coupling_network_trains_with_the_fused_kernel_and_round_trips_its_config():
  network = tfp_realnvp.networks.CouplingResNet(2, num_filters=8, num_blocks=1)
  x = images()
  traced = tf.function(lambda x: network(x, training=True), autograph=False)
  assert "FusedBatchNormV3" in op_types(traced, x)
  norm = network.blocks[0].norm_in
  clone = keras.layers.deserialize(keras.layers.serialize(norm))
  assert type(clone) is tfp_realnvp.networks.FusedBatchNormalization
  assert clone.get_config() == norm.get_config()
