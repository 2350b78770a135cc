"""Batch normalisation of images as TensorFlow's fused kernel."""

from __future__ import annotations

import keras
from keras import ops
import tensorflow as tf

from tfp_realnvp._distribute import replicas_in_sync

__all__ = ["FusedBatchNormalization"]


@keras.saving.register_keras_serializable(package="tfp_realnvp")
class FusedBatchNormalization(keras.layers.BatchNormalization):
  """`keras.layers.BatchNormalization` that normalises images with one fused kernel.

  Per channel `c`, with batch statistics `(m, v)` in training and the moving averages
  otherwise:

  ```none
  y = gamma_c * (x - m_c) / sqrt(v_c + epsilon) + beta_c
  moving_m <- momentum * moving_m + (1 - momentum) * m          (training only)
  moving_v <- momentum * moving_v + (1 - momentum) * v          (v biased, as in Keras)
  ```

  Keras's layer normalises with a dozen small TensorFlow ops per call, and as many again in
  the backward pass (its synchronised variant also builds an all-reduce even with one
  replica); under mixed precision it adds casts around them. Here a channels-last
  `[N, H, W, C]` input runs as TensorFlow's `FusedBatchNormV3` (and its gradient kernel in
  training), which oneDNN implements on CPU; TensorFlow's graph optimiser can fuse it with a
  following ReLU (`benchmarks/speed.py --profile` lists `_MklNativeFusedBatchNormEx`).
  bfloat16 inputs go into the kernel as they are (its statistics and arithmetic are float32,
  as Keras's are); float16 inputs are cast to float32. The layer is
  otherwise Keras's: same variables, arguments, training flag and serialisation, and the same
  numbers up to rounding. It falls back to Keras's computation where the fused kernel does
  not apply: synchronised training statistics over more than one replica (they must then be
  all-reduced), other ranks or axes, float64, masks and renorm.

  #### Example

  ```python
  norm = tfp_realnvp.networks.FusedBatchNormalization(momentum=0.9, synchronized=True)
  y = norm(images, training=True)    # images: [N, H, W, C]
  ```

  #### References

  [1] Sergey Ioffe and Christian Szegedy. Batch Normalization: Accelerating Deep Network
      Training by Reducing Internal Covariate Shift. ICML 2015. https://arxiv.org/abs/1502.03167

  Args:
    **kwargs: `keras.layers.BatchNormalization` arguments (`momentum`, `epsilon`,
      `synchronized`, `dtype`, `name`, ...).
  """

  def _fuses(self, inputs: tf.Tensor, training: bool, mask: tf.Tensor | None) -> bool:
    """Whether this call can run as the fused kernel (`training`: batch statistics)."""
    if mask is not None or self.renorm or len(inputs.shape) != 4 or self.axis not in (-1, 3):
      return False
    if keras.backend.standardize_dtype(inputs.dtype) not in ("float32", "bfloat16", "float16"):
      return False
    return not (training and self.synchronized and replicas_in_sync() > 1)

  def call(self, inputs: tf.Tensor, training: bool | None = None,
           mask: tf.Tensor | None = None) -> tf.Tensor:
    training = bool(training) and self.trainable
    if not self._fuses(inputs, training, mask):
      return super().call(inputs, training=training, mask=mask)
    x = inputs if inputs.dtype in (tf.float32, tf.bfloat16) else ops.cast(inputs, "float32")
    channels = x.shape[-1]
    gamma = ops.cast(self.gamma, "float32") if self.scale else tf.ones([channels])
    beta = ops.cast(self.beta, "float32") if self.center else tf.zeros([channels])
    if not training:
      y, _, _ = tf.compat.v1.nn.fused_batch_norm(
          x, gamma, beta, mean=ops.cast(self.moving_mean, "float32"),
          variance=ops.cast(self.moving_variance, "float32"), epsilon=self.epsilon,
          data_format="NHWC", is_training=False)
      return ops.cast(y, self.compute_dtype)
    y, mean, unbiased_variance = tf.compat.v1.nn.fused_batch_norm(
        x, gamma, beta, epsilon=self.epsilon, data_format="NHWC", is_training=True)
    # The kernel returns the Bessel-corrected variance; Keras averages the biased one.
    count = ops.cast(ops.size(x) // channels, "float32")
    variance = unbiased_variance * ((count - 1.0) / ops.maximum(count, 1.0))
    for moving, value in ((self.moving_mean, mean), (self.moving_variance, variance)):
      moving.assign(moving * self.momentum + ops.cast(value, moving.dtype) * (1.0 - self.momentum))
    return ops.cast(y, self.compute_dtype)
