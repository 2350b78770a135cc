"""Glow's activation normalisation as a bijector, with its parameters in a Keras 3 layer."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops
import tensorflow as tf

from tfp_realnvp import _keras_internals
from tfp_realnvp import _distribute
from tfp_realnvp import _validation
from tfp_realnvp._types import LayerShape
from tfp_realnvp.bijectors import _cached_log_det
from tfp_realnvp.bijectors import _checks
from tfp_realnvp.bijectors import _pixelwise
from tfp_realnvp.bijectors import scan as scan_lib

__all__ = ["ActNorm", "ActNormParameters"]


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

  def __init__(self, epsilon: float = 1e-6, **kwargs: Any) -> None:
    super().__init__(**kwargs)
    self.epsilon = _validation.number_in(epsilon, "epsilon", 0.0)

  def build(self, input_shape: LayerShape) -> None:
    channels = (input_shape[-1],)
    # Every replica writes the same values, so the first replica's are those of all.
    self.log_scale = self.add_weight(name="log_scale", shape=channels, initializer="zeros",
                                     aggregation="only_first_replica")
    self.shift = self.add_weight(name="shift", shape=channels, initializer="zeros",
                                 aggregation="only_first_replica")
    self.initialized = self.add_weight(name="initialized", shape=(), dtype="bool",
                                       initializer="zeros", trainable=False,
                                       aggregation="only_first_replica")

  def _normalizing_parameters(self, inputs: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Per-channel `(shift, log_scale)` that normalise `inputs` (over the global batch)."""
    x = ops.stop_gradient(ops.cast(inputs, self.log_scale.dtype))
    mean, variance = _distribute.batch_moments(x, axes=[0, 1, 2])
    return -mean, -ops.log(ops.sqrt(variance) + self.epsilon)

  def _initialize(self, inputs: tf.Tensor) -> None:
    """Sets the variables from the moments of `inputs` and marks the layer initialised."""
    shift, log_scale = self._normalizing_parameters(inputs)
    self.shift.assign(shift)
    self.log_scale.assign(log_scale)
    self.initialized.assign(True)

  def _initialize_by_assignment(self, inputs: tf.Tensor, synchronized: bool) -> None:
    """`_initialize` as unconditional assignments: for a `Scan`'s step, whose stateless scope
    records them, and for replicas that must all-reduce in step (`synchronized`).

    The values are the moments' while the layer is uninitialised and the old ones after. They
    come from a `tf.cond`, so the moments are computed only once, except for `synchronized`
    replicas, which cannot all-reduce inside a `tf.cond`: they compute the moments at every call.
    """
    initialized = ops.convert_to_tensor(self.initialized)
    olds = tuple(ops.convert_to_tensor(v) for v in (self.shift, self.log_scale))
    if synchronized:
      values = tuple(ops.where(initialized, old, new)
                     for old, new in zip(olds, self._normalizing_parameters(inputs), strict=True))
    else:
      values = tf.cond(initialized, lambda: olds, lambda: self._normalizing_parameters(inputs))
    for variable, old, value in zip((self.shift, self.log_scale), olds, values, strict=True):
      # The chosen value exactly, with the gradient of a read of the variable (what `_initialize`
      # gives): a stateless scope hands this tensor to the reads that follow.
      variable.assign(ops.stop_gradient(value) + (old - ops.stop_gradient(old)))
    self.initialized.assign(True)

  def call(self, inputs: tf.Tensor, training: bool | None = False
           ) -> tuple[tf.Tensor, tf.Tensor]:
    # A stateless scope records the assignments instead of applying them. In a `Scan`'s step
    # they are written back to the step's slice, and a `tf.cond` could not return them: the
    # initialisation is then the one without control flow. Any other stateless scope is a
    # replay whose assignments are discarded (`tfp_realnvp.remat`): the layer is read as it is.
    stateless = _keras_internals.in_stateless_scope()
    in_scan = stateless and scan_lib.recording_updates()
    training = training and (in_scan or not stateless)
    if training:
      synchronized = _distribute.replicas_in_sync() > 1
      if in_scan or synchronized:
        self._initialize_by_assignment(inputs, synchronized)
      else:
        tf.cond(ops.convert_to_tensor(self.initialized), lambda: None,
                lambda: self._initialize(inputs))
    # Read after the update: automatic control dependencies order the reads after it.
    return ops.convert_to_tensor(self.log_scale), ops.convert_to_tensor(self.shift)

  def compute_output_shape(self, input_shape: LayerShape
                           ) -> tuple[tuple[int | None], tuple[int | None]]:
    return (input_shape[-1],), (input_shape[-1],)

  def get_config(self) -> dict[str, Any]:
    config = super().get_config()
    config.update(epsilon=self.epsilon)
    return config


