"""Keras 3 layers in place of TFP's `real_nvp_default_template` and
`masked_autoregressive_default_template` (functions that return `tf.make_template` closures
over Keras 2 layers, which a Keras 3 model can neither track nor train)."""

from __future__ import annotations

from typing import Any, Sequence, cast

import keras
from keras import ops
import tensorflow as tf

from tfp_realnvp import errors
from tfp_realnvp import _validation
from tfp_realnvp._types import LayerShape
from tfp_realnvp._types import TensorLike
from tfp_realnvp.networks import autoregressive

__all__ = ["MaskedAutoregressiveDefaultTemplate", "RealNVPDefaultTemplate",
           "masked_autoregressive_default_template", "real_nvp_default_template"]

@keras.saving.register_keras_serializable(package="tfp_realnvp")
class RealNVPDefaultTemplate(keras.layers.Layer):
  """Shift and log-scale MLP of TFP's vector `tfb.RealNVP`, as a Keras 3 layer.

  `tfb.RealNVP(num_masked=d, shift_and_log_scale_fn=f)` calls `f(x0, output_units)` with the
  `d` masked units `x0` `[..., d]` and the number `D - d` of units to transform, positionally.
  This layer is such an `f`: a dense network

  ```none
  h_0 = x0
  h_l = activation(W_l h_{l-1} + b_l)
  shift, log_scale = split(W h_L + b, 2)     # each [..., output_units]
  ```

  (with `shift_only=True`, `shift = W h_L + b` and `log_scale = None`: NICE's additive
  coupling). Its output layer is created on the first call, when `output_units` is known, and
  `output_units` is then part of the configuration. Like TFP's template, it takes no condition.

  ```python
  template = tfp_realnvp.networks.real_nvp_default_template(hidden_layers=[512, 512])
  nvp = tfd.TransformedDistribution(
      distribution=tfd.MultivariateNormalDiag(loc=[0., 0., 0.]),
      bijector=tfb.RealNVP(num_masked=2, shift_and_log_scale_fn=template))
  ```

  Hold the layer in a Keras 3 model (assign it as an attribute) so that the model tracks,
  trains and saves its variables. Direction is TFP's: `forward` maps latent to data.

  Args:
    hidden_layers: widths of the hidden layers.
    shift_only: whether to compute the shift alone (`log_scale` is then `None`).
    activation: activation of the hidden layers (anything `keras.activations.get` accepts).
    output_units: number of units transformed (`D - d`); `None`: set by the first call.
    use_bias, kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
      kernel_constraint, bias_constraint: `keras.layers.Dense` arguments of every layer
      (TFP's template passed its extra arguments to its dense layers the same way).
    **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).

  Call arguments:
    x: `[..., d]` floating-point tensor (rank 1 included).
    output_units: an `int`, positionally or by keyword; must match the first call's.

  Returns:
    `(shift, log_scale)`, each `[..., output_units]` in the layer's compute dtype;
    `log_scale` is `None` with `shift_only=True`.

  Raises:
    ValueError: invalid arguments; an `output_units` that is missing on the first call or
      differs from the first call's.
    NotImplementedError: a condition keyword argument, as TFP's template.

  References:
    Laurent Dinh, Jascha Sohl-Dickstein, and Samy Bengio. Density Estimation using Real NVP.
    ICLR 2017. https://arxiv.org/abs/1605.08803
  """

  def __init__(self, hidden_layers: Sequence[int] = (512, 512), shift_only: bool = False,
               activation: Any = "relu", output_units: int | None = None, use_bias: bool = True,
               kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
               kernel_regularizer: Any = None, bias_regularizer: Any = None,
               kernel_constraint: Any = None, bias_constraint: Any = None,
               **kwargs: Any) -> None:
    super().__init__(**kwargs)
    self.hidden_layers = _validation.widths(hidden_layers, "hidden_layers", "[512, 512]")
    self.shift_only = bool(shift_only)
    self.activation = keras.activations.get(activation)
    self.output_units = _validation.positive_int(output_units, "output_units", allow_none=True)
    self._dense_arguments = dict(
        use_bias=use_bias, kernel_initializer=kernel_initializer,
        bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
        bias_regularizer=bias_regularizer, kernel_constraint=kernel_constraint,
        bias_constraint=bias_constraint)
    self.hidden = [keras.layers.Dense(units, activation=self.activation, name=f"hidden_{i}",
                                      dtype=self.dtype_policy, **self._dense_arguments)
                   for i, units in enumerate(self.hidden_layers)]

  def __call__(self, x: TensorLike, output_units: int | None = None,
               **kwargs: Any) -> tuple[tf.Tensor, tf.Tensor | None]:
    """Fixes `output_units` (TFP passes it positionally, which Keras 3's `call` refuses)."""
    if output_units is not None:
      output_units = _validation.positive_int(output_units, "output_units")
      if self.output_units is None:
        self.output_units = output_units
      elif output_units != self.output_units:
        raise errors.InvalidValueError(
            f"{self.name}: called with output_units={output_units}, but the layer "
            f"was built for output_units={self.output_units}.")
    elif self.output_units is None:
      raise errors.InvalidValueError(
          f"{self.name}: pass output_units, the number of units to transform "
          f"(tfb.RealNVP does), on the first call or to the constructor.")
    return super().__call__(x, **kwargs)

  def build(self, input_shape: LayerShape) -> None:
    shape = tuple(input_shape)
    for layer in self.hidden:
      layer.build(shape)
      shape = shape[:-1] + (layer.units,)
    output_units = cast(int, self.output_units)  # Set by the first `__call__`, at the latest.
    self.out = keras.layers.Dense((1 if self.shift_only else 2) * output_units,
                                  name="output", dtype=self.dtype_policy,
                                  **self._dense_arguments)
    self.out.build(shape)

  def call(self, x: tf.Tensor, **condition_kwargs: Any) -> tuple[tf.Tensor, tf.Tensor | None]:
    if condition_kwargs:
      raise NotImplementedError(
          f"{self.name}: the default Real NVP template takes no condition, got "
          f"{sorted(condition_kwargs)}; write a conditioner layer that takes it.")
    vector = len(x.shape) == 1  # One example (Keras's dense layers need a batch axis).
    h = x[None] if vector else x
    for layer in self.hidden:
      h = layer(h)
    out = self.out(h)
    out = out[0] if vector else out
    if self.shift_only:
      return out, None
    shift, log_scale = ops.split(out, 2, axis=-1)
    return shift, log_scale

  def get_config(self) -> dict[str, Any]:
    config = super().get_config()
    config.update(
        hidden_layers=list(self.hidden_layers), shift_only=self.shift_only,
        activation=keras.activations.serialize(self.activation),
        output_units=self.output_units,
        **{key: keras.saving.serialize_keras_object(value)
           for key, value in self._dense_arguments.items()})
    return config


