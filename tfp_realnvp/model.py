"""`FlowModel`: the Keras 3 model that trains a flow by maximum likelihood."""

import math

import keras
from keras import ops
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_realnvp import errors
from tfp_realnvp import _seam
from tfp_realnvp import _validation
from tfp_realnvp import dequantization
from tfp_realnvp import flows
from tfp_realnvp import remat as remat_lib
from tfp_realnvp.bijectors import _checks
from tfp_realnvp.bijectors import conditional as conditional_lib
from tfp_realnvp.bijectors import logit as logit_lib
from tfp_realnvp.networks import weight_norm

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


def _as_tensor(value):
  """`value` as a tensor, or `None`: a traced function is then not retraced per label value."""
  return None if value is None else tf.convert_to_tensor(value)


def _sample_count(n):
  """`n` as a number of samples: an `int` >= 0, or (in a traced function) an int32 tensor.

  Raises:
    TypeError: `n` is not an integer (a float, a bool, a non-scalar or non-integer tensor).
    ValueError: `n` is negative.
  """
  if tf.is_tensor(n) and n.dtype.is_integer and n.shape.rank == 0:
    if not tf.executing_eagerly() and tf.get_static_value(n) is None:
      return tf.cast(n, tf.int32)
    n = int(tf.get_static_value(n))
  if not _validation.is_integer(n):
    raise errors.InvalidTypeError(f"The number of samples must be an integer, got {n!r}.")
  if n < 0:
    raise errors.InvalidValueError(f"The number of samples must be non-negative, got {n}.")
  return int(n)


def _check_dequantizer(dequantizer, preprocessing, num_levels):
  """Raises a `TypeError` or `ValueError` unless `dequantizer` fits a model of these settings."""
  if not isinstance(dequantizer, dequantization.VariationalDequantizer):
    raise errors.InvalidTypeError(
        f"dequantizer must be None (uniform noise in the data pipeline) or a "
        f"tfp_realnvp.VariationalDequantizer, got {type(dequantizer).__name__}.")
  if preprocessing != "logit":
    raise errors.InvalidValueError("A dequantizer makes the data of images in [0, 1): it needs "
                                   f"preprocessing='logit', got preprocessing={preprocessing!r}.")
  if dequantizer.num_levels != num_levels:
    raise errors.InvalidValueError(
        f"The dequantizer has num_levels={dequantizer.num_levels}, the model "
        f"num_levels={num_levels}; they must be equal.")


def _in_multi_worker_mode(strategy):
  """Whether `strategy` is a MultiWorkerMirroredStrategy spanning several workers."""
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return False
  return strategy.extended._in_multi_worker_mode()  # pylint: disable=protected-access


