"""`ActNormParameters`: the Keras 3 layer that holds the state of an `ActNorm` bijector."""

import keras
from keras import ops
import tensorflow as tf

from tfp_realnvp import _keras_internals
from tfp_realnvp.networks import batch_normalization

__all__ = ["ActNormParameters"]


@keras.saving.register_keras_serializable(package="tfp_realnvp")
class ActNormParameters(keras.layers.Layer):
  """Keras 3 state of an `ActNorm` bijector: per-channel log-scale and shift, and their init.

  Calling the layer on images `[N, H, W, C]` returns `(log_scale, shift)`, each `[C]`. The
  first call in training mode (Keras's training flag, set by `fit` or a parent layer called
  with `training=True`) initialises them from that batch, as Glow does (data-dependent
  initialisation): with the per-channel mean `m` and standard deviation `d` of the batch,

  ```none
  shift = -m,   log_scale = -log(d + epsilon)
  ```

  so that `(x + shift) * exp(log_scale)` has zero mean and unit variance per channel, and the
  call returns these new values. The layer then marks itself initialised (`initialized`, a
  non-trainable boolean Keras variable), so that later training calls, and a layer restored
  from a `.keras` file or a checkpoint, never initialise again. Calls outside training never
  initialise: a layer that has seen no training batch (e.g. one sampled from first) keeps
  its initial values, the identity map.

  Calls inside a `keras.StatelessScope`, which records assignments instead of applying them,
  never initialise either (they read the variables as they are).

  Inside a `tf.function` the choice is a `tf.cond` on the flag, so one traced train step
  initialises on its first run only. Under a `tf.distribute` strategy with several replicas
  the moments are those of the global batch (all-reduced over the replicas), so every replica
  sets the same values; as TensorFlow allows no synchronisation inside a `tf.cond` there,
  every training call then computes the global moments and writes
  `where(initialized, old, new)` to the variables (a few all-reduces of `C` numbers per step).

  Under mixed precision, build the layer with the variable dtype (`dtype="float32"`): the
  moments are computed in the dtype of the variables.

  Args:
    epsilon: added to the standard deviation.
    **kwargs: `keras.layers.Layer` arguments.
  """

  def __init__(self, epsilon=1e-6, **kwargs):
    super().__init__(**kwargs)
    self.epsilon = float(epsilon)

  def build(self, input_shape):
    channels = (input_shape[-1],)
    # Every replica writes the same values, so the first replica's are those of all.
    self.log_scale = self.add_weight(name="log_scale", shape=channels, initializer="zeros",
                                     aggregation="only_first_replica")
    self.shift = self.add_weight(name="shift", shape=channels, initializer="zeros",
                                 aggregation="only_first_replica")
    self.initialized = self.add_weight(name="initialized", shape=(), dtype="bool",
                                       initializer="zeros", trainable=False,
                                       aggregation="only_first_replica")

  def _moments(self, inputs):
    """Per-channel `(shift, log_scale)` that normalise `inputs` (over the global batch)."""
    x = ops.stop_gradient(ops.cast(inputs, self.log_scale.dtype))
    mean, variance = batch_normalization.batch_moments(x, axes=[0, 1, 2])
    return -mean, -ops.log(ops.sqrt(variance) + self.epsilon)

  def _initialize(self, inputs):
    """Sets the variables from the moments of `inputs` and marks the layer initialised."""
    shift, log_scale = self._moments(inputs)
    self.shift.assign(shift)
    self.log_scale.assign(log_scale)
    self.initialized.assign(True)

  def _initialize_synchronized(self, inputs):
    """`_initialize` without control flow, for replicas that must all-reduce in step."""
    initialized = ops.convert_to_tensor(self.initialized)
    for variable, value in zip((self.shift, self.log_scale), self._moments(inputs), strict=True):
      variable.assign(ops.where(initialized, variable, value))
    self.initialized.assign(True)

  def call(self, inputs, training=False):
    # A stateless scope would discard the assignments (reversible training's backward pass
    # replays calls so, see `tfp_realnvp.remat`): the layer is read as it is.
    training = training and not _keras_internals.in_stateless_scope()
    if training and batch_normalization.replicas_in_sync() > 1:
      self._initialize_synchronized(inputs)
    elif training:
      tf.cond(ops.convert_to_tensor(self.initialized), lambda: None,
              lambda: self._initialize(inputs))
    # Read after the update: automatic control dependencies order the reads after it.
    return ops.convert_to_tensor(self.log_scale), ops.convert_to_tensor(self.shift)

  def compute_output_shape(self, input_shape):
    return (input_shape[-1],), (input_shape[-1],)

  def get_config(self):
    config = super().get_config()
    config.update(epsilon=self.epsilon)
    return config
