"""`FlowLayer` and `ConditionalFlowLayer`: the Keras 3 layers that own a flow's networks."""

from __future__ import annotations

from typing import Any, Sequence

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_realnvp import _seam
from tfp_realnvp import _validation
from tfp_realnvp import errors
from tfp_realnvp._types import LayerShape
from tfp_realnvp._types import TensorLike
from tfp_realnvp.bijectors import _checks
from tfp_realnvp.bijectors import transforms as transforms_lib
from tfp_realnvp.networks import weight_norm

__all__ = ["ConditionalFlowLayer", "FlowLayer"]


class FlowLayer(_seam.HoldsUntracked, keras.layers.Layer):
  """Base class of the Keras 3 layers that own the networks of a TFP bijector.

  Keras 3 does not look inside TFP objects, so a flow that Keras trains, saves and exports is a
  layer that owns every network its bijector uses. A subclass creates (and builds) those
  networks in `__init__`, so that their variables exist before an optimizer is built, then
  hands the bijector to `_set_bijector`, which keeps it out of Keras's and tf.train's tracking
  (see `tfp_realnvp._seam`): saving then sees each variable once, through its network.

  ```python
  class TwoCouplings(tfp_realnvp.FlowLayer):
    def __init__(self, **kwargs):
      super().__init__(event_shape=(8, 8, 1), **kwargs)
      self.networks = [make_network(parity) for parity in (0, 1)]   # built Keras layers
      self._set_bijector(tfb.Chain([
          tfp_realnvp.bijectors.AffineCoupling(net, parity=parity)
          for parity, net in enumerate(self.networks)]))
  ```

  The protocol that `tfp_realnvp.FlowModel` relies on, all of it defined here:

  * `bijector`: the flow's `tfb.Bijector` (`forward`: latent -> data);
  * `event_shape`: the shape of one latent example (the base distribution's event);
  * `condition_spec`: the `tf.TensorSpec` of the condition of one example, `None` (the
    default) for an unconditional flow;
  * `bijector_kwargs(condition=None)`: the keyword arguments of `bijector` for a raw
    condition; by default `{}`, and a `ValueError` for a condition.

  A conditional flow overrides `condition_spec` and `bijector_kwargs` (as `RealNVP` does).
  Any other TFP object a subclass keeps (e.g. a part of its bijector) is declared as a class
  attribute `_part = tfp_realnvp.Untracked("...")` and assigned as usual, which keeps it out of
  the tracking too.
  Calling the layer maps data to the latent space:
  `flow(x, conditional_input=c) == flow.bijector.inverse(x, **flow.bijector_kwargs(c))`.
  `FlowModel` trains any such layer, and applies its L2 penalty to every `WeightNormConv2D`
  inside it.

  Args:
    event_shape: shape of one example of the base distribution (the latent).
    **kwargs: `keras.layers.Layer` arguments.
  """

  _bijector = _seam.Untracked("The flow's bijector, untracked: its variables are the layer's.")

  def __init__(self, event_shape: Sequence[int], **kwargs: Any) -> None:
    super().__init__(**kwargs)
    self.event_shape = tuple(int(d) for d in event_shape)

  def _set_bijector(self, bijector: tfp.bijectors.Bijector) -> None:
    """Sets the flow's bijector, which only refers to networks that this layer owns."""
    self._bijector = bijector
    self.built = True

  @property
  def bijector(self) -> tfp.bijectors.Bijector:
    """The flow's bijector (`forward`: latent -> data, `inverse`: data -> latent)."""
    return self._bijector

  @property
  def condition_spec(self) -> tf.TensorSpec | None:
    """`tf.TensorSpec` of the condition of one example, or `None` for an unconditional flow."""
    return None

  def bijector_kwargs(self, condition: TensorLike | None = None) -> dict[str, Any]:
    """The keyword arguments of `.bijector` for `condition`: `{}` for an unconditional flow.

    Use them as `bijector.forward(z, **kwargs)` or
    `dist.log_prob(x, bijector_kwargs=kwargs)`.

    Args:
      condition: `None` for an unconditional flow; a conditional flow documents what it takes.

    Returns:
      A dict, empty for an unconditional flow.

    Raises:
      ValueError: a condition for an unconditional flow.
    """
    if condition is not None:
      raise errors.InvalidValueError(
          f"{type(self).__name__} {self.name!r} is unconditional (its condition_spec is None) "
          f"but got a condition; use a flow built to take one.")
    return {}

  def call(self, inputs: tf.Tensor, conditional_input: TensorLike | None = None) -> tf.Tensor:
    return self._bijector.inverse(inputs, **self.bijector_kwargs(conditional_input))

  def compute_output_shape(self, input_shape: LayerShape) -> tuple[int | None, ...]:
    """The latent shape of data of shape `input_shape` (batch dims, then `event_shape`)."""
    data_ndims = len(self._bijector.forward_event_shape(self.event_shape))
    return tuple(input_shape[:len(input_shape) - data_ndims]) + self.event_shape

  @property
  def weight_scales(self) -> list[keras.Variable]:
    """The weight-norm scales of every network of the flow (the paper's L2 targets)."""
    return weight_norm.weight_scales(self)


