"""Dequantization of 8-bit data: uniform noise (`dequantize`) or a learned `q(u | k)` (Flow++)."""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import keras
from keras import ops
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_realnvp import errors
from tfp_realnvp import _seam
from tfp_realnvp import _validation
from tfp_realnvp.bijectors import _checks
from tfp_realnvp.bijectors import conditional as conditional_lib
from tfp_realnvp.bijectors import coupling as coupling_lib
from tfp_realnvp.bijectors import masks as masks_lib
from tfp_realnvp.networks import resnet
from tfp_realnvp.networks import weight_norm

tfb = tfp.bijectors

__all__ = ["VariationalDequantizer", "dequantize", "quantized_pixels", "stateless_seed"]


def dequantize(pixels: tf.Tensor | np.ndarray | list,
               seed: int | tf.Tensor | Sequence[int] | None = None,
               num_levels: int = 256) -> tf.Tensor:
  """Dequantizes 8-bit pixels: `k -> (k + u) / 256` with `u ~ U[0, 1)`, as float32.

  Adding uniform noise inside each of the 256 bins turns the discrete pixels into a continuous
  `x` in `[0, 1)`, whose density a flow can model. The negative log-density of `x` plus
  `D ln 256` (`D` = number of pixel values per image) is an upper bound on the negative
  log-likelihood of the 8-bit data, which is how bits/dim are reported:

  ```none
  bpd = (NLL_x + D ln 256) / (D ln 2).
  ```

  Each `x` stays inside the bin of its pixel: `floor(256 * x) == k` exactly (the noise is capped
  just below 1 so that float32 rounding cannot reach the next bin). `VariationalDequantizer`
  learns the noise instead, for a tighter bound.

  Pixels outside `0..255` are rejected: with an `InvalidValueError` when their values are known
  when `dequantize` is called (NumPy arrays, Python lists, eager or constant tensors), else by a
  `tf.debugging` assertion that fails when the graph runs. uint8 pixels are never checked
  (they cannot be out of range), so the uint8 pipeline of `tfp_realnvp.data.load_images` pays
  nothing.

  ```python
  x = dequantize(np.array([0, 128, 255], np.uint8), seed=0)  # floor(256 * x) == [0, 128, 255]
  ```

  Args:
    pixels: integer tensor or array (uint8, int32, ...) of pixel values in `0..255`, any shape.
    seed: optional seed. An int or a shape `[2]` integer tensor makes the noise stateless and
      deterministic (`tf.random.stateless_uniform`); `None` draws fresh noise on every call.
    num_levels: `L`, the number of pixel values (256 for 8-bit pixels, at most 2 ** 16):
      `k -> (k + u) / L` for `k` in `0..L-1`.

  Returns:
    A float32 tensor of the shape of `pixels`, with values in `[0, 1)`.

  Raises:
    InvalidTypeError: if `pixels` is not of an integer dtype.
    InvalidValueError: if values of `pixels` known statically lie outside `0..255`.
    tf.errors.InvalidArgumentError: when run, if values only known at run time lie outside
      `0..255`.
  """
  pixels = tf.convert_to_tensor(pixels)
  num_levels = _validation.positive_int(num_levels, "num_levels")
  if not 2 <= num_levels <= 2 ** 16:
    raise errors.InvalidValueError(f"num_levels must lie in 2..65536, got {num_levels}.")
  top = num_levels - 1
  if not pixels.dtype.is_integer:
    raise errors.InvalidTypeError(
        f"dequantize expects integer pixels in 0..{top} (e.g. uint8), got dtype "
        f"{pixels.dtype.name}. Float images that are already in [0, 1) should not be "
        "dequantized again.")
  k = tf.cast(pixels, tf.float32)
  if pixels.dtype != tf.uint8 or num_levels < 256:
    value = tf.get_static_value(pixels)
    if value is not None:
      value = np.asarray(value)
      if value.size and (value.min() < 0 or value.max() > top):
        raise errors.InvalidValueError(
            f"dequantize expects pixel values in 0..{top}, got values in "
            f"{value.min()}..{value.max()} (dtype {pixels.dtype.name}).")
    else:
      message = f"dequantize expects pixel values in 0..{top} (dtype {pixels.dtype.name})"
      checks = [tf.debugging.assert_greater_equal(pixels, tf.zeros([], pixels.dtype),
                                                  message=message),
                tf.debugging.assert_less_equal(pixels, tf.constant(top, pixels.dtype),
                                               message=message)]
      with tf.control_dependencies(checks):
        k = tf.identity(k)
  if seed is None:
    u = tf.random.uniform(tf.shape(k), dtype=tf.float32)
  else:
    if isinstance(seed, (int, np.integer)):
      seed = [int(seed), 0]
    # Philox named rather than chosen by the device: the same noise under XLA as without.
    u = tf.random.stateless_uniform(tf.shape(k), seed=seed, dtype=tf.float32, alg="philox")
  # The noise stays below 1 by twice the float32 spacing of the largest pixels (2**-16 in
  # [128, 256) for 8-bit pixels), so that `floor(L * x) == k` survives rounding.
  u = tf.minimum(u, 1.0 - 2.0 ** (math.ceil(math.log2(num_levels)) - 23))
  return (k + u) / float(num_levels)


