"""The degrees and masks of MADE (Germain et al., 2015): which inputs each unit may see."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from tfp_realnvp import errors

__all__ = ["HIDDEN_DEGREES", "NAMED_ORDERS", "made_masks"]

NAMED_ORDERS = ("left-to-right", "right-to-left", "random")
HIDDEN_DEGREES = ("equal", "random")


def _input_degrees(event_size: int, input_order: str | Sequence[int],
                   rng: np.random.Generator) -> np.ndarray:
  """The degree (1-based position in the autoregressive order) of every input."""
  if isinstance(input_order, str):
    if input_order == "left-to-right":
      return np.arange(1, event_size + 1)
    if input_order == "right-to-left":
      return np.arange(event_size, 0, -1)
    if input_order == "random":
      return rng.permutation(event_size) + 1
    raise errors.InvalidValueError(
        f"input_order must be one of {NAMED_ORDERS} or a permutation of 1..{event_size}, got "
        f"{input_order!r}.")
  try:
    degrees = np.asarray(input_order)
  except Exception:  # pylint: disable=broad-except
    degrees = None
  if (degrees is None or degrees.ndim != 1 or degrees.size == 0
      or not np.issubdtype(degrees.dtype, np.integer)):
    raise errors.InvalidValueError(
        f"input_order must be one of {NAMED_ORDERS} or a list of integers (a permutation of "
        f"1..{event_size}), got {input_order!r}.")
  if np.array_equal(np.sort(degrees), np.arange(1, event_size + 1)):
    return degrees.astype(np.int64)
  if np.array_equal(np.sort(degrees), np.arange(event_size)):
    raise errors.InvalidValueError(
        f"input_order uses 1-based degrees (a permutation of 1..{event_size}, as in "
        f"tfb.AutoregressiveNetwork), got the 0-based permutation {list(degrees)}; add 1 to it.")
  raise errors.InvalidValueError(
      f"input_order must be a permutation of 1..{event_size} (event_size={event_size}), got "
      f"{list(degrees)}.")


def _hidden_degrees(event_size: int, hidden_units: Sequence[int], method: str, previous_min: int,
                    rng: np.random.Generator) -> list[np.ndarray]:
  """Degrees of the units of every hidden layer (Germain et al., 2015, Sec. 4)."""
  degrees = []
  high = event_size - 1  # No hidden unit may see every input.
  for units in hidden_units:
    low = min(previous_min, high)
    count = high - low + 1
    if method == "equal":
      # Every degree in [low, high] gets floor or ceil of units / count units; with fewer units
      # than degrees, the units are spread evenly over the range.
      layer = low + (np.arange(units) * count) // units
    else:
      layer = rng.integers(low, high + 1, size=units)
    degrees.append(layer.astype(np.int64))
    previous_min = int(layer.min())
  return degrees


def made_masks(event_size: int, hidden_units: Sequence[int],
               input_order: str | Sequence[int] = "left-to-right", hidden_degrees: str = "equal",
               seed: int | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
  """Connectivity masks of a dense MADE network, as NumPy arrays.

  A hidden unit of degree `m` sees the units of the layer below of degree `<= m`; the outputs of
  input `i` (degree `d_i`) see the units of the last hidden layer (or, without hidden layers, the
  inputs) of degree `< d_i`. So output `i` depends only on the inputs `j` with `d_j < d_i`.

  Args:
    event_size: number of inputs `D`.
    hidden_units: widths of the hidden layers.
    input_order: see `AutoregressiveNetwork`.
    hidden_degrees: `"equal"` or `"random"`.
    seed: integer seed of the random order and degrees (`None`: fresh entropy).

  Returns:
    `(input_degrees, masks)`: the `[D]` degrees of the inputs and one boolean mask
    `[fan_in, fan_out]` per hidden layer plus the `[fan_in, D]` mask of the output layer.
  """
  rng = np.random.default_rng(seed)
  input_degrees = _input_degrees(event_size, input_order, rng)
  hidden = _hidden_degrees(event_size, hidden_units, hidden_degrees, int(input_degrees.min()),
                           rng)
  masks = []
  below = input_degrees
  for layer in hidden:
    masks.append(below[:, None] <= layer[None, :])
    below = layer
  masks.append(below[:, None] < input_degrees[None, :])
  return input_degrees, masks
