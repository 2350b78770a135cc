"""`FlowModel`'s bounds on the probability of discrete images: bits/dim, variational bounds."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import tensorflow as tf

from tfp_realnvp import _arguments
from tfp_realnvp import dequantization
from tfp_realnvp import errors
from tfp_realnvp._types import Seed
from tfp_realnvp._types import TensorLike

if TYPE_CHECKING:
  # For a type checker the mixin is the Keras model it is mixed into (Keras is untyped).
  from keras import Model as _ModelBase
else:
  _ModelBase = object

__all__ = ["DiscreteBounds"]


class DiscreteBounds(_ModelBase):
  """Bits per dimension and the variational bounds of a flow model on quantized images.

  A mixin of `tfp_realnvp.FlowModel`, which provides `dequantizer`, `num_levels`,
  `bits_from_log_prob`, `log_prob`, `_log_prob`, `_graph_function` and `_distribution`.
  """

  dequantizer: dequantization.VariationalDequantizer | None
  num_levels: int
  validate_args: bool

  def bits_per_dim(self, x: TensorLike, condition: TensorLike | None = None,
                   num_samples: int | tf.Tensor = 1, seed: Seed = None) -> tf.Tensor:
    """Bits per dimension of each example of `x`, given `condition` for a conditional model.

    For a model with a dequantizer, `x` are the quantized images (see `log_prob_bound`) and
    the figure is the bound `bits_from_log_prob(log_prob_bound(x, condition, num_samples,
    seed))`, importance-weighted for `num_samples > 1`; otherwise `x` are dequantized images
    and `num_samples` and `seed` must keep their defaults.

    Raises:
      ValueError: `num_samples` or `seed` for a model without a dequantizer.
    """
    if self.dequantizer is not None:
      return self.bits_from_log_prob(self.log_prob_bound(x, condition, num_samples, seed))
    if num_samples != 1 or seed is not None:
      raise errors.InvalidValueError(
          f"FlowModel {self.name!r} has no dequantizer: its data are already dequantized and "
          f"bits_per_dim takes neither num_samples nor seed (importance sampling needs a "
          f"VariationalDequantizer).")
    return self.bits_from_log_prob(self.log_prob(x, condition))

  def log_prob_bound(self, x: TensorLike, condition: TensorLike | None = None,
                     num_samples: int | tf.Tensor = 1, seed: Seed = None) -> tf.Tensor:
    """The variational (or importance-weighted) bound of a model with a dequantizer, per example.

    For quantized images `k / L` (`L = num_levels`) and `K = num_samples` draws
    `u_i ~ q(u | k)` of the dequantizer,

    ```none
    log_prob_bound(k / L) = logsumexp_i[log p((k + u_i) / L) - log q(u_i | k)] - log K
    ```

    in expectation a lower bound on `log P(k) + D log L`, where `P(k)` is the probability of
    the 8-bit image (see `tfp_realnvp.VariationalDequantizer`); it is in the units of
    `log_prob` of dequantized images, so `bits_from_log_prob` turns it into the bound in bits
    per dimension (which adds the `D log L`). `K = 1` is the variational bound that `fit`
    trains on and `evaluate` reports; a larger `K` gives a tighter figure (Flow++ reports it),
    at `K` times the cost.

    Args:
      x: quantized images, floats `k / L` in `[0, 1)` (`tfp_realnvp.data.load_images(...,
        dequantize=False)`; dequantized images `(k + u) / L` give the same `k`, the pixels
        being `floor(L * x)`), or integer pixels `k` in `0..L-1` (e.g. uint8 images).
      condition: for a conditional model, the condition of `p` (the dequantizer does not
        take one); else `None`.
      num_samples: `K`, the number of noise draws per image, an integer >= 1.
      seed: `None` (fresh noise), an int or a stateless seed `[2]` int tensor; the same seed
        gives the same figure.

    Raises:
      ValueError: for a model without a dequantizer, or a bad `num_samples`.
      TypeError: `x` is neither floating-point nor integer.
    """
    self.check_inputs(x, condition)
    if self.dequantizer is None:
      raise errors.InvalidValueError(
          f"FlowModel {self.name!r} has no dequantizer; build it with "
          f"dequantizer=tfp_realnvp.VariationalDequantizer(...) for a variational bound, or "
          f"use log_prob on dequantized images.")
    num_samples = _arguments.sample_count(num_samples)
    if isinstance(num_samples, int) and num_samples < 1:
      raise errors.InvalidValueError(f"num_samples must be at least 1, got {num_samples}.")
    return self._call_log_prob_bound(x, condition, num_samples, seed, training=None)

  def _call_log_prob_bound(self, x: TensorLike, condition: TensorLike | None,
                           num_samples: int | tf.Tensor, seed: Seed,
                           training: bool | None) -> tf.Tensor:
    """`log_prob_bound`, traced apart for each value of Keras's `training` flag when eager."""
    pixels = self._as_pixels(x)
    seed = dequantization.stateless_seed(seed)
    if tf.executing_eagerly():
      return self._graph_function("log_prob_bound", self._log_prob_bound)(
          pixels, _arguments.as_tensor_or_none(condition), num_samples, seed, training)
    return self._log_prob_bound(pixels, condition, num_samples, seed)

  def _log_prob_bound(self, pixels: tf.Tensor, condition: TensorLike | None,
                      num_samples: int | tf.Tensor, seed: tf.Tensor | None,
                      training: bool | None = None) -> tf.Tensor:
    # `training` keys the eager trace (see `_call_log_prob`) and reaches a remat mode's
    # backward pass through `_log_prob`.
    batch_shape = pixels.shape[:-len(self._distribution.event_shape)]
    if batch_shape.num_elements() == 0:
      # No example to run the networks on (TF's fused batch norm rejects an empty batch).
      return tf.zeros(batch_shape, pixels.dtype)
    dequantizer = cast(dequantization.VariationalDequantizer, self.dequantizer)  # Not None here.
    return dequantizer.log_prob_bound(
        lambda x: self._log_prob(x, condition, training), pixels, num_samples, seed)

  def _as_pixels(self, x: TensorLike) -> tf.Tensor:
    """The pixels `k` of quantized images `x` (floats `k / L` or integers `k`), as floats."""
    return dequantization.quantized_pixels(x, self.num_levels, self.compute_dtype,
                                           f"FlowModel {self.name!r}", self.validate_args)
