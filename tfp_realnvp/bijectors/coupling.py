"""Coupling bijectors on images: affine (Real NVP), additive (NICE) and spline (NSF).

One coupling, `_Coupling`, splits the event with a mask, runs the conditioner on the
conditioning units (with the optional condition) and sums the log-determinant; the elementwise
map of the transformed units is a small strategy object (`_AffineTransform`, `_SplineTransform`)
that turns the conditioner's output into parameters and applies them.
"""

import functools
import math

import tensorflow as tf

from tfp_realnvp import errors
from tfp_realnvp import _validation
from tfp_realnvp.bijectors import _checks
from tfp_realnvp.bijectors import _spline
from tfp_realnvp.bijectors import _cached_log_det
from tfp_realnvp.bijectors import masks as masks_lib

__all__ = ["COUPLINGS", "AffineCoupling", "SplineCoupling", "coupling_maker",
           "spline_params_per_unit"]

COUPLINGS = ("affine", "spline")
"""The elementwise transforms a flow's couplings can use: `coupling="affine"` or `"spline"`."""


class _Coupling(_cached_log_det.CachedLogDetBijector):
  """A coupling on images `[..., H, W, C]`, for any elementwise transform of its units.

  The mask, the conditioner call (with the optional `conditional_input`), the shape checks and
  the log-determinant live here, once; `transform` is the elementwise map of the transformed
  units: `transform.parameters(out, transformed, owner)` checks the conditioner's output `out`
  and returns the parameters, and `transform.apply(transformed, params, inverse)` returns the
  mapped units and `log|dz/dx|` elementwise (data -> latent), or `None` for a volume-preserving
  map. See `AffineCoupling` for the conventions every coupling shares.
  """

  takes_conditional_input = True  # See `tfp_realnvp.bijectors.ConditionalChain`.

  def __init__(self, conditioner, mask, parity, transform, event_shape, validate_args,
               parameters, name):
    with tf.name_scope(name) as name:
      if not callable(conditioner):
        raise errors.InvalidTypeError(
            f"conditioner must be callable, got {type(conditioner).__name__}.")
      self._conditioner = conditioner
      self._mask = masks_lib.get_mask(mask, parity)
      self._transform = transform
      self._event_shape = None if event_shape is None else _validation.image_shape(
          event_shape, name)
      if self._event_shape is not None:
        self._mask.conditioner_shape(self._event_shape)  # Rejects a channel mask on 1 channel.
      super().__init__(
          forward_min_event_ndims=_checks.EVENT_NDIMS,
          is_constant_jacobian=transform.is_constant_jacobian,
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

  def conditioner_shape(self, event_shape):
    """Returns `(input_shape, output_channels)` of the conditioner for events `event_shape`."""
    return self._mask.conditioner_shape(tuple(event_shape))

  def _conditioner_kwargs(self, conditional_input, batch_shape, event_shape):
    """`{}`, or the condition broadcast to `batch_shape` and flattened like the images.

    A condition of vectors `[..., K]` becomes `[N, K]`. A condition of the images' rank is a
    feature map `[..., H, W, F]` of the images (`event_shape = (H, W, C)`): it becomes
    `[N, H, W, F]`, packed like the conditioning units by the mask (`pack_features`).
    """
    if conditional_input is None:
      return {}
    condition = tf.convert_to_tensor(conditional_input)
    shape = condition.shape
    if shape.rank is None or shape.rank < 1 or shape[-1] is None:
      raise errors.InvalidValueError(
          f"{self.name}: conditional_input must have shape [..., K] with a known size K, got "
          f"shape {shape}.")
    batch_rank = len(batch_shape) if isinstance(batch_shape, list) else batch_shape.shape[0]
    spatial = shape.rank == batch_rank + _checks.EVENT_NDIMS
    if spatial and shape[-3:-1].as_list() != list(event_shape[:2]):
      raise errors.InvalidValueError(
          f"{self.name}: a conditional_input of the images' rank is a feature map "
          f"[..., {event_shape[0]}, {event_shape[1]}, F] of the images, got shape {shape}.")
    event = shape[-3:].as_list() if spatial else [shape[-1]]
    sizes = ", ".join(str(size) for size in event)
    if isinstance(batch_shape, list):
      if not _broadcasts_to(shape[:-len(event)], batch_shape):
        raise errors.InvalidValueError(
            f"{self.name}: conditional_input of shape {shape} does not match the batch shape "
            f"{batch_shape} of the images; give one condition [..., {sizes}] per example, or "
            f"a single [{sizes}] for all.")
      target = batch_shape + event
    else:
      target = tf.concat([batch_shape, event], axis=0)
    condition = tf.reshape(tf.broadcast_to(condition, target), [-1] + event)
    return {"conditional_input": self._mask.pack_features(condition) if spatial else condition}

  def _couple(self, x, conditional_input, inverse):
    """The coupling in either direction; returns its output and the cached log-dets."""
    x = _checks.check_image_event(x, self.name, self._event_shape, self.validate_args)
    x4, batch_shape = _checks.flatten_batch(x)
    conditioning, transformed = self._mask.split(x4)
    out = self._conditioner(
        conditioning, **self._conditioner_kwargs(conditional_input, batch_shape, x.shape[-3:]))
    params = self._transform.parameters(out, transformed, self.name)
    y, log_det = self._transform.apply(transformed, params, inverse)
    y = self._mask.merge(x4, conditioning, y)
    return (_checks.unflatten_batch(y, batch_shape),
            _cached_log_det.log_dets(self._sum_log_det(x4, log_det, batch_shape)))

  def _sum_log_det(self, x4, log_det, batch_shape):
    """The per-example `ildj` of elementwise `log|dz/dx|` (`None`: 0) on packed units."""
    if log_det is None:
      ildj = tf.zeros(tf.shape(x4)[:1], dtype=x4.dtype)
    else:  # Without the slots that pad an odd width (checkerboard).
      ildj = tf.reduce_sum(self._mask.restrict(x4, log_det), axis=[1, 2, 3])
    return _checks.unflatten_log_det(ildj, batch_shape)

  def replay_inverse(self, z, tape, conditional_input=None):
    """Rebuilds the input of `inverse` from its output `z` and recomputes `inverse` under `tape`.

    The conditioning units are the same on both sides, so one conditioner call on those of
    `z` gives the parameters that rebuild the transformed units of the input (outside the
    tape) and, under the tape, map them to `z` again (`tfp_realnvp.remat`'s reversible
    backward pass uses this instead of `forward` followed by `inverse`).

    Args:
      z: the output of `inverse`.
      tape: an active `tf.GradientTape`.
      conditional_input: as for `inverse`.

    Returns:
      `(x, sources, outputs, input_gradient)`: the rebuilt input `x`; the watched tensors
      `sources` (the conditioning and the rebuilt transformed units) that `outputs`
      `[z, ildj]` are computed from under the tape; and `input_gradient(source_gradients)`,
      the gradient with respect to `x` from those with respect to `sources`.
    """
    z4, batch_shape = _checks.flatten_batch(z)
    conditioning, z_transformed = self._mask.split(z4)
    tape.watch(conditioning)
    out = self._conditioner(
        conditioning, **self._conditioner_kwargs(conditional_input, batch_shape, z.shape[-3:]))
    params = self._transform.parameters(out, z_transformed, self.name)
    with tape.stop_recording():
      x_transformed, _ = self._transform.apply(z_transformed, params, inverse=False)
      x = _checks.unflatten_batch(self._mask.merge(z4, conditioning, x_transformed),
                                  batch_shape)
    tape.watch(x_transformed)
    z_again, log_det = self._transform.apply(x_transformed, params, inverse=True)
    outputs = [_checks.unflatten_batch(self._mask.merge(z4, conditioning, z_again), batch_shape),
               self._sum_log_det(z4, log_det, batch_shape)]

    def input_gradient(source_gradients):
      return _checks.unflatten_batch(self._mask.merge(z4, *source_gradients), batch_shape)

    return x, [conditioning, x_transformed], outputs, input_gradient

  def _augmented_inverse(self, x, conditional_input=None):
    return self._couple(x, conditional_input, inverse=True)

  def _augmented_forward(self, z, conditional_input=None):
    return self._couple(z, conditional_input, inverse=False)


class AffineCoupling(_Coupling):
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
  A condition of the images' rank is a feature map `[..., H, W, F]` of another image (e.g.
  the pixels that `tfp_realnvp.VariationalDequantizer` dequantizes): it is flattened to
  `[N, H, W, F]` and packed like the conditioning units (`mask.pack_features`: the features
  of both pixels of each checkerboard pair, `[N, H, ceil(W / 2), 2F]`, or the whole map for a
  channel mask), so the conditioner gets features aligned with its input, pixel by pixel.

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
    super().__init__(conditioner, mask, parity, _AffineTransform(additive), event_shape,
                     validate_args, parameters,
                     name or ("additive_coupling" if additive else "affine_coupling"))

  @property
  def additive(self):
    return self._transform.additive


