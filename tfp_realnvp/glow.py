"""`Glow`: the Keras 3 layer that owns the networks of a multi-scale Glow flow."""

import keras
import numpy as np

from tfp_realnvp import errors
from tfp_realnvp import flows
from tfp_realnvp.bijectors import coupling as coupling_lib
from tfp_realnvp.bijectors import glow as glow_lib
from tfp_realnvp.networks import actnorm_parameters
from tfp_realnvp.networks import glow_network
from tfp_realnvp.networks import invertible_conv_parameters
from tfp_realnvp.networks import resnet

__all__ = ["Glow"]

COUPLING_NETWORKS = ("glow", "resnet")


@keras.saving.register_keras_serializable(package="tfp_realnvp")
class Glow(flows.ConditionalFlowLayer):
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
  training batch (`tfp_realnvp.networks.ActNormParameters`): train a new flow (e.g. with
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
    coupling_network: `"glow"` for Glow's `GlowCouplingNetwork`, `"resnet"` for Real NVP's
      `CouplingResNet` (with its default depth).
    coupling: `"affine"` (Glow's) or `"spline"`: rational-quadratic spline couplings
      (`tfp_realnvp.bijectors.SplineCoupling`), whose networks output the spline parameters.
    num_bins: bins of every spline (spline couplings only).
    spline_bound: `B`, the splines act on `[-B, B]` and are the identity outside (spline
      couplings only); the default 3 covers most of the unit-variance activations that the
      actnorms before the couplings give.
    conditional_size: size `K` of condition vectors, or `None`.
    num_classes: number `K` of classes, for a flow conditioned on integer class labels.
    validate_args: check bijector inputs at run time (finite values, class labels in range).
    **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).

  Raises:
    ValueError: an event shape that `num_levels` squeezes cannot divide, an unknown
      `coupling_network` or `coupling`, bad spline arguments, or inconsistent condition
      arguments.
  """

  def __init__(self, event_shape, num_levels=3, num_steps=32, num_filters=512,
               coupling_network="glow", conditional_size=None, num_classes=None,
               validate_args=False, coupling="affine", num_bins=8, spline_bound=3.0, **kwargs):
    super().__init__(event_shape, conditional_size=conditional_size, num_classes=num_classes,
                     validate_args=validate_args, **kwargs)
    if coupling_network not in COUPLING_NETWORKS:
      raise errors.InvalidValueError(
          f"coupling_network must be one of {COUPLING_NETWORKS}, got {coupling_network!r}.")
    self.num_levels = int(num_levels)
    self.num_steps = int(num_steps)
    self.num_filters = int(num_filters)
    self.coupling_network = coupling_network
    self.coupling, self.num_bins, self.spline_bound = coupling, num_bins, spline_bound
    params_per_unit, make_coupling = coupling_lib.coupling_maker(
        coupling, num_bins, spline_bound, validate_args=self.validate_args)
    self.actnorms, self.convs, self.conditioners, self.priors = [], [], [], []
    # Parameters of the bijectors stay in the variable dtype (float32 under mixed precision).
    variable_dtype = self.dtype_policy.variable_dtype

    def built(layers, layer, input_shape):
      layer.build((None,) + tuple(input_shape))
      layers.append(layer)
      return layer

    def make_actnorm(shape, name):
      return built(self.actnorms, actnorm_parameters.ActNormParameters(
          dtype=variable_dtype, name=name), shape)

    def make_conv1x1(shape, name):
      seed = int(np.random.randint(2 ** 31 - 1))
      return built(self.convs, invertible_conv_parameters.InvertibleConv1x1Parameters(
          seed=seed, dtype=variable_dtype, name=name), shape)

    def make_conditioner(input_shape, output_channels, name):
      network_class = (glow_network.GlowCouplingNetwork if coupling_network == "glow"
                       else resnet.CouplingResNet)
      return built(self.conditioners, network_class(
          output_channels, num_filters=self.num_filters, conditional_size=self.conditional_size,
          params_per_unit=params_per_unit, dtype=self.dtype_policy, name=name), input_shape)

    def make_prior_conditioner(input_shape, output_channels, name):
      return built(self.priors, glow_network.SplitPriorNetwork(
          output_channels, conditional_size=self.conditional_size, dtype=self.dtype_policy,
          name=name), input_shape)

    self._set_bijector(glow_lib.multiscale_glow(
        self.event_shape, self.num_levels, self.num_steps, make_actnorm, make_conv1x1,
        make_conditioner, make_prior_conditioner, make_coupling=make_coupling,
        validate_args=self.validate_args, name=self.name))

  def get_config(self):
    config = super().get_config()
    config.update(event_shape=list(self.event_shape), num_levels=self.num_levels,
                  num_steps=self.num_steps, num_filters=self.num_filters,
                  coupling_network=self.coupling_network, coupling=self.coupling,
                  num_bins=self.num_bins, spline_bound=self.spline_bound)
    return config
