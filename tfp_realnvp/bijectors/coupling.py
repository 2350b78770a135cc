"""Coupling bijectors on images for any elementwise transform: `Coupling` and its two cases."""

from __future__ import annotations

from typing import Any, Callable, Sequence, cast

import tensorflow as tf

from tfp_realnvp import _validation
from tfp_realnvp import errors
from tfp_realnvp._types import TensorLike
from tfp_realnvp.bijectors import _cached_log_det
from tfp_realnvp.bijectors import _checks
from tfp_realnvp.bijectors import masks as masks_lib
from tfp_realnvp.bijectors import transforms as transforms_lib

__all__ = ["AffineCoupling", "Coupling", "SplineCoupling"]


class Coupling(_cached_log_det.CachedLogDetBijector):
  """A coupling layer on images `[..., H, W, C]`, for any elementwise transform of its units.

  A mask `b` splits every event into conditioning units (`b = 1`), which pass through
  unchanged, and transformed units (`b = 0`), which the `transform` maps one by one with
  parameters `theta` that the `conditioner` computes from the conditioning units (and the
  condition `c`, if any). With `h` the transform's map (`tfp_realnvp.bijectors.CouplingTransform`):

  ```none
  inverse:  z = b * x + (1 - b) * h(x; theta(b * x, c))
  forward:  x = b * z + (1 - b) * h^-1(z; theta(b * z, c))
  inverse_log_det_jacobian(x) =  sum over the transformed units of log|h'(x; theta)|
  forward_log_det_jacobian(z) = -inverse_log_det_jacobian(forward(z))
  ```

  Direction follows TensorFlow Probability: `forward` maps a latent `z` to data `x` (sampling)
  and `inverse` maps data to the latent space (density evaluation, training), so that
  `tfd.TransformedDistribution(base, coupling).log_prob(x)` calls `inverse`.

  Masks (see `tfp_realnvp.bijectors.masks`):

  * `"checkerboard"`: the pixels whose coordinate sum `i + j` has the coupling's `parity` are
    transformed. The conditioning pixels are packed into a half-width image
    `[N, H, ceil(W / 2), C]` (pixels `(i, 2k)` and `(i, 2k + 1)` share column `k`; an odd
    width is padded with zeros), which the conditioner receives; it returns parameters for
    the transformed pixels, packed the same way, so the convolutions run on half the pixels.
  * `"channel"`: `parity=0` transforms the first `C // 2` channels, `parity=1` the remaining
    ones; the conditioner receives the conditioning channels only.

  The conditioner may be any Keras 3 layer or callable. It is called on a rank-4 tensor (the
  batch dimensions are flattened), `conditioner(h)` or `conditioner(h, conditional_input=c)`,
  and returns what the transform takes (`(shift, log_scale)` for the affine map, raw
  parameters `[N, h, w, c, P]` otherwise); `conditioner_shape(event_shape)` gives its input
  shape and output channels. Its outputs are cast to the input's dtype, so a network computing
  in bfloat16 still gives float32 (or float64) log-determinants.

  Conditional couplings: every method takes an optional keyword argument `conditional_input`
  (TFP's convention: `coupling.forward(z, conditional_input=c)`,
  `dist.log_prob(x, bijector_kwargs={"conditional_input": c})`), vectors `[..., K]` whose
  batch dimensions broadcast to those of the images (one per example, or a single `[K]`), or a
  feature map `[..., H, W, F]` of the images, packed like the conditioning units
  (`mask.pack_features`), so the conditioner gets features aligned with its input.

  `forward`/`inverse` also cache their log-determinants, so `TransformedDistribution.log_prob`
  runs the conditioner once per coupling. The cache is keyed by tensor identity: when the
  conditioner's weights change between two eager calls on the same tensor object, pass a new
  tensor (e.g. `tf.identity(x)`).

  #### Example

  ```python
  import keras, tensorflow_probability as tfp
  from tfp_realnvp import bijectors as rb

  def conditioner(h):  # shift and log-scale from the conditioning channels
    return 0.1 * h, 0.05 * keras.ops.tanh(h)

  coupling = rb.Coupling(conditioner, "affine", mask="channel", parity=0)
  dist = tfp.distributions.TransformedDistribution(
      tfp.distributions.Sample(tfp.distributions.Normal(0., 1.), [8, 8, 4]), coupling)
  x = dist.sample(16)          # forward: latent -> data
  log_p = dist.log_prob(x)     # inverse and its log-determinant
  ```

  #### References

  [1] Laurent Dinh, Jascha Sohl-Dickstein and Samy Bengio. Density estimation using Real NVP.
      In International Conference on Learning Representations, 2017.
      https://arxiv.org/abs/1605.08803

  Args:
    conditioner: Keras 3 layer or callable mapping the conditioning units (rank 4) to the
      transform's parameters; for a conditional coupling it also takes a keyword argument
      `conditional_input`.
    transform: a `CouplingTransform`, or the name of a registered one
      (`tfp_realnvp.bijectors.COUPLING_TRANSFORMS`: `"affine"`, `"additive"`, `"spline"`, ...).
    mask: `"checkerboard"` (spatial) or `"channel"`.
    parity: 0 or 1, which half of the units is transformed.
    event_shape: optional `(H, W, C)`; when given, inputs of another event shape are
      rejected with an error instead of silently running the conditioner on them.
    validate_args: if `True`, inputs are checked at run time to be finite.
    name: name of the bijector; defaults to `<transform class>_coupling`.
    parameters: for subclasses only: their constructor's arguments (`dict(locals())`), which
      `copy` rebuilds them from.

  Raises:
    InvalidTypeError: a conditioner that is not callable, or a transform of another type.
    InvalidValueError: an unknown transform, mask or parity, or a channel mask on one channel.
  """

  takes_conditional_input = True  # See `tfp_realnvp.bijectors.ConditionalChain`.

  def __init__(self,
               conditioner: Callable[..., Any],
               transform: str | transforms_lib.CouplingTransform = "affine",
               mask: str = "checkerboard",
               parity: int = 0,
               event_shape: Sequence[int] | None = None,
               validate_args: bool = False,
               name: str | None = None,
               parameters: dict[str, Any] | None = None) -> None:
    if parameters is None:
      parameters = {key: value for key, value in locals().items() if key != "parameters"}
    transform = transforms_lib.make_transform(transform)
    if name is None:
      name = _default_name(transform)
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
  def conditioner(self) -> Callable[..., Any]:
    """The network (or callable) that computes the transform's parameters."""
    return self._conditioner

  @property
  def transform(self) -> transforms_lib.CouplingTransform:
    """The elementwise map of the transformed units."""
    return self._transform

  @property
  def mask(self) -> str:
    """`"checkerboard"` or `"channel"`."""
    return self._mask.kind

  @property
  def parity(self) -> int:
    """0 or 1: which half of the units is transformed."""
    return self._mask.parity

  def conditioner_shape(self, event_shape: Sequence[int]) -> tuple[tuple[int, ...], int]:
    """Returns `(input_shape, output_channels)` of the conditioner for events `event_shape`."""
    return self._mask.conditioner_shape(tuple(event_shape))

  def _conditioner_kwargs(self, conditional_input: TensorLike | None,
                          batch_shape: _checks.BatchShape,
                          event_shape: Sequence[int | None]) -> dict[str, tf.Tensor]:
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

  def _couple(self, x: tf.Tensor, conditional_input: TensorLike | None,
              inverse: bool) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """The coupling in either direction; returns its output and the cached log-dets."""
    x = _checks.check_image_event(x, self.name, self._event_shape, self.validate_args)
    x4, batch_shape = _checks.flatten_batch(x)
    conditioning, transformed = self._mask.split(x4)
    out = self._conditioner(
        conditioning, **self._conditioner_kwargs(conditional_input, batch_shape, x.shape[-3:]))
    params = self._transform.check_parameters(out, transformed, self.name)
    y, log_det = (self._transform.inverse if inverse else self._transform.forward)(
        transformed, params)
    y = self._mask.merge(x4, conditioning, y)
    return (_checks.unflatten_batch(y, batch_shape),
            _cached_log_det.log_dets(self._sum_log_det(x4, log_det, batch_shape)))

  def _sum_log_det(self, x4: tf.Tensor, log_det: tf.Tensor | None,
                   batch_shape: _checks.BatchShape) -> tf.Tensor:
    """The per-example `ildj` of elementwise `log|dz/dx|` (`None`: 0) on packed units."""
    if log_det is None:
      ildj = tf.zeros(tf.shape(x4)[:1], dtype=x4.dtype)
    else:  # Without the slots that pad an odd width (checkerboard).
      ildj = tf.reduce_sum(self._mask.restrict(x4, log_det), axis=[1, 2, 3])
    return _checks.unflatten_log_det(ildj, batch_shape)

  def replay_inverse(self, z: tf.Tensor, tape: tf.GradientTape,
                     conditional_input: tf.Tensor | None = None) -> tuple[Any, ...]:
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
    params = self._transform.check_parameters(out, z_transformed, self.name)
    with tape.stop_recording():
      x_transformed, _ = self._transform.forward(z_transformed, params)
      x = _checks.unflatten_batch(self._mask.merge(z4, conditioning, x_transformed),
                                  batch_shape)
    tape.watch(x_transformed)
    z_again, log_det = self._transform.inverse(x_transformed, params)
    outputs = [_checks.unflatten_batch(self._mask.merge(z4, conditioning, z_again), batch_shape),
               self._sum_log_det(z4, log_det, batch_shape)]

    def input_gradient(source_gradients: Sequence[tf.Tensor]) -> tf.Tensor:
      return _checks.unflatten_batch(self._mask.merge(z4, *source_gradients), batch_shape)

    return x, [conditioning, x_transformed], outputs, input_gradient

  def _augmented_inverse(self, x: tf.Tensor, conditional_input: TensorLike | None = None
                         ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    return self._couple(x, conditional_input, inverse=True)

  def _augmented_forward(self, z: tf.Tensor, conditional_input: TensorLike | None = None
                         ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    return self._couple(z, conditional_input, inverse=False)


class AffineCoupling(Coupling):
  """The affine coupling of Real NVP (or NICE's additive one) on images `[..., H, W, C]`.

  A `Coupling` with `AffineTransform` (`AdditiveTransform` if `additive`): the conditioner
  returns `(t, s)` from the conditioning units `b * x` (Dinh et al., 2017, Eq. 9):

  ```none
  inverse:  z = b * x + (1 - b) * (x * exp(s(b * x)) + t(b * x))
  forward:  x = b * z + (1 - b) * (z - t(b * z)) * exp(-s(b * z))
  inverse_log_det_jacobian(x) =  sum over the transformed units of s(b * x)
  forward_log_det_jacobian(z) = -sum over the transformed units of s(b * z)
  ```

  With `additive=True` the log-scale is zero (the additive coupling of NICE, Dinh et al.,
  2015): the map is volume preserving and both log-determinants are zero; the conditioner
  may then return the shift alone. Masks, conditions and caching are those of `Coupling`.

  #### Example

  ```python
  import keras, tensorflow_probability as tfp
  from tfp_realnvp import bijectors as rb

  def conditional_conditioner(h, conditional_input):  # c [N, K] with K = 4 here
    c = conditional_input[:, None, None, :]
    return 0.1 * h + c[..., :2], 0.05 * keras.ops.tanh(h + c[..., 2:])

  coupling = rb.AffineCoupling(conditional_conditioner, mask="channel", parity=0)
  dist = tfp.distributions.TransformedDistribution(
      tfp.distributions.Sample(tfp.distributions.Normal(0., 1.), [8, 8, 4]), coupling)
  c = keras.random.normal((16, 4))
  x = dist.sample(16, bijector_kwargs={"conditional_input": c})
  log_p = dist.log_prob(x, bijector_kwargs={"conditional_input": c})
  ```

  #### References

  [1] Laurent Dinh, Jascha Sohl-Dickstein and Samy Bengio. Density estimation using Real NVP.
      In International Conference on Learning Representations, 2017.
      https://arxiv.org/abs/1605.08803
  [2] Laurent Dinh, David Krueger and Yoshua Bengio. NICE: Non-linear Independent Components
      Estimation. ICLR workshop, 2015. https://arxiv.org/abs/1410.8516

  Args:
    conditioner: Keras 3 layer or callable mapping the conditioning input (rank 4) to
      `(shift, log_scale)`; for a conditional coupling it also takes a keyword argument
      `conditional_input`.
    mask: `"checkerboard"` (spatial) or `"channel"`.
    parity: 0 or 1, which half of the units is transformed.
    additive: if `True`, a volume-preserving NICE coupling (log-scale 0).
    event_shape: optional `(H, W, C)` that inputs must have.
    validate_args: if `True`, inputs are checked at run time to be finite.
    name: name of the bijector; defaults to `affine_coupling` / `additive_coupling`.
  """

  def __init__(self,
               conditioner: Callable[..., Any],
               mask: str = "checkerboard",
               parity: int = 0,
               additive: bool = False,
               event_shape: Sequence[int] | None = None,
               validate_args: bool = False,
               name: str | None = None) -> None:
    parameters = dict(locals())
    super().__init__(conditioner, "additive" if additive else "affine", mask, parity,
                     event_shape, validate_args, name, parameters=parameters)

  @property
  def additive(self) -> bool:
    """Whether the coupling is NICE's additive one."""
    return isinstance(self._transform, transforms_lib.AdditiveTransform)


class SplineCoupling(Coupling):
  """Rational-quadratic spline coupling (Neural Spline Flows) on images `[..., H, W, C]`.

  A `Coupling` with `SplineTransform(num_bins, bound)`: a monotone rational-quadratic spline
  `g` of `K = num_bins` bins on `[-B, B]`, the identity outside (Durkan et al., 2019):

  ```none
  inverse:  z = b * x + (1 - b) * g(x; b * x)
  forward:  x = b * z + (1 - b) * g^-1(z; b * z)
  inverse_log_det_jacobian(x) =  sum over the transformed units of log g'(x)
  forward_log_det_jacobian(z) = -sum over the transformed units of log g'(g^-1(z))
  ```

  The conditioner returns raw parameters `[N, h, w, c_out, 3K - 1]`
  (`spline_params_per_unit(K)`; the package's networks with `params_per_unit=3K - 1`), turned
  into bin widths, heights and knot slopes as `SplineTransform` says; zeros give the identity.

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

  Args:
    conditioner: Keras 3 layer or callable mapping the conditioning input (rank 4) to raw
      spline parameters `[N, h, w, c_out, 3 * num_bins - 1]`.
    mask: `"checkerboard"` (spatial) or `"channel"`.
    parity: 0 or 1, which half of the units is transformed.
    num_bins: number of bins `K` of the splines (>= 2).
    bound: `B > 0`: the splines map `[-B, B]` onto itself, the identity outside.
    event_shape: optional `(H, W, C)` that inputs must have.
    validate_args: if `True`, inputs are checked at run time to be finite.
    name: name of the bijector.

  Raises:
    InvalidValueError: `num_bins` not an integer >= 2, or a `bound` too small or not finite.
  """

  def __init__(self,
               conditioner: Callable[..., Any],
               mask: str = "checkerboard",
               parity: int = 0,
               num_bins: int = 8,
               bound: float = 3.0,
               event_shape: Sequence[int] | None = None,
               validate_args: bool = False,
               name: str = "spline_coupling") -> None:
    parameters = dict(locals())
    super().__init__(conditioner, transforms_lib.SplineTransform(num_bins, bound), mask, parity,
                     event_shape, validate_args, name, parameters=parameters)

  @property
  def num_bins(self) -> int:
    return cast(transforms_lib.SplineTransform, self._transform).num_bins

  @property
  def bound(self) -> float:
    return cast(transforms_lib.SplineTransform, self._transform).bound


def _default_name(transform: transforms_lib.CouplingTransform) -> str:
  """`affine_coupling`, `spline_coupling`, ... from the transform's class name."""
  stem = type(transform).__name__.removesuffix("Transform") or "custom"
  snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in stem).lstrip("_")
  return f"{snake}_coupling"


def _broadcasts_to(shape: tf.TensorShape, target: list[int]) -> bool:
  """Whether the static `shape` (known rank) broadcasts to the list `target`."""
  sizes = shape.as_list()
  return len(sizes) <= len(target) and all(
      size is None or size in (1, goal)
      for size, goal in zip(reversed(sizes), reversed(target), strict=False))