class _AffineTransform:
  """`z = x * exp(s) + t` (data -> latent) from the conditioner's `(shift, log_scale)`."""

  params_per_unit = None  # The conditioner returns a pair, not one tensor of parameters.

  def __init__(self, additive):
    self.additive = bool(additive)
    self.is_constant_jacobian = self.additive

  def parameters(self, out, transformed, owner):
    """`[shift, log_scale]` (`[shift]` if additive), checked and cast to the input's dtype."""
    if self.additive:
      params = [out[0] if isinstance(out, (tuple, list)) else out]
    elif isinstance(out, (tuple, list)) and len(out) == 2:
      params = list(out)
    else:
      raise errors.InvalidTypeError(
          f"{owner}: the conditioner must return a pair (shift, log_scale), got "
          f"{type(out).__name__}.")
    for p in params:
      if p.shape[1:] != transformed.shape[1:]:
        raise errors.InvalidValueError(
            f"{owner}: the conditioner returned parameters of shape {p.shape}; the "
            f"transformed units have shape {transformed.shape}.")
    return [tf.cast(p, transformed.dtype) for p in params]

  def apply(self, transformed, params, inverse):
    """`(y, log|dz/dx|)` elementwise (`None` for an additive coupling)."""
    shift, log_scale = params if len(params) == 2 else (params[0], None)
    if inverse:
      y = transformed if log_scale is None else transformed * tf.exp(log_scale)
      return y + shift, log_scale
    y = transformed - shift
    return (y if log_scale is None else y * tf.exp(-log_scale)), log_scale