@keras.saving.register_keras_serializable(package="tfp_realnvp")
class MaskedAutoregressiveDefaultTemplate(autoregressive.AutoregressiveNetwork):
  """TFP's `masked_autoregressive_default_template` as a Keras 3 layer.

  The `AutoregressiveNetwork` with `params = 1 if shift_only else 2`, ReLU units and TFP's
  template defaults, returning `(shift, log_scale)` with the log-scale clipped:

  ```none
  out = AutoregressiveNetwork(params=2, hidden_units=hidden_layers)(x)     # [..., D, 2]
  shift = out[..., 0]
  log_scale = clip(out[..., 1], log_scale_min_clip, log_scale_max_clip)
  ```

  By default the clip keeps the gradient of the unclipped value (`log_scale_clip_gradient=False`,
  TFP's default: the value is clipped for stability, training still sees a gradient);
  `log_scale_clip_gradient=True` clips the gradient too. With `shift_only=True` the log-scale is
  `None` (a volume-preserving flow).

  ```python
  maf = tfb.MaskedAutoregressiveFlow(
      shift_and_log_scale_fn=tfp_realnvp.networks.masked_autoregressive_default_template(
          hidden_layers=[512, 512]))
  ```

  TFP's template builds its masks by blocks of inputs (every hidden layer at least as wide as
  the input); this one has the masks of `AutoregressiveNetwork`, which allow any width. Its
  kernels start as TFP's (Glorot normal, zero biases).

  Args:
    hidden_layers: widths of the hidden layers.
    shift_only: whether to compute the shift alone.
    activation: activation of the hidden layers.
    log_scale_min_clip, log_scale_max_clip: bounds of the log-scale (floats).
    log_scale_clip_gradient: whether the clip stops the gradient outside the bounds.
    **kwargs: the other arguments of `AutoregressiveNetwork` (`kernel_initializer`, default
      `"glorot_normal"`; `use_bias`, the regularizers, `input_order`, `event_shape`, a
      condition, ...) and `keras.layers.Layer` arguments.

  Returns (when called):
    `(shift, log_scale)`, each `[..., D]`; `log_scale` is `None` with `shift_only=True`.

  References:
    Mathieu Germain, Karol Gregor, Iain Murray, and Hugo Larochelle. MADE: Masked Autoencoder
    for Distribution Estimation. ICML 2015. https://arxiv.org/abs/1502.03509
  """

  def __init__(self, hidden_layers: Sequence[int] = (512, 512), shift_only: bool = False,
               activation: Any = "relu", log_scale_min_clip: float = -5.0,
               log_scale_max_clip: float = 3.0, log_scale_clip_gradient: bool = False,
               **kwargs: Any) -> None:
    kwargs.setdefault("kernel_initializer", "glorot_normal")
    hidden_units = _validation.widths(hidden_layers, "hidden_layers", "[512, 512]")
    super().__init__(params=1 if shift_only else 2, hidden_units=hidden_units,
                     activation=activation, **kwargs)
    self.shift_only = bool(shift_only)
    self.log_scale_min_clip = float(log_scale_min_clip)
    self.log_scale_max_clip = float(log_scale_max_clip)
    if not self.log_scale_min_clip < self.log_scale_max_clip:
      raise errors.InvalidValueError(f"log_scale_min_clip ({log_scale_min_clip}) must be below "
                                     f"log_scale_max_clip ({log_scale_max_clip}).")
    self.log_scale_clip_gradient = bool(log_scale_clip_gradient)

  def call(self, x: TensorLike, conditional_input: TensorLike | None = None,
           **kwargs: Any) -> tuple[tf.Tensor, tf.Tensor | None]:
    out = super().call(x, conditional_input, **kwargs)
    if self.shift_only:
      return out[..., 0], None
    log_scale = out[..., 1]
    clipped = ops.clip(log_scale, self.log_scale_min_clip, self.log_scale_max_clip)
    if not self.log_scale_clip_gradient:
      clipped = log_scale + ops.stop_gradient(clipped - log_scale)
    return out[..., 0], clipped

  def get_config(self) -> dict[str, Any]:
    config = super().get_config()
    del config["params"]
    config["hidden_layers"] = config.pop("hidden_units")
    config.update(shift_only=self.shift_only, log_scale_min_clip=self.log_scale_min_clip,
                  log_scale_max_clip=self.log_scale_max_clip,
                  log_scale_clip_gradient=self.log_scale_clip_gradient)
    return config


