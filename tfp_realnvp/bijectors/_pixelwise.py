"""Log-determinants of maps that act on every pixel of an image alike."""

import tensorflow as tf

from tfp_realnvp.bijectors import _checks

__all__ = ["log_det_per_example"]


def log_det_per_example(x, per_pixel):
  """`H * W * per_pixel` for each example of `x` `[..., H, W, C]` (shape: `x`'s batch shape).

  Args:
    x: the images the map is applied to; their event dims must be known statically.
    per_pixel: scalar log-determinant of the map on one pixel's channels, in `x`'s dtype.
  """
  height, width = x.shape[-3], x.shape[-2]
  return tf.fill(tf.shape(x)[:-_checks.EVENT_NDIMS], per_pixel * (height * width))
