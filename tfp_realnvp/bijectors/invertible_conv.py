"""Glow's invertible 1x1 convolution as a bijector, with its kernel in a Keras 3 layer."""

from __future__ import annotations

from typing import Any, cast

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_realnvp._types import LayerShape
from tfp_realnvp.bijectors import _cached_log_det
from tfp_realnvp.bijectors import _checks
from tfp_realnvp.bijectors import _pixelwise

__all__ = ["InvertibleConv1x1", "InvertibleConv1x1Parameters"]


@keras.saving.register_keras_serializable(package="tfp_realnvp")
class InvertibleConv1x1Parameters(keras.layers.Layer):
  """Keras 3 variables of the `C x C` kernel `W` of an invertible 1x1 convolution (Glow).

  With `lu=True` (Glow's LU parameterisation) the kernel is

  ```none
  W = P L (U + diag(sign * exp(log_scale))),   log|det W| = sum(log_scale)
  ```

  with a fixed permutation `P` (`permutation`, int32), a unit lower-triangular `L` (the
  strictly lower part of `lower`), a strictly upper-triangular `U` (the strictly upper part of
  `upper`), a fixed `sign` and a learned `log_scale`. `permutation` and `sign` are
  non-trainable variables, so that a `.keras` file or a checkpoint restores the same `W`.
  With `lu=False`, `W` is one unconstrained trainable `kernel`.

  Either way `W` starts as a random rotation (the Q of the QR decomposition of a Gaussian
  matrix drawn with `seed`); the LU factors are those of that rotation.

  The layer is not called: the `InvertibleConv1x1` bijector asks it for `kernel(dtype)`,
  `inverse_kernel(dtype)` and `log_abs_det(dtype)`, each computed once per bijector call.
  With `lu=False` the inverse is `tf.linalg.inv(W)` and `log|det W|` is `sum(log|diag(R)|)`
  for the QR decomposition `W = QR` (`tf.linalg.slogdet` has no XLA kernel).

  Args:
    lu: whether to parameterise `W` by its LU decomposition.
    seed: integer seed of the initial rotation, or `None` for a fresh one.
    **kwargs: `keras.layers.Layer` arguments.
  """

  def __init__(self, lu: bool = True, seed: int | None = None, **kwargs: Any) -> None:
    super().__init__(**kwargs)
    self.lu = bool(lu)
    self.seed = seed

  def build(self, input_shape: LayerShape) -> None:
    channels = cast(int, input_shape[-1])  # Known: the channels that the kernel mixes.
    rotation, _ = np.linalg.qr(np.random.default_rng(self.seed).standard_normal(
        (channels, channels)))
    if not self.lu:
      self.kernel_variable = self._add_matrix("kernel", rotation)
      return
    with tf.init_scope():  # Keras builds in a scratch graph: factorise eagerly.
      lower_upper, permutation = (t.numpy() for t in tf.linalg.lu(rotation))
    diagonal = np.diag(lower_upper)
    self.permutation = self.add_weight(
        name="permutation", shape=(channels,), dtype="int32", trainable=False,
        initializer=lambda shape, dtype: permutation)
    self.sign = self.add_weight(name="sign", shape=(channels,), trainable=False,
                                initializer=lambda shape, dtype: np.sign(diagonal))
    self.log_scale = self.add_weight(name="log_scale", shape=(channels,),
                                     initializer=lambda shape, dtype: np.log(np.abs(diagonal)))
    self.lower = self._add_matrix("lower", np.tril(lower_upper, -1))
    self.upper = self._add_matrix("upper", np.triu(lower_upper, 1))
    self._strictly_lower = np.tril(np.ones((channels, channels)), -1)
    self._strictly_upper = self._strictly_lower.T

  def _add_matrix(self, name: str, value: np.ndarray) -> keras.Variable:
    return self.add_weight(name=name, shape=value.shape,
                           initializer=lambda shape, dtype: value)

  def _lower_upper(self, dtype: tf.DType) -> tf.Tensor:
    """`L - I + U + diag(sign * exp(log_scale))`, TensorFlow's packed LU of `W`, in `dtype`."""
    lower, upper, sign, log_scale = (
        tf.cast(v, dtype) for v in (self.lower, self.upper, self.sign, self.log_scale))
    return (lower * self._strictly_lower.astype(dtype.as_numpy_dtype)
            + upper * self._strictly_upper.astype(dtype.as_numpy_dtype)
            + tf.linalg.diag(sign * tf.exp(log_scale)))

  def kernel(self, dtype: tf.DType) -> tf.Tensor:
    """`W`, `[C, C]` in `dtype`."""
    if not self.lu:
      return tf.cast(self.kernel_variable, dtype)
    return tfp.math.lu_reconstruct(self._lower_upper(dtype), self.permutation)

  def inverse_kernel(self, dtype: tf.DType) -> tf.Tensor:
    """`W^{-1}`, `[C, C]` in `dtype`: from the LU factors, or `tf.linalg.inv(W)`."""
    if not self.lu:
      return tf.linalg.inv(self.kernel(dtype))
    return tfp.math.lu_matrix_inverse(self._lower_upper(dtype), self.permutation)

  def log_abs_det(self, dtype: tf.DType) -> tf.Tensor:
    """`log|det W|`, a scalar in `dtype`: `sum(log_scale)`, or from the QR decomposition of W."""
    if self.lu:
      return tf.reduce_sum(tf.cast(self.log_scale, dtype))
    # `tf.linalg.slogdet` has no XLA kernel, `tf.linalg.lu` neither, nor a gradient.
    r = tf.linalg.qr(self.kernel(dtype))[1]
    return tf.reduce_sum(tf.math.log(tf.abs(tf.linalg.diag_part(r))))

  def get_config(self) -> dict[str, Any]:
    config = super().get_config()
    config.update(lu=self.lu, seed=self.seed)
    return config


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
  layer = tfp_realnvp.bijectors.InvertibleConv1x1Parameters(seed=0)   # owned by your model
  layer.build((None, 8, 8, 4))
  conv = tfp_realnvp.bijectors.InvertibleConv1x1(layer)
  ```

  #### References

  [1] Diederik P. Kingma and Prafulla Dhariwal. Glow: Generative Flow with Invertible 1x1
      Convolutions. In Neural Information Processing Systems, 2018, Sec. 3.2.
      https://arxiv.org/abs/1807.03039
  """

  LAYER_CLASS = InvertibleConv1x1Parameters

  def __init__(self, layer: InvertibleConv1x1Parameters, validate_args: bool = False,
               name: str = "invertible_conv1x1") -> None:
    """Builds the bijector.

    Args:
      layer: a built `InvertibleConv1x1Parameters` layer holding the variables; the Keras
        model that trains the flow must own (track) it.
      validate_args: if `True`, inputs are checked at run time to be finite.
      name: name of the bijector.
    """
    parameters = dict(locals())
    super().__init__(layer, "layer", validate_args, parameters, name)

  def _mix_channels(self, x: tf.Tensor, matrix: tf.Tensor) -> tf.Tensor:
    """`matrix @ x` at every pixel of `x` `[..., C]`.

    One `[pixels, C] x [C, C]` matrix product (`tf.tensordot`): the equivalent
    `tf.einsum("...j,ij->...i")` was slower with its gradient under XLA on the CPU
    (benchmarks/RESULTS.md).
    """
    return tf.tensordot(x, matrix, [[-1], [1]])

  def _augmented_inverse(self, x: tf.Tensor) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    x = _checks.check_image_event(x, self.name, validate_args=self.validate_args)
    z = self._mix_channels(x, self._layer.kernel(x.dtype))
    ildj = _pixelwise.log_det_per_example(x, self._layer.log_abs_det(x.dtype))
    return z, _cached_log_det.log_dets(ildj)

  def _augmented_forward(self, z: tf.Tensor) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    z = _checks.check_image_event(z, self.name, validate_args=self.validate_args)
    x = self._mix_channels(z, self._layer.inverse_kernel(z.dtype))
    ildj = _pixelwise.log_det_per_example(z, self._layer.log_abs_det(z.dtype))
    return x, _cached_log_det.log_dets(ildj)