@keras.saving.register_keras_serializable(package="tfp_realnvp")
class FlowModel(_seam.HoldsUntracked, keras.Model):
  """A Keras 3 model that owns a flow and its base distribution and trains it by likelihood.

  `flow` is a `tfp_realnvp.RealNVP` layer, or any other `tfp_realnvp.FlowLayer` (which owns
  its bijector's variables and exposes `bijector`, `event_shape`, `condition_spec` and
  `bijector_kwargs`). The model's distribution is
  `tfd.TransformedDistribution(tfd.Sample(tfd.Normal(0, 1), event_shape), bijector)` where, by
  default, `bijector = Chain([Logit(alpha), flow.bijector])` (a
  `tfp_realnvp.bijectors.conditional.ConditionalChain`, so that a condition reaches the flow
  and never the logit): the model takes dequantized images with values in `[0, 1)` (see
  `tfp_realnvp.data`), its `log_prob(x)` is the density of `x` on `[0, 1)^D`, and `sample`
  returns images in `[0, 1)`. With `preprocessing=None` the flow models the data directly
  (vectors, already-preprocessed tensors).

  Training: `model.compile(optimizer=tfp_realnvp.FusedAdam(1e-3))` (or any Keras optimizer;
  `FusedAdam` is Keras's Adam with fewer graph operations) then `model.fit(dataset)`
  minimises the negative log-likelihood in nats per example plus the paper's L2 penalty
  `l2 * sum(g ** 2)` on the weight-norm scales `g` of the flow's networks (`l2=0` turns it
  off). History, the progress bar and `evaluate` report `loss` and `bits_per_dim`. Calling or
  `predict`-ing the model returns the per-example log-likelihood, which is what likelihood-based
  anomaly detection needs. Under a `tf.distribute` strategy the loss is scaled per replica as
  Keras's own losses are, so the global batch trains on its mean.

  Bits per dimension: for 8-bit images dequantized to `[0, 1)`,
  `bits_per_dim = (NLL_x + D ln 256) / (D ln 2)`, the figure the literature reports for the
  discrete data (`num_levels=256`). With `preprocessing=None` it is `NLL / (D ln 2)`.

  Variational dequantization: with `dequantizer=tfp_realnvp.VariationalDequantizer(...)` the
  noise `u` of `x = (k + u) / L` is drawn inside the model from a learned `q(u | k)` instead of
  uniformly in the data pipeline (Flow++, Ho et al., 2019). The model then takes the quantized
  images (floats `k / L` from `tfp_realnvp.data.load_images(..., dequantize=False)`, or integer
  pixels `k`) in `fit`, `evaluate`, `predict`, calling it and `bits_per_dim`, and each of them
  computes, per example, one draw of the variational bound

  ```none
  log p((k + u) / L) - log q(u | k),   u ~ q(u | k),
  ```

  whose expectation is at most `log P(k) + D log L` (`P(k)` the probability of the 8-bit
  image): the loss is `-E_q[log p(x) - log q(u | k)]` (plus the L2 penalty, which covers the
  dequantizer's networks too) and `bits_per_dim` is the variational upper bound on the bits
  per dimension of the 8-bit data, `(-(log p - log q) + D ln L) / (D ln 2)`. Uniform noise is
  the special case `q = 1`, so the figures of the two compare directly. `log_prob_bound` and
  `bits_per_dim(x, num_samples=K)` give the tighter importance-weighted bound of `K` draws.
  `log_prob(x)`, `sample`, `interpolate` and the bijector keep working on images in `[0, 1)`:
  the dequantizer only serves the bound on the discrete data.

  Conditional models: when the flow is conditional (a `RealNVP` built with `num_classes` or
  `conditional_size`), the model is the conditional density `p(x | c)` and every entry point
  takes the condition `c` (class labels or vectors, see `RealNVP.bijector_kwargs`):
  `log_prob(x, condition)`, `bits_per_dim(x, condition)`, `sample(n, condition=...)` (one
  condition for all `n` samples or one per sample), and `fit`, `evaluate` and `predict` take
  `(x, condition)` pairs (dataset elements, or numpy arrays as `fit(x, condition)`), optionally
  with sample weights as a third item. The condition reaches every coupling through TFP's
  keyword convention: `distribution.log_prob(x, bijector_kwargs=model.bijector_kwargs(c))`.
  A conditional model used without a condition, or an unconditional one given a condition,
  raises a `ValueError`.

  ```python
  flow = tfp_realnvp.RealNVP((28, 28, 1), num_scales=2, num_classes=10)
  model = tfp_realnvp.FlowModel(flow)
  model.compile(optimizer=keras.optimizers.Adam(1e-3))
  model.fit(tfp_realnvp.data.load_images("mnist", with_labels=True), epochs=10)
  sevens = model.sample(16, condition=7)
  log_p = model.log_prob(images, labels)  # log p(x | label), per example
  ```

  Keras reads a pair `(x, c)` as inputs and targets and calls a model on the inputs alone, so
  the model's `train_step`, `test_step` and `predict_step` repack each batch as inputs
  `(x, c)` without targets and hand it to Keras's own steps, which keep the loss tracking, the
  per-replica loss scaling and the metrics. A flow other than `RealNVP` is conditional when its
  `condition_spec` (the `tf.TensorSpec` of one condition) is not `None`; its
  `bijector_kwargs(condition)` then encodes a condition.

  Data: floating-point inputs (numpy float64 included) are cast to the model's dtype; other
  dtypes are a `TypeError`. An empty batch gives an empty result, and `sample(0)` no images.

  Sample weights, the third item of a batch (`(x, None, w)` dataset elements, or
  `(x, c, w)` and `fit(x, c, sample_weight=w)` for a conditional model; Keras drops the
  `sample_weight` of arrays given without targets): `fit` and `evaluate` report the weighted
  means of the NLL (`loss`, plus the L2 penalty) and of `bits_per_dim`, and train on the
  weighted mean of the NLL. Keras averages the loss of successive batches by their sizes,
  the metric by their weights.

  Args:
    flow: a `tfp_realnvp.FlowLayer`.
    event_shape: shape of one example; defaults to `flow.event_shape`.
    preprocessing: `"logit"` (data in `[0, 1)`) or `None`.
    alpha: margin of the logit preprocessing (0.05 in the paper).
    l2: L2 coefficient on the weight-norm scales (5e-5 in the paper).
    num_levels: number of levels of the quantised data, for `bits_per_dim`.
    validate_args: check at run time that the data lie in `[0, 1]` (with the logit
      preprocessing) and that pixels lie in `0..num_levels-1` (with a dequantizer), naming
      the problem instead of returning NaN.
    dequantizer: `None` (the data are dequantized images, e.g. with uniform noise by
      `tfp_realnvp.data.load_images`) or a `tfp_realnvp.VariationalDequantizer` of the data's
      shape and `num_levels`, trained with the flow (needs the logit preprocessing).
    remat: how the gradient of the flow is computed (`tfp_realnvp.remat`): `None`, the
      standard backpropagation, which keeps every activation of every step; `"recompute"`,
      which keeps each step's input only and recomputes the step's activations in the
      backward pass; `"reversible"`, which keeps the flow's output only and rebuilds each
      step's input with its exact inverse in the backward pass, so that the activation memory
      of training no longer grows with the flow's depth. Same gradients (up to rounding), more
      computation.
    **kwargs: `keras.Model` arguments (`name`, ...). The model's dtype follows the flow's
      variable dtype (float32 under mixed precision, so densities stay float32).
  """

  _distribution = _seam.Untracked("The distribution, untracked: its variables are the flow's.")
  _graph_functions = _seam.Untracked("`tf.function`s by name, see `_graph_function`.", dict)

  def __init__(self, flow, event_shape=None, preprocessing="logit", alpha=0.05, l2=5e-5,
               num_levels=256, validate_args=False, dequantizer=None, remat=None, **kwargs):
    if not isinstance(flow, flows.FlowLayer):
      raise errors.InvalidTypeError(
          f"flow must be a tfp_realnvp.FlowLayer (a Keras layer that owns its bijector's "
          f"networks), got {type(flow).__name__}. Use tfp_realnvp.RealNVP or Glow, or subclass "
          f"FlowLayer and hand the bijector to _set_bijector.")
    if preprocessing not in PREPROCESSINGS:
      raise errors.InvalidValueError(
          f"preprocessing must be one of {PREPROCESSINGS}, got {preprocessing!r}.")
    if dequantizer is not None:
      _check_dequantizer(dequantizer, preprocessing, num_levels)
    if remat is not None:
      remat_lib.check_mode(remat)
    event_shape = flow.event_shape if event_shape is None else event_shape
    kwargs.setdefault("dtype", flow.dtype_policy.variable_dtype)
    super().__init__(**kwargs)
    self.flow = flow
    self.event_shape = tuple(int(d) for d in event_shape)
    self.preprocessing = preprocessing
    self.alpha = float(alpha)
    self.l2 = float(l2)
    self.num_levels = int(num_levels)
    self.validate_args = bool(validate_args)
    self.dequantizer = dequantizer
    self.remat = remat
    self.bits_per_dim_tracker = keras.metrics.Mean(name="bits_per_dim")

    bijector = flow.bijector
    if preprocessing == "logit":
      # A chain that hands a condition to the flow, never to the logit.
      bijector = conditional_lib.ConditionalChain(
          [logit_lib.Logit(self.alpha, validate_args=self.validate_args), bijector])
    base = tfd.Sample(tfd.Normal(tf.zeros([], self.compute_dtype), 1.0), list(self.event_shape))
    self._distribution = tfd.TransformedDistribution(base, bijector)
    if dequantizer is not None and tuple(dequantizer.event_shape) != tuple(
        self._distribution.event_shape):
      raise errors.InvalidValueError(
          f"The dequantizer is for images of shape {tuple(dequantizer.event_shape)}, the flow "
          f"models data of shape {tuple(self._distribution.event_shape)}.")
    self.built = True

  @property
  def distribution(self):
    """The model's `tfd.TransformedDistribution` over data."""
    return self._distribution

  @property
  def num_dims(self):
    return math.prod(self.event_shape)

  @property
  def condition_spec(self):
    """`tf.TensorSpec` of the condition of one example, or `None` for an unconditional model."""
    return self.flow.condition_spec

  def bijector_kwargs(self, condition=None):
    """The keyword arguments of `distribution.bijector` for `condition` (`{}` if `None`).

    Raises:
      ValueError: a condition for an unconditional model, none for a conditional one, or a
        condition the flow rejects (see `FlowLayer.bijector_kwargs`).
    """
    return self.flow.bijector_kwargs(condition)

  def _graph_function(self, name, python_function):
    """`python_function` as a `tf.function` made once per model (for eager callers).

    Traced once per input shape: relaxing shapes (`reduce_retracing`) would hide the size of
    a condition's last axis, which the couplings need statically.
    """
    functions = self._graph_functions
    if name not in functions:
      # No autograph: the flow has no tensor-dependent Python control flow to convert.
      functions[name] = tf.function(python_function, autograph=False)
    return functions[name]

  def _as_data(self, x):
    """`x` as a tensor of the model's dtype.

    Raises:
      TypeError: `x` is not floating-point.
    """
    x = tf.convert_to_tensor(x)
    if not x.dtype.is_floating:
      raise errors.InvalidTypeError(
          f"FlowModel {self.name!r} takes floating-point data (e.g. dequantized images in "
          f"[0, 1), see tfp_realnvp.data), got dtype {x.dtype.name}.")
    return tf.cast(x, self.compute_dtype)

  def log_prob(self, x, condition=None):
    """Log-density of `x` per example (nats), given `condition` for a conditional model.

    Floating-point `x` is cast to the model's dtype; an empty batch gives an empty result.
    Called eagerly, it runs as a `tf.function` traced once per input shape (rather than TFP's
    bijectors op by op); inside a traced function it is inlined.

    Raises:
      TypeError: `x` is not floating-point.
    """
    return self._call_log_prob(x, condition, training=None)

  def _call_log_prob(self, x, condition, training):
    """`log_prob`, traced apart for each value of Keras's `training` flag when eager."""
    x = self._as_data(x)
    if tf.executing_eagerly():
      # The nested layers read `training` from Keras's call context while they are traced: it
      # is an argument of the traced function so that each value gets its own trace.
      return self._graph_function("log_prob", self._log_prob)(
          x, _as_tensor(condition), training)
    return self._log_prob(x, condition, training)

  def _log_prob(self, x, condition, training=None):
    # `training` keys the eager trace (see `_call_log_prob`); a remat mode's backward pass
    # hands it to the layers again.
    kwargs = self.bijector_kwargs(condition)
    event_ndims = len(self._distribution.event_shape)
    batch_shape = x.shape[:-event_ndims or None]
    if batch_shape.num_elements() == 0:
      # No example to run the networks on (TF's fused batch norm rejects an empty batch).
      return tf.zeros(batch_shape, x.dtype)
    if self.remat is None:
      return self._distribution.log_prob(x, bijector_kwargs=kwargs)
    z, ildj = remat_lib.inverse(self._distribution.bijector, x, self.remat, event_ndims,
                                training=training, **kwargs)
    return self._distribution.distribution.log_prob(z) + ildj

  def bits_from_log_prob(self, log_prob):
    """Converts per-example log-densities to bits per dimension."""
    bits = -log_prob / (self.num_dims * math.log(2.0))
    if self.preprocessing == "logit":
      bits = bits + math.log2(self.num_levels)
    return bits

  def bits_per_dim(self, x, condition=None, num_samples=1, seed=None):
    """Bits per dimension of each example of `x`, given `condition` for a conditional model.

    For a model with a dequantizer, `x` are the quantized images (see `log_prob_bound`) and
    the figure is the bound `bits_from_log_prob(log_prob_bound(x, condition, num_samples,
    seed))`, importance-weighted for `num_samples > 1`; otherwise `x` are dequantized images
    and `num_samples` and `seed` must keep their defaults.

    Raises:
      ValueError: `num_samples` or `seed` for a model without a dequantizer.
    """
    if self.dequantizer is not None:
      return self.bits_from_log_prob(self.log_prob_bound(x, condition, num_samples, seed))
    if num_samples != 1 or seed is not None:
      raise errors.InvalidValueError(
          f"FlowModel {self.name!r} has no dequantizer: its data are already dequantized and "
          f"bits_per_dim takes neither num_samples nor seed (importance sampling needs a "
          f"VariationalDequantizer).")
    return self.bits_from_log_prob(self.log_prob(x, condition))

  def log_prob_bound(self, x, condition=None, num_samples=1, seed=None):
    """The variational (or importance-weighted) bound of a model with a dequantizer, per example.

    For quantized images `k / L` (`L = num_levels`) and `K = num_samples` draws
    `u_i ~ q(u | k)` of the dequantizer,

    ```none
    log_prob_bound(k / L) = logsumexp_i[log p((k + u_i) / L) - log q(u_i | k)] - log K
    ```

    in expectation a lower bound on `log P(k) + D log L`, where `P(k)` is the probability of
    the 8-bit image (see `tfp_realnvp.VariationalDequantizer`); it is in the units of
    `log_prob` of dequantized images, so `bits_from_log_prob` turns it into the bound in bits
    per dimension (which adds the `D log L`). `K = 1` is the variational bound that `fit`
    trains on and `evaluate` reports; a larger `K` gives a tighter figure (Flow++ reports it),
    at `K` times the cost.

    Args:
      x: quantized images, floats `k / L` in `[0, 1)` (`tfp_realnvp.data.load_images(...,
        dequantize=False)`; dequantized images `(k + u) / L` give the same `k`, the pixels
        being `floor(L * x)`), or integer pixels `k` in `0..L-1` (e.g. uint8 images).
      condition: for a conditional model, the condition of `p` (the dequantizer does not
        take one); else `None`.
      num_samples: `K`, the number of noise draws per image, an integer >= 1.
      seed: `None` (fresh noise), an int or a stateless seed `[2]` int tensor; the same seed
        gives the same figure.

    Raises:
      ValueError: for a model without a dequantizer, or a bad `num_samples`.
      TypeError: `x` is neither floating-point nor integer.
    """
    if self.dequantizer is None:
      raise errors.InvalidValueError(
          f"FlowModel {self.name!r} has no dequantizer; build it with "
          f"dequantizer=tfp_realnvp.VariationalDequantizer(...) for a variational bound, or "
          f"use log_prob on dequantized images.")
    num_samples = _sample_count(num_samples)
    if isinstance(num_samples, int) and num_samples < 1:
      raise errors.InvalidValueError(f"num_samples must be at least 1, got {num_samples}.")
    return self._call_log_prob_bound(x, condition, num_samples, seed, training=None)

  def _call_log_prob_bound(self, x, condition, num_samples, seed, training):
    """`log_prob_bound`, traced apart for each value of Keras's `training` flag when eager."""
    pixels = self._as_pixels(x)
    seed = dequantization.stateless_seed(seed)
    if tf.executing_eagerly():
      return self._graph_function("log_prob_bound", self._log_prob_bound)(
          pixels, _as_tensor(condition), num_samples, seed, training)
    return self._log_prob_bound(pixels, condition, num_samples, seed)

  def _log_prob_bound(self, pixels, condition, num_samples, seed, training=None):
    # `training` keys the eager trace (see `_call_log_prob`) and reaches a remat mode's
    # backward pass through `_log_prob`.
    batch_shape = pixels.shape[:-len(self._distribution.event_shape)]
    if batch_shape.num_elements() == 0:
      # No example to run the networks on (TF's fused batch norm rejects an empty batch).
      return tf.zeros(batch_shape, pixels.dtype)
    # The K draws of every image along a new leading axis: a condition broadcasts against it.
    pixels = tf.broadcast_to(pixels, tf.concat([[num_samples], tf.shape(pixels)], axis=0))
    u, log_q = self.dequantizer(pixels, seed=seed)
    x = (pixels + tf.cast(u, pixels.dtype)) / self.num_levels
    log_w = self._log_prob(x, condition, training) - tf.cast(log_q, pixels.dtype)
    return (tf.reduce_logsumexp(log_w, axis=0)
            - tf.math.log(tf.cast(num_samples, log_w.dtype)))

  def _as_pixels(self, x):
    """The pixels `k` of quantized images `x` (floats `k / L`, or integers `k`), as floats.

    Raises:
      TypeError: `x` is neither floating-point nor integer.
    """
    x = tf.convert_to_tensor(x)
    if x.dtype.is_integer:
      pixels = tf.cast(x, self.compute_dtype)
    elif x.dtype.is_floating:
      pixels = tf.floor(tf.cast(x, self.compute_dtype) * self.num_levels)
    else:
      raise errors.InvalidTypeError(
          f"FlowModel {self.name!r} has a dequantizer and takes quantized images (floats k / "
          f"{self.num_levels} or integer pixels k), got dtype {x.dtype.name}.")
    if self.validate_args:
      pixels = _checks.check_below(
          pixels, self.num_levels,
          f"FlowModel {self.name!r}: pixels must lie in 0..{self.num_levels - 1}")
    return pixels

  def sample(self, n, condition=None, temperature=1.0, seed=None):
    """Draws `n` samples; `temperature` scales the base distribution's standard deviation.

    With the logit preprocessing the samples are clipped to `[0, 1)`: the inverse logit maps
    the real line onto `(-a, 1 + a) / (1 - 2a)`, slightly wider than the pixel range.

    Args:
      n: number of samples, an integer >= 0.
      condition: for a conditional model, one condition for all samples (a class label, or a
        vector `[K]`) or one per sample (`[n]` labels, `[n, K]` vectors); else `None`.
      temperature: scale of the base distribution's standard deviation.
      seed: `None`, an int (the same int gives the same samples), or a stateless seed
        `[2]` int tensor.

    Called eagerly, it runs as a `tf.function` traced once per `n` (and kind of condition and
    seed); `temperature` and the seed's value do not retrace it.

    Raises:
      TypeError: `n` is not an integer (floats and bools included).
      ValueError: `n` is negative.
    """
    n = _sample_count(n)
    if isinstance(seed, (int, np.integer)):
      seed = tf.constant([0, int(seed)], dtype=tf.int32)
    temperature = tf.convert_to_tensor(temperature, dtype=self.compute_dtype)
    if tf.executing_eagerly():
      return self._graph_function("sample", self._sample)(
          n, _as_tensor(condition), temperature, seed)
    return self._sample(n, condition, temperature, seed)

  def _sample(self, n, condition, temperature, seed):
    kwargs = self.bijector_kwargs(condition)
    if isinstance(n, int) and n == 0:
      # No example to run the networks on (TF's fused batch norm rejects an empty batch).
      return tf.zeros([0] + self._distribution.event_shape.as_list(), self.compute_dtype)
    z = self._distribution.distribution.sample(n, seed=seed)
    return self._to_data_range(
        self._distribution.bijector.forward(z * tf.cast(temperature, z.dtype), **kwargs))

  def _to_data_range(self, x):
    """With the logit preprocessing, clips images made by `forward` to `[0, 1)`.

    The inverse logit maps the real line onto `(-a, 1 + a) / (1 - 2a)`, slightly wider than
    the pixel range.
    """
    if self.preprocessing != "logit":
      return x
    return tf.clip_by_value(x, 0.0, np.nextafter(np.float32(1.0), np.float32(0.0)))

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

  def _pack_condition(self, data):
    """Repacks a conditional model's batch `(x, c[, sample_weight])` as inputs `(x, c)`."""
    if self.condition_spec is None:
      return data
    x, condition, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    if condition is None:  # Already inputs `((x, c),)`, or `x` alone, which `call` rejects.
      return data
    return ((x, condition),) if sample_weight is None else ((x, condition), None, sample_weight)

  def train_step(self, data):
    return super().train_step(self._pack_condition(data))

  def test_step(self, data):
    return super().test_step(self._pack_condition(data))

  def predict_step(self, data):
    return super().predict_step(self._pack_condition(data))

  def call(self, inputs, training=None):
    # Nested layers read `training` from Keras's call context; it also keys the eager trace.
    if self.condition_spec is None:
      x, condition = inputs, None
    elif not isinstance(inputs, (tuple, list)) or len(inputs) != 2:
      raise errors.InvalidValueError(
          f"FlowModel {self.name!r} is conditional: call it on a pair (x, condition), and give "
          f"fit, evaluate and predict (x, condition) pairs; got {type(inputs).__name__}.")
    else:
      x, condition = inputs
    if self.dequantizer is not None:
      return self._call_log_prob_bound(x, condition, 1, None, training)
    return self._call_log_prob(x, condition, training)

  def regularization_penalty(self):
    """`l2 * sum(g ** 2)` over the weight-norm scales of every network of the flow (and of the
    dequantizer, if any)."""
    scales = weight_norm.weight_scales(self.flow)
    if self.dequantizer is not None:
      scales += self.dequantizer.weight_scales
    if not self.l2 or not scales:
      return tf.zeros([], self.compute_dtype)
    return self.l2 * ops.sum(ops.stack([ops.sum(ops.square(g)) for g in scales]))

  def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
    """The mean NLL of the batch (weighted by `sample_weight`, if any) plus the L2 penalty."""
    del x, y, training
    if sample_weight is None:
      nll = -ops.mean(y_pred)
    else:
      weights = ops.cast(sample_weight, y_pred.dtype)
      if len(weights.shape) > len(y_pred.shape):  # E.g. `[N, 1]` weights of `[N]` examples.
        weights = ops.reshape(weights, ops.shape(y_pred))
      weights = ops.broadcast_to(weights, ops.shape(y_pred))
      nll = ops.divide_no_nan(-ops.sum(y_pred * weights), ops.sum(weights))
    loss = nll + ops.cast(self.regularization_penalty(), y_pred.dtype)
    return _scale_loss_for_distribution(loss)

  def compute_metrics(self, x, y, y_pred, sample_weight=None):
    del x, y
    self.bits_per_dim_tracker.update_state(self.bits_from_log_prob(y_pred),
                                           sample_weight=sample_weight)
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
                  validate_args=self.validate_args, remat=self.remat)
    if self.dequantizer is not None:  # Configs of models without one stay as they were.
      config["dequantizer"] = keras.saving.serialize_keras_object(self.dequantizer)
    return config

  @classmethod
  def from_config(cls, config, custom_objects=None):
    config = dict(config)
    flow = keras.saving.deserialize_keras_object(config.pop("flow"),
                                                 custom_objects=custom_objects)
    if config.get("dequantizer") is not None:
      config["dequantizer"] = keras.saving.deserialize_keras_object(
          config["dequantizer"], custom_objects=custom_objects)
    return cls(flow, **config)

  def interpolate(self, corners, steps, condition=None):
    """Images on the latent "sphere" spanned by 4 images: a `steps` x `steps` grid.

    The 4 images are mapped to latents `z1..z4` (`distribution.bijector.inverse`), and for `p`
    (rows) and `q` (columns) evenly spaced in `[0, pi/2]` the grid holds the image of
    `z = cos(p) (z1 cos(q) + z2 sin(q)) + sin(p) (z3 cos(q) + z4 sin(q))` (Dinh et al. 2017,
    Figure 6). For Gaussian latents this keeps the norm of `z` typical, unlike a linear mix.
    The corners of the grid are the 4 images (up to float rounding): `z1` top left, `z2` top
    right, `z3` bottom left, `z4` bottom right.

    Args:
      corners: `[4, *event_shape]` images (data in `[0, 1)` with the logit preprocessing).
      steps: rows and columns of the grid, an integer >= 1.
      condition: for a conditional model, one condition for the whole grid; else `None`.

    Returns:
      `[steps * steps, *event_shape]` images in row-major order, clipped to `[0, 1)` like
      `sample` with the logit preprocessing.

    Raises:
      ValueError: for another number of images or a bad `steps`.
    """
    steps = _validation.positive_int(steps, "steps")
    corners = tf.convert_to_tensor(corners, self.compute_dtype)
    if corners.shape[0] != 4 or tuple(corners.shape[1:]) != self.event_shape:
      raise errors.InvalidValueError(
          f"corners must be 4 images of shape {self.event_shape}, got shape "
          f"{tuple(corners.shape)}.")
    angles = np.linspace(0.0, math.pi / 2, steps)
    p, q = np.meshgrid(angles, angles, indexing="ij")
    weights = np.stack([np.cos(p) * np.cos(q), np.cos(p) * np.sin(q),
                        np.sin(p) * np.cos(q), np.sin(p) * np.sin(q)], axis=-1).reshape(-1, 4)

    def grid(corners, condition):
      kwargs = self.bijector_kwargs(condition)
      bijector = self._distribution.bijector
      z = bijector.inverse(corners, **kwargs)
      latents = tf.tensordot(tf.constant(weights, z.dtype), z, axes=1)
      return self._to_data_range(bijector.forward(latents, **kwargs))

    return self._graph_function(f"interpolate_{steps}", grid)(corners, _as_tensor(condition))
