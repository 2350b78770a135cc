"""Masks of the Real NVP couplings: which units condition and which are transformed.

A coupling splits each event `[H, W, C]` into a conditioning part, handed to its conditioner,
and a transformed part, which receives an elementwise affine map whose parameters the
conditioner computes. The two masks of Real NVP (Dinh et al., 2017, Sec. 3.4) are:

* `CheckerboardMask`: the pixels whose coordinate sum `i + j` has the mask's parity are
  transformed, the others condition. The conditioner sees the whole image with the transformed
  pixels zeroed, so it keeps the image's geometry, and returns parameters for every unit; those
  at conditioning pixels are zeroed so that the units pass through unchanged.
* `ChannelMask`: half of the channels are transformed (parity 0: the first `C // 2`, parity 1:
  the other `C - C // 2`), the other half condition. The conditioner sees only the conditioning
  channels and returns parameters for the transformed channels only.

Both expose the same four operations (`conditioner_shape`, `split`, `restrict`, `merge`), so
that a coupling is written once for any mask.
"""

import functools

import numpy as np
import tensorflow as tf

__all__ = ["CheckerboardMask", "ChannelMask", "get_mask"]


@functools.lru_cache(maxsize=None)
def checkerboard(height, width, parity):
  """Returns a numpy `[H, W, 1]` array that is 1 at the pixels with `(i + j) % 2 == parity`."""
  i, j = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
  return ((i + j) % 2 == parity).astype(np.float64)[..., np.newaxis]


class CheckerboardMask:
  """Spatial checkerboard: pixels with `(i + j) % 2 == parity` are transformed."""

  kind = "checkerboard"

  def __init__(self, parity):
    self.parity = parity

  def conditioner_shape(self, event_shape):
    """Returns `(input_shape, output_channels)` of the conditioner for events `[H, W, C]`."""
    return tuple(event_shape), event_shape[-1]

  def _transformed(self, x):
    height, width = x.shape[-3], x.shape[-2]
    return tf.constant(checkerboard(height, width, self.parity), dtype=x.dtype)

  def split(self, x):
    """Returns `(conditioning input, transformed units)` of images `x` `[N, H, W, C]`."""
    return x * (1 - self._transformed(x)), x

  def restrict(self, x, params):
    """Zeros the conditioner's outputs at the conditioning pixels of `x`."""
    return params * self._transformed(x)

  def merge(self, x, y_transformed):
    """Rebuilds the images from `x` and the transformed units (here the whole image)."""
    del x  # The conditioning pixels of `y_transformed` are already those of `x`.
    return y_transformed


class ChannelMask:
  """Channel-wise: parity 0 transforms the first `C // 2` channels, parity 1 the rest."""

  kind = "channel"

  def __init__(self, parity):
    self.parity = parity

  @staticmethod
  def _halves(channels):
    if channels < 2:
      raise ValueError(
          f"A channel mask needs at least 2 channels to split, got {channels}.")
    return channels // 2, channels - channels // 2

  def conditioner_shape(self, event_shape):
    first, second = self._halves(event_shape[-1])
    conditioning, transformed = (second, first) if self.parity == 0 else (first, second)
    return tuple(event_shape[:-1]) + (conditioning,), transformed

  def split(self, x):
    first = self._halves(x.shape[-1])[0]
    head, tail = x[..., :first], x[..., first:]
    return (tail, head) if self.parity == 0 else (head, tail)

  def restrict(self, x, params):
    del x
    return params

  def merge(self, x, y_transformed):
    first = self._halves(x.shape[-1])[0]
    if self.parity == 0:
      return tf.concat([y_transformed, x[..., first:]], axis=-1)
    return tf.concat([x[..., :first], y_transformed], axis=-1)


_MASKS = {"checkerboard": CheckerboardMask, "channel": ChannelMask}


def get_mask(kind, parity):
  """Returns the mask named `kind` (`"checkerboard"` or `"channel"`) with the given parity."""
  if kind not in _MASKS:
    raise ValueError(f"mask must be one of {sorted(_MASKS)}, got {kind!r}.")
  if parity not in (0, 1):
    raise ValueError(f"parity must be 0 or 1, got {parity!r}.")
  return _MASKS[kind](parity)
