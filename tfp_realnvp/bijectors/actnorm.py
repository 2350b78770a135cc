"""Glow's activation normalisation as a bijector, with its parameters in a Keras 3 layer."""

import tensorflow as tf

from tfp_realnvp.bijectors import _cached_log_det
from tfp_realnvp.bijectors import _checks
from tfp_realnvp.bijectors import _pixelwise
from tfp_realnvp.networks import actnorm_parameters

__all__ = ["ActNorm"]


class ActNorm(_pixelwise.PixelwiseBijector):
  """Activation normalisation of Glow on images `[..., H, W, C]`: a per-channel affine map.

  With the per-channel log-scale `s` and shift `b` of the Keras layer `layer`:

  ```none
  inverse:  z = (x + b) * exp(s)
  forward:  x = z * exp(-s) - b
  inverse_log_det_jacobian(x) = H * W * sum_c s_c
  forward_log_det_jacobian(z) = -H * W * sum_c s_c
  ```

  Direction follows TFP: `inverse` is the data -> latent direction that training uses.
  The first `inverse` in training mode (Keras's training flag, set by `fit`) initialises `s`
  and `b` from its batch so that `z` has zero mean and unit variance per channel, and
  already returns that `z` (see `tfp_realnvp.networks.ActNormParameters`, which also covers
  `tf.function`, `tf.distribute` and restored layers). Until then, for instance when the flow
  is sampled from before any training batch, the bijector is the identity. `forward` never
  initialises.

  #### Example

  ```python
  layer = tfp_realnvp.networks.ActNormParameters()   # owned by your Keras model
  layer.build((None, 8, 8, 4))
  actnorm = tfp_realnvp.bijectors.ActNorm(layer)
  ```

  #### References

  [1] Diederik P. Kingma and Prafulla Dhariwal. Glow: Generative Flow with Invertible 1x1
      Convolutions. In Neural Information Processing Systems, 2018, Sec. 3.1.
      https://arxiv.org/abs/1807.03039
  [2] Tim Salimans and Diederik P. Kingma. Weight Normalization. NeurIPS 2016 (data-dependent
      initialisation).
  """

  LAYER_CLASS = actnorm_parameters.ActNormParameters

  def __init__(self, layer, validate_args=False, name="act_norm"):
    """Builds the bijector.

    Args:
      layer: a built `ActNormParameters` layer holding the variables; the Keras model that
        trains the flow must own (track) it.
      validate_args: if `True`, inputs are checked at run time to be finite.
      name: name of the bijector.
    """
    parameters = dict(locals())
    super().__init__(layer, "layer", validate_args, parameters, name)

  def _augmented_inverse(self, x):
    x = _checks.check_image_event(x, self.name, validate_args=self.validate_args)
    log_scale, shift = [tf.cast(v, x.dtype) for v in self._layer(_checks.flatten_batch(x)[0])]
    z = (x + shift) * tf.exp(log_scale)
    ildj = _pixelwise.log_det_per_example(x, tf.reduce_sum(log_scale))
    return z, _cached_log_det.log_dets(ildj)

  def _augmented_forward(self, z):
    z = _checks.check_image_event(z, self.name, validate_args=self.validate_args)
    log_scale, shift = [tf.cast(v, z.dtype) for v in (self._layer.log_scale, self._layer.shift)]
    x = z * tf.exp(-log_scale) - shift
    ildj = _pixelwise.log_det_per_example(z, tf.reduce_sum(log_scale))
    return x, _cached_log_det.log_dets(ildj)
