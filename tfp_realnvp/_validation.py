"""Argument checks shared across the package, free of TensorFlow so that any module can use them."""

from __future__ import annotations

import numbers
from typing import Any, Iterable, Literal, overload

import numpy as np

from tfp_realnvp import errors

__all__ = ["image_shape", "is_integer", "positive_int", "widths"]


def is_integer(value: object) -> bool:
  """Whether `value` is a Python or NumPy integer (`bool` is not)."""
  return isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, bool)


@overload
def positive_int(value: Any, name: str, allow_none: Literal[False] = False) -> int:
  ...


@overload
def positive_int(value: Any, name: str, allow_none: bool) -> int | None:
  ...


def positive_int(value: Any, name: str, allow_none: bool = False) -> int | None:
  """Returns `value` as an `int` >= 1 (or `None` when `allow_none`).

  Raises:
    ValueError: naming the argument `name`, for anything else (floats and bools included).
  """
  if value is None and allow_none:
    return None
  if not is_integer(value) or value < 1:
    expected = "None or a positive integer" if allow_none else "a positive integer"
    raise errors.InvalidValueError(f"{name} must be {expected}, got {value!r}.")
  return int(value)


def widths(value: Iterable[int], name: str, example: str = "(64, 64)") -> tuple[int, ...]:
  """Returns layer widths (a sequence of positive ints, possibly empty) as a tuple of ints.

  Raises:
    ValueError: naming the argument `name`, for a single number, a string or anything else.
  """
  units = None
  if not (is_integer(value) or isinstance(value, str)):
    try:
      units = tuple(value)
    except TypeError:
      pass
  if units is None or not all(is_integer(u) and u >= 1 for u in units):
    raise errors.InvalidValueError(
        f"{name} must be a sequence of positive integers, e.g. {example}, got {value!r}.")
  return tuple(int(u) for u in units)


def image_shape(event_shape: Iterable[int], owner: str | None = None
                ) -> tuple[int, int, int]:
  """Returns an image event shape as a tuple `(height, width, channels)` of positive ints.

  Args:
    event_shape: any sequence of three positive integers.
    owner: optional name of the caller, put in front of the message.

  Raises:
    ValueError: for another length, a non-integer or a size below 1.
  """
  prefix = f"{owner}: " if owner else ""
  try:
    sizes = tuple(event_shape)
  except TypeError:
    sizes = None
  if sizes is None or len(sizes) != 3 or not all(is_integer(d) and d >= 1 for d in sizes):
    raise errors.InvalidValueError(
        f"{prefix}event_shape must be (height, width, channels) of positive "
        f"integers, got {event_shape!r}.")
  return int(sizes[0]), int(sizes[1]), int(sizes[2])
