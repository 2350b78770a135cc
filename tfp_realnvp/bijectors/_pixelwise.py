"""Bijectors that apply one map to the channels of every pixel alike, with its parameters in one
Keras 3 layer (`BatchNorm`, `ActNorm`, `InvertibleConv1x1`)."""

from __future__ import annotations

from typing import Any, ClassVar

import keras
import tensorflow as tf

from tfp_realnvp import errors
from tfp_realnvp.bijectors import _cached_log_det
from tfp_realnvp.bijectors import _checks

__all__ = ["PixelwiseBijector", "log_det_per_example"]


def log_det_per_example(x: tf.Tensor, per_pixel: tf.Tensor) -> tf.Tensor:
  """`H * W * per_pixel` for each example of `x` `[..., H, W, C]` (shape: `x`'s batch shape).

  Args:
    x: the images the map is applied to; their event dims must be known statically.
    per_pixel: scalar log-determinant of the map on one pixel's channels, in `x`'s dtype.
  """
  height, width = x.shape[-3], x.shape[-2]
  return tf.fill(tf.shape(x)[:-_checks.EVENT_NDIMS], per_pixel * (height * width))


class PixelwiseBijector(_cached_log_det.CachedLogDetBijector):
  """Base of the image bijectors whose parameters live in one Keras 3 layer.

  A subclass names the class of that layer in `LAYER_CLASS` and calls
  `super().__init__(layer, argument, validate_args, parameters, name)` from its own
  constructor, where `argument` is the name of the constructor argument that took the layer
  (for the error message) and `parameters` is `dict(locals())` taken first thing, as in every
  TFP bijector. The layer is then `self._layer`; the Keras model that trains the flow must own
  (track) it.
  """

  # The class of the Keras layer that holds the variables (set by every subclass).
  LAYER_CLASS: ClassVar[Any] = None

  def __init__(self, layer: keras.layers.Layer, argument: str, validate_args: bool,
               parameters: dict[str, Any], name: str) -> None:
    with tf.name_scope(name) as name:
      if not isinstance(layer, self.LAYER_CLASS):
        raise errors.InvalidTypeError(f"{argument} must be an instance of the Keras layer "
                                      f"{self.LAYER_CLASS.__name__}, got {type(layer).__name__}.")
      self._layer = layer
      super().__init__(forward_min_event_ndims=_checks.EVENT_NDIMS,
                       validate_args=validate_args, parameters=parameters, name=name)

  @property
  def layer(self) -> keras.layers.Layer:
    """The Keras layer that holds the bijector's variables."""
    return self._layer