class ConditionalFlowLayer(FlowLayer):
  """A `FlowLayer` that may be conditioned on float vectors or on integer class labels.

  The flows of this package (`RealNVP`, `Glow`) share one condition convention: with
  `conditional_size=K` the condition is a float vector `c` `[..., K]`; with `num_classes=K` it
  is an integer class label `y` `[...]`, one-hot encoded here into `c = one_hot(y, K)`; with
  neither, the flow is unconditional. The bijector always takes float vectors, by TFP's
  keyword convention `bijector.forward(z, conditional_input=c)`, and `bijector_kwargs`
  encodes a raw condition into that argument (which `tfp_realnvp.FlowModel` uses):

  ```python
  kwargs = flow.bijector_kwargs(labels)            # {"conditional_input": one_hot(labels)}
  log_p = dist.log_prob(x, bijector_kwargs=kwargs)  # log p(x | label)
  ```

  A subclass builds networks with `conditional_size=self.conditional_size` (the one-hot size
  for labels) and chains its steps with `tfp_realnvp.bijectors.ConditionalChain`.

  Args:
    event_shape: shape of one example of the base distribution (the latent).
    conditional_size: size `K` of condition vectors, for a flow conditioned on `[..., K]`
      float vectors; `None` for none.
    num_classes: number `K` of classes, for a flow conditioned on integer class labels in
      `0..K-1` (one-hot encoded, so `conditional_size` is `K` too: leave it `None` or equal).
    validate_args: check bijector inputs at run time (finite values, class labels in range).
    **kwargs: `keras.layers.Layer` arguments.
  """

  def __init__(self, event_shape: Sequence[int], conditional_size: int | None = None,
               num_classes: int | None = None, validate_args: bool = False,
               **kwargs: Any) -> None:
    super().__init__(event_shape, **kwargs)
    self.validate_args = bool(validate_args)
    conditional_size = _validation.positive_int(conditional_size, "conditional_size", True)
    num_classes = _validation.positive_int(num_classes, "num_classes", allow_none=True)
    if num_classes is not None and conditional_size not in (None, num_classes):
      raise errors.InvalidValueError(
          f"num_classes={num_classes} conditions on one-hot class labels of size {num_classes}; "
          f"conditional_size must then be None or {num_classes}, got {conditional_size}.")
    self.num_classes = None if num_classes is None else int(num_classes)
    self.conditional_size = (self.num_classes if conditional_size is None
                             else int(conditional_size))

  @property
  def condition_spec(self) -> tf.TensorSpec | None:
    """`tf.TensorSpec` of the condition of one example, or `None` for an unconditional flow.

    An int32 label `[]` with `num_classes`, else a float vector `[conditional_size]`.
    """
    if self.num_classes is not None:
      return tf.TensorSpec([], tf.int32, name="condition")
    if self.conditional_size is not None:
      return tf.TensorSpec([self.conditional_size], self.dtype_policy.variable_dtype,
                           name="condition")
    return None

  def bijector_kwargs(self, condition: TensorLike | None = None) -> dict[str, Any]:
    """The keyword arguments of `.bijector` for a condition: `{"conditional_input": c}` or `{}`.

    Use them as `bijector.forward(z, **kwargs)` or
    `dist.log_prob(x, bijector_kwargs=kwargs)`.

    Args:
      condition: `None` for an unconditional flow. Otherwise integer class labels `[...]` in
        `0..num_classes-1` (one-hot encoded here) or, with `conditional_size=K`, float vectors
        `[..., K]` (cast to the flow's dtype). Their batch dimensions broadcast against those of
        the data: one condition per example, or a single one for all.

    Returns:
      A dict, empty for an unconditional flow.

    Raises:
      ValueError: a condition for an unconditional flow or none for a conditional one, labels
        that are not integers or (when known statically) out of range, vectors of another
        size.
    """
    if self.conditional_size is None:
      return super().bijector_kwargs(condition)
    if condition is None:
      raise errors.InvalidValueError(
          f"{type(self).__name__} {self.name!r} is conditional and needs a condition: "
          f"{self._condition_description()}. With a FlowModel: model.log_prob(x, condition), "
          f"model.sample(n, condition=...), and fit on (x, condition) pairs.")
    return {"conditional_input": self._condition_vectors(condition)}

  def _condition_description(self) -> str:
    if self.num_classes is not None:
      return f"integer class labels in 0..{self.num_classes - 1} (num_classes={self.num_classes})"
    return (f"float vectors [..., {self.conditional_size}] "
            f"(conditional_size={self.conditional_size})")

  def _condition_vectors(self, condition: TensorLike) -> tf.Tensor:
    """The float vectors `[..., K]` of a condition: one-hot labels, or the vectors cast."""
    condition = tf.convert_to_tensor(condition)
    owner = f"{type(self).__name__} {self.name!r}"
    dtype = self.dtype_policy.variable_dtype
    if self.num_classes is None:
      rank = condition.shape.rank
      if not condition.dtype.is_floating or rank == 0 or (
          rank is not None and condition.shape[-1] not in (None, self.conditional_size)):
        raise errors.InvalidValueError(
            f"{owner} takes {self._condition_description()}, got a condition of "
            f"dtype {condition.dtype.name} and shape {condition.shape}. For class labels, build "
            f"the flow with num_classes instead.")
      return tf.cast(condition, dtype)
    if not condition.dtype.is_integer:
      raise errors.InvalidValueError(
          f"{owner} takes {self._condition_description()}, got a condition of "
          f"dtype {condition.dtype.name} and shape {condition.shape}. For vectors, build the "
          f"flow with conditional_size instead.")
    labels = tf.get_static_value(condition)
    if labels is not None and (np.any(labels < 0) or np.any(labels >= self.num_classes)):
      raise errors.InvalidValueError(
          f"{owner}: class labels must lie in 0..{self.num_classes - 1}, got "
          f"values from {np.min(labels)} to {np.max(labels)}.")
    if self.validate_args:
      condition = _checks.check_below(
          condition, self.num_classes,
          f"{owner}: class labels must lie in 0..{self.num_classes - 1}")
    return tf.one_hot(condition, self.num_classes, dtype=dtype)

  def get_config(self) -> dict[str, Any]:
    config = super().get_config()
    config.update(validate_args=self.validate_args, conditional_size=self.conditional_size,
                  num_classes=self.num_classes)
    return config


def coupling_transform(coupling: str | transforms_lib.CouplingTransform | dict[str, Any],
                       num_bins: int, spline_bound: float,
                       additive: bool = False) -> transforms_lib.CouplingTransform:
  """The transform of a flow's couplings from the flow's arguments (`RealNVP`, `Glow`).

  `additive=True` (Real NVP's older spelling of NICE's couplings) turns `"affine"` into
  `"additive"`; `num_bins` and `spline_bound` go to the transforms that take them.
  """
  if additive:
    if coupling not in ("affine", "additive"):
      raise errors.InvalidValueError(
          f"additive=True makes additive affine couplings; it cannot be combined with "
          f"coupling={coupling!r}.")
    coupling = "additive"
  return transforms_lib.make_transform(coupling, num_bins=num_bins, bound=spline_bound)


def serialized_coupling(coupling: str | transforms_lib.CouplingTransform | dict[str, Any]
                        ) -> str | dict[str, Any]:
  """A flow's `coupling` argument as its config keeps it: a name, or a serialized transform."""
  if isinstance(coupling, transforms_lib.CouplingTransform):
    return keras.saving.serialize_keras_object(coupling)
  return coupling
