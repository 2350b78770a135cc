"""Type aliases shared by the package's annotations.

TensorFlow, TensorFlow Probability and Keras ship no type information, so for a type checker
their classes (`tf.Tensor`, `keras.layers.Layer`, ...) are `Any`; the aliases still say what
each argument is meant to be.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence, Union

import numpy as np
import tensorflow as tf

__all__ = ["ConditionerFactory", "LayerShape", "Seed", "StepFactory", "TensorLike"]

TensorLike = Union[tf.Tensor, tf.Variable, np.ndarray, float, Sequence[Any]]
"""What `tf.convert_to_tensor` takes: a tensor, a variable, an array, a number, nested lists."""

Seed = Union[int, tf.Tensor, None]
"""`None` (fresh randomness), an int, or a stateless seed: an int tensor of shape `[2]`."""

LayerShape = Sequence[Union[int, None]]
"""The shape that a Keras layer's `build` or `compute_output_shape` takes (`None`: unknown)."""

ConditionerFactory = Callable[[tuple[int, ...], int, str], Callable[..., Any]]
"""`(input_shape, output_channels, name) -> conditioner`, as the multi-scale builders call it."""

StepFactory = Callable[[tuple[int, ...], str], Any]
"""`(event_shape, name) -> layer or bijector` of one step, as the multi-scale builders call it."""
