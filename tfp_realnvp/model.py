"""`FlowModel`: the Keras 3 model that trains a flow by maximum likelihood."""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_realnvp import errors
from tfp_realnvp import _arguments
from tfp_realnvp import _model_bounds
from tfp_realnvp import _model_training
from tfp_realnvp import _seam
from tfp_realnvp import _validation
from tfp_realnvp import dequantization
from tfp_realnvp import flows
from tfp_realnvp import remat as remat_lib
from tfp_realnvp._types import Seed
from tfp_realnvp._types import TensorLike
from tfp_realnvp.bijectors import conditional as conditional_lib
from tfp_realnvp.bijectors import logit as logit_lib

tfd = tfp.distributions

__all__ = ["FlowModel"]

PREPROCESSINGS = ("logit", None)


def _check_dequantizer(dequantizer: object, preprocessing: str | None, num_levels: int) -> None:
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


@keras.saving.register_keras_serializable(package="tfp_realnvp")
class FlowModel(_model_bounds.DiscreteBounds, _model_training.LikelihoodTraining,
                _seam.HoldsUntracked, keras.Model):
  """A Keras 3 model that owns a flow and its base distribution and trains it by likelihood.

  The model's distribution is the flow's bijector (`forward`: latent -> data) on a standard
  normal base, after the paper's logit preprocessing (`tfp_realnvp.bijectors.Logit`) unless
  `preprocessing=None`:

  ```none
  p(x | c) = N(z; 0, I) |det dz/dx|,   z = flow.inverse(logit(alpha + (1 - 2 alpha) x); c)
  loss     = -mean_batch log p(x | c) + l2 * sum(g ** 2)     (g: the weight-norm scales)
  bits_per_dim = (-log p(x) + D ln L) / (D ln 2)             (L = num_levels; D = H W C)
  ```

  so it takes dequantized images `x = (k + u) / L` in `[0, 1)` (`tfp_realnvp.data`), and
  bits/dim are the figure of the discrete data that the papers report. Calling or `predict`-ing
  the model gives per-example log-likelihoods (anomaly scores); `fit` and `evaluate` report
  `loss` and `bits_per_dim`, with the loss scaled per replica under `tf.distribute` as Keras's
  own losses are. A conditional flow (`condition_spec` not `None`) makes every entry point take
  the condition: `log_prob(x, c)`, `sample(n, condition=c)`, and `(x, c)` pairs (optionally
  with sample weights) in `fit`, `evaluate` and `predict`.

  With a `dequantizer` (`tfp_realnvp.VariationalDequantizer`, Flow++) the noise comes from a
  learned `q(u | k)`: the model then takes quantized images (`k / L` floats or integer pixels)
  in `fit`, `evaluate`, `predict` and `bits_per_dim`, whose figures are the variational bound
  `-E_q[log p((k + u) / L) - log q(u | k)]`; `log_prob_bound` gives the importance-weighted
  bound of `K` draws.

  #### Example

  ```python
  flow = tfp_realnvp.RealNVP((8, 8, 1), num_scales=2, num_filters=8, num_blocks=1,
                             num_classes=10)
  model = tfp_realnvp.FlowModel(flow)
  model.compile(optimizer=tfp_realnvp.FusedAdam(1e-3))
  model.fit(tfp_realnvp.data.load_images("digits", with_labels=True), epochs=1, verbose=0)
  sevens = model.sample(16, condition=7)               # images in [0, 1)
  images, labels = next(iter(tfp_realnvp.data.load_images("digits", with_labels=True)))
  log_p = model.log_prob(images, labels)               # log p(x | label), per example
  ```

  #### References

  [1] Laurent Dinh, Jascha Sohl-Dickstein and Samy Bengio. Density estimation using Real NVP.
      In International Conference on Learning Representations, 2017.
      https://arxiv.org/abs/1605.08803
  [2] Jonathan Ho, Xi Chen, Aravind Srinivas, Yan Duan and Pieter Abbeel. Flow++: Improving
      Flow-Based Generative Models with Variational Dequantization and Architecture Design.
      ICML 2019. https://arxiv.org/abs/1902.00275

  Args:
    flow: a `tfp_realnvp.FlowLayer` (`RealNVP`, `Glow` or one of your own).
    event_shape: shape of one example; defaults to `flow.event_shape`.
    preprocessing: `"logit"` (data in `[0, 1)`) or `None` (the flow models the data as they
      are, e.g. vectors).
    alpha: margin of the logit preprocessing (0.05 in the paper).
    l2: L2 coefficient on the weight-norm scales (5e-5 in the paper); 0 turns it off.
    num_levels: number of levels of the quantised data, for `bits_per_dim`.
    validate_args: check at run time that the data lie in `[0, 1]` (with the logit
      preprocessing) and pixels in `0..num_levels-1` (with a dequantizer).
    dequantizer: `None` (data dequantized by the pipeline) or a
      `tfp_realnvp.VariationalDequantizer` of the data's shape and `num_levels`.
    remat: `None` (standard backpropagation), `"recompute"` or `"reversible"`: how the
      backward pass gets the flow's activations (`tfp_realnvp.remat`); the same gradients up
      to rounding, less memory, more computation.
    **kwargs: `keras.Model` arguments (`name`, ...). The model's dtype follows the flow's
      variable dtype (float32 under mixed precision, so densities stay float32).

  Raises:
    InvalidTypeError: `flow` is not a `FlowLayer`, or `dequantizer` not a dequantizer.
    InvalidValueError: an unknown preprocessing or remat mode, or a dequantizer that does not
      fit the data.
  """

  _distribution = _seam.Untracked("The distribution, untracked: its variables are the flow's.")
  _graph_functions = _seam.Untracked("`tf.function`s by name, see `_graph_function`.", dict)

  def __init__(self, flow: flows.FlowLayer, event_shape: Sequence[int] | None = None,
               preprocessing: str | None = "logit", alpha: float = 0.05, l2: float = 5e-5,
               num_levels: int = 256, validate_args: bool = False,
               dequantizer: dequantization.VariationalDequantizer | None = None,
               remat: str | None = None, **kwargs: Any) -> None:
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
    self.alpha = _validation.number_in(alpha, "alpha", 0.0, 0.5, high_open=True)
    self.l2 = _validation.number_in(l2, "l2", 0.0)
    self.num_levels = _validation.positive_int(num_levels, "num_levels")
    if self.num_levels < 2:
      raise errors.InvalidValueError(
          f"num_levels must be an integer >= 2 (the values a pixel takes), got {num_levels!r}.")
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
  def distribution(self) -> tfp.distributions.TransformedDistribution:
    """The model's `tfd.TransformedDistribution` over data."""
    return self._distribution

  @property
  def num_dims(self) -> int:
    return math.prod(self.event_shape)

  @property
  def condition_spec(self) -> tf.TensorSpec | None:
    """`tf.TensorSpec` of the condition of one example, or `None` for an unconditional model."""
    return self.flow.condition_spec

  def bijector_kwargs(self, condition: TensorLike | None = None) -> dict[str, Any]:
    """The keyword arguments of `distribution.bijector` for `condition` (`{}` if `None`).

    Raises:
      ValueError: a condition for an unconditional model, none for a conditional one, or a
        condition the flow rejects (see `FlowLayer.bijector_kwargs`).
    """
    return self.flow.bijector_kwargs(condition)

  def _graph_function(self, name: str, python_function: Callable[..., Any]
                      ) -> Callable[..., Any]:
    """`python_function` as a `tf.function` made once per model (for eager callers).

    Traced once per input shape: relaxing shapes (`reduce_retracing`) would hide the size of
    a condition's last axis, which the couplings need statically.
    """
    functions = self._graph_functions
    if name not in functions:
      # No autograph: the flow has no tensor-dependent Python control flow to convert.
      functions[name] = tf.function(python_function, autograph=False)
    return functions[name]

  def _as_data(self, x: TensorLike) -> tf.Tensor:
    """`x` as a tensor of the model's dtype; integer pixels dequantized with uniform noise.

    Raises:
      InvalidTypeError: `x` is neither floating-point nor (with the logit preprocessing)
        integer.
    """
    x = tf.convert_to_tensor(x)
    if x.dtype.is_integer and self.preprocessing == "logit":
      # Pixels k: the model takes x = (k + u) / L as the data pipeline makes it.
      return tf.cast(dequantization.dequantize(x, num_levels=self.num_levels),
                     self.compute_dtype)
    if not x.dtype.is_floating:
      raise errors.InvalidTypeError(
          f"FlowModel {self.name!r} takes floating-point data (e.g. dequantized images in "
          f"[0, 1), see tfp_realnvp.data), or integer pixels with the logit preprocessing; got "
          f"dtype {x.dtype.name}.")
    return tf.cast(x, self.compute_dtype)

  def check_inputs(self, x: Any, condition: Any = None) -> None:
    """Raises if data or a condition known on the host lie outside what the model takes.

    NumPy arrays, Python values and eager tensors are checked here, at no cost to the graph:
    with the logit preprocessing, images must lie in `[0, 1]` and integer pixels in
    `0..num_levels-1`; a condition must be one the flow takes (class labels in range, vectors
    of its size). `log_prob`, `bits_per_dim`, `sample`, `fit`, `evaluate` and `predict` call
    it; data that only a traced function sees (a `tf.data` pipeline) is checked there only with
    `validate_args=True`.

    Raises:
      InvalidValueError: out-of-range images or pixels, or a condition the flow refuses.
    """
    if self.preprocessing == "logit":
      _arguments.check_images(x, f"FlowModel {self.name!r}", self.num_levels,
                              quantized=self.dequantizer is not None)
    known = _arguments.host_values(condition)
    if known is not None:
      self.bijector_kwargs(known)

  def log_prob(self, x: TensorLike, condition: TensorLike | None = None) -> tf.Tensor:
    """Log-density of `x` per example (nats), given `condition` for a conditional model.

    Floating-point `x` is cast to the model's dtype. With the logit preprocessing, integer
    pixels `k` (e.g. uint8 images) are dequantized first, `x = (k + u) / num_levels` with
    fresh uniform noise `u`, as `tfp_realnvp.data.load_images` does. An empty batch gives an
    empty result. Called eagerly, it runs as a `tf.function` traced once per input shape
    (rather than TFP's bijectors op by op); inside a traced function it is inlined.

    Raises:
      InvalidTypeError: `x` is neither floating-point nor integer pixels.
      InvalidValueError: values known on the host out of range (`check_inputs`).
    """
    self.check_inputs(x, condition)
    return self._call_log_prob(x, condition, training=None)

  def _call_log_prob(self, x: TensorLike, condition: TensorLike | None, training: bool | None
                     ) -> tf.Tensor:
    """`log_prob`, traced apart for each value of Keras's `training` flag when eager."""
    x = self._as_data(x)
    if tf.executing_eagerly():
      # The nested layers read `training` from Keras's call context while they are traced: it
      # is an argument of the traced function so that each value gets its own trace.
      return self._graph_function("log_prob", self._log_prob)(
          x, _arguments.as_tensor_or_none(condition), training)
    return self._log_prob(x, condition, training)

  def _log_prob(self, x: tf.Tensor, condition: TensorLike | None, training: bool | None = None
                ) -> tf.Tensor:
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

  def bits_from_log_prob(self, log_prob: tf.Tensor) -> tf.Tensor:
    """Converts per-example log-densities to bits per dimension."""
    bits = -log_prob / (self.num_dims * math.log(2.0))
    if self.preprocessing == "logit":
      bits = bits + math.log2(self.num_levels)
    return bits

  def sample(self, n: int | tf.Tensor, condition: TensorLike | None = None,
             temperature: float | tf.Tensor = 1.0, seed: Seed = None) -> tf.Tensor:
    """Draws `n` samples; `temperature` scales the base distribution's standard deviation.

    With the logit preprocessing the samples are clipped to `[0, 1)`: the inverse logit maps
    the real line onto `(-a, 1 + a) / (1 - 2a)`, slightly wider than the pixel range.

    Args:
      n: number of samples, an integer >= 0.
      condition: for a conditional model, one condition for all samples (a class label, or a
        vector `[K]`) or one per sample (`[n]` labels, `[n, K]` vectors); else `None`.
      temperature: scale of the base distribution's standard deviation, a finite number
        >= 0 (0 gives the image of the base distribution's mode).
      seed: `None`, an int (the same int gives the same samples), or a stateless seed
        `[2]` int tensor.

    Called eagerly, it runs as a `tf.function` traced once per `n` (and kind of condition and
    seed); `temperature` and the seed's value do not retrace it. Eager calls also check
    that every sample is finite (before the logit preprocessing's clipping, which would turn an
    overflow into saturated pixels): a flow trained for a few steps, or initialised on data
    unlike the data it models, can overflow at temperature 1.

    Raises:
      InvalidTypeError: `n` is not an integer (floats and bools included).
      InvalidValueError: `n` or `temperature` out of range, or a condition the flow refuses.
      NonFiniteSamplesError: (eager calls) a sample holds NaN or infinite values.
    """
    n = _arguments.sample_count(n)
    self.check_inputs(None, condition)
    if isinstance(seed, (int, np.integer)):
      seed = tf.constant([0, int(seed)], dtype=tf.int32)
    temperature = _arguments.temperature(temperature, self.compute_dtype)
    if not tf.executing_eagerly():
      return self._sample(n, condition, temperature, seed)[0]  # Pruned: the unused check.
    images, finite = self._graph_function("sample", self._sample)(
        n, _arguments.as_tensor_or_none(condition), temperature, seed)
    bad = int(np.sum(~finite.numpy()))
    if bad:
      raise errors.NonFiniteSamplesError(
          f"{bad} of {n} samples hold NaN or infinite values: the flow overflowed mapping the "
          f"latent to data at temperature {float(temperature):g}. A flow trained for only a "
          "few steps can do this; sample at a lower temperature or train it longer.")
    return images

  def _sample(self, n: int | tf.Tensor, condition: TensorLike | None, temperature: tf.Tensor,
              seed: tf.Tensor | None) -> tuple[tf.Tensor, tf.Tensor]:
    """The images of `n` samples, and whether each is finite before `_to_data_range` (`[n]`)."""
    kwargs = self.bijector_kwargs(condition)
    if isinstance(n, int) and n == 0:
      # No example to run the networks on (TF's fused batch norm rejects an empty batch).
      x = tf.zeros([0] + self._distribution.event_shape.as_list(), self.compute_dtype)
    else:
      z = self._distribution.distribution.sample(n, seed=seed)
      x = self._distribution.bijector.forward(z * tf.cast(temperature, z.dtype), **kwargs)
    event_axes = list(range(-len(self._distribution.event_shape), 0))
    return self._to_data_range(x), tf.reduce_all(tf.math.is_finite(x), axis=event_axes)

  def _to_data_range(self, x: tf.Tensor) -> tf.Tensor:
    """With the logit preprocessing, clips images made by `forward` to `[0, 1)`.

    The inverse logit maps the real line onto `(-a, 1 + a) / (1 - 2a)`, slightly wider than
    the pixel range.
    """
    if self.preprocessing != "logit":
      return x
    return tf.clip_by_value(x, 0.0, np.nextafter(np.float32(1.0), np.float32(0.0)))

  def call(self, inputs: Any, training: bool | None = None) -> tf.Tensor:
    # Nested layers read `training` from Keras's call context; it also keys the eager trace.
    if self.condition_spec is None:
      x, condition = inputs, None
    elif not isinstance(inputs, (tuple, list)) or len(inputs) != 2:
      raise errors.InvalidValueError(
          f"FlowModel {self.name!r} is conditional: call it on a pair (x, condition), and give "
          f"fit, evaluate and predict (x, condition) pairs; got {type(inputs).__name__}.")
    else:
      x, condition = inputs
    if tf.executing_eagerly():  # `model(x)` on host data; `fit` and `predict` check theirs.
      self.check_inputs(x, condition)
    if self.dequantizer is not None:
      return self._call_log_prob_bound(x, condition, 1, None, training)
    return self._call_log_prob(x, condition, training)

  def get_config(self) -> dict[str, Any]:
    config = super().get_config()
    config.update(flow=keras.saving.serialize_keras_object(self.flow),
                  event_shape=list(self.event_shape), preprocessing=self.preprocessing,
                  alpha=self.alpha, l2=self.l2, num_levels=self.num_levels,
                  validate_args=self.validate_args, remat=self.remat)
    if self.dequantizer is not None:  # Configs of models without one stay as they were.
      config["dequantizer"] = keras.saving.serialize_keras_object(self.dequantizer)
    return config

  @classmethod
  def from_config(cls, config: dict[str, Any], custom_objects: dict[str, Any] | None = None
                  ) -> FlowModel:
    config = dict(config)
    flow = keras.saving.deserialize_keras_object(config.pop("flow"),
                                                 custom_objects=custom_objects)
    if config.get("dequantizer") is not None:
      config["dequantizer"] = keras.saving.deserialize_keras_object(
          config["dequantizer"], custom_objects=custom_objects)
    return cls(flow, **config)

  def interpolate(self, corners: TensorLike, steps: int,
                  condition: TensorLike | None = None) -> tf.Tensor:
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
    self.check_inputs(corners, condition)
    corners = tf.convert_to_tensor(corners, self.compute_dtype)
    if corners.shape[0] != 4 or tuple(corners.shape[1:]) != self.event_shape:
      raise errors.InvalidValueError(
          f"corners must be 4 images of shape {self.event_shape}, got shape "
          f"{tuple(corners.shape)}.")
    angles = np.linspace(0.0, math.pi / 2, steps)
    p, q = np.meshgrid(angles, angles, indexing="ij")
    weights = np.stack([np.cos(p) * np.cos(q), np.cos(p) * np.sin(q),
                        np.sin(p) * np.cos(q), np.sin(p) * np.sin(q)], axis=-1).reshape(-1, 4)

    def grid(corners: tf.Tensor, condition: tf.Tensor | None) -> tf.Tensor:
      kwargs = self.bijector_kwargs(condition)
      bijector = self._distribution.bijector
      z = bijector.inverse(corners, **kwargs)
      latents = tf.tensordot(tf.constant(weights, z.dtype), z, axes=1)
      return self._to_data_range(bijector.forward(latents, **kwargs))

    return self._graph_function(f"interpolate_{steps}", grid)(
        corners, _arguments.as_tensor_or_none(condition))
