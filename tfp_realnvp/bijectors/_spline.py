"""Monotone rational-quadratic splines, evaluated with a one-hot choice of bin.

The spline of `tfp.bijectors.RationalQuadraticSpline` (Durkan et al., 2019; Gregory and
Delbourgo, 1982), `K` bins on `[-B, B]` and the identity outside, evaluated as a few dense
elementwise operations on `[..., K]` tensors instead of TFP's `searchsorted` and batched
`gather`: the bin of each value is a one-hot mask from comparisons with the knots, and every
per-bin quantity is that mask's dot product with the `K` candidates. The shapes are static,
nothing is gathered or scattered (so the gradient has no `UnsortedSegmentSum`), one bin search
serves both the value and its log-derivative, and XLA compiles it as it is. The tests check it
against `tfp.bijectors.RationalQuadraticSpline` to float64 precision.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

__all__ = ["rational_quadratic"]


def rational_quadratic(values: tf.Tensor, bin_widths: tf.Tensor, bin_heights: tf.Tensor,
                       knot_slopes: tf.Tensor, bound: float, inverse: bool = False
                       ) -> tuple[tf.Tensor, tf.Tensor]:
  """The spline `g` (or `g^-1`) elementwise, with `log g'` at the data side.

  With left knots `x_k`, `y_k`, bin width `w_k`, height `h_k`, slopes `d_k`, `d_{k+1}` at the
  bin's knots, `s = h_k / w_k` and `xi = (x - x_k) / w_k` in `[0, 1)`:

  ```none
  g(x)      = y_k + h_k (s xi^2 + d_k xi (1 - xi)) / (s + (d_{k+1} + d_k - 2 s) xi (1 - xi))
  log g'(x) = 2 log s + log(d_{k+1} xi^2 + 2 s xi (1 - xi) + d_k (1 - xi)^2)
              - 2 log(s + (d_{k+1} + d_k - 2 s) xi (1 - xi))
  g^-1(y)   = x_k + w_k xi,  xi = 2c / (-b - sqrt(b^2 - 4ac)) the root in [0, 1) of
              a xi^2 + b xi + c = 0 with r = y - y_k, a = h_k (s - d_k) + r (d_{k+1} + d_k - 2s),
              b = h_k d_k - r (d_{k+1} + d_k - 2s), c = -s r
  ```

  Args:
    values: `x` (or `y = g(x)` with `inverse`), any shape `S`.
    bin_widths: `[*S, K]` positive bin widths summing to `2 * bound`.
    bin_heights: `[*S, K]` positive bin heights summing to `2 * bound`.
    knot_slopes: `[*S, K - 1]` positive slopes at the interior knots (those at `-bound` and
      `bound` are 1).
    bound: `B`: the spline maps `[-B, B]` onto itself and is the identity outside.
    inverse: evaluate `g^-1` instead of `g`.

  Returns:
    `(g(values), log g'(values))`, or with `inverse` `(x, log g'(x))` for `x = g^-1(values)`;
    both of shape `S`, `log g'` 0 outside `(-B, B)`.
  """
  dtype = values.dtype
  rank = len(bin_widths.shape)
  num_bins = bin_widths.shape[-1]
  lower = tf.constant(-bound, dtype)
  # The left knot of every bin (the sums of the bins before it, as a product with a strictly
  # upper-triangular matrix of ones: one matrix product instead of a slow `cumsum` over 8
  # values), and the slopes at the left and right knot of every bin.
  before = tf.constant(np.triu(np.ones((num_bins, num_bins)), k=1), dtype)
  left_x = lower + tf.tensordot(bin_widths, before, axes=1)
  left_y = lower + tf.tensordot(bin_heights, before, axes=1)
  def pad_last(t: tf.Tensor, before: int, after: int, value: float) -> tf.Tensor:
    """One value before / after the last axis."""
    return tf.pad(t, [[0, 0]] * (rank - 1) + [[before, after]], constant_values=value)

  d_left, d_right = pad_last(knot_slopes, 1, 0, 1), pad_last(knot_slopes, 0, 1, 1)

  inside = (values > lower) & (values < -lower)
  # At or past a bin's left knot: 1 for the bins up to the value's, 0 after it (the knots
  # increase), so differences of neighbours are the one-hot mask of its bin.
  knots = left_y if inverse else left_x
  past = tf.cast(values[..., tf.newaxis] >= knots[..., 1:], dtype)
  one_hot = pad_last(past, 1, 0, 1) - pad_last(past, 0, 1, 0)

  def pick(candidates: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(one_hot * candidates, axis=-1)

  x_k, y_k, w_k, h_k = pick(left_x), pick(left_y), pick(bin_widths), pick(bin_heights)
  d_k, d_k1 = pick(d_left), pick(d_right)
  s = h_k / w_k
  curvature = d_k1 + d_k - 2 * s
  if inverse:
    r = tf.where(inside, values - y_k, tf.zeros([], dtype))
    a = h_k * (s - d_k) + r * curvature
    b = h_k * d_k - r * curvature
    c = -s * r
    xi = 2 * c / (-b - tf.sqrt(b * b - 4 * a * c))
    result = tf.where(inside, x_k + w_k * xi, values)
  else:
    xi = tf.where(inside, (values - x_k) / w_k, tf.constant(0.5, dtype))
    spline = y_k + h_k * (s * xi * xi + d_k * xi * (1 - xi)) / (s + curvature * xi * (1 - xi))
    result = tf.where(inside, spline, values)
  log_derivative = (2 * tf.math.log(s)
                    + tf.math.log(d_k1 * xi * xi + 2 * s * xi * (1 - xi) + d_k * (1 - xi) ** 2)
                    - 2 * tf.math.log(s + curvature * xi * (1 - xi)))
  return result, tf.where(inside, log_derivative, tf.zeros([], dtype))
