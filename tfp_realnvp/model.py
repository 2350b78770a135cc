"""`FlowModel`: the Keras 3 model that trains a flow by maximum likelihood."""

import math

import keras
from keras import ops
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_realnvp.bijectors import logit as logit_lib

tfb = tfp.bijectors
tfd = tfp.distributions

__all__ = ["FlowModel"]

PREPROCESSINGS = ("logit", None)


def _scale_loss_for_distribution(loss):
  """Divides a per-replica loss by the number of replicas under a `tf.distribute` strategy.

  Keras sums the gradients of all replicas and un-scales the reported loss again, so a custom
  loss must be scaled like Keras's own losses for the global batch to be trained on its mean.
  """
  replicas = tf.distribute.get_strategy().num_replicas_in_sync
  return loss if replicas == 1 else loss / tf.cast(replicas, loss.dtype)


def _in_multi_worker_mode(strategy):
  """Whether `strategy` is a MultiWorkerMirroredStrategy spanning several workers."""
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return False
  return strategy.extended._in_multi_worker_mode()  # pylint: disable=protected-access


@keras.saving.register_keras_serializable(package="tfp_realnvp")
class FlowModel(keras.Model):
  """A Keras 3 model that owns a flow and its base distribution and trains it by likelihood.

  `flow` is a `tfp_realnvp.RealNVP` layer, or any Keras 3 layer that exposes `.bijector`
  (`forward`: latent -> data) and owns the bijector's variables. The model's distribution is
  `tfd.TransformedDistribution(tfd.Sample(tfd.Normal(0, 1), event_shape), bijector)` where, by
  default, `bijector = tfb.Chain([Logit(alpha), flow.bijector])`: the model takes dequantized
  images with values in `[0, 1)` (see `tfp_realnvp.data`), its `log_prob(x)` is the density of
  `x` on `[0, 1)^D`, and `sample` returns images in `[0, 1)`. With `preprocessing=None` the
  flow models the data directly (vectors, already-preprocessed tensors).

  Training: `model.compile(optimizer=keras.optimizers.Adam(1e-3))` then `model.fit(dataset)`
  minimises the negative log-likelihood in nats per example plus the paper's L2 penalty
  `l2 * sum(g ** 2)` on the weight-norm scales `g` of the flow's networks (`l2=0` turns it
  off). History, the progress bar and `evaluate` report `loss` and `bits_per_dim`. Calling or
  `predict`-ing the model returns the per-example log-likelihood, which is what likelihood-based
  anomaly detection needs. Under a `tf.distribute` strategy the loss is scaled per replica as
  Keras's own losses are, so the global batch trains on its mean.

  Bits per dimension: for 8-bit images dequantized to `[0, 1)`,
  `bits_per_dim = (NLL_x + D ln 256) / (D ln 2)`, the figure the literature reports for the
  discrete data (`num_levels=256`). With `preprocessing=None` it is `NLL / (D ln 2)`.

  Args:
    flow: Keras 3 layer exposing `.bijector`.
    event_shape: shape of one example; defaults to `flow.event_shape`.
    preprocessing: `"logit"` (data in `[0, 1)`) or `None`.
    alpha: margin of the logit preprocessing (0.05 in the paper).
    l2: L2 coefficient on the weight-norm scales (5e-5 in the paper).
    num_levels: number of levels of the quantised data, for `bits_per_dim`.
    validate_args: check at run time that the data lie in `[0, 1]` (with the logit
      preprocessing), naming the problem instead of returning NaN.
    **kwargs: `keras.Model` arguments (`name`, ...). The model's dtype follows the flow's
      variable dtype (float32 under mixed precision, so densities stay float32).
  """

  def __init__(self, flow, event_shape=None, preprocessing="logit", alpha=0.05, l2=5e-5,
               num_levels=256, validate_args=False, **kwargs):
    if not hasattr(flow, "bijector"):
      raise TypeError(
          f"flow must be a Keras layer exposing `.bijector`, got {type(flow).__name__}.")
    if preprocessing not in PREPROCESSINGS:
      raise ValueError(f"preprocessing must be one of {PREPROCESSINGS}, got {preprocessing!r}.")
    event_shape = event_shape if event_shape is not None else getattr(flow, "event_shape", None)
    if event_shape is None:
      raise ValueError("event_shape is required when the flow has no `event_shape` attribute.")
    kwargs.setdefault("dtype", flow.dtype_policy.variable_dtype)
    super().__init__(**kwargs)
    self.flow = flow
    self.event_shape = tuple(int(d) for d in event_shape)
    self.preprocessing = preprocessing
    self.alpha = float(alpha)
    self.l2 = float(l2)
    self.num_levels = int(num_levels)
    self.validate_args = bool(validate_args)
    self.bits_per_dim_tracker = keras.metrics.Mean(name="bits_per_dim")

    bijector = flow.bijector
    if preprocessing == "logit":
      bijector = tfb.Chain([logit_lib.Logit(self.alpha, validate_args=self.validate_args),
                            bijector])
    base = tfd.Sample(tfd.Normal(tf.zeros([], self.compute_dtype), 1.0), list(self.event_shape))
    # A TFP object that only refers to the flow's layers: keep it out of Keras's tracking.
    object.__setattr__(self, "_distribution", tfd.TransformedDistribution(base, bijector))
    self.built = True

  @property
  def distribution(self):
    """The model's `tfd.TransformedDistribution` over data."""
    return self._distribution

  @property
  def num_dims(self):
    return math.prod(self.event_shape)

  def log_prob(self, x):
    """Log-density of `x` per example (nats)."""
    return self._distribution.log_prob(x)

  def bits_from_log_prob(self, log_prob):
    """Converts per-example log-densities to bits per dimension."""
    bits = -log_prob / (self.num_dims * math.log(2.0))
    if self.preprocessing == "logit":
      bits = bits + math.log2(self.num_levels)
    return bits

  def bits_per_dim(self, x):
    """Bits per dimension of each example of `x`."""
    return self.bits_from_log_prob(self.log_prob(x))

  def sample(self, n, temperature=1.0, seed=None):
    """Draws `n` samples; `temperature` scales the base distribution's standard deviation.

    With the logit preprocessing the samples are clipped to `[0, 1)`: the inverse logit maps
    the real line onto `(-a, 1 + a) / (1 - 2a)`, slightly wider than the pixel range.

    Args:
      n: number of samples.
      temperature: scale of the base distribution's standard deviation.
      seed: `None`, an int (the same int gives the same samples), or a stateless seed
        `[2]` int tensor.
    """
    if isinstance(seed, (int, np.integer)):
      seed = tf.constant([0, int(seed)], dtype=tf.int32)
    z = self._distribution.distribution.sample(n, seed=seed)
    x = self._distribution.bijector.forward(z * tf.cast(temperature, z.dtype))
    if self.preprocessing == "logit":
      x = tf.clip_by_value(x, 0.0, np.nextafter(np.float32(1.0), np.float32(0.0)))
    return x

  def make_train_function(self, force=False):
    """Builds the optimizer's variables eagerly, then Keras's training function.

    Without a distribution strategy Keras creates the optimizer's slot variables inside the
    first traced training step, one captured variable at a time, which made the first step
    of a Real NVP (hundreds of variables) several times slower to trace.
    """
    if self.optimizer is not None and not self.optimizer.built:
      with self.distribute_strategy.scope():
        self.optimizer.build(self.trainable_variables)
    return super().make_train_function(force=force)

  def call(self, inputs, training=None):
    del training  # Nested layers read it from Keras's call context.
    return self.log_prob(inputs)

  def regularization_penalty(self):
    """`l2 * sum(g ** 2)` over the flow's weight-norm scales."""
    scales = getattr(self.flow, "weight_scales", [])
    if not self.l2 or not scales:
      return tf.zeros([], self.compute_dtype)
    return self.l2 * ops.sum(ops.stack([ops.sum(ops.square(g)) for g in scales]))

  def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
    del x, y, training
    nll = -y_pred if sample_weight is None else -y_pred * ops.cast(sample_weight, y_pred.dtype)
    loss = ops.mean(nll) + ops.cast(self.regularization_penalty(), y_pred.dtype)
    return _scale_loss_for_distribution(loss)

  def compute_metrics(self, x, y, y_pred, sample_weight=None):
    del x, y, sample_weight
    self.bits_per_dim_tracker.update_state(self.bits_from_log_prob(y_pred))
    results = self.get_metrics_result()
    if _in_multi_worker_mode(self.distribute_strategy):
      # Keras 3 reduces every log across workers along axis 0, which fails on scalars under
      # MultiWorkerMirroredStrategy ("Invalid reduction dimension 0"); give them that axis.
      results = {name: ops.reshape(value, [1]) for name, value in results.items()}
    return results

  def get_config(self):
    config = super().get_config()
    config.update(flow=keras.saving.serialize_keras_object(self.flow),
                  event_shape=list(self.event_shape), preprocessing=self.preprocessing,
                  alpha=self.alpha, l2=self.l2, num_levels=self.num_levels,
                  validate_args=self.validate_args)
    return config

  @classmethod
  def from_config(cls, config, custom_objects=None):
    config = dict(config)
    flow = keras.saving.deserialize_keras_object(config.pop("flow"),
                                                 custom_objects=custom_objects)
    return cls(flow, **config)
