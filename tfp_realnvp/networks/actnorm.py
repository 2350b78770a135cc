"""`ActNormalization`: Glow's activation normalisation as a plain Keras 3 layer."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops
import tensorflow as tf

from tfp_realnvp._types import LayerShape

from tfp_realnvp import _validation
from tfp_realnvp.bijectors.actnorm import ActNormParameters

__all__ = ["ActNormalization"]


@keras.saving.register_keras_serializable(package="tfp_realnvp")
class ActNormalization(keras.layers.Layer):
  """Per-channel affine normalisation with data-dependent initialisation (Glow, Sec. 3.1).

  ```none
  outputs = (inputs + b) * exp(s)
  ```

  with a per-channel shift `b` and log-scale `s` held by an `ActNormParameters` layer, which
  also initialises them from the first training batch so that the outputs have zero mean and
  unit variance per channel (and does so across the replicas of a `tf.distribute` strategy).
  This is the layer form, inside a network (`GlowCouplingNetwork` uses it in place of batch
  normalisation); the bijector form, whose log-determinant a flow counts, is
  `tfp_realnvp.bijectors.ActNorm`. Before its first training batch the layer is the identity.

  Under mixed precision the parameters stay in the variable dtype (float32) and the outputs
  are in the compute dtype.

  ```python
  norm = tfp_realnvp.networks.ActNormalization()
  h = norm(conv(x), training=True)   # the first training call initialises from this batch
  ```

  #### References

  [1] Diederik P. Kingma and Prafulla Dhariwal. Glow: Generative Flow with Invertible 1x1
      Convolutions. In Neural Information Processing Systems, 2018.
      https://arxiv.org/abs/1807.03039

  Args:
    epsilon: added to the standard deviation of the initialising batch.
    **kwargs: `keras.layers.Layer` arguments.
  """

  def __init__(self, epsilon: float = 1e-6, **kwargs: Any) -> None:
    super().__init__(**kwargs)
    self.epsilon = _validation.number_in(epsilon, "epsilon", 0.0)
    self.parameters_layer = ActNormParameters(
        epsilon=self.epsilon, dtype=self.dtype_policy.variable_dtype, name="parameters")

  def build(self, input_shape: LayerShape) -> None:
    self.parameters_layer.build(input_shape)

  def call(self, inputs: tf.Tensor) -> tf.Tensor:
    # The parameters layer reads Keras's training flag from the call context.
    log_scale, shift = (ops.cast(v, self.compute_dtype) for v in self.parameters_layer(inputs))
    return (inputs + shift) * ops.exp(log_scale)

  def compute_output_shape(self, input_shape: LayerShape) -> LayerShape:
    return input_shape

  def get_config(self) -> dict[str, Any]:
    config = super().get_config()
    config.update(epsilon=self.epsilon)
    return config
