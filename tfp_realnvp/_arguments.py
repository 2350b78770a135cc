"""Checks of `FlowModel`'s arguments that may be Python values, NumPy arrays or tensors."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import tensorflow as tf

from tfp_realnvp import _validation
from tfp_realnvp import errors
from tfp_realnvp._types import TensorLike

__all__ = ["as_tensor_or_none", "check_images", "host_values", "sample_count", "temperature"]


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


def host_values(value: Any) -> np.ndarray | None:
  """The values of `value` if they are on the host already, else `None`.

  NumPy arrays, Python numbers and lists, and eager or constant tensors have them; the
  symbolic tensors of a traced function (`fit`'s steps) do not, and are checked there only
  with `validate_args`.
  """
  if isinstance(value, np.ndarray):
    return value
  if isinstance(value, (numbers.Number, list)):
    try:
      return np.asarray(value)
    except ValueError:  # Ragged lists: left to the conversion to a tensor.
      return None
  if tf.is_tensor(value):
    return tf.get_static_value(value)
  return None


def check_images(x: Any, owner: str, num_levels: int, quantized: bool = False) -> None:
  """Raises unless images known on the host are in the range the model takes.

  Floating-point images must lie in `[0, 1]` (dequantized `(k + u) / L`, or with `quantized`,
  the quantized `k / L`); integer pixels in `0..num_levels-1`. Values that are not on the host
  (see `host_values`) are not checked here.

  Raises:
    InvalidValueError: values out of range; the message says how to convert the usual
      mistake, 8-bit pixels in `0..255` given as floats.
  """
  values = host_values(x)
  if values is None or values.size == 0 or not (
      np.issubdtype(values.dtype, np.number) or values.dtype == bool):
    return
  low, high = values.min(), values.max()
  if np.issubdtype(values.dtype, np.integer):
    if low < 0 or high > num_levels - 1:
      raise errors.InvalidValueError(
          f"{owner} takes integer pixels in 0..{num_levels - 1}, got values in {low}..{high}.")
    return
  if not (np.isfinite(low) and np.isfinite(high)):
    raise errors.InvalidValueError(f"{owner} got non-finite values (NaN or infinity) in x.")
  if low < 0 or high > 1:
    kind = "quantized images k / L" if quantized else "dequantized images (k + u) / L"
    raise errors.InvalidValueError(
        f"{owner} takes images with values in [0, 1] ({kind}, L = {num_levels}), got values "
        f"in {low:g}..{high:g}. For 8-bit pixels, pass them as integers (uint8: the model "
        f"dequantizes them), or divide floats k + u by {num_levels} "
        f"(tfp_realnvp.data.load_images and tfp_realnvp.data.dequantize do both).")


def temperature(value: TensorLike, dtype: tf.DType) -> tf.Tensor:
  """`value` as a tensor of `dtype`, checked to be a finite number >= 0 when it is known.

  Raises:
    InvalidValueError: a negative or non-finite temperature, naming it.
  """
  known = value if isinstance(value, (str, bytes, bool)) else host_values(value)
  if known is not None:
    if isinstance(known, (str, bytes, bool)) or np.ndim(known) != 0 or not np.issubdtype(
        np.asarray(known).dtype, np.number) or not (
            math.isfinite(float(known)) and float(known) >= 0):
      raise errors.InvalidValueError(
          f"temperature must be a finite number >= 0 (the base distribution's standard "
          f"deviation; 0 gives the image of the mode), got {value!r}.")
  return tf.convert_to_tensor(value, dtype=dtype)
