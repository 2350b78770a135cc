"""Glow's networks: the shift and log-scale network of a coupling, and that of a split prior."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops
import tensorflow as tf

from tfp_realnvp import _validation
from tfp_realnvp._types import LayerShape
from tfp_realnvp._types import TensorLike
from tfp_realnvp.networks import actnorm
from tfp_realnvp.networks import _conditioning
from tfp_realnvp.networks import _convolution
from tfp_realnvp.networks import _coupling_networks
from tfp_realnvp.networks import _coupling_outputs

__all__ = ["GlowCouplingNetwork", "SplitPriorNetwork"]

# Glow's scale is `sigmoid(h + 2)`: a new coupling (h = 0) scales by sigmoid(2) ~ 0.88.
SCALE_OFFSET = 2.0


def _zero_conv(filters: int, kernel_size: int, dtype: Any, name: str) -> _convolution.Conv2D:
  """A convolution whose weights and bias start at zero (Glow's `conv2d_zeros`)."""
  return _convolution.Conv2D(filters, kernel_size, padding="same", kernel_initializer="zeros",
                             bias_initializer="zeros", dtype=dtype, name=name)


@keras.saving.register_keras_serializable(package="tfp_realnvp")
@_coupling_networks.COUPLING_NETWORKS.register("glow")
class GlowCouplingNetwork(keras.layers.Layer):
  """Shift and log-scale network of a Glow affine coupling (Kingma & Dhariwal, 2018, Sec. 3.3).

  ```none
  h = relu(act_norm(conv_3x3(input)) + dense(c))    # num_filters channels; dense(c): conditional
  h = relu(act_norm(conv_1x1(h)))                  # num_filters channels
  shift, raw = split(conv_3x3(h))                  # the last conv starts at zero
  log_scale = log(sigmoid(raw + 2))                # Glow's scale sigmoid(h + 2)
  ```

  With `params_per_unit=P` the last convolution has `P * output_channels` channels instead,
  returned raw as `[N, h, w, output_channels, P]` (zero for a new network), e.g. `P = 3K - 1`
  for a `tfp_realnvp.bijectors.SplineCoupling` of `K` bins, which then starts as the identity.

  The network returns `(shift, log_scale)` as `tfp_realnvp.bijectors.AffineCoupling` expects,
  so a channel-mask coupling with this conditioner is Glow's affine coupling: in the data ->
  latent direction `z_b = (x_b + t) * sigmoid(h + 2)` up to the order of shift and scale
  (`x_b * exp(s) + t`, the same family). The activation normalisations
  (`tfp_realnvp.networks.ActNormalization`, no bias in the convolutions they follow) are
  initialised from the first training batch. As the last convolution starts at zero, a new
  coupling has no shift and scales by `sigmoid(2) ~ 0.88`, as in Glow. (Glow's code also
  multiplies the last convolution's output by a learned `exp(3 * logs)` per channel; here it
  is a plain convolution, whose own weights learn that scale.)

  With `conditional_size=K` the network is conditional, like `CouplingResNet`: a dense
  projection of the condition `c` `[N, K]` is added to the first hidden features at every
  pixel (one bias per example).

  ```python
  net = tfp_realnvp.networks.GlowCouplingNetwork(2, num_filters=64)
  coupling = tfp_realnvp.bijectors.AffineCoupling(net, mask="channel", parity=1)
  ```

  #### References

  [1] Diederik P. Kingma and Prafulla Dhariwal. Glow: Generative Flow with Invertible 1x1
      Convolutions. In Neural Information Processing Systems, 2018.
      https://arxiv.org/abs/1807.03039

  Args:
    output_channels: channels of the shift and of the log-scale.
    num_filters: width of the hidden convolutions (512 in Glow's CIFAR-10 model).
    conditional_size: size `K` of the condition vectors, or `None` for an unconditional
      network.
    params_per_unit: `None` for `(shift, log_scale)`, or the number `P` of raw parameters
      per output unit (`tfp_realnvp.bijectors.spline_params_per_unit(K)` for a spline).
    **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).

  Call arguments:
    inputs: `[N, h, w, c_in]` conditioning input.
    conditional_input: `[N, K]` floating-point condition, required iff `conditional_size` is
      set.

  Call returns:
    `(shift, log_scale)`, each `[N, h, w, output_channels]`, or with `params_per_unit=P` the
    raw parameters `[N, h, w, output_channels, P]`, in the layer's compute dtype.
  """

  def __init__(self, output_channels: int, num_filters: int = 512,
               conditional_size: int | None = None, params_per_unit: int | None = None,
               **kwargs: Any) -> None:
    super().__init__(**kwargs)
    self.output_channels = _validation.positive_int(output_channels, "output_channels")
    self.num_filters = _validation.positive_int(num_filters, "num_filters")
    self.params_per_unit = _validation.positive_int(params_per_unit, "params_per_unit",
                                                    allow_none=True)
    self.conditional_size = _validation.positive_int(conditional_size, "conditional_size",
                                                     allow_none=True)
    policy = self.dtype_policy
    self.conv_in = _convolution.Conv2D(self.num_filters, 3, padding="same", use_bias=False,
                                       dtype=policy, name="conv_in")
    self.norm_in = actnorm.ActNormalization(dtype=policy, name="norm_in")
    self.conv_hidden = _convolution.Conv2D(self.num_filters, 1, use_bias=False, dtype=policy,
                                           name="conv_hidden")
    self.norm_hidden = actnorm.ActNormalization(dtype=policy, name="norm_hidden")
    self.head = _zero_conv(
        _coupling_outputs.head_channels(self.output_channels, self.params_per_unit), 3, policy,
        "head")
    self.condition_projection = _conditioning.condition_projection(self, self.num_filters)

  def build(self, input_shape: LayerShape) -> None:
    input_shape = tuple(input_shape)
    hidden_shape = input_shape[:-1] + (self.num_filters,)
    self.conv_in.build(input_shape)
    for layer in (self.norm_in, self.conv_hidden, self.norm_hidden, self.head):
      layer.build(hidden_shape)
    _conditioning.build_condition_projection(self)

  def call(self, inputs: tf.Tensor, conditional_input: TensorLike | None = None
           ) -> tuple[tf.Tensor, tf.Tensor] | tf.Tensor:
    h = _conditioning.add_condition(self, self.norm_in(self.conv_in(inputs)), conditional_input)
    h = ops.relu(self.norm_hidden(self.conv_hidden(ops.relu(h))))
    if self.params_per_unit is not None:
      return _coupling_outputs.raw_parameters(self.head(h), self.output_channels,
                                             self.params_per_unit)
    shift, raw = ops.split(self.head(h), 2, axis=-1)
    return shift, ops.log_sigmoid(raw + SCALE_OFFSET)

  def compute_output_shape(self, input_shape: LayerShape) -> _coupling_outputs.OutputShape:
    return _coupling_outputs.output_shape(input_shape, self.output_channels, self.params_per_unit)

  def get_config(self) -> dict[str, Any]:
    config = super().get_config()
    config.update(output_channels=self.output_channels, num_filters=self.num_filters,
                  conditional_size=self.conditional_size, params_per_unit=self.params_per_unit)
    return config


@keras.saving.register_keras_serializable(package="tfp_realnvp")
class SplitPriorNetwork(keras.layers.Layer):
  """Network of Glow's learned prior of a factored-out half (`bijectors.SplitPrior`).

  ```none
  shift, log_scale = split(conv_3x3(kept) + dense(c))   # both start at zero
  ```

  Glow models the factored-out half `z2` as `N(mu(z1), sigma(z1))` given the kept half `z1`;
  as a coupling in the data -> latent direction, `eps = z2 * exp(log_scale) + shift` with
  `log_scale = -log sigma` and `shift = -mu / sigma`. Convolution and (for a conditional
  network) the projection of the condition start at zero, so a new prior is the standard
  normal one.

  #### References

  [1] Diederik P. Kingma and Prafulla Dhariwal. Glow: Generative Flow with Invertible 1x1
      Convolutions. In Neural Information Processing Systems, 2018.
      https://arxiv.org/abs/1807.03039

  Args:
    output_channels: channels of the factored-out half.
    conditional_size: size `K` of the condition vectors, or `None`.
    **kwargs: `keras.layers.Layer` arguments.

  Call arguments:
    inputs: `[N, h, w, c_kept]`, the kept half.
    conditional_input: `[N, K]` floating-point condition, required iff `conditional_size` is
      set.

  Call returns:
    `(shift, log_scale)`, each `[N, h, w, output_channels]`, in the layer's compute dtype.
  """

  def __init__(self, output_channels: int, conditional_size: int | None = None,
               **kwargs: Any) -> None:
    super().__init__(**kwargs)
    self.output_channels = _validation.positive_int(output_channels, "output_channels")
    self.conditional_size = _validation.positive_int(conditional_size, "conditional_size",
                                                     allow_none=True)
    self.conv = _zero_conv(2 * self.output_channels, 3, self.dtype_policy, "conv")
    self.condition_projection = _conditioning.condition_projection(
        self, 2 * self.output_channels, initializer="zeros")

  def build(self, input_shape: LayerShape) -> None:
    self.conv.build(tuple(input_shape))
    _conditioning.build_condition_projection(self)

  def call(self, inputs: tf.Tensor, conditional_input: TensorLike | None = None
           ) -> tuple[tf.Tensor, tf.Tensor]:
    h = _conditioning.add_condition(self, self.conv(inputs), conditional_input)
    shift, log_scale = ops.split(h, 2, axis=-1)
    return shift, log_scale

  def compute_output_shape(self, input_shape: LayerShape
                           ) -> tuple[tuple[int | None, ...], tuple[int | None, ...]]:
    shape = tuple(input_shape[:-1]) + (self.output_channels,)
    return shape, shape

  def get_config(self) -> dict[str, Any]:
    config = super().get_config()
    config.update(output_channels=self.output_channels, conditional_size=self.conditional_size)
    return config
