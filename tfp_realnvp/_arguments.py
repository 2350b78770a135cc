"""Checks of `FlowModel`'s arguments that may be Python values, NumPy arrays or tensors."""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from tfp_realnvp import _validation
from tfp_realnvp import errors
from tfp_realnvp._types import TensorLike

__all__ = ["as_tensor_or_none", "sample_count"]


def as_tensor_or_none(value: TensorLike | None) -> tf.Tensor | None:
  """`value` as a tensor, or `None`: a traced function is then not retraced per label value."""
  return None if value is None else tf.convert_to_tensor(value)


def sample_count(n: Any) -> int | tf.Tensor:
  """`n` as a number of samples: an `int` >= 0, or (in a traced function) an int32 tensor.

  Raises:
    InvalidTypeError: `n` is not an integer (a float, a bool, a non-scalar or non-integer
      tensor).
    InvalidValueError: `n` is negative.
  """
  if tf.is_tensor(n) and n.dtype.is_integer and n.shape.rank == 0:
    if not tf.executing_eagerly() and tf.get_static_value(n) is None:
      return tf.cast(n, tf.int32)
    n = int(tf.get_static_value(n))
  if not _validation.is_integer(n):
    raise errors.InvalidTypeError(f"The number of samples must be an integer, got {n!r}.")
  if n < 0:
    raise errors.InvalidValueError(f"The number of samples must be non-negative, got {n}.")
  return int(n)
