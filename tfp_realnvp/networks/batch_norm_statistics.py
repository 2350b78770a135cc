"""`BatchNormStatistics`: the Keras 3 layer that holds the state of a `BatchNorm` bijector."""

import keras
from keras import ops

from tfp_realnvp.networks import batch_normalization

__all__ = ["BatchNormStatistics"]


@keras.saving.register_keras_serializable(package="tfp_realnvp")
class BatchNormStatistics(keras.layers.Layer):
  """Keras 3 state of a `BatchNorm` bijector: moving averages and a learned affine map.

  Calling the layer on images `[N, H, W, C]` returns the per-channel `(mean, variance)` to
  normalise with. It follows Keras's training flag without being told: inside `fit`
  (`training=True`) it returns the batch statistics (over batch and spatial axes, synchronised
  across replicas under a `tf.distribute` strategy) and updates the moving averages; in
  `evaluate`, `predict`, sampling and direct calls it returns the moving averages.
  `moving_mean` and `moving_variance` are non-trainable Keras variables, so they are saved,
  restored and checkpointed with the model; `log_scale` and `shift` are trainable.

  Args:
    momentum: moving-average momentum (0.9: the flow's statistics drift quickly in training,
      and slower averages lag behind them; see `tfp_realnvp.networks.resnet`).
    epsilon: added to the variance.
    **kwargs: `keras.layers.Layer` arguments.
  """

  def __init__(self, momentum=0.9, epsilon=1e-4, **kwargs):
    super().__init__(**kwargs)
    self.momentum = float(momentum)
    self.epsilon = float(epsilon)

  def build(self, input_shape):
    channels = (input_shape[-1],)
    self.moving_mean = self.add_weight(name="moving_mean", shape=channels, initializer="zeros",
                                       trainable=False)
    self.moving_variance = self.add_weight(name="moving_variance", shape=channels,
                                           initializer="ones", trainable=False)
    self.log_scale = self.add_weight(name="log_scale", shape=channels, initializer="zeros")
    self.shift = self.add_weight(name="shift", shape=channels, initializer="zeros")

  def call(self, inputs, training=False):
    if not training:
      return ops.convert_to_tensor(self.moving_mean), ops.convert_to_tensor(self.moving_variance)
    mean, variance = batch_normalization.batch_moments(inputs, axes=[0, 1, 2])
    for moving, value in ((self.moving_mean, mean), (self.moving_variance, variance)):
      moving.assign(self.momentum * moving + (1.0 - self.momentum) * ops.stop_gradient(value))
    return mean, variance

  def compute_output_shape(self, input_shape):
    return (input_shape[-1],), (input_shape[-1],)

  def get_config(self):
    config = super().get_config()
    config.update(momentum=self.momentum, epsilon=self.epsilon)
    return config
