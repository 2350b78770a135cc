"""The Real NVP coupling network: a ResNet of weight-normalised convolutions."""

import keras
from keras import ops

from tfp_realnvp.networks import weight_norm

__all__ = ["CouplingResNet", "ResidualBlock"]


def _batch_normalization(dtype, name):
  # Synchronised across replicas, so a global batch gives the same statistics (and so the same
  # loss and gradients) on one device and under a tf.distribute strategy.
  return keras.layers.BatchNormalization(synchronized=True, dtype=dtype, name=name)


@keras.saving.register_keras_serializable(package="tfp_realnvp")
class ResidualBlock(keras.layers.Layer):
  """`h + conv(relu(bn(conv(relu(bn(h))))))` with weight-normalised 3x3 convolutions.

  Args:
    filters: channels of the block's input and output.
    **kwargs: `keras.layers.Layer` arguments.
  """

  def __init__(self, filters, **kwargs):
    super().__init__(**kwargs)
    self.filters = int(filters)
    self.norm_in = _batch_normalization(self.dtype_policy, "norm_in")
    self.conv_in = weight_norm.WeightNormConv2D(self.filters, dtype=self.dtype_policy,
                                                name="conv_in")
    self.norm_out = _batch_normalization(self.dtype_policy, "norm_out")
    self.conv_out = weight_norm.WeightNormConv2D(self.filters, dtype=self.dtype_policy,
                                                 name="conv_out")

  def build(self, input_shape):
    for layer in (self.norm_in, self.conv_in, self.norm_out, self.conv_out):
      layer.build(input_shape)

  def call(self, inputs):
    h = self.conv_in(ops.relu(self.norm_in(inputs)))
    return inputs + self.conv_out(ops.relu(self.norm_out(h)))

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self):
    config = super().get_config()
    config.update(filters=self.filters)
    return config


@keras.saving.register_keras_serializable(package="tfp_realnvp")
class CouplingResNet(keras.layers.Layer):
  """Shift and log-scale network of a Real NVP coupling (Dinh et al., 2017, Sec. 4.1).

  ```none
  h = conv_3x3(batch_norm(input))                  # weight-normalised, num_filters channels
  h = residual_block(h), num_blocks times
  shift, raw = split(conv_3x3(relu(batch_norm(h))))  # last conv starts at zero
  log_scale = scale * tanh(raw)                    # learned scale per output channel
  ```

  The last convolution starts with zero weight-norm scales and zero bias, so a new network
  outputs `shift = log_scale = 0` and every coupling starts as the identity. Batch
  normalisation follows Keras's training flag: batch statistics inside `fit`, moving averages
  in `evaluate`, `predict` and direct calls; under a `tf.distribute` strategy the batch
  statistics are those of the global batch. One network outputs both shift and log-scale.

  Args:
    output_channels: channels of the shift and of the log-scale.
    num_filters: width of the hidden convolutions.
    num_blocks: number of residual blocks.
    **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).

  Call arguments:
    inputs: `[N, h, w, c_in]` conditioning input.

  Returns:
    `(shift, log_scale)`, each `[N, h, w, output_channels]`, in the layer's compute dtype.
  """

  def __init__(self, output_channels, num_filters=64, num_blocks=4, **kwargs):
    super().__init__(**kwargs)
    self.output_channels = int(output_channels)
    self.num_filters = int(num_filters)
    self.num_blocks = int(num_blocks)
    policy = self.dtype_policy
    self.input_norm = _batch_normalization(policy, "input_norm")
    self.stem = weight_norm.WeightNormConv2D(self.num_filters, dtype=policy, name="stem")
    self.blocks = [ResidualBlock(self.num_filters, dtype=policy, name=f"block_{i}")
                   for i in range(self.num_blocks)]
    self.output_norm = _batch_normalization(policy, "output_norm")
    self.head = weight_norm.WeightNormConv2D(
        2 * self.output_channels, scale_initializer="zeros", dtype=policy, name="head")

  def build(self, input_shape):
    input_shape = tuple(input_shape)
    hidden_shape = input_shape[:-1] + (self.num_filters,)
    self.input_norm.build(input_shape)
    self.stem.build(input_shape)
    for layer in self.blocks + [self.output_norm, self.head]:
      layer.build(hidden_shape)
    self.log_scale_factor = self.add_weight(
        name="log_scale_factor", shape=(self.output_channels,), initializer="ones")

  @property
  def weight_scales(self):
    """The weight-norm scales of every convolution."""
    return [v for layer in self._flatten_layers() if isinstance(layer, weight_norm.WeightNormConv2D)
            for v in layer.weight_scales]

  def call(self, inputs):
    h = self.stem(self.input_norm(inputs))
    for block in self.blocks:
      h = block(h)
    h = self.head(ops.relu(self.output_norm(h)))
    shift, raw = ops.split(h, 2, axis=-1)
    return shift, self.log_scale_factor * ops.tanh(raw)

  def compute_output_shape(self, input_shape):
    shape = tuple(input_shape[:-1]) + (self.output_channels,)
    return shape, shape

  def get_config(self):
    config = super().get_config()
    config.update(output_channels=self.output_channels, num_filters=self.num_filters,
                  num_blocks=self.num_blocks)
    return config