def quantized_pixels(x: tf.Tensor | np.ndarray, num_levels: int, dtype: tf.DType, owner: str,
                     validate_args: bool = False) -> tf.Tensor:
  """The pixels `k` of quantized images `x` (floats `k / L`, or integers `k`), as floats.

  Dequantized images `(k + u) / L` give the same `k`: the pixels are `floor(L * x)`.

  Raises:
    InvalidTypeError: `x` is neither floating-point nor integer.
    tf.errors.InvalidArgumentError: with `validate_args`, when run, pixels outside
      `0..L-1`.
  """
  x = tf.convert_to_tensor(x)
  if x.dtype.is_integer:
    pixels = tf.cast(x, dtype)
  elif x.dtype.is_floating:
    pixels = tf.floor(tf.cast(x, dtype) * num_levels)
  else:
    raise errors.InvalidTypeError(
        f"{owner} has a dequantizer and takes quantized images (floats k / {num_levels} or "
        f"integer pixels k), got dtype {x.dtype.name}.")
  if validate_args:
    pixels = _checks.check_below(pixels, num_levels,
                                 f"{owner}: pixels must lie in 0..{num_levels - 1}")
  return pixels


def stateless_seed(seed: int | tf.Tensor | None) -> tf.Tensor | None:
  """`None`, or `seed` (an int or a `[2]` integer tensor) as a stateless seed `[2]`."""
  if seed is None or not _validation.is_integer(seed):
    return seed
  return tf.constant([0, int(seed)], dtype=tf.int32)


