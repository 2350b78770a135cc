"""Split names, TFDS-style slices such as `"train[:90%]"`, and the held-out slices of a run."""

from __future__ import annotations

import re

import numpy as np

from tfp_realnvp import errors

__all__ = ["HOLDOUT_FRACTION"]

# The fraction of the training images that `ImageSource.training_splits` holds out for
# validation, and again for testing when a source has no test split.
HOLDOUT_FRACTION = 0.1

# Seed of the permutation over which the in-memory sources take slices such as "train[90%:]".
_SLICE_SEED = 0

_BOUND = r"\s*(-?\d+(?:\.\d+)?%?)?\s*"
_SPLIT_PATTERN = re.compile(rf"^(\w+)(?:\[{_BOUND}:{_BOUND}\])?$")


def _holdout_splits(holdout_fraction: float, count: int) -> tuple[str, ...]:
  """Slices of split "train" that hold out `holdout_fraction` of it `count` times.

  Returns:
    `count + 1` slices, the first the rest: for 0.1 and 2, `("train[:80%]", "train[80%:90%]",
    "train[90%:]")`.

  Raises:
    InvalidValueError: unless `0 < holdout_fraction * count < 1`.
  """
  if (isinstance(holdout_fraction, bool) or not isinstance(holdout_fraction, (int, float))
      or not 0 < holdout_fraction * count < 1):
    raise errors.InvalidValueError(f"holdout_fraction must be a number between 0 and {1 / count:g} "
                                   f"(exclusive), got {holdout_fraction!r}.")
  bounds = [""] + [f"{round(100.0 * (1.0 - k * holdout_fraction), 6):g}%"
                   for k in range(count, 0, -1)] + [""]
  return tuple(f"train[{start}:{stop}]" for start, stop in zip(bounds[:-1], bounds[1:],
                                                                strict=True))


def _holdout_hint() -> str:
  """The end of a message for a missing test split: which held-out slice to evaluate on."""
  *_, test = _holdout_splits(HOLDOUT_FRACTION, 1)
  return f"or train on the rest of 'train' and evaluate on the held-out slice {test!r}"


def _parse_split(split: str, owner: str) -> tuple[str, str | None, str | None]:
  """`(base, start, stop)` of a split such as `"train"` or `"train[:90%]"` (bounds as text).

  Raises:
    InvalidTypeError: `split` is not a string.
    InvalidValueError: `split` is not a name, optionally followed by a slice `[start:stop]`.
  """
  _check_split_type(split)
  match = _SPLIT_PATTERN.match(split.strip())
  if not match:
    raise errors.InvalidValueError(
        f"{owner}: cannot read split {split!r}; use a split name such as 'train' or "
        "'test', optionally sliced as in TFDS, e.g. 'train[:90%]' or 'train[90%:]'.")
  return match.group(1), match.group(2), match.group(3)


def _check_split_type(split: object) -> None:
  """Raises `InvalidTypeError` unless `split` is a string."""
  if not isinstance(split, str):
    raise errors.InvalidTypeError(
        f"split must be a string such as 'train' or 'test', got {split!r}.")


def _boundary(bound: str | None, size: int, split: str) -> int | None:
  """The index in `0..size` of one bound of a slice: `"90%"`, `"100"`, `"-10%"` or `None`."""
  if bound is None:
    return None
  if bound.endswith("%"):
    percent = float(bound[:-1])
    if abs(percent) > 100:
      raise errors.InvalidValueError(
          f"split {split!r}: percentages must lie in -100%..100%, got {bound}.")
    index = round(abs(percent) * size / 100.0)  # To the nearest, ties to even, as TFDS.
    negative = percent < 0
  else:
    if "." in bound:
      raise errors.InvalidValueError(
          f"split {split!r}: slice indices must be integers or percentages, got "
          f"{bound}.")
    index = abs(int(bound))
    negative = bound.startswith("-")
  if negative:
    index = size - index
  return min(max(index, 0), size)


def _slice_range(start: str | None, stop: str | None, size: int, split: str) -> tuple[int, int]:
  """`(begin, end)` indices of a slice of a split of `size` images (`end >= begin`)."""
  begin = _boundary(start, size, split)
  end = _boundary(stop, size, split)
  begin = 0 if begin is None else begin
  end = size if end is None else end
  return begin, max(begin, end)


def _slice_indices(start: str | None, stop: str | None, size: int, split: str) -> np.ndarray:
  """Sorted indices of a slice of a split, taken over a fixed permutation of the split."""
  begin, end = _slice_range(start, stop, size, split)
  order = np.random.default_rng(_SLICE_SEED).permutation(size)
  return np.sort(order[begin:end])
