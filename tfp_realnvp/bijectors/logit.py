"""Logit preprocessing of Real NVP: pixels in [0, 1) to the real line."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_realnvp import errors
from tfp_realnvp.bijectors import _checks

__all__ = ["Logit"]


class Logit(tfp.bijectors.Bijector):
  """Maps dequantized pixels `x` in `[0, 1)` to logits, as the Real NVP paper does.

  Direction follows TFP: `forward` maps the real line (where the flow lives) to pixels and
  `inverse` maps pixels to logits:

  ```none
  inverse:  y = logit(a + (1 - 2a) x)
  forward:  x = (sigmoid(y) - a) / (1 - 2a)
  inverse_log_det_jacobian(x) = sum of  log(1 - 2a) - log(p) - log(1 - p),  p = a + (1 - 2a) x
  forward_log_det_jacobian(y) = sum of  log(sigmoid(y)) + log(sigmoid(-y)) - log(1 - 2a)
  ```

  The margin `a` (0.05 in the paper) keeps the logits away from the boundary, where the
  transform is singular. Because the log-determinant is exact, a flow chained after this
  bijector gives the density of `x` on `[0, 1)^D`, so bits per dimension of 8-bit data follow
  as `(NLL_x + D ln 256) / (D ln 2)` (see `tfp_realnvp.FlowModel.bits_per_dim`).

  The bijector is elementwise (`forward_min_event_ndims=0`), so it acts on images, vectors, or
  anything else; with `validate_args=True`, `inverse` checks that every value lies in `[0, 1]`
  (which also rejects NaN) and `forward` that its input is finite.

  #### Example

  ```python
  logit = tfp_realnvp.bijectors.Logit(alpha=0.05)
  y = logit.inverse(pixels)     # pixels in [0, 1) -> real line
  ```

  #### References

  [1] Laurent Dinh, Jascha Sohl-Dickstein and Samy Bengio. Density estimation using Real NVP.
      In International Conference on Learning Representations, 2017, Sec. 4.1.
      https://arxiv.org/abs/1605.08803
  """

  def __init__(self, alpha: float = 0.05, validate_args: bool = False,
               name: str = "logit") -> None:
    """Builds the logit preprocessing.

    Args:
      alpha: margin `a` in `[0, 0.5)`.
      validate_args: if `True`, `inverse` checks that its input lies in `[0, 1]`.
      name: name of the bijector.
    """
    parameters = dict(locals())
    if not 0.0 <= alpha < 0.5:
      raise errors.InvalidValueError(f"alpha must lie in [0, 0.5), got {alpha}.")
    with tf.name_scope(name) as name:
      self._alpha = float(alpha)
      super().__init__(forward_min_event_ndims=0, validate_args=validate_args,
                       parameters=parameters, name=name)

  @classmethod
  def _parameter_properties(cls, dtype: tf.DType | None) -> dict[str, Any]:
    return dict()

  @property
  def alpha(self) -> float:
    return self._alpha

  def _check_float(self, x: tf.Tensor) -> tf.Tensor:
    if not x.dtype.is_floating:
      raise errors.InvalidTypeError(
          f"{self.name}: expected a floating-point tensor, got dtype {x.dtype.name}. "
          "Dequantize 8-bit images first (tfp_realnvp.data.dequantize).")
    return x

  def _check_logits(self, y: tf.Tensor) -> tf.Tensor:
    return _checks.check_finite(self._check_float(y), self.name, self.validate_args)

  def _check_pixels(self, x: tf.Tensor) -> tf.Tensor:
    x = self._check_float(x)
    if not self.validate_args:
      return x
    message = f"{self.name}: pixels must lie in [0, 1] (no NaN or Inf; dequantized 8-bit images)"
    with tf.control_dependencies([
        tf.debugging.assert_greater_equal(x, tf.zeros([], x.dtype), message=message),
        tf.debugging.assert_less_equal(x, tf.ones([], x.dtype), message=message)]):
      return tf.identity(x)

  def _forward(self, y: tf.Tensor) -> tf.Tensor:
    y = self._check_logits(y)
    return (tf.sigmoid(y) - self._alpha) / (1.0 - 2.0 * self._alpha)

  def _inverse(self, x: tf.Tensor) -> tf.Tensor:
    p = self._alpha + (1.0 - 2.0 * self._alpha) * self._check_pixels(x)
    return tf.math.log(p) - tf.math.log1p(-p)

  def _forward_log_det_jacobian(self, y: tf.Tensor) -> tf.Tensor:
    y = self._check_logits(y)
    return -tf.nn.softplus(-y) - tf.nn.softplus(y) - np.log1p(-2.0 * self._alpha)

  def _inverse_log_det_jacobian(self, x: tf.Tensor) -> tf.Tensor:
    p = self._alpha + (1.0 - 2.0 * self._alpha) * self._check_pixels(x)
    return np.log1p(-2.0 * self._alpha) - tf.math.log(p) - tf.math.log1p(-p)
