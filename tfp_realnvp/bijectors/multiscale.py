"""The multi-scale architecture of Real NVP, as one bijector `[H, W, C] -> [H, W, C]`."""

from __future__ import annotations

from typing import Any, Sequence

import tensorflow_probability as tfp

from tfp_realnvp import errors
from tfp_realnvp import _validation
from tfp_realnvp._types import ConditionerFactory
from tfp_realnvp._types import StepFactory
from tfp_realnvp.bijectors import conditional
from tfp_realnvp.bijectors import coupling as coupling_lib
from tfp_realnvp.bijectors import factor_out as factor_out_lib
from tfp_realnvp.bijectors import masks as masks_lib
from tfp_realnvp.bijectors import squeeze as squeeze_lib
from tfp_realnvp.bijectors import transforms as transforms_lib

__all__ = ["multiscale_real_nvp", "scale_shapes"]

CHECKERBOARD_COUPLINGS = 3
CHANNEL_COUPLINGS = 3
FINAL_CHECKERBOARD_COUPLINGS = 4


def scale_shapes(event_shape: Sequence[int], num_scales: int, squeeze_last: bool = False
                 ) -> list[tuple[int, int, int]]:
  """Returns the event shape `(H, W, C)` that enters each scale.

  Every scale but the last squeezes and factors out half of the channels, so scale `i + 1`
  gets `(h / 2, w / 2, 2c)` from a scale `i` of `(h, w, c)`. With `squeeze_last=True` (Glow)
  the last scale squeezes too, so `H` and `W` must be divisible by `2 ** num_scales`, not
  `2 ** (num_scales - 1)`.

  Args:
    event_shape: `(H, W, C)` of the data.
    num_scales: number of scales (levels), >= 1.
    squeeze_last: whether the last scale squeezes too.

  Raises:
    ValueError: `num_scales < 1`, or a scale that squeezes would squeeze an odd height or
      width (the message names the size and the largest number of scales that fits).
  """
  event_shape = _validation.image_shape(event_shape)
  num_scales = _validation.positive_int(num_scales, "num_scales")
  shapes = [event_shape]
  for index in range(num_scales if squeeze_last else num_scales - 1):
    height, width, channels = shapes[-1]
    if height % 2 or width % 2:
      which = "every scale" if squeeze_last else "every scale but the last"
      raise errors.InvalidValueError(
          f"event_shape {event_shape} supports at most {index + int(not squeeze_last)} "
          f"scale(s): {which} squeezes 2x2 blocks, and scale {index + 1} has height {height} "
          f"and width {width}; both must be even.")
    shapes.append((height // 2, width // 2, 2 * channels))
  return shapes[:num_scales]


def multiscale_real_nvp(event_shape: Sequence[int],
                        num_scales: int,
                        make_conditioner: ConditionerFactory,
                        make_batch_norm: StepFactory | None = None,
                        transform: (str | transforms_lib.CouplingTransform
                                    | dict[str, Any]) = "affine",
                        validate_args: bool = False,
                        name: str = "real_nvp") -> conditional.ConditionalChain:
  """Builds the multi-scale Real NVP bijector of Dinh et al. (2017, Sec. 3.6).

  In the data -> latent direction (`inverse`), every scale but the last applies 3 checkerboard
  couplings (alternating parity), a squeeze `[h, w, c] -> [h/2, w/2, 4c]`, 3 channel couplings
  (alternating parity), then factors out the first `2c` channels and hands the other `2c` to
  the next scale; the last scale applies 4 checkerboard couplings. Each scale finally undoes its
  squeeze, so the whole flow maps `[H, W, C]` to `[H, W, C]` and its base distribution is
  `tfd.Sample(tfd.Normal(0., 1.), [H, W, C])`.

  Latent layout: squeezing the latent `z` once gives `[H/2, W/2, 4C]`; its first `2C` channels
  are the units factored out by the first scale, its last `2C` channels are the latent of the
  remaining scales, laid out the same way recursively. With one scale there is no squeeze: the
  flow is 4 checkerboard couplings.

  Conditional flows: with conditioners that take a condition (e.g. `CouplingResNet` with
  `conditional_size=K`), pass it once as a keyword argument,
  `flow.forward(z, conditional_input=c)` or
  `dist.log_prob(x, bijector_kwargs={"conditional_input": c})` with `c` `[..., K]`: the
  scales are `tfp_realnvp.bijectors.conditional.ConditionalChain`s, so `c` reaches every
  coupling (through the factor-out steps) while the squeezes and batch norms never see it.
  Every coupling then computes `s, t = f(b * x, c)`.

  Args:
    event_shape: `(H, W, C)` of the data.
    num_scales: number of scales (>= 1).
    make_conditioner: callable `(input_shape, output_channels, name)` returning the
      conditioner of one coupling; `input_shape` is `(h, w, c_in)` without batch dimension.
      A conditioner of a conditional flow takes a keyword argument `conditional_input` `[N, K]`
      (see `AffineCoupling`).
    make_batch_norm: optional callable `(event_shape, name)` returning a bijector (e.g. a
      `BatchNorm`) applied to the output of every coupling in the data -> latent direction.
    transform: the couplings' elementwise map: a `CouplingTransform` or the name of a
      registered one (`"affine"`, the paper's; `"additive"`, NICE's; `"spline"`, ...).
    validate_args: passed to every bijector.
    name: prefix of the bijectors' names.

  Returns:
    A `ConditionalChain` (a `tfb.Chain`) whose `forward` maps latent to data.

  Raises:
    InvalidValueError: a bad shape, number of scales or transform.
  """
  shapes = scale_shapes(event_shape, num_scales)
  transform = transforms_lib.make_transform(transform)

  def couplings(kind: str, count: int, shape: tuple[int, int, int],
                prefix: str) -> list[tfp.bijectors.Bijector]:
    steps: list[tfp.bijectors.Bijector] = []
    for index in range(count):
      parity = index % 2
      input_shape, output_channels = masks_lib.get_mask(kind, parity).conditioner_shape(shape)
      step_name = f"{prefix}_{kind}_{index}"
      steps.append(coupling_lib.Coupling(
          make_conditioner(input_shape, output_channels, step_name), transform, mask=kind,
          parity=parity, event_shape=shape, validate_args=validate_args, name=step_name))
      if make_batch_norm is not None:
        steps.append(make_batch_norm(shape, f"{step_name}_batch_norm"))
    return steps

  def scale(index: int) -> conditional.ConditionalChain:
    shape = shapes[index]
    prefix = f"{name}_scale{index}"
    if index == num_scales - 1:
      return conditional.ConditionalChain(
          couplings("checkerboard", FINAL_CHECKERBOARD_COUPLINGS, shape, prefix),
          validate_args=validate_args, name=prefix)
    height, width, channels = shape
    squeezed = (height // 2, width // 2, 4 * channels)
    squeeze = squeeze_lib.Squeeze(shape, validate_args=validate_args, name=f"{prefix}_squeeze")
    # Chain lists the steps in the order `inverse` (data -> latent) applies them.
    steps = (
        couplings("checkerboard", CHECKERBOARD_COUPLINGS, shape, prefix)
        + [tfp.bijectors.Invert(squeeze, validate_args=validate_args)]
        + couplings("channel", CHANNEL_COUPLINGS, squeezed, prefix)
        + [factor_out_lib.FactorOut(scale(index + 1), validate_args=validate_args,
                                    name=f"{prefix}_factor_out"),
           squeeze])
    return conditional.ConditionalChain(steps, validate_args=validate_args, name=prefix)

  return scale(0)
