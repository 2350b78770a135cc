"""Input checks shared by the image bijectors: rank, dtype, static shape, finiteness."""

from __future__ import annotations

from typing import Sequence, Union

import tensorflow as tf

from tfp_realnvp import errors

EVENT_NDIMS = 3

BatchShape = Union[list[int], tf.Tensor]
"""A batch shape from `flatten_batch`: a list when known statically, else a shape tensor."""


def check_image_event(x: tf.Tensor, owner: str, event_shape: Sequence[int] | None = None,
                      validate_args: bool = False) -> tf.Tensor:
  """Checks that `x` is a float tensor of images `[..., H, W, C]` and returns it.

  Args:
    x: the tensor handed to a bijector method.
    owner: the bijector's name, quoted in error messages.
    event_shape: optional `(H, W, C)` the bijector was built for; `x` must end with it.
    validate_args: when `True`, also check at run time that `x` is finite.

  Returns:
    `x`, wrapped in a numerical check when `validate_args` is set.

  Raises:
    TypeError: `x` is not floating point.
    ValueError: `x` has rank below 3, unknown event dimensions, or the wrong event shape.
  """
  if not x.dtype.is_floating:
    raise errors.InvalidTypeError(
        f"{owner}: expected a floating-point tensor of images [..., height, width, channels], "
        f"got dtype {x.dtype.name}. Cast the input, e.g. tf.cast(x, tf.float32).")
  rank = x.shape.rank
  if rank is not None and rank < EVENT_NDIMS:
    raise errors.InvalidValueError(
        f"{owner}: expected images of rank >= 3 ([..., height, width, channels]), got a tensor "
        f"of rank {rank} with shape {x.shape}.")
  if rank is None or any(d is None for d in x.shape[-EVENT_NDIMS:]):
    raise errors.InvalidValueError(
        f"{owner}: the event dimensions [height, width, channels] must be known statically, "
        f"got shape {x.shape}.")
  if event_shape is not None and tuple(x.shape[-EVENT_NDIMS:]) != tuple(event_shape):
    raise errors.InvalidValueError(
        f"{owner}: expected events of shape {tuple(event_shape)} [height, width, channels], "
        f"got a tensor of shape {x.shape}.")
  return check_finite(x, owner, validate_args)


def check_finite(x: tf.Tensor, owner: str, validate_args: bool) -> tf.Tensor:
  """Returns `x`, checked at run time to hold no NaN or Inf when `validate_args` is set."""
  if validate_args:
    x = tf.debugging.check_numerics(x, f"{owner}: input contains NaN or Inf values")
  return x


def check_below(values: tf.Tensor, upper: int, message: str) -> tf.Tensor:
  """Returns integer-valued `values`, checked at run time to lie in `0..upper - 1`.

  Args:
    values: a tensor (labels, pixels).
    upper: the exclusive upper bound, a Python number.
    message: the error message of a value out of range (it names the owner and the range).
  """
  with tf.control_dependencies([
      tf.debugging.assert_non_negative(values, message=message),
      tf.debugging.assert_less(values, tf.cast(upper, values.dtype), message=message)]):
    return tf.identity(values)


def flatten_batch(x: tf.Tensor) -> tuple[tf.Tensor, BatchShape]:
  """Reshapes `[..., H, W, C]` (event dims known) to `[N, H, W, C]`; returns it and the batch shape.

  The batch shape is a Python list when it is known statically, else a shape tensor, so that
  static shapes survive the round trip through `unflatten_batch`.
  """
  batch = x.shape[:-EVENT_NDIMS]
  batch_shape = batch.as_list() if batch.is_fully_defined() else tf.shape(x)[:-EVENT_NDIMS]
  return tf.reshape(x, [-1] + x.shape[-EVENT_NDIMS:].as_list()), batch_shape


def unflatten_batch(y: tf.Tensor, batch_shape: BatchShape) -> tf.Tensor:
  """Undoes `flatten_batch` for a result `[N, H', W', C']` with static event dims."""
  event = y.shape[1:].as_list()
  if isinstance(batch_shape, list):
    return tf.reshape(y, batch_shape + event)
  return tf.reshape(y, tf.concat([batch_shape, event], axis=0))


def unflatten_log_det(log_det: tf.Tensor, batch_shape: BatchShape) -> tf.Tensor:
  """Reshapes per-example log-determinants `[N]` to the batch shape."""
  return tf.reshape(log_det, batch_shape)
