"""The Real NVP coupling network: a ResNet of weight-normalised convolutions."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops
import tensorflow as tf

from tfp_realnvp import _validation
from tfp_realnvp._types import LayerShape
from tfp_realnvp._types import TensorLike
from tfp_realnvp.networks import batch_normalization
from tfp_realnvp.networks import _conditioning
from tfp_realnvp.networks import _coupling_networks
from tfp_realnvp.networks import _coupling_outputs
from tfp_realnvp.networks import weight_norm

__all__ = ["CouplingResNet", "ResidualBlock"]


# Momentum of the moving averages that evaluation uses. The couplings' inputs drift as the flow
# trains, and Keras's default of 0.99 lags too far behind them (benchmarks/RESULTS.md, "moving-
# average momentum 0.9").
BATCH_NORM_MOMENTUM = 0.9


def _batch_normalization(dtype: Any, name: str, momentum: float
                         ) -> batch_normalization.FusedBatchNormalization:
  # Synchronised across replicas, so a global batch gives the same statistics (and so the same
  # loss and gradients) on one device and under a tf.distribute strategy; otherwise (one
  # replica, and inference) it runs as TensorFlow's fused kernel.
  return batch_normalization.FusedBatchNormalization(momentum=momentum, synchronized=True,
                                                     dtype=dtype, name=name)


@keras.saving.register_keras_serializable(package="tfp_realnvp")
class ResidualBlock(keras.layers.Layer):
  """`h + conv(relu(bn(conv(relu(bn(h))))))` with weight-normalised 3x3 convolutions.

  Args:
    filters: channels of the block's input and output.
    batch_norm_momentum: momentum of the batch normalisations' moving averages.
    **kwargs: `keras.layers.Layer` arguments.
  """

  def __init__(self, filters: int, batch_norm_momentum: float = BATCH_NORM_MOMENTUM,
               **kwargs: Any) -> None:
    super().__init__(**kwargs)
    self.filters = int(filters)
    self.batch_norm_momentum = float(batch_norm_momentum)
    self.norm_in = _batch_normalization(self.dtype_policy, "norm_in", self.batch_norm_momentum)
    self.conv_in = weight_norm.WeightNormConv2D(self.filters, dtype=self.dtype_policy,
                                                name="conv_in")
    self.norm_out = _batch_normalization(self.dtype_policy, "norm_out", self.batch_norm_momentum)
    self.conv_out = weight_norm.WeightNormConv2D(self.filters, dtype=self.dtype_policy,
                                                 name="conv_out")

  def build(self, input_shape: LayerShape) -> None:
    for layer in (self.norm_in, self.conv_in, self.norm_out, self.conv_out):
      layer.build(input_shape)

  def call(self, inputs: tf.Tensor) -> tf.Tensor:
    h = self.conv_in(ops.relu(self.norm_in(inputs)))
    return inputs + self.conv_out(ops.relu(self.norm_out(h)))

  def compute_output_shape(self, input_shape: LayerShape) -> LayerShape:
    return input_shape

  def get_config(self) -> dict[str, Any]:
    config = super().get_config()
    config.update(filters=self.filters, batch_norm_momentum=self.batch_norm_momentum)
    return config


@keras.saving.register_keras_serializable(package="tfp_realnvp")
@_coupling_networks.COUPLING_NETWORKS.register("resnet")
class CouplingResNet(keras.layers.Layer):
  """Shift and log-scale (or spline) network of a Real NVP coupling (Dinh et al., 2017, Sec. 4.1).

  ```none
  h = conv_3x3(batch_norm(input))                  # weight-normalised, num_filters channels
  h = h + dense(c)                                 # conditional only: one bias per example
  h = residual_block(h), num_blocks times
  shift, raw = split(conv_3x3(relu(batch_norm(h))))  # last conv starts at zero
  log_scale = scale * tanh(raw)                    # learned scale per output channel
  ```

  With `params_per_unit=P` the last convolution has `P * output_channels` channels instead,
  returned raw as `[N, h, w, output_channels, P]`: the parameters of another elementwise
  transform, e.g. `P = 3K - 1` for a `tfp_realnvp.bijectors.SplineCoupling` of `K` bins.

  With `conditional_size=K` the network is conditional: a dense layer maps the condition
  `c` `[N, K]` (a float vector per example, e.g. a one-hot class label) to `num_filters`
  features that are added to the stem's output at every pixel, so that the residual blocks
  see the image and the condition together. Adding a projected bias keeps the convolutions'
  shapes those of the unconditional network (concatenating `K` constant channels to the input
  would do the same job with a wider stem). The dense layer is not weight-normalised, so the
  paper's L2 penalty (`weight_scales`) leaves it alone.

  The last convolution starts with zero weight-norm scales and zero bias, so a new network
  outputs `shift = log_scale = 0` (or raw parameters 0) and every coupling starts as the
  identity. Batch
  normalisation follows Keras's training flag: batch statistics inside `fit`, moving averages
  in `evaluate`, `predict` and direct calls; under a `tf.distribute` strategy the batch
  statistics are those of the global batch. One network outputs both shift and log-scale.

  Args:
    output_channels: channels of the shift and of the log-scale.
    num_filters: width of the hidden convolutions.
    num_blocks: number of residual blocks.
    conditional_size: size `K` of the condition vectors, or `None` for an unconditional
      network.
    batch_norm_momentum: momentum of the batch normalisations' moving averages.
    params_per_unit: `None` for `(shift, log_scale)`, or the number `P` of raw parameters
      per output unit (`tfp_realnvp.bijectors.spline_params_per_unit(K)` for a spline).
    **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).

  Call arguments:
    inputs: `[N, h, w, c_in]` conditioning input.
    conditional_input: `[N, K]` floating-point condition, required iff `conditional_size` is
      set (a coupling passes it on from `conditional_input=c`).

  Returns:
    `(shift, log_scale)`, each `[N, h, w, output_channels]`, or with `params_per_unit=P` the
    raw parameters `[N, h, w, output_channels, P]`, in the layer's compute dtype.

  Raises:
    ValueError: a missing or unexpected `conditional_input`, or one of the wrong shape.
  """

  def __init__(self, output_channels: int, num_filters: int = 64, num_blocks: int = 4,
               conditional_size: int | None = None,
               batch_norm_momentum: float = BATCH_NORM_MOMENTUM,
               params_per_unit: int | None = None, **kwargs: Any) -> None:
    super().__init__(**kwargs)
    self.output_channels = _validation.positive_int(output_channels, "output_channels")
    self.num_filters = _validation.positive_int(num_filters, "num_filters")
    self.num_blocks = int(num_blocks)
    self.params_per_unit = _validation.positive_int(params_per_unit, "params_per_unit",
                                                    allow_none=True)
    self.batch_norm_momentum = float(batch_norm_momentum)
    self.conditional_size = _validation.positive_int(conditional_size, "conditional_size",
                                                     allow_none=True)
    policy = self.dtype_policy
    self.input_norm = _batch_normalization(policy, "input_norm", self.batch_norm_momentum)
    self.stem = weight_norm.WeightNormConv2D(self.num_filters, dtype=policy, name="stem")
    self.blocks = [ResidualBlock(self.num_filters, self.batch_norm_momentum, dtype=policy,
                                 name=f"block_{i}")
                   for i in range(self.num_blocks)]
    self.output_norm = _batch_normalization(policy, "output_norm", self.batch_norm_momentum)
    self.head = weight_norm.WeightNormConv2D(
        _coupling_outputs.head_channels(self.output_channels, self.params_per_unit),
        scale_initializer="zeros", dtype=policy, name="head")
    self.condition_projection = _conditioning.condition_projection(self, self.num_filters)

  def build(self, input_shape: LayerShape) -> None:
    input_shape = tuple(input_shape)
    hidden_shape = input_shape[:-1] + (self.num_filters,)
    self.input_norm.build(input_shape)
    self.stem.build(input_shape)
    for layer in self.blocks + [self.output_norm, self.head]:
      layer.build(hidden_shape)
    _conditioning.build_condition_projection(self)
    if self.params_per_unit is None:
      self.log_scale_factor = self.add_weight(
          name="log_scale_factor", shape=(self.output_channels,), initializer="ones")

  @property
  def weight_scales(self) -> list[keras.Variable]:
    """The weight-norm scales of every convolution."""
    return weight_norm.weight_scales(self)

  def call(self, inputs: tf.Tensor, conditional_input: TensorLike | None = None
           ) -> tuple[tf.Tensor, tf.Tensor] | tf.Tensor:
    h = _conditioning.add_condition(self, self.stem(self.input_norm(inputs)), conditional_input)
    for block in self.blocks:
      h = block(h)
    h = self.head(ops.relu(self.output_norm(h)))
    if self.params_per_unit is not None:
      return _coupling_outputs.raw_parameters(h, self.output_channels, self.params_per_unit)
    shift, raw = ops.split(h, 2, axis=-1)
    return shift, self.log_scale_factor * ops.tanh(raw)

  def compute_output_shape(self, input_shape: LayerShape) -> _coupling_outputs.OutputShape:
    return _coupling_outputs.output_shape(input_shape, self.output_channels, self.params_per_unit)

  def get_config(self) -> dict[str, Any]:
    config = super().get_config()
    config.update(output_channels=self.output_channels, num_filters=self.num_filters,
                  num_blocks=self.num_blocks, conditional_size=self.conditional_size,
                  batch_norm_momentum=self.batch_norm_momentum,
                  params_per_unit=self.params_per_unit)
    return config