class ActNorm(_pixelwise.PixelwiseBijector):
  """Activation normalisation of Glow on images `[..., H, W, C]`: a per-channel affine map.

  With the per-channel log-scale `s` and shift `b` of the Keras layer `layer`:

  ```none
  inverse:  z = (x + b) * exp(s)
  forward:  x = z * exp(-s) - b
  inverse_log_det_jacobian(x) = H * W * sum_c s_c
  forward_log_det_jacobian(z) = -H * W * sum_c s_c
  ```

  Direction follows TFP: `inverse` is the data -> latent direction that training uses.
  The first `inverse` in training mode (Keras's training flag, set by `fit`) initialises `s`
  and `b` from its batch so that `z` has zero mean and unit variance per channel, and
  already returns that `z` (see `tfp_realnvp.bijectors.ActNormParameters`, which also covers
  `tf.function`, `tf.distribute` and restored layers). Until then, for instance when the flow
  is sampled from before any training batch, the bijector is the identity. `forward` never
  initialises.

  #### Example

  ```python
  layer = tfp_realnvp.bijectors.ActNormParameters()   # owned by your Keras model
  layer.build((None, 8, 8, 4))
  actnorm = tfp_realnvp.bijectors.ActNorm(layer)
  ```

  #### References

  [1] Diederik P. Kingma and Prafulla Dhariwal. Glow: Generative Flow with Invertible 1x1
      Convolutions. In Neural Information Processing Systems, 2018, Sec. 3.1.
      https://arxiv.org/abs/1807.03039
  [2] Tim Salimans and Diederik P. Kingma. Weight Normalization. NeurIPS 2016 (data-dependent
      initialisation).
  """

  LAYER_CLASS = ActNormParameters

  def __init__(self, layer: ActNormParameters, validate_args: bool = False,
               name: str = "act_norm") -> None:
    """Builds the bijector.

    Args:
      layer: a built `ActNormParameters` layer holding the variables; the Keras model that
        trains the flow must own (track) it.
      validate_args: if `True`, inputs are checked at run time to be finite.
      name: name of the bijector.
    """
    parameters = dict(locals())
    super().__init__(layer, "layer", validate_args, parameters, name)

  def _augmented_inverse(self, x: tf.Tensor) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    x = _checks.check_image_event(x, self.name, validate_args=self.validate_args)
    log_scale, shift = [tf.cast(v, x.dtype) for v in self._layer(_checks.flatten_batch(x)[0])]
    z = (x + shift) * tf.exp(log_scale)
    ildj = _pixelwise.log_det_per_example(x, tf.reduce_sum(log_scale))
    return z, _cached_log_det.log_dets(ildj)

  def _augmented_forward(self, z: tf.Tensor) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    z = _checks.check_image_event(z, self.name, validate_args=self.validate_args)
    log_scale, shift = [tf.cast(v, z.dtype) for v in (self._layer.log_scale, self._layer.shift)]
    x = z * tf.exp(-log_scale) - shift
    ildj = _pixelwise.log_det_per_example(z, tf.reduce_sum(log_scale))
    return x, _cached_log_det.log_dets(ildj)
