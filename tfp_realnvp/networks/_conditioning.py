"""The condition of a conditional network, checked against the network's size `K`.

A condition is a vector per example, `[N, K]`, or a feature map per example, `[N, h, w, K]`
(aligned with the network's input pixels, e.g. features of the image a dequantizer works on).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops
import tensorflow as tf

from tfp_realnvp import errors
from tfp_realnvp._types import TensorLike

__all__ = ["add_condition", "build_condition_projection", "checked_condition",
           "condition_projection"]


def checked_condition(network: keras.layers.Layer, conditional_input: TensorLike | None
                      ) -> tf.Tensor | None:
  """Checks the condition of a network call and returns it in the network's compute dtype.

  Conditional networks of this package (`CouplingResNet`, `GlowCouplingNetwork`,
  `SplitPriorNetwork`) take a float vector per example, `conditional_input` `[N, K]`, with
  `K = network.conditional_size`, and add a dense projection of it to their features (one bias
  per example). A feature map `[N, h, w, K]` of the input's height and width is projected at
  every pixel instead. This is their one check of that argument.

  Args:
    network: a Keras layer with attributes `conditional_size` (`None` for an unconditional
      network), `name` and `compute_dtype`.
    conditional_input: the condition the network was called with, or `None`.

  Returns:
    `None` for an unconditional network, else the condition `[N, K]` (or `[N, h, w, K]`) in
    the compute dtype.

  Raises:
    ValueError: a missing or unexpected condition, or one of the wrong dtype or shape.
  """
  size = network.conditional_size
  if size is None:
    if conditional_input is not None:
      raise errors.InvalidValueError(
          f"{network.name}: got a conditional_input but the network was built without "
          f"conditional_size; build it with conditional_size=K to condition on [N, K] "
          f"vectors.")
    return None
  if conditional_input is None:
    raise errors.InvalidValueError(
        f"{network.name}: this network has conditional_size={size} and needs "
        f"a [N, {size}] conditional_input, passed by keyword: "
        f"network(h, conditional_input=c), bijector.forward(z, conditional_input=c), or "
        f"distribution.log_prob(x, bijector_kwargs={{'conditional_input': c}}).")
  condition = ops.convert_to_tensor(conditional_input)
  dtype = keras.backend.standardize_dtype(condition.dtype)
  if "float" not in dtype:
    raise errors.InvalidValueError(
        f"{network.name}: conditional_input must be floating point [N, {size}] vectors, got "
        f"dtype {dtype}; one-hot encode class labels (flows built with num_classes do).")
  if len(condition.shape) not in (2, 4) or condition.shape[-1] != size:
    raise errors.InvalidValueError(
        f"{network.name}: conditional_input must have shape [N, {size}] (or [N, h, w, {size}] "
        f"for a feature map; conditional_size={size}), got shape {tuple(condition.shape)}.")
  return ops.cast(condition, network.compute_dtype)


def condition_projection(network: keras.layers.Layer, filters: int,
                         initializer: Any = "glorot_uniform") -> keras.layers.Dense | None:
  """The dense layer mapping a condition `[N, K]` to `[N, filters]`, or `None`.

  Args:
    network: the conditional network that will own the layer (as `condition_projection`);
      `None` is returned when its `conditional_size` is `None`.
    filters: number of features the projection adds to.
    initializer: initializer of the kernel (`"zeros"` for a network that must start at zero).
  """
  if network.conditional_size is None:
    return None
  return keras.layers.Dense(filters, kernel_initializer=initializer, dtype=network.dtype_policy,
                            name="condition_projection")


def build_condition_projection(network: keras.layers.Layer) -> None:
  """Builds `network.condition_projection`, if any (from the network's `build`)."""
  if network.condition_projection is not None:
    network.condition_projection.build((None, network.conditional_size))


def add_condition(network: keras.layers.Layer, features: tf.Tensor,
                  conditional_input: TensorLike | None) -> tf.Tensor:
  """`features + network.condition_projection(c)` at every pixel; `features` if unconditional.

  A vector condition `[N, K]` adds the same projection at every pixel, a feature map
  `[N, h, w, K]` its projection at each pixel (a 1x1 convolution).

  Args:
    network: a network with `conditional_size` and `condition_projection`.
    features: `[N, h, w, filters]`.
    conditional_input: the condition of the call (checked by `checked_condition`), or `None`.

  Raises:
    ValueError: a feature map of another height or width than `features`.
  """
  condition = checked_condition(network, conditional_input)
  if condition is None:
    return features
  projected = network.condition_projection(condition)
  if len(condition.shape) == 2:
    return features + projected[:, None, None, :]
  if tuple(condition.shape[1:3]) != tuple(features.shape[1:3]):
    raise errors.InvalidValueError(
        f"{network.name}: a feature-map conditional_input must have the input's height and "
        f"width {tuple(features.shape[1:3])}, got shape {tuple(condition.shape)}.")
  return features + projected