@keras.saving.register_keras_serializable(package="tfp_realnvp")
class VariationalDequantizer(_seam.HoldsUntracked, keras.layers.Layer):
  """The noise distribution `q(u | k)` of variational dequantization (Ho et al., 2019).

  Uniform dequantization (Theis et al., 2016; Real NVP) models `x = (k + u) / L` with
  `u ~ U[0, 1)^D` for pixels `k` of `L` levels (`L = 256` for 8-bit images) and reports, by
  Jensen's inequality,

  ```none
  log P(k) >= E_{u ~ U}[log p((k + u) / L)] - D log L.
  ```

  The bound is loose wherever the density `p` varies inside a bin. Variational dequantization
  draws the noise from a learned conditional density `q(u | k)` on `(0, 1)^D` instead, which
  gives the tighter bound (Flow++, Ho et al., 2019, Eq. 12)

  ```none
  log P(k) = log E_{u ~ q}[p((k + u) / L) / q(u | k)] - D log L
           >= E_{u ~ q}[log p((k + u) / L) - log q(u | k)] - D log L,
  ```

  with equality when `q(u | k)` is `p((k + u) / L)` normalised on the bin. Uniform noise is the
  special case `q = 1`. With `K` draws `u_1..u_K ~ q`, the importance-weighted estimate
  (Burda et al., 2016)

  ```none
  log P(k) ~= logsumexp_i[log p((k + u_i) / L) - log q(u_i | k)] - log K - D log L
  ```

  is a bound too, no looser in expectation than the one for `K = 1`, and tends to `log P(k)`
  as `K` grows; it is the figure Flow++ reports (`tfp_realnvp.FlowModel.log_prob_bound`).

  This layer is `q`: a small flow conditioned on the pixels, made of the package's couplings
  followed by a sigmoid. With features `h = f(k / L - 0.5)` of the image (a weight-normalised
  3x3 convolution and `num_blocks` residual blocks, `num_filters` channels) and
  `eps ~ N(0, I)`,

  ```none
  u = sigmoid(g(eps; h)),   g = the affine couplings g_n o ... o g_1,
  log q(u | k) = log N(eps; 0, I) - log|det dg/deps| - sum log(sigmoid'(g(eps; h)))
  ```

  exactly, the log-determinants being those of the bijectors. Each coupling's network
  (`tfp_realnvp.networks.CouplingResNet`) takes the features as a condition, aligned with its
  input pixel by pixel (see `tfp_realnvp.bijectors.AffineCoupling`, conditions that are feature
  maps). The couplings alternate checkerboard masks of parity 0 and 1 (on images of more than
  one channel, pairs of checkerboard couplings alternate with pairs of channel couplings, as in
  Flow++). Every coupling starts as the identity, so a new `q` is the logistic-normal
  `sigmoid(N(0, 1))` per dimension.

  Calling the layer on pixels `k` `[..., H, W, C]` (integers, or floats holding integers, in
  `0..L-1`) returns `(u, log_q)`: the noise `[..., H, W, C]` in `(0, 1)` and `log q(u | k)` per
  example `[...]`. `tfp_realnvp.FlowModel(flow, dequantizer=VariationalDequantizer(...))`
  trains it jointly with the flow on the bound above.

  ```python
  dequantizer = tfp_realnvp.VariationalDequantizer((28, 28, 1))
  model = tfp_realnvp.FlowModel(tfp_realnvp.RealNVP((28, 28, 1)), dequantizer=dequantizer)
  model.compile(optimizer=keras.optimizers.Adam(1e-3))
  model.fit(tfp_realnvp.data.load_images("mnist", dequantize=False), epochs=10)
  model.bits_per_dim(test_images, num_samples=16)   # importance-weighted bound
  u, log_q = dequantizer(pixels, seed=0)             # the noise and its log-density
  ```

  Args:
    event_shape: `(H, W, C)` of the images.
    num_couplings: number of affine couplings of `q` (Flow++ uses 4 per dequantizer block).
    num_filters: channels of the feature network and of the coupling networks.
    num_blocks: residual blocks of the feature network and of each coupling network.
    num_levels: `L`, the number of levels of the pixels (256 for 8-bit images).
    **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).

  Call arguments:
    inputs: pixels `k` `[..., H, W, C]` in `0..L-1`.
    seed: `None` (fresh noise at every call), an int or a stateless seed `[2]` int tensor (the
      same seed gives the same noise).

  Raises:
    ValueError: a bad shape or setting, or (when called) pixels of another event shape.

  #### References

  [1] Jonathan Ho, Xi Chen, Aravind Srinivas, Yan Duan and Pieter Abbeel. Flow++: Improving
      Flow-Based Generative Models with Variational Dequantization and Architecture Design.
      In International Conference on Machine Learning, 2019. https://arxiv.org/abs/1902.00275
  [2] Lucas Theis, Aaron van den Oord and Matthias Bethge. A note on the evaluation of
      generative models. In International Conference on Learning Representations, 2016.
      https://arxiv.org/abs/1511.01844
  [3] Yuri Burda, Roger Grosse and Ruslan Salakhutdinov. Importance Weighted Autoencoders. In
      International Conference on Learning Representations, 2016.
      https://arxiv.org/abs/1509.00519
  """

  _bijector = _seam.Untracked("The flow of q, untracked: its variables are the layer's.")

  def __init__(self, event_shape: Sequence[int], num_couplings: int = 4, num_filters: int = 32,
               num_blocks: int = 1, num_levels: int = 256, **kwargs: Any) -> None:
    super().__init__(**kwargs)
    self.event_shape = _validation.image_shape(event_shape, "VariationalDequantizer")
    self.num_couplings = _validation.positive_int(num_couplings, "num_couplings")
    self.num_filters = _validation.positive_int(num_filters, "num_filters")
    self.num_blocks = int(num_blocks)
    self.num_levels = _validation.positive_int(num_levels, "num_levels")
    if self.num_levels < 2:
      raise errors.InvalidValueError(f"num_levels must be at least 2, got {self.num_levels}.")
    policy = self.dtype_policy
    batch_shape = (None,) + self.event_shape
    self.feature_stem = weight_norm.WeightNormConv2D(self.num_filters, dtype=policy,
                                                     name="feature_stem")
    self.feature_stem.build(batch_shape)
    self.feature_blocks = [resnet.ResidualBlock(self.num_filters, dtype=policy,
                                                name=f"feature_block_{i}")
                           for i in range(self.num_blocks)]
    for block in self.feature_blocks:
      block.build(batch_shape[:-1] + (self.num_filters,))
    self.conditioners = []
    couplings = []
    for i in range(self.num_couplings):
      mask = masks_lib.get_mask(self._mask_kind(i), i % 2)
      input_shape, output_channels = mask.conditioner_shape(self.event_shape)
      network = resnet.CouplingResNet(
          output_channels, num_filters=self.num_filters, num_blocks=self.num_blocks,
          conditional_size=mask.feature_channels(self.num_filters), dtype=policy,
          name=f"coupling_{i}")
      network.build((None,) + tuple(input_shape))
      self.conditioners.append(network)
      couplings.append(coupling_lib.AffineCoupling(
          network, mask=mask.kind, parity=mask.parity, event_shape=self.event_shape,
          name=f"dequantizer_coupling_{i}"))
    # `forward` applies the list from its end: the couplings in order, then the sigmoid.
    self._bijector = conditional_lib.ConditionalChain([tfb.Sigmoid()] + couplings[::-1])
    self.built = True

  def _mask_kind(self, index: int) -> str:
    """Checkerboard couplings, alternating in pairs with channel couplings if `C > 1`."""
    if self.event_shape[-1] == 1 or (index // 2) % 2 == 0:
      return "checkerboard"
    return "channel"

  @property
  def bijector(self) -> tfp.bijectors.Bijector:
    """The flow of `q` given features `h`: `forward(eps, conditional_input=h)` is `u`."""
    return self._bijector

  @property
  def num_dims(self) -> int:
    return math.prod(self.event_shape)

  def features(self, pixels: tf.Tensor) -> tf.Tensor:
    """The features `[N, H, W, num_filters]` of pixels `[N, H, W, C]` that condition `q`."""
    h = self.feature_stem(pixels / self.num_levels - 0.5)
    for block in self.feature_blocks:
      h = block(h)
    return h

  def call(self, inputs: tf.Tensor,
           seed: int | tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor]:
    pixels = ops.convert_to_tensor(inputs)
    if tuple(pixels.shape[-3:]) != self.event_shape:
      raise errors.InvalidValueError(
          f"VariationalDequantizer {self.name!r} is for pixels of shape {self.event_shape}, "
          f"got shape {tuple(pixels.shape)}.")
    # The flow of q computes in float32 (or float64) whatever the networks' compute dtype.
    dtype = self.dtype_policy.variable_dtype
    pixels, batch_shape = _checks.flatten_batch(tf.cast(pixels, dtype))
    features = self.features(ops.cast(pixels, self.compute_dtype))
    seed = stateless_seed(seed)
    shape = tf.shape(pixels)
    eps = (tf.random.normal(shape, dtype=dtype) if seed is None  # Philox: as in `dequantize`.
           else tf.random.stateless_normal(shape, seed=seed, dtype=dtype, alg="philox"))
    u = self._bijector.forward(eps, conditional_input=features)
    log_q = (tf.reduce_sum(-0.5 * tf.square(eps) - 0.5 * math.log(2 * math.pi), axis=[1, 2, 3])
             - self._bijector.forward_log_det_jacobian(eps, event_ndims=3,
                                                       conditional_input=features))
    return (_checks.unflatten_batch(u, batch_shape),
            _checks.unflatten_log_det(log_q, batch_shape))

  def compute_output_spec(
      self, inputs: keras.KerasTensor,
      seed: int | tf.Tensor | None = None) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    del seed
    dtype = self.dtype_policy.variable_dtype
    return (keras.KerasTensor(inputs.shape, dtype), keras.KerasTensor(inputs.shape[:-3], dtype))

  def log_prob_bound(self, log_prob: Callable[[tf.Tensor], tf.Tensor], pixels: tf.Tensor,
                     num_samples: int | tf.Tensor = 1, seed: tf.Tensor | None = None
                     ) -> tf.Tensor:
    """The importance-weighted bound of `K = num_samples` draws of `q`, per image.

    ```none
    logsumexp_i[log p((k + u_i) / L) - log q(u_i | k)] - log K,   u_i ~ q(u | k)
    ```

    with `log p = log_prob` of dequantized images: in expectation a lower bound on
    `log P(k) + D log L`, the variational bound for `K = 1`.

    Args:
      log_prob: the model's log-density of dequantized images `[K, ..., H, W, C]`.
      pixels: float pixels `k` `[..., H, W, C]`.
      num_samples: `K`, an integer >= 1 (or an int32 scalar tensor).
      seed: a stateless seed `[2]`, or `None` for fresh noise.
    """
    # The K draws of every image along a new leading axis: a condition broadcasts against it.
    pixels = tf.broadcast_to(pixels, tf.concat([[num_samples], tf.shape(pixels)], axis=0))
    u, log_q = self(pixels, seed=seed)
    x = (pixels + tf.cast(u, pixels.dtype)) / self.num_levels
    log_w = log_prob(x) - tf.cast(log_q, pixels.dtype)
    return (tf.reduce_logsumexp(log_w, axis=0)
            - tf.math.log(tf.cast(num_samples, log_w.dtype)))

  @property
  def weight_scales(self) -> list[keras.Variable]:
    """The weight-norm scales of every network of `q`."""
    return weight_norm.weight_scales(self)

  def get_config(self) -> dict[str, Any]:
    config = super().get_config()
    config.update(event_shape=list(self.event_shape), num_couplings=self.num_couplings,
                  num_filters=self.num_filters, num_blocks=self.num_blocks,
                  num_levels=self.num_levels)
    return config
