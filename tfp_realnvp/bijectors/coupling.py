"""Affine (Real NVP) and additive (NICE) coupling bijectors on images."""

import tensorflow as tf

from tfp_realnvp import _validation
from tfp_realnvp.bijectors import _checks
from tfp_realnvp.bijectors import _cached_log_det
from tfp_realnvp.bijectors import masks as masks_lib

__all__ = ["AffineCoupling"]


class AffineCoupling(_cached_log_det.CachedLogDetBijector):
  """Affine coupling layer of Real NVP on images `[..., H, W, C]`.

  A mask `b` splits every event into conditioning units (`b = 1`), which pass through
  unchanged, and transformed units (`b = 0`), which receive an elementwise affine map whose
  shift `t` and log-scale `s` are computed from the conditioning units by the `conditioner`.

  Direction follows TensorFlow Probability: `forward` maps a latent `z` to data `x` (sampling)
  and `inverse` maps data to the latent space (density evaluation, training), so that
  `tfd.TransformedDistribution(base, coupling).log_prob(x)` calls `inverse`. The inverse is
  the coupling of Dinh et al. (2017, Eq. 9):

  ```none
  inverse:  z = b * x + (1 - b) * (x * exp(s(b * x)) + t(b * x))
  forward:  x = b * z + (1 - b) * (z - t(b * z)) * exp(-s(b * z))
  inverse_log_det_jacobian(x) =  sum over the transformed units of s(b * x)
  forward_log_det_jacobian(z) = -sum over the transformed units of s(b * z)
  ```

  With `additive=True` the log-scale is zero (the additive coupling of NICE, Dinh et al.,
  2015): the map is volume preserving and both log-determinants are zero.

  Masks (see `tfp_realnvp.bijectors.masks`):

  * `"checkerboard"`: the pixels whose coordinate sum `i + j` has the coupling's `parity` are
    transformed. The conditioning pixels are packed into a half-width image
    `[N, H, ceil(W / 2), C]` (pixels `(i, 2k)` and `(i, 2k + 1)` share column `k`; an odd
    width is padded with zeros), which the conditioner receives; it returns parameters of the
    same shape for the transformed pixels, packed the same way. The convolutions thus run on
    half of the pixels (as they would on `b * x` at twice the cost).
  * `"channel"`: `parity=0` transforms the first `C // 2` channels, `parity=1` the remaining
    ones. The conditioner receives the conditioning channels only and returns parameters for
    the transformed channels.

  `conditioner_shape(event_shape)` gives the conditioner's input shape and output channels.
  The conditioner may be any Keras 3 layer or callable. It is called on a rank-4 tensor (the
  batch dimensions are flattened) and returns `(shift, log_scale)`, two tensors of the same
  shape (for `additive=True`, the shift alone, or a pair whose second item is ignored). Its
  outputs are cast to the input's dtype, so a network computing in bfloat16 still gives
  float32 (or float64) log-determinants.

  Conditional couplings: every method takes an optional keyword argument `conditional_input`
  (TFP's convention: `coupling.forward(z, conditional_input=c)`,
  `dist.log_prob(x, bijector_kwargs={"conditional_input": c})`), a condition `c` of shape
  `[..., K]` whose batch dimensions broadcast to those of the images (one condition per
  example, or a single `[K]` for all). The coupling broadcasts it to the images' batch shape,
  flattens it like them to `[N, K]` and calls `conditioner(h, conditional_input=c)`, so `s` and
  `t` become functions of `(b * x, c)`; without it the conditioner is called as
  `conditioner(h)`. Both log-determinants stay the sums of `s` above, for a fixed `c`.

  `forward`/`inverse` also cache their log-determinants, so `TransformedDistribution.log_prob`
  runs the conditioner once per coupling. The cache is keyed by tensor identity (of the input
  and of `conditional_input`): when the conditioner's weights change between two eager calls on
  the same tensor object, pass a new tensor (e.g. `tf.identity(x)`).

  #### Example

  ```python
  import keras, tensorflow_probability as tfp
  from tfp_realnvp import bijectors as rb

  def conditioner(h):  # shift and log-scale from the conditioning channels
    return 0.1 * h, 0.05 * keras.ops.tanh(h)

  coupling = rb.AffineCoupling(conditioner, mask="channel", parity=0)
  dist = tfp.distributions.TransformedDistribution(
      tfp.distributions.Sample(tfp.distributions.Normal(0., 1.), [8, 8, 4]), coupling)
  x = dist.sample(16)          # forward: latent -> data
  log_p = dist.log_prob(x)     # inverse and its log-determinant

  def conditional_conditioner(h, conditional_input):  # c [N, K] with K = 4 here
    c = conditional_input[:, None, None, :]
    return 0.1 * h + c[..., :2], 0.05 * keras.ops.tanh(h + c[..., 2:])

  coupling = rb.AffineCoupling(conditional_conditioner, mask="channel", parity=0)
  dist = tfp.distributions.TransformedDistribution(
      tfp.distributions.Sample(tfp.distributions.Normal(0., 1.), [8, 8, 4]), coupling)
  log_p = dist.log_prob(x, bijector_kwargs={"conditional_input": c})  # c [16, 4] or [4]
  ```

  #### References

  [1] Laurent Dinh, Jascha Sohl-Dickstein and Samy Bengio. Density estimation using Real NVP.
      In International Conference on Learning Representations, 2017.
      https://arxiv.org/abs/1605.08803
  [2] Laurent Dinh, David Krueger and Yoshua Bengio. NICE: Non-linear Independent Components
      Estimation. ICLR workshop, 2015. https://arxiv.org/abs/1410.8516
  """

  takes_conditional_input = True  # See `tfp_realnvp.bijectors.ConditionalChain`.

  def __init__(self,
               conditioner,
               mask="checkerboard",
               parity=0,
               additive=False,
               event_shape=None,
               validate_args=False,
               name=None):
    """Builds an affine coupling.

    Args:
      conditioner: Keras 3 layer or callable mapping the conditioning input (rank 4) to
        `(shift, log_scale)`; see the class docstring for the shapes of each mask. For a
        conditional coupling it also takes a keyword argument `conditional_input` `[N, K]`.
      mask: `"checkerboard"` (spatial) or `"channel"`.
      parity: 0 or 1, which half of the units is transformed.
      additive: if `True`, a volume-preserving NICE coupling (log-scale 0).
      event_shape: optional `(H, W, C)`; when given, inputs of another event shape are
        rejected with a `ValueError` instead of silently running the conditioner on them.
      validate_args: if `True`, inputs are checked at run time to be finite.
      name: name of the bijector; defaults to `affine_coupling` / `additive_coupling`.
    """
    parameters = dict(locals())
    name = name or ("additive_coupling" if additive else "affine_coupling")
    with tf.name_scope(name) as name:
      if not callable(conditioner):
        raise TypeError(f"conditioner must be callable, got {type(conditioner).__name__}.")
      self._conditioner = conditioner
      self._mask = masks_lib.get_mask(mask, parity)
      self._additive = bool(additive)
      self._event_shape = None if event_shape is None else _validation.image_shape(
          event_shape, name)
      if self._event_shape is not None:
        self._mask.conditioner_shape(self._event_shape)  # Rejects a channel mask on 1 channel.
      super().__init__(
          forward_min_event_ndims=_checks.EVENT_NDIMS,
          is_constant_jacobian=self._additive,
          validate_args=validate_args,
          parameters=parameters,
          name=name)

  @property
  def conditioner(self):
    return self._conditioner

  @property
  def mask(self):
    return self._mask.kind

  @property
  def parity(self):
    return self._mask.parity

  @property
  def additive(self):
    return self._additive

  def conditioner_shape(self, event_shape):
    """Returns `(input_shape, output_channels)` of the conditioner for events `event_shape`."""
    return self._mask.conditioner_shape(tuple(event_shape))

  def _conditioner_kwargs(self, conditional_input, batch_shape):
    """`{}`, or the condition broadcast to `batch_shape` and flattened to `[N, K]` like `x`."""
    if conditional_input is None:
      return {}
    condition = tf.convert_to_tensor(conditional_input)
    shape = condition.shape
    if shape.rank is None or shape.rank < 1 or shape[-1] is None:
      raise ValueError(
          f"{self.name}: conditional_input must have shape [..., K] with a known size K, got "
          f"shape {shape}.")
    size = shape[-1]
    if isinstance(batch_shape, list):
      if not _broadcasts_to(shape[:-1], batch_shape):
        raise ValueError(
            f"{self.name}: conditional_input of shape {shape} does not match the batch shape "
            f"{batch_shape} of the images; give one condition [..., {size}] per example, or "
            f"a single [{size}] for all.")
      target = batch_shape + [size]
    else:
      target = tf.concat([batch_shape, [size]], axis=0)
    return {"conditional_input": tf.reshape(tf.broadcast_to(condition, target), [-1, size])}

  def _shift_and_log_scale(self, x, conditioner_kwargs):
    """Runs the conditioner on images `x` `[N, H, W, C]`.

    Returns:
      `(conditioning, transformed, shift, log_scale)`: the mask's two parts of `x` and the
      parameters of the transformed part (`log_scale` is `None` for an additive coupling).
    """
    conditioning, transformed = self._mask.split(x)
    out = self._conditioner(conditioning, **conditioner_kwargs)
    if self._additive:
      shift, log_scale = (out[0] if isinstance(out, (tuple, list)) else out), None
    elif isinstance(out, (tuple, list)) and len(out) == 2:
      shift, log_scale = out
    else:
      raise TypeError(
          f"{self.name}: the conditioner must return a pair (shift, log_scale), got "
          f"{type(out).__name__}.")
    params = [shift] if log_scale is None else [shift, log_scale]
    for p in params:
      if p.shape[1:] != transformed.shape[1:]:
        raise ValueError(
            f"{self.name}: the conditioner returned parameters of shape {p.shape}; the "
            f"transformed units have shape {transformed.shape}.")
    shift, log_scale = [
        None if p is None else self._mask.restrict(x, tf.cast(p, x.dtype))
        for p in (shift, log_scale)]
    return conditioning, transformed, shift, log_scale

  def _reduced_log_scale(self, log_scale, x):
    if log_scale is None:
      return tf.zeros(tf.shape(x)[:1], dtype=x.dtype)
    return tf.reduce_sum(log_scale, axis=[1, 2, 3])

  def _couple(self, x, conditional_input, inverse):
    """The coupling in either direction; returns its output and the cached log-dets."""
    x = _checks.check_image_event(x, self.name, self._event_shape, self.validate_args)
    x4, batch_shape = _checks.flatten_batch(x)
    conditioning, transformed, shift, log_scale = self._shift_and_log_scale(
        x4, self._conditioner_kwargs(conditional_input, batch_shape))
    ildj = _checks.unflatten_log_det(self._reduced_log_scale(log_scale, x4), batch_shape)
    if inverse:
      y = transformed if log_scale is None else transformed * tf.exp(log_scale)
      y = y + shift
    else:
      y = transformed - shift
      y = y if log_scale is None else y * tf.exp(-log_scale)
    y = self._mask.merge(x4, conditioning, y)
    return _checks.unflatten_batch(y, batch_shape), _cached_log_det.log_dets(ildj)

  def _augmented_inverse(self, x, conditional_input=None):
    return self._couple(x, conditional_input, inverse=True)

  def _augmented_forward(self, z, conditional_input=None):
    return self._couple(z, conditional_input, inverse=False)

def _broadcasts_to(shape, target):
  """Whether the static `shape` (known rank) broadcasts to the list `target`."""
  sizes = shape.as_list()
  return len(sizes) <= len(target) and all(
      size is None or size in (1, goal)
      for size, goal in zip(reversed(sizes), reversed(target), strict=False))
