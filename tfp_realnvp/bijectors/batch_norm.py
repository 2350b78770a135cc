"""Batch normalisation as a bijector, with its statistics in a Keras 3 layer."""

from __future__ import annotations

from typing import Any, Sequence

import keras
from keras import ops
import tensorflow as tf

from tfp_realnvp import _distribute
from tfp_realnvp import _validation
from tfp_realnvp._types import LayerShape
from tfp_realnvp.bijectors import _cached_log_det
from tfp_realnvp.bijectors import _checks
from tfp_realnvp.bijectors import _pixelwise

__all__ = ["BatchNorm", "BatchNormStatistics"]


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

  def __init__(self, momentum: float = 0.9, epsilon: float = 1e-4, **kwargs: Any) -> None:
    super().__init__(**kwargs)
    self.momentum = _validation.number_in(momentum, "momentum", 0.0, 1.0, high_open=True)
    self.epsilon = _validation.number_in(epsilon, "epsilon", 0.0)

  def build(self, input_shape: LayerShape) -> None:
    channels = (input_shape[-1],)
    self.moving_mean = self.add_weight(name="moving_mean", shape=channels, initializer="zeros",
                                       trainable=False)
    self.moving_variance = self.add_weight(name="moving_variance", shape=channels,
                                           initializer="ones", trainable=False)
    self.log_scale = self.add_weight(name="log_scale", shape=channels, initializer="zeros")
    self.shift = self.add_weight(name="shift", shape=channels, initializer="zeros")

  def call(self, inputs: tf.Tensor, training: bool | None = False
           ) -> tuple[tf.Tensor, tf.Tensor]:
    if not training:
      return ops.convert_to_tensor(self.moving_mean), ops.convert_to_tensor(self.moving_variance)
    mean, variance = _distribute.batch_moments(inputs, axes=[0, 1, 2])
    for moving, value in ((self.moving_mean, mean), (self.moving_variance, variance)):
      moving.assign(self.momentum * moving + (1.0 - self.momentum) * ops.stop_gradient(value))
    return mean, variance

  def compute_output_shape(self, input_shape: LayerShape
                           ) -> tuple[tuple[int | None], tuple[int | None]]:
    return (input_shape[-1],), (input_shape[-1],)

  def get_config(self) -> dict[str, Any]:
    config = super().get_config()
    config.update(momentum=self.momentum, epsilon=self.epsilon)
    return config


class BatchNorm(_pixelwise.PixelwiseBijector):
  """Batch normalisation bijector of Real NVP on images `[..., H, W, C]`.

  With per-channel statistics `(m, v)`, learned log-scale `g` and shift `b` (from the Keras
  layer `statistics`), and `e` = `statistics.epsilon`:

  ```none
  inverse:  z = (x - m) / sqrt(v + e) * exp(g) + b
  forward:  x = (z - b) * exp(-g) * sqrt(v + e) + m
  inverse_log_det_jacobian(x) = H * W * sum_c (g_c - 0.5 * log(v_c + e))
  forward_log_det_jacobian(z) = -inverse_log_det_jacobian
  ```

  Direction follows TFP: `inverse` is the data -> latent direction that training uses.
  During training (Keras's training flag, set by `fit`) `inverse` normalises with the batch
  statistics of its input and updates the moving averages, as in the paper; otherwise both
  directions use the moving averages, so the bijector is a fixed invertible map for
  evaluation and sampling. `forward` always uses the moving averages.

  #### Example

  ```python
  stats = tfp_realnvp.bijectors.BatchNormStatistics()   # owned by your Keras model
  stats.build((None, 8, 8, 4))
  bn = tfp_realnvp.bijectors.BatchNorm(stats)
  ```

  #### References

  [1] Laurent Dinh, Jascha Sohl-Dickstein and Samy Bengio. Density estimation using Real NVP.
      In International Conference on Learning Representations, 2017, Sec. 3.7.
      https://arxiv.org/abs/1605.08803
  [2] Sergey Ioffe and Christian Szegedy. Batch Normalization. ICML 2015.
  """

  LAYER_CLASS = BatchNormStatistics

  def __init__(self, statistics: BatchNormStatistics, validate_args: bool = False,
               name: str = "batch_norm") -> None:
    """Builds the bijector.

    Args:
      statistics: a built `BatchNormStatistics` layer holding the variables; the Keras model
        that trains the flow must own (track) it.
      validate_args: if `True`, inputs are checked at run time to be finite.
      name: name of the bijector.
    """
    parameters = dict(locals())
    super().__init__(statistics, "statistics", validate_args, parameters, name)

  @property
  def statistics(self) -> BatchNormStatistics:
    return self._layer

  def _variables(self, dtype: tf.DType) -> list[tf.Tensor]:
    layer = self._layer
    return [tf.cast(v, dtype) for v in (layer.log_scale, layer.shift)]

  def _log_det(self, x: tf.Tensor, log_scale: tf.Tensor, variance: tf.Tensor) -> tf.Tensor:
    per_pixel = tf.reduce_sum(log_scale - 0.5 * tf.math.log(variance + self._layer.epsilon))
    return _pixelwise.log_det_per_example(x, per_pixel)

  def inverse_with_statistics(self, x: tf.Tensor
                              ) -> tuple[tf.Tensor, tf.Tensor, tuple[tf.Tensor, tf.Tensor]]:
    """`inverse` without TFP's cache, with its log-det and the statistics it normalised with.

    Returns:
      `(z, inverse_log_det_jacobian, (mean, variance))`: the statistics are the batch's in
      training (the moving averages are updated), the moving averages otherwise; with them,
      `forward_with_statistics` is the exact inverse of this call (reversible training
      rebuilds a batch-norm step's input so, see `tfp_realnvp.remat`).
    """
    x = _checks.check_image_event(x, self.name, validate_args=self.validate_args)
    mean, variance = [tf.cast(s, x.dtype) for s in self._layer(_checks.flatten_batch(x)[0])]
    log_scale, shift = self._variables(x.dtype)
    z = (x - mean) * (tf.math.rsqrt(variance + self._layer.epsilon) * tf.exp(log_scale))
    return z + shift, self._log_det(x, log_scale, variance), (mean, variance)

  def forward_with_statistics(self, z: tf.Tensor, statistics: Sequence[tf.Tensor]
                              ) -> tf.Tensor:
    """`forward` with the per-channel `statistics` `(mean, variance)` instead of the averages."""
    z = _checks.check_image_event(z, self.name, validate_args=self.validate_args)
    mean, variance = [tf.cast(s, z.dtype) for s in statistics]
    log_scale, shift = self._variables(z.dtype)
    return (z - shift) * (tf.exp(-log_scale) * tf.sqrt(variance + self._layer.epsilon)) + mean

  def _augmented_inverse(self, x: tf.Tensor) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    z, ildj, _ = self.inverse_with_statistics(x)
    return z, _cached_log_det.log_dets(ildj)

  def _augmented_forward(self, z: tf.Tensor) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    layer = self._layer
    statistics = (layer.moving_mean, layer.moving_variance)
    x = self.forward_with_statistics(z, statistics)
    variance = tf.cast(layer.moving_variance, z.dtype)
    return x, _cached_log_det.log_dets(self._log_det(z, self._variables(z.dtype)[0], variance))
