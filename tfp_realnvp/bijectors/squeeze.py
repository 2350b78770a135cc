"""Squeeze: trade spatial resolution for channels, `[H, W, C] <-> [H/2, W/2, 4C]`."""

from __future__ import annotations

from typing import Any, Sequence

import tensorflow as tf
import tensorflow_probability as tfp

from tfp_realnvp import errors
from tfp_realnvp import _validation
from tfp_realnvp.bijectors import _checks

__all__ = ["Squeeze"]


def _check_even(height: int | None, width: int | None, owner: str) -> None:
  for label, size in (("height", height), ("width", width)):
    if size is not None and size % 2:
      raise errors.InvalidValueError(
          f"{owner}: the {label} of the image must be even to squeeze 2x2 blocks into "
          f"channels, got {label} {size}.")


def _check_channels(channels: int | None, owner: str) -> None:
  if channels is not None and channels % 4:
    raise errors.InvalidValueError(
        f"{owner}: unsqueezing needs a number of channels divisible by 4, got {channels}.")


class Squeeze(tfp.bijectors.Bijector):
  """Squeeze of Real NVP: every 2x2 block of pixels becomes 4 channels of one pixel.

  `forward` maps `[..., H, W, C]` to `[..., H/2, W/2, 4C]` and `inverse` maps it back
  (`tf.nn.space_to_depth` / `tf.nn.depth_to_space` with block size 2, on any batch shape).
  Output channel `k = (2 * di + dj) * C + c` holds channel `c` of the pixel at offset `(di, dj)`
  in its block. The map is a permutation, so

  ```none
  forward:  y[i, j, (2 di + dj) C + c] = x[2 i + di, 2 j + dj, c]
  inverse:  x[2 i + di, 2 j + dj, c] = y[i, j, (2 di + dj) C + c]
  forward_log_det_jacobian = inverse_log_det_jacobian = 0
  ```

  Within a multi-scale flow (whose `forward` is latent -> data) the squeeze appears wrapped
  in `tfb.Invert` where the data are squeezed on the way to the latent space.

  Height and width must be even: an odd size is a `ValueError` naming it, at construction
  when `event_shape` is given, else at the first call or shape query.

  #### Example

  ```python
  squeeze = tfp_realnvp.bijectors.Squeeze()
  squeeze.forward_event_shape([28, 28, 1])  # TensorShape([14, 14, 4])
  y = squeeze.forward(tf.zeros([5, 28, 28, 1]))  # shape [5, 14, 14, 4]
  ```

  #### References

  [1] Laurent Dinh, Jascha Sohl-Dickstein and Samy Bengio. Density estimation using Real NVP.
      In International Conference on Learning Representations, 2017, Sec. 3.6.
      https://arxiv.org/abs/1605.08803
  """

  def __init__(self, event_shape: Sequence[int] | None = None, validate_args: bool = False,
               name: str = "squeeze") -> None:
    """Builds a squeeze.

    Args:
      event_shape: optional `(H, W, C)` of the unsqueezed events, checked at construction.
      validate_args: if `True`, inputs are checked at run time to be finite.
      name: name of the bijector.
    """
    parameters = dict(locals())
    with tf.name_scope(name) as name:
      self._event_shape = None if event_shape is None else _validation.image_shape(
          event_shape, name)
      if self._event_shape is not None:
        _check_even(self._event_shape[0], self._event_shape[1], name)
      super().__init__(
          forward_min_event_ndims=_checks.EVENT_NDIMS,
          is_constant_jacobian=True,
          validate_args=validate_args,
          parameters=parameters,
          name=name)

  @classmethod
  def _parameter_properties(cls, dtype: tf.DType | None) -> dict[str, Any]:
    return dict()

  def _squeezed_shape(self) -> tuple[int, int, int] | None:
    if self._event_shape is None:
      return None
    height, width, channels = self._event_shape
    return (height // 2, width // 2, 4 * channels)

  def _forward(self, x: tf.Tensor) -> tf.Tensor:
    x = _checks.check_image_event(x, self.name, self._event_shape, self.validate_args)
    _check_even(x.shape[-3], x.shape[-2], self.name)
    x4, batch_shape = _checks.flatten_batch(x)
    return _checks.unflatten_batch(tf.nn.space_to_depth(x4, 2), batch_shape)

  def _inverse(self, y: tf.Tensor) -> tf.Tensor:
    y = _checks.check_image_event(y, self.name, self._squeezed_shape(), self.validate_args)
    _check_channels(y.shape[-1], self.name)
    y4, batch_shape = _checks.flatten_batch(y)
    return _checks.unflatten_batch(tf.nn.depth_to_space(y4, 2), batch_shape)

  def _forward_log_det_jacobian(self, x: tf.Tensor) -> tf.Tensor:
    x = _checks.check_image_event(x, self.name, self._event_shape, self.validate_args)
    return tf.zeros(tf.shape(x)[:-_checks.EVENT_NDIMS], dtype=x.dtype)

  def _inverse_log_det_jacobian(self, y: tf.Tensor) -> tf.Tensor:
    y = _checks.check_image_event(y, self.name, self._squeezed_shape(), self.validate_args)
    return tf.zeros(tf.shape(y)[:-_checks.EVENT_NDIMS], dtype=y.dtype)

  def _forward_event_shape(self, input_shape: tf.TensorShape) -> tf.TensorShape:
    input_shape = tf.TensorShape(input_shape).with_rank_at_least(_checks.EVENT_NDIMS)
    height, width, channels = input_shape[-3:].as_list()
    _check_even(height, width, self.name)
    return input_shape[:-3].concatenate([
        None if height is None else height // 2,
        None if width is None else width // 2,
        None if channels is None else 4 * channels])

  def _inverse_event_shape(self, output_shape: tf.TensorShape) -> tf.TensorShape:
    output_shape = tf.TensorShape(output_shape).with_rank_at_least(_checks.EVENT_NDIMS)
    height, width, channels = output_shape[-3:].as_list()
    _check_channels(channels, self.name)
    return output_shape[:-3].concatenate([
        None if height is None else 2 * height,
        None if width is None else 2 * width,
        None if channels is None else channels // 4])

  def _forward_event_shape_tensor(self, input_shape: tf.Tensor) -> tf.Tensor:
    input_shape = tf.convert_to_tensor(input_shape, dtype=tf.int32)
    event = input_shape[-3:]
    assertions = []
    if self.validate_args:
      assertions.append(tf.debugging.assert_equal(
          event[:2] % 2, 0, message=f"{self.name}: height and width must be even to squeeze"))
    with tf.control_dependencies(assertions):
      return tf.concat([input_shape[:-3], event[:2] // 2, event[2:] * 4], axis=0)

  def _inverse_event_shape_tensor(self, output_shape: tf.Tensor) -> tf.Tensor:
    output_shape = tf.convert_to_tensor(output_shape, dtype=tf.int32)
    event = output_shape[-3:]
    assertions = []
    if self.validate_args:
      assertions.append(tf.debugging.assert_equal(
          event[2] % 4, 0, message=f"{self.name}: channels must be divisible by 4 to unsqueeze"))
    with tf.control_dependencies(assertions):
      return tf.concat([output_shape[:-3], event[:2] * 2, event[2:] // 4], axis=0)
