"""Glow's invertible 1x1 convolution as a bijector, with its kernel in a Keras 3 layer."""

import tensorflow as tf

from tfp_realnvp.bijectors import _cached_log_det
from tfp_realnvp.bijectors import _checks
from tfp_realnvp.bijectors import _pixelwise
from tfp_realnvp.networks import invertible_conv_parameters

__all__ = ["InvertibleConv1x1"]


class InvertibleConv1x1(_pixelwise.PixelwiseBijector):
  """Invertible 1x1 convolution of Glow on images `[..., H, W, C]`: `W` mixes the channels.

  With the `C x C` kernel `W` of the Keras layer `layer`, applied to every pixel:

  ```none
  inverse:  z = W x
  forward:  x = W^{-1} z
  inverse_log_det_jacobian(x) = H * W * log|det W|
  forward_log_det_jacobian(z) = -H * W * log|det W|
  ```

  Direction follows TFP: `inverse` is the data -> latent direction that training uses (Glow's
  "forward"). With the layer's LU parameterisation `W = P L (U + diag(sign * exp(log_s)))`,
  `log|det W| = sum(log_s)` and `W`, `W^{-1}` come from TFP's `tfp.math.lu_reconstruct` and
  `tfp.math.lu_matrix_inverse`; with `lu=False`, `W` is free, its inverse is
  `tf.linalg.inv(W)` and `log|det W|` comes from its QR decomposition (`tf.linalg.slogdet`
  has no XLA kernel). The kernel (or its inverse) is computed once per call, then applied to
  all pixels as one matrix product.

  #### Example

  ```python
  layer = tfp_realnvp.networks.InvertibleConv1x1Parameters(seed=0)   # owned by your model
  layer.build((None, 8, 8, 4))
  conv = tfp_realnvp.bijectors.InvertibleConv1x1(layer)
  ```

  #### References

  [1] Diederik P. Kingma and Prafulla Dhariwal. Glow: Generative Flow with Invertible 1x1
      Convolutions. In Neural Information Processing Systems, 2018, Sec. 3.2.
      https://arxiv.org/abs/1807.03039
  """

  LAYER_CLASS = invertible_conv_parameters.InvertibleConv1x1Parameters

  def __init__(self, layer, validate_args=False, name="invertible_conv1x1"):
    """Builds the bijector.

    Args:
      layer: a built `InvertibleConv1x1Parameters` layer holding the variables; the Keras
        model that trains the flow must own (track) it.
      validate_args: if `True`, inputs are checked at run time to be finite.
      name: name of the bijector.
    """
    parameters = dict(locals())
    super().__init__(layer, "layer", validate_args, parameters, name)

  def _mix_channels(self, x, matrix):
    """`matrix @ x` at every pixel of `x` `[..., C]`.

    One `[pixels, C] x [C, C]` matrix product (`tf.tensordot`): the equivalent
    `tf.einsum("...j,ij->...i")` ran 1.4x-9x slower with its gradient under XLA on the CPU
    (benchmarks/RESULTS.md, 2026-11-30).
    """
    return tf.tensordot(x, matrix, [[-1], [1]])

  def _augmented_inverse(self, x):
    x = _checks.check_image_event(x, self.name, validate_args=self.validate_args)
    z = self._mix_channels(x, self._layer.kernel(x.dtype))
    ildj = _pixelwise.log_det_per_example(x, self._layer.log_abs_det(x.dtype))
    return z, _cached_log_det.log_dets(ildj)

  def _augmented_forward(self, z):
    z = _checks.check_image_event(z, self.name, validate_args=self.validate_args)
    x = self._mix_channels(z, self._layer.inverse_kernel(z.dtype))
    ildj = _pixelwise.log_det_per_example(z, self._layer.log_abs_det(z.dtype))
    return x, _cached_log_det.log_dets(ildj)
