"""Masks of the Real NVP couplings: which units condition and which are transformed.

The two masks of Real NVP (Dinh et al., 2017, Sec. 3.4): `CheckerboardMask` transforms the
pixels whose coordinate sum `i + j` has the mask's parity, packed into half-width images
`[H, ceil(W / 2), C]` so the conditioner sees only the conditioning pixels; `ChannelMask`
transforms half of the channels. Both expose the same operations (`conditioner_shape`,
`split`, `restrict`, `merge`, `pack_features`, `feature_channels`), so that a coupling is
written once for any mask.
"""

from __future__ import annotations

import functools
from typing import Sequence, Union

import numpy as np
import tensorflow as tf

from tfp_realnvp import errors

__all__ = ["CheckerboardMask", "ChannelMask", "get_mask"]


@functools.lru_cache(maxsize=None)
def _valid_slots(height: int, width: int, parity: int) -> np.ndarray | None:
  """Which transformed slots of the half-width packing are real pixels (odd widths only).

  Returns `[H, ceil(W / 2), 1]` ones, with zeros at the slots of the column that pads an odd
  width, or `None` for an even width.
  """
  if width % 2 == 0:
    return None
  valid = np.ones((height, (width + 1) // 2, 1))
  # Row i's transformed pixels are the second of each column pair when (i + parity) is odd;
  # for those rows the last pair is (W - 1, padding).
  valid[(np.arange(height) + parity) % 2 == 1, -1, 0] = 0.0
  return valid


def _pad_to_even(x: tf.Tensor, rows: int, columns: int) -> tf.Tensor:
  """`x` `[N, H, W, C]` with `rows` zero rows and `columns` zero columns appended."""
  if rows or columns:
    x = tf.pad(x, [[0, 0], [0, rows], [0, columns], [0, 0]])
  return x


class CheckerboardMask:
  """Spatial checkerboard: pixels with `(i + j) % 2 == parity` are transformed.

  Each row's pixels are paired by columns `(2k, 2k + 1)`; one pixel of every pair conditions
  and the other is transformed. `split` packs both halves into half-width images
  `[N, H, ceil(W / 2), C]` (an odd width is padded with a zero column first), so the
  conditioner runs on the conditioning pixels only, at half the cost of a masked full image,
  and returns parameters for the transformed pixels only. Neighbouring columns of the packed
  image are pixels two columns apart; neighbouring rows are offset by one column, alternately
  left and right.
  """

  kind = "checkerboard"

  def __init__(self, parity: int) -> None:
    self.parity = parity

  def conditioner_shape(self, event_shape: Sequence[int]) -> tuple[tuple[int, ...], int]:
    """Returns `(input_shape, output_channels)` of the conditioner for events `[H, W, C]`."""
    height, width, channels = event_shape
    return (height, (width + 1) // 2, channels), channels

  def split(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Returns `(conditioning, transformed)` pixels of images `x` `[N, H, W, C]`, packed."""
    height, width, channels = x.shape[-3:]
    half_height, half_width = (height + 1) // 2, (width + 1) // 2
    # Blocks of 2 x 2 pixels: [N, H / 2, row in block, W / 2, column in block, C]. Unstacking
    # rather than slicing and selecting: the gradients are stacks, not StridedSliceGrad and
    # SelectV2.
    blocks = tf.reshape(_pad_to_even(x, height % 2, width % 2),
                        [-1, half_height, 2, half_width, 2, channels])
    top, bottom = (tf.unstack(row, axis=3) for row in tf.unstack(blocks, axis=2))
    p = self.parity  # Pixel (i, j) is transformed when (i + j) % 2 == p.
    conditioning = tf.stack([top[1 - p], bottom[p]], axis=2)
    transformed = tf.stack([top[p], bottom[1 - p]], axis=2)
    packed = [tf.reshape(part, [-1, 2 * half_height, half_width, channels])
              for part in (conditioning, transformed)]
    if height % 2:
      packed = [part[:, :height] for part in packed]
    return packed[0], packed[1]

  def restrict(self, x: tf.Tensor, values: tf.Tensor) -> tf.Tensor:
    """Zeros the padding column's slots of packed `values` (odd widths only), e.g. log-dets."""
    valid = _valid_slots(x.shape[-3], x.shape[-2], self.parity)
    return values if valid is None else values * tf.constant(valid, dtype=values.dtype)

  def pack_features(self, features: tf.Tensor) -> tf.Tensor:
    """Features `[N, H, W, F]` at every pixel, packed like `split`: `[N, H, ceil(W / 2), 2F]`.

    Each slot of the packed image gets the features of both pixels of its pair (those of the
    conditioning pixel, then those of the transformed one).
    """
    return tf.concat(self.split(features), axis=-1)

  @staticmethod
  def feature_channels(channels: int) -> int:
    """Channels of `pack_features` of a `channels`-channel feature map."""
    return 2 * channels

  def merge(self, x: tf.Tensor, conditioning: tf.Tensor, y_transformed: tf.Tensor
            ) -> tf.Tensor:
    """Rebuilds `[N, H, W, C]` images like `x` from packed conditioning and transformed pixels."""
    height, width, channels = x.shape[-3:]
    half_height, half_width = (height + 1) // 2, (width + 1) // 2
    (top_c, bottom_c), (top_t, bottom_t) = (
        tf.unstack(tf.reshape(_pad_to_even(part, height % 2, 0),
                              [-1, half_height, 2, half_width, channels]), axis=2)
        for part in (conditioning, y_transformed))
    p = self.parity
    top = tf.stack([top_t, top_c] if p == 0 else [top_c, top_t], axis=3)
    bottom = tf.stack([bottom_c, bottom_t] if p == 0 else [bottom_t, bottom_c], axis=3)
    images = tf.reshape(tf.stack([top, bottom], axis=2),
                        [-1, 2 * half_height, 2 * half_width, channels])
    if height % 2 or width % 2:
      images = images[:, :height, :width]
    return images


class ChannelMask:
  """Channel-wise: parity 0 transforms the first `C // 2` channels, parity 1 the rest."""

  kind = "channel"

  def __init__(self, parity: int) -> None:
    self.parity = parity

  @staticmethod
  def _halves(channels: int) -> tuple[int, int]:
    if channels < 2:
      raise errors.InvalidValueError(
          f"A channel mask needs at least 2 channels to split, got {channels}.")
    return channels // 2, channels - channels // 2

  def conditioner_shape(self, event_shape: Sequence[int]) -> tuple[tuple[int, ...], int]:
    first, second = self._halves(event_shape[-1])
    conditioning, transformed = (second, first) if self.parity == 0 else (first, second)
    return tuple(event_shape[:-1]) + (conditioning,), transformed

  def split(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    head, tail = tf.split(x, self._halves(x.shape[-1]), axis=-1)
    return (tail, head) if self.parity == 0 else (head, tail)

  def restrict(self, x: tf.Tensor, values: tf.Tensor) -> tf.Tensor:
    del x
    return values

  @staticmethod
  def pack_features(features: tf.Tensor) -> tf.Tensor:
    """Features `[N, H, W, F]` at every pixel: unchanged, the conditioner sees every pixel."""
    return features

  @staticmethod
  def feature_channels(channels: int) -> int:
    """Channels of `pack_features` of a `channels`-channel feature map."""
    return channels

  def merge(self, x: tf.Tensor, conditioning: tf.Tensor, y_transformed: tf.Tensor
            ) -> tf.Tensor:
    del x  # The channels are all in the two parts.
    parts = [y_transformed, conditioning] if self.parity == 0 else [conditioning, y_transformed]
    return tf.concat(parts, axis=-1)


Mask = Union[CheckerboardMask, ChannelMask]
"""Either mask: both have the same operations."""

_MASKS: dict[str, type[Mask]] = {"checkerboard": CheckerboardMask, "channel": ChannelMask}


def get_mask(kind: str, parity: int) -> Mask:
  """Returns the mask named `kind` (`"checkerboard"` or `"channel"`) with the given parity."""
  if kind not in _MASKS:
    raise errors.InvalidValueError(f"mask must be one of {sorted(_MASKS)}, got {kind!r}.")
  if parity not in (0, 1):
    raise errors.InvalidValueError(f"parity must be 0 or 1, got {parity!r}.")
  return _MASKS[kind](parity)
