"""Batch normalisation as a bijector, with its statistics in a Keras 3 layer."""

import tensorflow as tf

from tfp_realnvp.bijectors import _checks
from tfp_realnvp.bijectors import _pixelwise
from tfp_realnvp.bijectors import _cached_log_det
from tfp_realnvp.networks import batch_norm_statistics

__all__ = ["BatchNorm"]


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
  stats = tfp_realnvp.networks.BatchNormStatistics()   # owned by your Keras model
  stats.build((None, 8, 8, 4))
  bn = tfp_realnvp.bijectors.BatchNorm(stats)
  ```

  #### References

  [1] Laurent Dinh, Jascha Sohl-Dickstein and Samy Bengio. Density estimation using Real NVP.
      In International Conference on Learning Representations, 2017, Sec. 3.7.
      https://arxiv.org/abs/1605.08803
  [2] Sergey Ioffe and Christian Szegedy. Batch Normalization. ICML 2015.
  """

  LAYER_CLASS = batch_norm_statistics.BatchNormStatistics

  def __init__(self, statistics, validate_args=False, name="batch_norm"):
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
  def statistics(self):
    return self._layer

  def _variables(self, dtype):
    layer = self._layer
    return [tf.cast(v, dtype) for v in (layer.log_scale, layer.shift)]

  def _log_det(self, x, log_scale, variance):
    per_pixel = tf.reduce_sum(log_scale - 0.5 * tf.math.log(variance + self._layer.epsilon))
    return _pixelwise.log_det_per_example(x, per_pixel)

  def _augmented_inverse(self, x):
    x = _checks.check_image_event(x, self.name, validate_args=self.validate_args)
    mean, variance = [tf.cast(s, x.dtype) for s in self._layer(_checks.flatten_batch(x)[0])]
    log_scale, shift = self._variables(x.dtype)
    z = (x - mean) * (tf.math.rsqrt(variance + self._layer.epsilon) * tf.exp(log_scale))
    return z + shift, _cached_log_det.log_dets(self._log_det(x, log_scale, variance))

  def _augmented_forward(self, z):
    z = _checks.check_image_event(z, self.name, validate_args=self.validate_args)
    layer = self._layer
    mean, variance = [tf.cast(s, z.dtype) for s in (layer.moving_mean, layer.moving_variance)]
    log_scale, shift = self._variables(z.dtype)
    x = (z - shift) * (tf.exp(-log_scale) * tf.sqrt(variance + layer.epsilon)) + mean
    return x, _cached_log_det.log_dets(self._log_det(z, log_scale, variance))