# Smallest bin width and height, and knot slope, of a spline: a bin or a slope the conditioner
# drives towards zero would make the inverse ill-conditioned (Durkan et al. use 1e-3 too).
MIN_BIN_SIZE = 1e-3
MIN_SLOPE = 1e-3
# softplus(0 + SLOPE_OFFSET) + MIN_SLOPE = 1: raw slopes 0 give slope 1 (with equal bins, the
# identity).
SLOPE_OFFSET = math.log(math.expm1(1.0 - MIN_SLOPE))


def spline_params_per_unit(num_bins):
  """The conditioner outputs per transformed unit of a `SplineCoupling`: `3 * num_bins - 1`.

  `num_bins` widths, `num_bins` heights and the `num_bins - 1` slopes at the interior knots.
  """
  return 3 * _num_bins(num_bins) - 1


def coupling_maker(coupling, num_bins=8, bound=3.0, additive=False, validate_args=False):
  """The couplings of a flow of kind `coupling` (one of `COUPLINGS`), for the flow builders.

  Returns:
    `(params_per_unit, make_coupling)`: the `params_per_unit` to build the conditioners with
    (`None` for the `(shift, log_scale)` of an affine coupling, `3 * num_bins - 1` for a
    spline), and `make_coupling(conditioner, mask, parity, event_shape, name)` building an
    `AffineCoupling` (additive per `additive`) or a `SplineCoupling` of `num_bins` bins on
    `[-bound, bound]`.

  Raises:
    ValueError: an unknown `coupling`, `additive` with splines, or (for a spline) a bad
      `num_bins` or `bound`.
  """
  if coupling not in COUPLINGS:
    raise errors.InvalidValueError(f"coupling must be one of {COUPLINGS}, got {coupling!r}.")
  if coupling == "affine":
    return None, functools.partial(AffineCoupling, additive=additive,
                                   validate_args=validate_args)
  if additive:
    raise errors.InvalidValueError(
        f"additive=True makes additive affine couplings; it cannot be combined "
        f"with coupling={coupling!r}.")
  _SplineTransform(num_bins, bound)  # Fails now, not at the first coupling, on bad arguments.
  return spline_params_per_unit(num_bins), functools.partial(
      SplineCoupling, num_bins=num_bins, bound=bound, validate_args=validate_args)


