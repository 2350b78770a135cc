"""The multi-scale architecture of Glow, as one bijector `[H, W, C] -> [H, W, C]`."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import keras
import tensorflow_probability as tfp

from tfp_realnvp import _validation
from tfp_realnvp._types import ConditionerFactory
from tfp_realnvp._types import StepFactory
from tfp_realnvp.bijectors import actnorm
from tfp_realnvp.bijectors import conditional
from tfp_realnvp.bijectors import coupling as coupling_lib
from tfp_realnvp.bijectors import factor_out as factor_out_lib
from tfp_realnvp.bijectors import invertible_conv
from tfp_realnvp.bijectors import masks as masks_lib
from tfp_realnvp.bijectors import multiscale
from tfp_realnvp.bijectors import scan as scan_lib
from tfp_realnvp.bijectors import split_prior as split_prior_lib
from tfp_realnvp.bijectors import squeeze as squeeze_lib
from tfp_realnvp.bijectors import transforms as transforms_lib

__all__ = ["StepLayers", "multiscale_glow"]

# Glow's coupling transforms the second half of the channels, conditioned on the first; the
# learned 1x1 convolution before it decides which units end up in which half.
COUPLING_PARITY = 1


class StepLayers(keras.layers.Layer):
  """The layers of one step of Glow: its actnorm's, its 1x1 convolution's and its network.

  The template whose variables `multiscale_glow` stacks over the steps of a level
  (`StackedParameters`), when the steps run as one `Scan`.

  Args:
    actnorm: the step's built `ActNormParameters`.
    conv: the step's built `InvertibleConv1x1Parameters`.
    network: the step's built coupling network.
    **kwargs: `keras.layers.Layer` arguments.
  """

  def __init__(self, actnorm: keras.layers.Layer, conv: keras.layers.Layer,
               network: keras.layers.Layer, **kwargs: Any) -> None:
    super().__init__(**kwargs)
    self.actnorm, self.conv, self.network = actnorm, conv, network
    self.built = True


StackedFactory = Callable[[Callable[[], keras.layers.Layer], int, str],
                          scan_lib.StackedParameters]
"""`(make_layer, num_steps, name) -> StackedParameters` that the caller owns."""


def multiscale_glow(event_shape: Sequence[int],
                    num_levels: int,
                    num_steps: int,
                    make_actnorm: StepFactory,
                    make_conv1x1: StepFactory,
                    make_conditioner: ConditionerFactory,
                    make_prior_conditioner: ConditionerFactory,
                    transform: str | transforms_lib.CouplingTransform | dict[str, Any] = "affine",
                    validate_args: bool = False,
                    name: str = "glow",
                    make_stacked: StackedFactory | None = None) -> conditional.ConditionalChain:
  """Builds the multi-scale Glow bijector of Kingma & Dhariwal (2018, Sec. 3 and Fig. 2).

  In the data -> latent direction (`inverse`), every level squeezes
  `[h, w, c] -> [h/2, w/2, 4c]` and applies `num_steps` steps of flow, each an `ActNorm`, an
  `InvertibleConv1x1` and a channel-mask coupling (`AffineCoupling` by default, transforming
  the second half of the channels); every level but the last then whitens its first `2c`
  channels with a learned `SplitPrior` (a Gaussian given the other `2c`), factors them out
  (`FactorOut`) and hands the other `2c` to the next level. Each level finally undoes its
  squeeze, so the whole flow maps `[H, W, C]` to `[H, W, C]` and its base distribution is
  `tfd.Sample(tfd.Normal(0., 1.), [H, W, C])`: the split priors turn Glow's learned Gaussian
  priors of the factored-out halves into standard-normal latents.

  Latent layout (as in `multiscale_real_nvp`): squeezing the latent `z` once gives
  `[H/2, W/2, 4C]`; its first `2C` channels are the whitened units factored out by the first
  level, its last `2C` channels the latent of the remaining levels, laid out the same way
  recursively; the last level's latent is the squeeze of its `[h/2, w/2, 4c]` output.

  Conditional flows: as for `multiscale_real_nvp`, conditioners that take
  `conditional_input` make a conditional flow, which takes the condition once,
  `flow.forward(z, conditional_input=c)`; every coupling and split prior receives it (the
  levels are `ConditionalChain`s), actnorms, convolutions and squeezes never do.

  Args:
    event_shape: `(H, W, C)` of the data; `H` and `W` divisible by `2 ** num_levels`.
    num_levels: number of levels `L` (>= 1).
    num_steps: steps of flow per level `K` (>= 1).
    make_actnorm: callable `(event_shape, name)` returning a built `ActNormParameters` layer
      for events `(h, w, c)`.
    make_conv1x1: callable `(event_shape, name)` returning a built
      `InvertibleConv1x1Parameters` layer.
    make_conditioner: callable `(input_shape, output_channels, name)` returning the
      conditioner of one coupling (e.g. a `GlowCouplingNetwork`).
    make_prior_conditioner: callable `(input_shape, output_channels, name)` returning the
      conditioner of one `SplitPrior` (e.g. a `SplitPriorNetwork`).
    transform: the couplings' elementwise map: a `CouplingTransform` or the name of a
      registered one (`"affine"`, Glow's; `"spline"`, ...).
    validate_args: passed to every bijector.
    name: prefix of the bijectors' names.
    make_stacked: `None` for a bijector per step; else the steps of each level run as one
      `Scan`, over the `StackedParameters` that `make_stacked(make_layer, num_steps, name)`
      returns (and the caller owns), `make_layer` making a `StepLayers` of the step factories'
      layers. A traced function then holds one step per level, however many there are.

  Returns:
    A `ConditionalChain` (a `tfb.Chain`) whose `forward` maps latent to data.

  Raises:
    InvalidValueError: `num_levels` squeezes that the height or width cannot take.

  #### References

  [1] Diederik P. Kingma and Prafulla Dhariwal. Glow: Generative Flow with Invertible 1x1
      Convolutions. In Neural Information Processing Systems, 2018.
      https://arxiv.org/abs/1807.03039
  """
  shapes = multiscale.scale_shapes(event_shape, num_levels, squeeze_last=True)
  num_steps = _validation.positive_int(num_steps, "num_steps")
  transform = transforms_lib.make_transform(transform)

  coupling_mask = masks_lib.ChannelMask(COUPLING_PARITY)

  def step(actnorm_layer: Any, conv_layer: Any, network: Any, shape: tuple[int, int, int],
           prefix: str) -> list[tfp.bijectors.Bijector]:
    return [
        actnorm.ActNorm(actnorm_layer, validate_args=validate_args, name=f"{prefix}_actnorm"),
        invertible_conv.InvertibleConv1x1(conv_layer, validate_args=validate_args,
                                          name=f"{prefix}_conv1x1"),
        coupling_lib.Coupling(network, transform, mask="channel", parity=COUPLING_PARITY,
                              event_shape=shape, validate_args=validate_args,
                              name=f"{prefix}_coupling"),
    ]

  def layers(shape: tuple[int, int, int], prefix: str) -> tuple[Any, Any, Any]:
    input_shape, output_channels = coupling_mask.conditioner_shape(shape)
    return (make_actnorm(shape, f"{prefix}_actnorm"), make_conv1x1(shape, f"{prefix}_conv1x1"),
            make_conditioner(input_shape, output_channels, f"{prefix}_coupling"))

  def steps(shape: tuple[int, int, int], prefix: str) -> list[tfp.bijectors.Bijector]:
    if make_stacked is None:
      return [bijector for index in range(num_steps)
              for bijector in step(*layers(shape, f"{prefix}_step{index}"), shape,
                                   f"{prefix}_step{index}")]
    stacked = make_stacked(lambda: StepLayers(*layers(shape, f"{prefix}_step")), num_steps,
                           f"{prefix}_steps")
    template = stacked.template
    one_step = conditional.ConditionalChain(
        step(template.actnorm, template.conv, template.network, shape, f"{prefix}_step"),
        validate_args=validate_args, name=f"{prefix}_step")
    return [scan_lib.Scan(one_step, stacked, validate_args=validate_args,
                          name=f"{prefix}_steps")]

  def level(index: int) -> conditional.ConditionalChain:
    height, width, channels = shapes[index]
    squeezed = (height // 2, width // 2, 4 * channels)
    prefix = f"{name}_level{index}"
    squeeze = squeeze_lib.Squeeze(shapes[index], validate_args=validate_args,
                                  name=f"{prefix}_squeeze")
    # Chain lists the steps in the order `inverse` (data -> latent) applies them.
    chain = [tfp.bijectors.Invert(squeeze, validate_args=validate_args)]
    chain += steps(squeezed, prefix)
    if index < len(shapes) - 1:
      input_shape, output_channels = masks_lib.ChannelMask(0).conditioner_shape(squeezed)
      chain += [
          split_prior_lib.SplitPrior(
              make_prior_conditioner(input_shape, output_channels, f"{prefix}_split_prior"),
              event_shape=squeezed, validate_args=validate_args, name=f"{prefix}_split_prior"),
          factor_out_lib.FactorOut(level(index + 1), validate_args=validate_args,
                                   name=f"{prefix}_factor_out")]
    chain.append(squeeze)
    return conditional.ConditionalChain(chain, validate_args=validate_args, name=prefix)

  return level(0)
