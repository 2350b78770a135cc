"""The last layer's outputs of a coupling network: an affine pair, or raw parameters per unit."""

from __future__ import annotations

from typing import Union

import tensorflow as tf
from keras import ops

from tfp_realnvp._types import LayerShape

__all__ = ["OutputShape", "head_channels", "output_shape", "raw_parameters"]

Shape = tuple[Union[int, None], ...]
OutputShape = Union[Shape, tuple[Shape, Shape]]
"""The raw parameters' shape, or the shapes of `(shift, log_scale)`."""


def head_channels(output_channels: int, params_per_unit: int | None) -> int:
  """Channels of the last convolution: 2 per unit (shift, log-scale), or `params_per_unit`."""
  return output_channels * (2 if params_per_unit is None else params_per_unit)


def raw_parameters(h: tf.Tensor, output_channels: int, params_per_unit: int) -> tf.Tensor:
  """The last convolution's output `[N, h, w, c * P]` as raw parameters `[N, h, w, c, P]`.

  What a `tfp_realnvp.bijectors.SplineCoupling` takes from its conditioner (`P = 3K - 1`).
  """
  return ops.reshape(h, (-1,) + tuple(h.shape[1:-1]) + (output_channels, params_per_unit))


def output_shape(input_shape: LayerShape, output_channels: int, params_per_unit: int | None
                 ) -> OutputShape:
  """A coupling network's `compute_output_shape`: the `(shift, log_scale)` or raw shapes."""
  shape = tuple(input_shape[:-1]) + (output_channels,)
  return shape + (params_per_unit,) if params_per_unit else (shape, shape)