def real_nvp_default_template(hidden_layers: Sequence[int], shift_only: bool = False,
                              activation: Any = "relu", name: str | None = None,
                              **kwargs: Any) -> RealNVPDefaultTemplate:
  """TFP's `tfb.real_nvp_default_template`, returning a Keras 3 `RealNVPDefaultTemplate`.

  Args:
    hidden_layers: widths of the hidden layers.
    shift_only: whether to compute the shift alone (NICE).
    activation: activation of the hidden layers.
    name: name of the layer.
    **kwargs: `keras.layers.Dense` arguments of every layer (see `RealNVPDefaultTemplate`).

  Returns:
    A `RealNVPDefaultTemplate`, the `shift_and_log_scale_fn` of `tfb.RealNVP`.
  """
  return RealNVPDefaultTemplate(hidden_layers, shift_only=shift_only, activation=activation,
                                name=name, **kwargs)


def masked_autoregressive_default_template(hidden_layers: Sequence[int], shift_only: bool = False,
                                           activation: Any = "relu",
                                           log_scale_min_clip: float = -5.0,
                                           log_scale_max_clip: float = 3.0,
                                           log_scale_clip_gradient: bool = False,
                                           name: str | None = None,
                                           **kwargs: Any) -> MaskedAutoregressiveDefaultTemplate:
  """TFP's `tfb.masked_autoregressive_default_template`, returning a Keras 3 layer.

  Args:
    hidden_layers: widths of the hidden layers.
    shift_only: whether to compute the shift alone.
    activation: activation of the hidden layers.
    log_scale_min_clip, log_scale_max_clip: bounds of the log-scale.
    log_scale_clip_gradient: whether the clip stops the gradient outside the bounds.
    name: name of the layer.
    **kwargs: arguments of `AutoregressiveNetwork` (the dense ones: `kernel_initializer`, ...).

  Returns:
    A `MaskedAutoregressiveDefaultTemplate`, the `shift_and_log_scale_fn` of
    `tfb.MaskedAutoregressiveFlow`.
  """
  return MaskedAutoregressiveDefaultTemplate(
      hidden_layers, shift_only=shift_only, activation=activation,
      log_scale_min_clip=log_scale_min_clip, log_scale_max_clip=log_scale_max_clip,
      log_scale_clip_gradient=log_scale_clip_gradient, name=name, **kwargs)