def _num_bins(num_bins):
  if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 2:
    raise errors.InvalidValueError(
        f"num_bins must be an integer >= 2 (a single bin with slopes 1 at both ends is the "
        f"identity), got {num_bins!r}.")
  return num_bins


class SplineCoupling(_Coupling):
  """Rational-quadratic spline coupling (Neural Spline Flows) on images `[..., H, W, C]`.

  The same coupling as `AffineCoupling` (masks, conditioner, conditional input, cached
  log-determinants, direction) with a monotone rational-quadratic spline as the elementwise
  map of the transformed units (Durkan et al., 2019), the spline of TFP's
  `tfb.RationalQuadraticSpline` evaluated with a one-hot choice of bin (dense operations with
  static shapes, one bin search for the value and its derivative; checked against TFP's):
  `K = num_bins` bins on `[-B, B]` (`B = bound`), the identity outside. For every transformed
  unit, the conditioner gives `3K - 1` raw numbers `(w, h, d)` from the conditioning units `b * x`
  (and the condition `c`, if any), mapped to

  ```none
  bin widths   = MIN_BIN_SIZE + (2B - K * MIN_BIN_SIZE) * softmax(w)      K values, sum 2B
  bin heights  = MIN_BIN_SIZE + (2B - K * MIN_BIN_SIZE) * softmax(h)      K values, sum 2B
  knot slopes  = MIN_SLOPE + softplus(d + log(expm1(1 - MIN_SLOPE)))      K - 1 interior knots
  ```

  (the slopes at `-B` and `B` are 1, so the map is continuously differentiable at the bounds).
  Raw parameters 0 give equal bins and slopes 1, which is exactly the identity, so a
  conditioner whose last layer starts at zero makes a new coupling the identity. With the
  spline `g` of those parameters, in TFP's direction (`forward`: latent -> data):

  ```none
  inverse:  z = b * x + (1 - b) * g(x; b * x)
  forward:  x = b * z + (1 - b) * g^-1(z; b * z)
  inverse_log_det_jacobian(x) =  sum over the transformed units of log g'(x)
  forward_log_det_jacobian(z) = -sum over the transformed units of log g'(g^-1(z))
  ```

  `g'` is 1 outside `[-B, B]`, so units out there pass unchanged and add nothing. Choose `B`
  to cover the values the coupling sees: the default 3 covers the logit-space data of
  `tfp_realnvp.FlowModel` (`|logit(0.05 + 0.9 x)| <= 2.95`) and most of a unit-variance
  activation (the inputs of Glow's couplings after their actnorm); the couplings deeper in a
  flow mostly see values of that scale too.

  The conditioner is called as for `AffineCoupling`, on the conditioning units
  `[N, h, w, c_in]` (and `conditional_input=c`), and returns one tensor of raw parameters
  `[N, h, w, c_out, 3K - 1]` (`spline_params_per_unit(K)`), where `(h, w, c_in)`, `c_out` are
  `conditioner_shape(event_shape)`. The package's networks (`CouplingResNet`,
  `GlowCouplingNetwork`) return that when built with `params_per_unit=3K - 1`. Its output is
  cast to the input's dtype.

  #### Example

  ```python
  import tensorflow_probability as tfp
  from tfp_realnvp import bijectors as rb, networks

  num_bins = 8
  net = networks.CouplingResNet(2, num_filters=32, num_blocks=2,
                                params_per_unit=rb.spline_params_per_unit(num_bins))
  net.build((None, 8, 8, 2))          # conditioner_shape((8, 8, 4)) = ((8, 8, 2), 2)
  coupling = rb.SplineCoupling(net, mask="channel", parity=0, num_bins=num_bins, bound=3.0)
  dist = tfp.distributions.TransformedDistribution(
      tfp.distributions.Sample(tfp.distributions.Normal(0., 1.), [8, 8, 4]), coupling)
  x = dist.sample(16)          # forward: latent -> data
  log_p = dist.log_prob(x)     # inverse and its log-determinant
  ```

  #### References

  [1] Conor Durkan, Artur Bekasov, Iain Murray and George Papamakarios. Neural Spline Flows.
      In Neural Information Processing Systems, 2019. https://arxiv.org/abs/1906.04032
  [2] Laurent Dinh, Jascha Sohl-Dickstein and Samy Bengio. Density estimation using Real NVP.
      In International Conference on Learning Representations, 2017.
      https://arxiv.org/abs/1605.08803
  """

  def __init__(self,
               conditioner,
               mask="checkerboard",
               parity=0,
               num_bins=8,
               bound=3.0,
               event_shape=None,
               validate_args=False,
               name="spline_coupling"):
    """Builds a spline coupling.

    Args:
      conditioner: Keras 3 layer or callable mapping the conditioning input (rank 4) to raw
        spline parameters `[N, h, w, c_out, 3 * num_bins - 1]`; for a conditional coupling it
        also takes a keyword argument `conditional_input` `[N, K]`.
      mask: `"checkerboard"` (spatial) or `"channel"`.
      parity: 0 or 1, which half of the units is transformed.
      num_bins: number of bins `K` of the splines (>= 2).
      bound: `B > 0`: the splines map `[-B, B]` onto itself, the identity outside.
      event_shape: optional `(H, W, C)`; when given, inputs of another event shape are
        rejected with a `ValueError`.
      validate_args: if `True`, inputs are checked at run time to be finite.
      name: name of the bijector.

    Raises:
      ValueError: `num_bins` not an integer >= 2, or `bound` not a positive finite number
        large enough for `num_bins` bins of the minimal size.
    """
    parameters = dict(locals())
    super().__init__(conditioner, mask, parity, _SplineTransform(num_bins, bound), event_shape,
                     validate_args, parameters, name)

  @property
  def num_bins(self):
    return self._transform.num_bins

  @property
  def bound(self):
    return self._transform.bound


