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
def _packing(height: int, width: int, parity: int
             ) -> tuple[np.ndarray, np.ndarray | None]:
  """Constants of the half-width packing of a checkerboard on `[H, W]` images.

  Returns `(second, valid)`: `second[i]` (numpy bool `[H, 1, 1]`) says whether row `i`'s
  transformed pixels are the second of each pair of columns `(2k, 2k + 1)`; `valid`
  (`[H, ceil(W / 2), 1]`, or `None` for an even width) marks the transformed slots that are
  real pixels rather than the zero column that pads an odd width.
  """
  rows = np.arange(height)
  second = ((rows + parity) % 2 == 1)[:, np.newaxis, np.newaxis]
  if width % 2 == 0:
    return second, None
  valid = np.ones((height, (width + 1) // 2, 1))
  valid[:, -1, 0] = np.where(second[:, 0, 0], 0.0, 1.0)  # Their pair is (W - 1, padding).
  return second, valid


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

  def _constants(self, x: tf.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
    return _packing(x.shape[-3], x.shape[-2], self.parity)

  def split(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Returns `(conditioning, transformed)` pixels of images `x` `[N, H, W, C]`, packed."""
    height, width, channels = x.shape[-3:]
    takes_second = self._constants(x)[0]
    if width % 2:
      x = tf.pad(x, [[0, 0], [0, 0], [0, 1], [0, 0]])
    pairs = tf.reshape(x, [-1, height, (width + 1) // 2, 2, channels])
    first, second = pairs[..., 0, :], pairs[..., 1, :]
    return tf.where(takes_second, first, second), tf.where(takes_second, second, first)

  def restrict(self, x: tf.Tensor, values: tf.Tensor) -> tf.Tensor:
    """Zeros the padding column's slots of packed `values` (odd widths only), e.g. log-dets."""
    valid = self._constants(x)[1]
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
    takes_second = self._constants(x)[0]
    pairs = tf.stack([tf.where(takes_second, conditioning, y_transformed),
                      tf.where(takes_second, y_transformed, conditioning)], axis=-2)
    return tf.reshape(pairs, [-1, height, 2 * ((width + 1) // 2), channels])[:, :, :width, :]


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
    first = self._halves(x.shape[-1])[0]
    head, tail = x[..., :first], x[..., first:]
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
