"""`MADE`: an `AutoregressiveNetwork` returning `(shift, log_scale)` for TFP's MAF and IAF."""

from __future__ import annotations

import numbers
from typing import Any, Sequence

import keras
from keras import ops
import numpy as np
import tensorflow as tf

from tfp_realnvp import _validation
from tfp_realnvp import errors
from tfp_realnvp._types import TensorLike
from tfp_realnvp.networks import autoregressive

__all__ = ["MADE"]


@keras.saving.register_keras_serializable(package="tfp_realnvp")
class MADE(autoregressive.AutoregressiveNetwork):
  """`AutoregressiveNetwork(params=2)` returning `(shift, log_scale)`, starting as the identity.

  A convenience over `AutoregressiveNetwork` (the same network, masks and variables) for the
  `shift_and_log_scale_fn` of TFP's masked autoregressive flow: it takes the event size
  directly, returns the pair `(shift, log_scale)` instead of `[..., D, 2]`, defaults to ReLU
  units, and its output layer (kernel, bias and conditional kernel) starts at zero, so a new
  MAF or IAF is the identity:

  ```python
  made = MADE(event_size=5, hidden_units=(64, 64))
  maf = tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=made)  # Papamakarios et al.
  iaf = tfb.Invert(tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=made))  # Kingma et al.
  flow = tfd.TransformedDistribution(tfd.Sample(tfd.Normal(0., 1.), [5]), maf)
  ```

  Direction is TFP's: `maf.forward` maps latent to data in `event_size` sequential passes of the
  network, `maf.inverse` (used by `log_prob`) takes one pass; an IAF is the other way round.
  Hold the layer in a `keras.Model` so that the model tracks, trains and saves its variables.

  ```none
  out = AutoregressiveNetwork(params=2)(x, c)      # [..., D, 2], output layer starts at zero
  shift, raw = out[..., 0], out[..., 1]
  log_scale = raw, or bound * tanh(raw / bound)
  ```

  `input_order`, `hidden_degrees` and `seed` define the masks as in `AutoregressiveNetwork`
  (`input_order[i]` is the 1-based degree of input `i`, TFP's convention).

  Args:
    event_size: size `D` of the (vector) events.
    hidden_units: widths of the hidden layers; `()` gives a masked linear map.
    activation: activation of the hidden layers (anything `keras.activations.get` accepts).
    input_order: `"left-to-right"`, `"right-to-left"`, `"random"`, or a permutation of `1..D`.
    hidden_degrees: `"equal"` or `"random"`.
    conditional_size: size `K` of a conditional input `c` that enters every layer through
      unmasked dense kernels; `None` for none.
    log_scale_bound: `None` for an unbounded log-scale, or a positive float `b`: the log-scale is
      then `b * tanh(raw / b)`, which lies in `(-b, b)` and is close to `raw` for `|raw| << b`.
    kernel_initializer: initialiser of the hidden (and hidden conditional) kernels.
    seed: integer seed of a random `input_order` and of random `hidden_degrees` (masks only).
    **kwargs: the other arguments of `AutoregressiveNetwork` (`use_bias`, `bias_initializer`,
      the regularizers and constraints, `conditional_input_layers`, `validate_args`) and
      `keras.layers.Layer` arguments (`name`, `dtype`, ...).

  Call arguments:
    x: `[..., D]` floating-point tensor, any number of batch dimensions.
    conditional_input: `[..., K]` tensor, required iff `conditional_size` is set. Pass it by
      keyword; through TFP, as a bijector keyword argument:
      `maf.forward(z, conditional_input=c)` or
      `flow.log_prob(x, bijector_kwargs={"conditional_input": c})`. Its batch dimensions
      broadcast against those of `x`.

  Returns:
    `(shift, log_scale)`, each `[..., D]` (batch dimensions broadcast), in the layer's compute
    dtype; the caller casts if it needs another dtype.

  Raises:
    ValueError: on invalid constructor arguments, a last dimension of `x` other than
      `event_size`, a missing or unexpected conditional input, or unknown keyword arguments.
    TypeError: `x` is not floating point.

  References:
    Mathieu Germain, Karol Gregor, Iain Murray, and Hugo Larochelle. MADE: Masked Autoencoder
    for Distribution Estimation. ICML 2015. https://arxiv.org/abs/1502.03509
  """

  def __init__(self, event_size: int, hidden_units: Sequence[int] = (64, 64),
               activation: Any = "relu", input_order: str | Sequence[int] = "left-to-right",
               hidden_degrees: str = "equal", conditional_size: int | None = None,
               log_scale_bound: float | None = None, kernel_initializer: Any = "glorot_uniform",
               seed: int | None = None, **kwargs: Any) -> None:
    event_size = _validation.positive_int(event_size, "event_size")
    conditional_size = _validation.positive_int(conditional_size, "conditional_size",
                                                allow_none=True)
    if log_scale_bound is not None and (
        isinstance(log_scale_bound, bool) or not isinstance(log_scale_bound, numbers.Real)
        or not np.isfinite(log_scale_bound) or log_scale_bound <= 0):
      raise errors.InvalidValueError(
          f"log_scale_bound must be None or a positive finite number, got {log_scale_bound!r}.")
    super().__init__(
        params=2, event_shape=event_size, conditional=conditional_size is not None,
        conditional_event_shape=conditional_size, hidden_units=hidden_units,
        input_order=input_order, hidden_degrees=hidden_degrees, activation=activation,
        kernel_initializer=kernel_initializer, seed=seed, output_kernel_initializer="zeros",
        **kwargs)
    self.log_scale_bound = None if log_scale_bound is None else float(log_scale_bound)

  def _condition_arguments(self, size: int | str | None = "K") -> str:
    return f"conditional_size={size}"

  def call(self, x: TensorLike, conditional_input: TensorLike | None = None,
           **kwargs: Any) -> tuple[tf.Tensor, tf.Tensor]:
    out = super().call(x, conditional_input, **kwargs)
    shift, log_scale = out[..., 0], out[..., 1]
    if self.log_scale_bound is not None:
      bound = ops.cast(self.log_scale_bound, self.compute_dtype)
      log_scale = bound * ops.tanh(log_scale / bound)
    return shift, log_scale

  def get_config(self) -> dict[str, Any]:
    config = super().get_config()
    for key in ("params", "event_shape", "conditional", "conditional_event_shape",
                "output_kernel_initializer"):
      del config[key]
    config.update(event_size=self.event_size, conditional_size=self.conditional_size,
                  log_scale_bound=self.log_scale_bound)
    return config