class _SplineTransform:
  """`z = g(x)` (data -> latent), `g` the rational-quadratic spline of the raw parameters."""

  is_constant_jacobian = False

  def __init__(self, num_bins, bound):
    self.num_bins = _num_bins(num_bins)
    if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not (
        math.isfinite(bound) and 2 * bound > self.num_bins * MIN_BIN_SIZE):
      raise errors.InvalidValueError(
          f"bound must be a finite number > num_bins * {MIN_BIN_SIZE} / 2 (the splines live "
          f"on [-bound, bound]), got {bound!r}.")
    self.bound = float(bound)
    self.params_per_unit = spline_params_per_unit(self.num_bins)

  def parameters(self, out, transformed, owner):
    """The spline `(bin_widths, bin_heights, knot_slopes)` of the raw `out`."""
    expected = tuple(transformed.shape[1:]) + (self.params_per_unit,)
    if not tf.is_tensor(out) and not hasattr(out, "shape"):
      raise errors.InvalidTypeError(
          f"{owner}: the conditioner must return one tensor of raw spline parameters "
          f"[N, {', '.join(map(str, expected))}], got {type(out).__name__}. The package's "
          f"networks return it when built with params_per_unit={self.params_per_unit}.")
    if tuple(out.shape[1:]) != expected:
      raise errors.InvalidValueError(
          f"{owner}: the conditioner returned raw spline parameters of shape {out.shape}; "
          f"{self.num_bins} bins need [N, {', '.join(map(str, expected))}] "
          f"({self.params_per_unit} = 3 * num_bins - 1 per transformed unit, see "
          f"spline_params_per_unit).")
    raw = tf.cast(out, transformed.dtype)
    k = self.num_bins
    scale = 2 * self.bound - k * MIN_BIN_SIZE
    # One split rather than three slices: its gradient is one concatenation.
    raw_widths, raw_heights, raw_slopes = tf.split(raw, [k, k, k - 1], axis=-1)
    widths = MIN_BIN_SIZE + scale * tf.nn.softmax(raw_widths)
    heights = MIN_BIN_SIZE + scale * tf.nn.softmax(raw_heights)
    slopes = MIN_SLOPE + tf.nn.softplus(raw_slopes + SLOPE_OFFSET)
    return widths, heights, slopes

  def apply(self, transformed, params, inverse):
    """`(y, log|dz/dx|)` elementwise, with `g'` evaluated at the data side `x`."""
    # The data -> latent map (this package's inverse) is the spline's forward.
    return _spline.rational_quadratic(transformed, *params, self.bound, inverse=not inverse)


def _broadcasts_to(shape, target):
  """Whether the static `shape` (known rank) broadcasts to the list `target`."""
  sizes = shape.as_list()
  return len(sizes) <= len(target) and all(
      size is None or size in (1, goal)
      for size, goal in zip(reversed(sizes), reversed(target), strict=False))
