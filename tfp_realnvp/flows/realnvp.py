"""`RealNVP`: the Keras 3 layer that owns the networks of a multi-scale Real NVP flow."""

from __future__ import annotations

from typing import Any, Sequence

import keras

from tfp_realnvp import _validation
from tfp_realnvp.bijectors import batch_norm as batch_norm_lib
from tfp_realnvp.bijectors import multiscale
from tfp_realnvp.bijectors import transforms as transforms_lib
from tfp_realnvp.flows import base
from tfp_realnvp.networks import resnet

__all__ = ["RealNVP"]


@keras.saving.register_keras_serializable(package="tfp_realnvp")
class RealNVP(base.ConditionalFlowLayer):
  """Multi-scale Real NVP for images of a given shape, with Keras 3 conditioners.

  The layer builds every coupling network (`tfp_realnvp.networks.CouplingResNet`) when it is
  constructed and exposes `.bijector`, the multi-scale `tfb.Bijector` of
  `tfp_realnvp.bijectors.multiscale_real_nvp` (`forward` = latent -> data). Because the layer
  owns the networks, `layer.trainable_variables`, `model.save`, checkpoints and exports see
  every variable the bijector uses, while the bijector itself composes with anything in TFP:

  ```python
  flow = tfp_realnvp.RealNVP(event_shape=(28, 28, 1), num_scales=2)
  dist = tfd.TransformedDistribution(
      tfd.Sample(tfd.Normal(0., 1.), [28, 28, 1]), flow.bijector)
  x = dist.sample(8)
  log_p = dist.log_prob(x)
  ```

  A new flow without batch normalisation is exactly the identity (every network's last layer
  starts at zero). With `batch_norm=True`, a `BatchNorm` bijector follows every coupling (in
  the data -> latent direction), as in the paper; its moving averages are Keras non-trainable
  variables of this layer. Calling the layer maps data to the latent space
  (`flow(x) == flow.bijector.inverse(x)`).

  Float64: build the layer with `dtype="float64"` (or after
  `keras.config.set_floatx("float64")`); masks and constants follow the input's dtype.

  Conditional flows model a density `p(x | c)`: with `conditional_size=K` the condition is a
  float vector `c` `[..., K]`; with `num_classes=K` it is an integer class label `y` `[...]`,
  one-hot encoded here into `c = one_hot(y, K)`. Every coupling network then computes its
  shift and log-scale from the conditioning units and `c` (see
  `tfp_realnvp.networks.CouplingResNet`), so for each condition the flow is a different
  bijection with the same exact log-determinant formula:

  ```none
  z = f(x; c),   log p(x | c) = log N(z; 0, I) + log |det df(x; c) / dx|
  ```

  The bijector takes the vector `c` by TFP's keyword convention, once for the whole flow
  (`tfp_realnvp.bijectors.conditional.ConditionalChain` hands it to every coupling);
  `bijector_kwargs(condition)` encodes a raw condition (labels or vectors) into those keyword
  arguments, which is what `tfp_realnvp.FlowModel` uses. Labels are encoded by this layer
  rather than by the networks so that the bijector has one convention, float vectors, for
  every kind of condition:

  ```python
  flow = tfp_realnvp.RealNVP(event_shape=(8, 8, 1), num_scales=2, num_classes=10)
  dist = tfd.TransformedDistribution(tfd.Sample(tfd.Normal(0., 1.), [8, 8, 1]), flow.bijector)
  kwargs = flow.bijector_kwargs(labels)            # {"conditional_input": one_hot(labels)}
  log_p = dist.log_prob(x, bijector_kwargs=kwargs)  # log p(x | label)
  x3 = dist.sample(16, bijector_kwargs=flow.bijector_kwargs(3))  # 16 images of class 3
  ```

  Args:
    event_shape: `(H, W, C)` of the data.
    num_scales: number of scales; every scale but the last squeezes, so `H` and `W` must be
      divisible by `2 ** (num_scales - 1)`.
    num_filters: width of the coupling networks (64 in the paper's CIFAR-10 model).
    num_blocks: residual blocks per coupling network (8 in the paper's CIFAR-10 model).
    additive: use additive (NICE) couplings instead of affine ones (the same as
      `coupling="additive"`).
    coupling: the couplings' elementwise map: a registered name
      (`tfp_realnvp.bijectors.COUPLING_TRANSFORMS`: `"affine"`, the paper's; `"additive"`,
      NICE's; `"spline"`, rational-quadratic splines) or a
      `tfp_realnvp.bijectors.CouplingTransform`.
    num_bins: bins of every spline (for the transforms that take `num_bins`).
    spline_bound: `B`, the splines act on `[-B, B]` and are the identity outside (spline
      couplings only); the default 3 covers the logit-space data of `FlowModel`.
    batch_norm: follow every coupling with a `BatchNorm` bijector.
    batch_norm_momentum: momentum of the moving averages of every batch normalisation, those
      of the `BatchNorm` bijectors and those inside the coupling networks.
    validate_args: check bijector inputs at run time (finite values, class labels in range).
    conditional_size: size `K` of condition vectors, for a flow conditioned on `[..., K]`
      float vectors; `None` for none.
    num_classes: number `K` of classes, for a flow conditioned on integer class labels in
      `0..K-1` (one-hot encoded, so `conditional_size` is `K` too: leave it `None` or equal).
    **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).

  Call arguments:
    inputs: data `[..., H, W, C]`.
    conditional_input: the condition of a conditional flow (labels or vectors, see
      `bijector_kwargs`).
  """

  def __init__(self,
               event_shape: Sequence[int],
               num_scales: int = 2,
               num_filters: int = 64,
               num_blocks: int = 4,
               additive: bool = False,
               batch_norm: bool = False,
               batch_norm_momentum: float = 0.9,
               validate_args: bool = False,
               conditional_size: int | None = None,
               num_classes: int | None = None,
               coupling: str | transforms_lib.CouplingTransform | dict[str, Any] = "affine",
               num_bins: int = 8,
               spline_bound: float = 3.0,
               **kwargs: Any) -> None:
    super().__init__(event_shape, conditional_size=conditional_size, num_classes=num_classes,
                     validate_args=validate_args, **kwargs)
    self.num_scales = _validation.positive_int(num_scales, "num_scales")
    self.num_filters = _validation.positive_int(num_filters, "num_filters")
    self.num_blocks = _validation.positive_int(num_blocks, "num_blocks")
    self.additive = bool(additive)
    self.batch_norm = bool(batch_norm)
    self.batch_norm_momentum = _validation.number_in(
        batch_norm_momentum, "batch_norm_momentum", 0.0, 1.0, high_open=True)
    self.num_bins, self.spline_bound = num_bins, spline_bound
    transform = base.coupling_transform(coupling, num_bins, spline_bound, self.additive)
    # A name as given (configs stay as they were); a transform (or its config) as the object.
    self.coupling = coupling if isinstance(coupling, str) else transform
    multiscale.scale_shapes(self.event_shape, self.num_scales)  # Fails early on a bad shape.
    self.conditioners: list[resnet.CouplingResNet] = []
    self.batch_norms: list[batch_norm_lib.BatchNormStatistics] = []

    def make_conditioner(input_shape: tuple[int, ...], output_channels: int,
                         name: str) -> resnet.CouplingResNet:
      network = resnet.CouplingResNet(
          output_channels, num_filters=self.num_filters, num_blocks=self.num_blocks,
          conditional_size=self.conditional_size, batch_norm_momentum=self.batch_norm_momentum,
          params_per_unit=transform.params_per_unit, dtype=self.dtype_policy, name=name)
      network.build((None,) + tuple(input_shape))
      self.conditioners.append(network)
      return network

    def make_batch_norm(shape: tuple[int, ...], name: str) -> batch_norm_lib.BatchNorm:
      # Statistics stay in the variable dtype (float32 under mixed precision).
      statistics = batch_norm_lib.BatchNormStatistics(
          momentum=self.batch_norm_momentum, dtype=self.dtype_policy.variable_dtype, name=name)
      statistics.build((None,) + tuple(shape))
      self.batch_norms.append(statistics)
      return batch_norm_lib.BatchNorm(statistics, validate_args=self.validate_args, name=name)

    bijector = multiscale.multiscale_real_nvp(
        self.event_shape, self.num_scales, make_conditioner,
        make_batch_norm=make_batch_norm if self.batch_norm else None,
        transform=transform, validate_args=self.validate_args, name=self.name)
    self._set_bijector(bijector)

  @property
  def coupling_networks(self) -> list[keras.layers.Layer]:
    """The coupling networks, one per coupling (`conditioners`)."""
    return list(self.conditioners)

  def get_config(self) -> dict[str, Any]:
    config = super().get_config()
    config.update(event_shape=list(self.event_shape), num_scales=self.num_scales,
                  num_filters=self.num_filters, num_blocks=self.num_blocks,
                  additive=self.additive, batch_norm=self.batch_norm,
                  batch_norm_momentum=self.batch_norm_momentum,
                  coupling=base.serialized_coupling(self.coupling),
                  num_bins=self.num_bins, spline_bound=self.spline_bound)
    return config
