"""`RealNVP`: the multi-scale Real NVP flow as a Keras 3 layer that owns its networks."""

import keras

from tfp_realnvp.bijectors import batch_norm as batch_norm_lib
from tfp_realnvp.bijectors import multiscale
from tfp_realnvp.networks import resnet

__all__ = ["RealNVP"]


@keras.saving.register_keras_serializable(package="tfp_realnvp")
class RealNVP(keras.layers.Layer):
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

  Args:
    event_shape: `(H, W, C)` of the data.
    num_scales: number of scales; every scale but the last squeezes, so `H` and `W` must be
      divisible by `2 ** (num_scales - 1)`.
    num_filters: width of the coupling networks (64 in the paper's CIFAR-10 model).
    num_blocks: residual blocks per coupling network (8 in the paper's CIFAR-10 model).
    additive: use additive (NICE) couplings instead of affine ones.
    batch_norm: follow every coupling with a `BatchNorm` bijector.
    batch_norm_momentum: momentum of its moving averages.
    validate_args: check bijector inputs at run time (finite values).
    **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).
  """

  def __init__(self, event_shape, num_scales=2, num_filters=64, num_blocks=4, additive=False,
               batch_norm=False, batch_norm_momentum=0.99, validate_args=False, **kwargs):
    super().__init__(**kwargs)
    self.event_shape = tuple(int(d) for d in event_shape)
    self.num_scales = int(num_scales)
    self.num_filters = int(num_filters)
    self.num_blocks = int(num_blocks)
    self.additive = bool(additive)
    self.batch_norm = bool(batch_norm)
    self.batch_norm_momentum = float(batch_norm_momentum)
    self.validate_args = bool(validate_args)
    multiscale.scale_shapes(self.event_shape, self.num_scales)  # Fails early on a bad shape.
    self.conditioners = []
    self.batch_norms = []

    def make_conditioner(input_shape, output_channels, name):
      network = resnet.CouplingResNet(
          output_channels, num_filters=self.num_filters, num_blocks=self.num_blocks,
          dtype=self.dtype_policy, name=name)
      network.build((None,) + tuple(input_shape))
      self.conditioners.append(network)
      return network

    def make_batch_norm(shape, name):
      # Statistics stay in the variable dtype (float32 under mixed precision).
      statistics = batch_norm_lib.BatchNormStatistics(
          momentum=self.batch_norm_momentum, dtype=self.dtype_policy.variable_dtype, name=name)
      statistics.build((None,) + tuple(shape))
      self.batch_norms.append(statistics)
      return batch_norm_lib.BatchNorm(statistics, validate_args=self.validate_args, name=name)

    bijector = multiscale.multiscale_real_nvp(
        self.event_shape, self.num_scales, make_conditioner,
        make_batch_norm=make_batch_norm if self.batch_norm else None, additive=self.additive,
        validate_args=self.validate_args, name=self.name)
    # The bijector is a tf.Module that only refers to the layers above; keep it out of
    # Keras's and tf.train's object tracking so that saving sees each variable once.
    object.__setattr__(self, "_bijector", bijector)
    self.built = True

  @property
  def bijector(self):
    """The multi-scale bijector (`forward`: latent -> data, `inverse`: data -> latent)."""
    return self._bijector

  @property
  def weight_scales(self):
    """The weight-norm scales of every coupling network (the paper's L2 targets)."""
    return [v for network in self.conditioners for v in network.weight_scales]

  def call(self, inputs):
    return self._bijector.inverse(inputs)

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self):
    config = super().get_config()
    config.update(event_shape=list(self.event_shape), num_scales=self.num_scales,
                  num_filters=self.num_filters, num_blocks=self.num_blocks,
                  additive=self.additive, batch_norm=self.batch_norm,
                  batch_norm_momentum=self.batch_norm_momentum,
                  validate_args=self.validate_args)
    return config
