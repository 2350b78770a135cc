"""`Glow`: the Keras 3 layer that owns the networks of a multi-scale Glow flow."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import keras
import numpy as np

from tfp_realnvp import _validation
from tfp_realnvp.bijectors import actnorm
from tfp_realnvp.bijectors import glow as glow_lib
from tfp_realnvp.bijectors import invertible_conv
from tfp_realnvp.bijectors import scan as scan_lib
from tfp_realnvp.bijectors import transforms as transforms_lib
from tfp_realnvp.flows import base
from tfp_realnvp.networks import _coupling_networks
from tfp_realnvp.networks import glow_network

__all__ = ["Glow"]


@keras.saving.register_keras_serializable(package="tfp_realnvp")
class Glow(base.ConditionalFlowLayer):
  """Multi-scale Glow for images of a given shape, with Keras 3 networks.

  Glow (Kingma & Dhariwal, 2018) has `L = num_levels` levels. In the data -> latent direction
  (`inverse`, which `log_prob` and training use) each level squeezes
  `[h, w, c] -> [h/2, w/2, 4c]` and applies `K = num_steps` steps of flow

  ```none
  actnorm:      y = (x + b) * exp(s)                       log-det  h w sum(s)
  1x1 conv:     y = W x at every pixel                     log-det  h w log|det W|
  coupling:     y_a = x_a,  y_b = x_b * exp(s(x_a)) + t(x_a)   log-det  sum s(x_a)
  ```

  then (every level but the last) factors out half of the channels `z2` with the learned
  prior `N(mu(z1), sigma(z1))` given the other half `z1`, which goes on to the next level.
  The layer builds the bijector of `tfp_realnvp.bijectors.multiscale_glow` (`forward`: latent
  -> data) and owns every network and parameter layer it uses. The whole flow maps
  `[H, W, C]` to `[H, W, C]` (the split priors whiten the factored-out halves, see
  `tfp_realnvp.bijectors.SplitPrior`), so its base is `tfd.Sample(tfd.Normal(0., 1.), [H, W, C])`:

  ```python
  flow = tfp_realnvp.Glow(event_shape=(32, 32, 3), num_levels=3, num_steps=32)
  dist = tfd.TransformedDistribution(tfd.Sample(tfd.Normal(0., 1.), [32, 32, 3]), flow.bijector)
  model = tfp_realnvp.FlowModel(flow)      # trains it: model.fit(images, ...)
  ```

  The actnorms (of the steps and inside the coupling networks) are initialised from the first
  training batch (`tfp_realnvp.bijectors.ActNormParameters`): train a new flow (e.g. with
  `FlowModel.fit`) before sampling from it. The 1x1 convolutions start as random rotations
  (drawn from NumPy's global generator, which `keras.utils.set_random_seed` seeds) in Glow's
  LU parameterisation, the couplings' and split priors' last convolutions at zero.

  Conditional flows model `p(x | c)` exactly as `RealNVP` does (see
  `tfp_realnvp.ConditionalFlowLayer`): `conditional_size=K` for float vectors, `num_classes=K`
  for class labels (one-hot encoded by `bijector_kwargs`); every coupling network and split
  prior then adds a projection of `c` to its features.

  #### References

  [1] Diederik P. Kingma and Prafulla Dhariwal. Glow: Generative Flow with Invertible 1x1
      Convolutions. In Neural Information Processing Systems, 2018.
      https://arxiv.org/abs/1807.03039

  Args:
    event_shape: `(H, W, C)` of the data; `H` and `W` must be divisible by `2 ** num_levels`.
    num_levels: number of levels `L` (3 in Glow's CIFAR-10 model).
    num_steps: steps of flow per level `K` (32 in Glow's CIFAR-10 model).
    num_filters: width of the coupling networks (512 in Glow's CIFAR-10 model).
    coupling_network: a registered coupling network (`tfp_realnvp.networks.COUPLING_NETWORKS`):
      `"glow"` for Glow's `GlowCouplingNetwork`, `"resnet"` for Real NVP's
      `CouplingResNet` (with its default depth).
    coupling: the couplings' elementwise map: a registered name
      (`tfp_realnvp.bijectors.COUPLING_TRANSFORMS`: `"affine"`, Glow's; `"additive"`; `"spline"`,
      rational-quadratic splines) or a `tfp_realnvp.bijectors.CouplingTransform`.
    num_bins: bins of every spline (for the transforms that take `num_bins`).
    spline_bound: `B`, the splines act on `[-B, B]` and are the identity outside (spline
      couplings only); the default 3 covers most of the unit-variance activations that the
      actnorms before the couplings give.
    conditional_size: size `K` of condition vectors, or `None`.
    num_classes: number `K` of classes, for a flow conditioned on integer class labels.
    validate_args: check bijector inputs at run time (finite values, class labels in range).
    scan: run each level's steps as one `tfp_realnvp.bijectors.Scan` over stacked variables
      (`steps`, one `StackedParameters` per level): a traced function (a training step, an
      XLA compilation) then holds one step per level, however many steps there are. `False`
      builds a layer and a bijector per step (`actnorms`, `convs`, `conditioners`), the layout
      of the Glow flows saved before `scan` existed, which load so.
    **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).

  Raises:
    InvalidValueError: an event shape that `num_levels` squeezes cannot divide, an unknown
      `coupling_network` or `coupling`, bad spline arguments, or inconsistent condition
      arguments.
  """

  def __init__(self,
               event_shape: Sequence[int],
               num_levels: int = 3,
               num_steps: int = 32,
               num_filters: int = 512,
               coupling_network: str = "glow",
               conditional_size: int | None = None,
               num_classes: int | None = None,
               validate_args: bool = False,
               coupling: str | transforms_lib.CouplingTransform | dict[str, Any] = "affine",
               num_bins: int = 8,
               spline_bound: float = 3.0,
               scan: bool = True,
               **kwargs: Any) -> None:
    super().__init__(event_shape, conditional_size=conditional_size, num_classes=num_classes,
                     validate_args=validate_args, **kwargs)
    network_class = _coupling_networks.COUPLING_NETWORKS.lookup(coupling_network)
    self.num_levels = _validation.positive_int(num_levels, "num_levels")
    self.num_steps = _validation.positive_int(num_steps, "num_steps")
    self.num_filters = _validation.positive_int(num_filters, "num_filters")
    self.coupling_network = coupling_network
    self.num_bins, self.spline_bound = num_bins, spline_bound
    transform = base.coupling_transform(coupling, num_bins, spline_bound)
    # A name as given (configs stay as they were); a transform (or its config) as the object.
    self.coupling = coupling if isinstance(coupling, str) else transform
    self.scan = bool(scan)
    self.actnorms: list[actnorm.ActNormParameters] = []
    self.convs: list[invertible_conv.InvertibleConv1x1Parameters] = []
    self.conditioners: list[keras.layers.Layer] = []
    self.priors: list[glow_network.SplitPriorNetwork] = []
    self.steps: list[scan_lib.StackedParameters] = []
    # Parameters of the bijectors stay in the variable dtype (float32 under mixed precision).
    variable_dtype = self.dtype_policy.variable_dtype

    def built(layers: list[Any], layer: keras.layers.Layer,
              input_shape: tuple[int, ...]) -> keras.layers.Layer:
      layer.build((None,) + tuple(input_shape))
      if not self.scan or layers is self.priors:  # A scan's step layers are templates.
        layers.append(layer)
      return layer

    def make_stacked(make_layer: Callable[[], keras.layers.Layer], num_steps: int,
                     name: str) -> scan_lib.StackedParameters:
      stacked = scan_lib.StackedParameters(make_layer, num_steps, dtype=variable_dtype, name=name)
      self.steps.append(stacked)
      return stacked

    def make_actnorm(shape: tuple[int, ...], name: str) -> actnorm.ActNormParameters:
      return built(self.actnorms, actnorm.ActNormParameters(
          dtype=variable_dtype, name=name), shape)

    def make_conv1x1(shape: tuple[int, ...],
                     name: str) -> invertible_conv.InvertibleConv1x1Parameters:
      seed = int(np.random.randint(2 ** 31 - 1))
      return built(self.convs, invertible_conv.InvertibleConv1x1Parameters(
          seed=seed, dtype=variable_dtype, name=name), shape)

    def make_conditioner(input_shape: tuple[int, ...], output_channels: int,
                         name: str) -> keras.layers.Layer:
      network = network_class(
          output_channels, num_filters=self.num_filters, conditional_size=self.conditional_size,
          params_per_unit=transform.params_per_unit, dtype=self.dtype_policy, name=name)
      return built(self.conditioners, network, input_shape)

    def make_prior_conditioner(input_shape: tuple[int, ...], output_channels: int,
                               name: str) -> glow_network.SplitPriorNetwork:
      return built(self.priors, glow_network.SplitPriorNetwork(
          output_channels, conditional_size=self.conditional_size, dtype=self.dtype_policy,
          name=name), input_shape)

    self._set_bijector(glow_lib.multiscale_glow(
        self.event_shape, self.num_levels, self.num_steps, make_actnorm, make_conv1x1,
        make_conditioner, make_prior_conditioner, transform=transform,
        validate_args=self.validate_args, name=self.name,
        make_stacked=make_stacked if self.scan else None))

  @property
  def coupling_networks(self) -> list[keras.layers.Layer]:
    """The coupling networks: every step's (`scan=False`), or each level's template (a scanned
    level computes all its steps with it, each step's variables in `steps`)."""
    if self.scan:
      return [stacked.template.network for stacked in self.steps]
    return list(self.conditioners)

  def get_config(self) -> dict[str, Any]:
    config = super().get_config()
    config.update(event_shape=list(self.event_shape), num_levels=self.num_levels,
                  num_steps=self.num_steps, num_filters=self.num_filters,
                  coupling_network=self.coupling_network,
                  coupling=base.serialized_coupling(self.coupling),
                  num_bins=self.num_bins, spline_bound=self.spline_bound, scan=self.scan)
    return config

  @classmethod
  def from_config(cls, config: dict[str, Any]) -> Glow:
    # A Glow saved before `scan` existed has a layer per step, as `scan=False` builds it.
    return cls(**{"scan": False, **config})
