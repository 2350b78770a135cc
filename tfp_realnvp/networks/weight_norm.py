"""A 2-D convolution with weight normalisation, as a Keras 3 layer."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops
import tensorflow as tf

from tfp_realnvp import _validation
from tfp_realnvp import errors
from tfp_realnvp.networks import _convolution
from tfp_realnvp._types import LayerShape

__all__ = ["WeightNormConv2D", "weight_scales"]


def weight_scales(layer: keras.layers.Layer) -> list[keras.Variable]:
  """The weight-norm scales `g` of every `WeightNormConv2D` inside `layer` (and itself)."""
  return [g for sublayer in layer._flatten_layers()  # pylint: disable=protected-access
          if isinstance(sublayer, WeightNormConv2D) for g in sublayer.weight_scales]


@keras.saving.register_keras_serializable(package="tfp_realnvp")
class WeightNormConv2D(keras.layers.Layer):
  """Convolution whose kernel is `w = g * v / ||v||` (Salimans and Kingma, 2016).

  Each output filter `v[..., k]` is normalised over its spatial and input axes and multiplied
  by a learned scale `g[k]`; the layer adds a bias and uses `"same"` padding, stride 1,
  channels last. The scales `g` are the weights the Real NVP paper regularises with L2
  (`weight_scales` lists them).

  Args:
    filters: number of output channels.
    kernel_size: odd spatial size of the (square) kernel.
    scale_initializer: initialiser of `g`; `"zeros"` makes the layer output its bias (zero),
      which starts a coupling as the identity.
    kernel_initializer: initialiser of the direction `v`.
    epsilon: added to `||v||^2` before the square root.
    **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).

  References:
    Tim Salimans and Diederik P. Kingma. Weight Normalization: A Simple Reparameterization to
    Accelerate Training of Deep Neural Networks. NeurIPS 2016. https://arxiv.org/abs/1602.07868
  """

  def __init__(self, filters: int, kernel_size: int = 3, scale_initializer: Any = "ones",
               kernel_initializer: Any = "he_normal", epsilon: float = 1e-12,
               **kwargs: Any) -> None:
    super().__init__(**kwargs)
    if kernel_size % 2 != 1:
      raise errors.InvalidValueError(f"kernel_size must be odd, got {kernel_size}.")
    self.filters = int(filters)
    self.kernel_size = int(kernel_size)
    self.scale_initializer = keras.initializers.get(scale_initializer)
    self.kernel_initializer = keras.initializers.get(kernel_initializer)
    self.epsilon = _validation.number_in(epsilon, "epsilon", 0.0)

  def build(self, input_shape: LayerShape) -> None:
    in_channels = input_shape[-1]
    # The kernel is normalised in the variables' dtype (float32 under mixed precision) and cast
    # to the compute dtype once, so the direction and scale are read without autocasting.
    self.kernel = self.add_weight(
        name="kernel", shape=(self.kernel_size, self.kernel_size, in_channels, self.filters),
        initializer=self.kernel_initializer, autocast=False)
    self.scale = self.add_weight(
        name="scale", shape=(self.filters,), initializer=self.scale_initializer, autocast=False)
    self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")

  @property
  def weight_scales(self) -> list[keras.Variable]:
    """The weight-norm scales `g`, the variables an L2 penalty applies to."""
    return [self.scale]

  def call(self, inputs: tf.Tensor) -> tf.Tensor:
    squared_norm = ops.sum(ops.square(self.kernel), axis=(0, 1, 2))
    kernel = ops.cast(self.kernel * (self.scale * ops.rsqrt(squared_norm + self.epsilon)),
                      self.compute_dtype)
    # A BiasAdd (not a broadcast add) is what TensorFlow's graph optimiser fuses into the
    # convolution, and its gradient is one reduction kernel.
    return tf.nn.bias_add(_convolution.conv2d_same(inputs, kernel), self.bias)

  def compute_output_shape(self, input_shape: LayerShape) -> tuple[int | None, ...]:
    return tuple(input_shape[:-1]) + (self.filters,)

  def get_config(self) -> dict[str, Any]:
    config = super().get_config()
    config.update(
        filters=self.filters,
        kernel_size=self.kernel_size,
        scale_initializer=keras.initializers.serialize(self.scale_initializer),
        kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        epsilon=self.epsilon)
    return config
