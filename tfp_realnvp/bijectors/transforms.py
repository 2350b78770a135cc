"""Coupling transforms: the elementwise maps of a coupling's units, and their registry.

A `CouplingTransform` is the extension point for new kinds of coupling: one class that says
how many numbers the conditioner gives per unit and how they map the units. Registered in
`COUPLING_TRANSFORMS` (in code, or by a plugin's entry point), a transform is found by name
by `Coupling`, `RealNVP`, `Glow`, the presets and `tfp-realnvp train --coupling`.
"""

from __future__ import annotations

import abc
import inspect
import math
from typing import Any, Sequence

import keras
import tensorflow as tf

from tfp_realnvp import _registry
from tfp_realnvp import errors
from tfp_realnvp.bijectors import _spline

__all__ = ["COUPLING_TRANSFORMS", "AdditiveTransform", "AffineTransform", "CouplingTransform",
           "SplineTransform", "make_transform", "spline_params_per_unit"]

Params = Sequence[tf.Tensor]

COUPLING_TRANSFORMS: _registry.Registry[type[CouplingTransform]] = _registry.Registry(
    "coupling transform", "tfp_realnvp.coupling_transforms")
"""The coupling transforms by name: `"affine"`, `"additive"`, `"spline"` and any registered."""


class CouplingTransform(abc.ABC):
  """The elementwise map of a coupling's transformed units, parameterised by its conditioner.

  A coupling (`tfp_realnvp.bijectors.Coupling`) splits the units of an image with a mask into
  conditioning units `x_a`, which pass unchanged, and transformed units `x_b`, which a
  transform maps one by one with parameters `theta` computed from `x_a` (and the condition, if
  any) by the conditioner:

  ```none
  inverse (data -> latent):   z_b = h(x_b; theta),      theta = parameters(conditioner(x_a))
  forward (latent -> data):   x_b = h^-1(z_b; theta)
  inverse_log_det_jacobian =  sum over the transformed units of log |h'(x_b; theta)|
  ```

  Implementing one (a subclass, registered with `COUPLING_TRANSFORMS.register(name)`):

  1. `params_per_unit`: the conditioner's outputs per transformed unit, `P`. The conditioner
     then returns one tensor `[N, h, w, c, P]` (the package's networks do when built with
     `params_per_unit=P`), and zeros should give the identity map, so that a coupling whose
     network's last layer starts at zero starts as the identity. `None` means the pair
     `(shift, log_scale)` of the package's networks, as for `AffineTransform`.
  2. `parameters(raw)`: the parameters from the raw outputs `[N, h, w, c, P]`, already
     checked and cast to the units' dtype (override `check_parameters` for other outputs).
  3. `inverse(x, params)` and `forward(z, params)`: the map and its inverse elementwise, each
     returning `(result, log|dz/dx|)` with the log-derivative evaluated at the data side `x`
     (`None` for a volume-preserving map, with `is_constant_jacobian = True`).
  4. `get_config()`: the constructor arguments, so that flows using the transform save.

  The conformance test of the package runs every registered transform through the bijector
  contract (inverse of forward, log-determinant against the autodiff Jacobian in float64).
  """

  params_per_unit: int | None = None
  is_constant_jacobian: bool = False

  def check_parameters(self, out: Any, units: tf.Tensor, owner: str) -> Params:
    """Checks the conditioner's output `out` for the transformed `units` `[N, h, w, c]`.

    Returns the parameters in the units' dtype. The default takes raw parameters
    `[N, h, w, c, params_per_unit]` and hands them to `parameters`.

    Raises:
      InvalidTypeError: `out` is not one tensor.
      InvalidValueError: `out` has the wrong shape.
    """
    expected = tuple(units.shape[1:]) + (self.params_per_unit,)
    shape_text = f"[N, {', '.join(map(str, expected))}]"
    if not tf.is_tensor(out) and not hasattr(out, "shape"):
      raise errors.InvalidTypeError(
          f"{owner}: the conditioner must return one tensor of raw parameters {shape_text}, got "
          f"{type(out).__name__}. The package's networks return it when built with "
          f"params_per_unit={self.params_per_unit}.")
    if tuple(out.shape[1:]) != expected:
      raise errors.InvalidValueError(
          f"{owner}: the conditioner returned raw parameters of shape {out.shape}; "
          f"{type(self).__name__} needs {shape_text} ({self.params_per_unit} per transformed "
          f"unit).")
    return self.parameters(tf.cast(out, units.dtype))

  def parameters(self, raw: tf.Tensor) -> Params:
    """The parameters of the map from raw conditioner outputs `[N, h, w, c, P]`."""
    raise NotImplementedError(f"{type(self).__name__} must implement parameters(raw) or "
                              "check_parameters(out, units, owner).")

  @abc.abstractmethod
  def inverse(self, x: tf.Tensor, params: Params) -> tuple[tf.Tensor, tf.Tensor | None]:
    """`(z, log|dz/dx|)` elementwise: the data -> latent map of the units `x`."""

  @abc.abstractmethod
  def forward(self, z: tf.Tensor, params: Params) -> tuple[tf.Tensor, tf.Tensor | None]:
    """`(x, log|dz/dx| at x)` elementwise: the latent -> data map of the units `z`."""

  def get_config(self) -> dict[str, Any]:
    """The constructor arguments of the transform."""
    return {}

  @classmethod
  def from_config(cls, config: dict[str, Any]) -> CouplingTransform:
    return cls(**config)

  def __repr__(self) -> str:
    arguments = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
    return f"{type(self).__name__}({arguments})"

  def __eq__(self, other: object) -> bool:
    return type(other) is type(self) and other.get_config() == self.get_config()

  def __hash__(self) -> int:
    return hash((type(self), tuple(sorted(self.get_config().items()))))


def _shift_and_log_scale(out: Any, units: tf.Tensor, owner: str, pair: bool) -> Params:
  """The conditioner's `(shift, log_scale)` (or shift alone), checked and cast."""
  if not pair:
    params = [out[0] if isinstance(out, (tuple, list)) else out]
  elif isinstance(out, (tuple, list)) and len(out) == 2:
    params = list(out)
  else:
    raise errors.InvalidTypeError(
        f"{owner}: the conditioner must return a pair (shift, log_scale), got "
        f"{type(out).__name__}.")
  for p in params:
    if p.shape[1:] != units.shape[1:]:
      raise errors.InvalidValueError(
          f"{owner}: the conditioner returned parameters of shape {p.shape}; the "
          f"transformed units have shape {units.shape}.")
  return [tf.cast(p, units.dtype) for p in params]


@keras.saving.register_keras_serializable(package="tfp_realnvp")
@COUPLING_TRANSFORMS.register("affine")
class AffineTransform(CouplingTransform):
  """Real NVP's affine map, `z = x * exp(s) + t`, from the conditioner's `(t, s)` pair.

  ```none
  inverse:  z = x * exp(s) + t          log|dz/dx| = s
  forward:  x = (z - t) * exp(-s)
  ```

  The conditioner returns the pair `(shift, log_scale)` (the package's networks bound the
  log-scale as `scale * tanh(h)` and start at zero, the identity).

  #### References

  [1] Laurent Dinh, Jascha Sohl-Dickstein and Samy Bengio. Density estimation using Real NVP.
      In International Conference on Learning Representations, 2017.
      https://arxiv.org/abs/1605.08803
  """

  def check_parameters(self, out: Any, units: tf.Tensor, owner: str) -> Params:
    return _shift_and_log_scale(out, units, owner, pair=True)

  def inverse(self, x: tf.Tensor, params: Params) -> tuple[tf.Tensor, tf.Tensor]:
    shift, log_scale = params
    return x * tf.exp(log_scale) + shift, log_scale

  def forward(self, z: tf.Tensor, params: Params) -> tuple[tf.Tensor, tf.Tensor]:
    shift, log_scale = params
    return (z - shift) * tf.exp(-log_scale), log_scale


@keras.saving.register_keras_serializable(package="tfp_realnvp")
@COUPLING_TRANSFORMS.register("additive")
class AdditiveTransform(CouplingTransform):
  """NICE's additive map, `z = x + t`: volume preserving, both log-determinants zero.

  ```none
  inverse:  z = x + t          log|dz/dx| = 0
  forward:  x = z - t
  ```

  The conditioner returns the shift `t`, or a pair whose second item is ignored (the
  package's networks return `(shift, log_scale)`).

  #### References

  [1] Laurent Dinh, David Krueger and Yoshua Bengio. NICE: Non-linear Independent Components
      Estimation. ICLR workshop, 2015. https://arxiv.org/abs/1410.8516
  """

  is_constant_jacobian = True

  def check_parameters(self, out: Any, units: tf.Tensor, owner: str) -> Params:
    return _shift_and_log_scale(out, units, owner, pair=False)

  def inverse(self, x: tf.Tensor, params: Params) -> tuple[tf.Tensor, None]:
    return x + params[0], None

  def forward(self, z: tf.Tensor, params: Params) -> tuple[tf.Tensor, None]:
    return z - params[0], None


# Smallest bin width and height, and knot slope, of a spline: a bin or a slope the conditioner
# drives towards zero would make the inverse ill-conditioned (Durkan et al. use 1e-3 too).
MIN_BIN_SIZE = 1e-3
MIN_SLOPE = 1e-3
# softplus(0 + SLOPE_OFFSET) + MIN_SLOPE = 1: raw slopes 0 give slope 1 (with equal bins, the
# identity).
SLOPE_OFFSET = math.log(math.expm1(1.0 - MIN_SLOPE))


def _num_bins(num_bins: int) -> int:
  if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 2:
    raise errors.InvalidValueError(
        f"num_bins must be an integer >= 2 (a single bin with slopes 1 at both ends is the "
        f"identity), got {num_bins!r}.")
  return num_bins


def spline_params_per_unit(num_bins: int) -> int:
  """The conditioner outputs per transformed unit of a spline of `num_bins` bins: `3K - 1`.

  `K` widths, `K` heights and the `K - 1` slopes at the interior knots.
  """
  return 3 * _num_bins(num_bins) - 1


@keras.saving.register_keras_serializable(package="tfp_realnvp")
@COUPLING_TRANSFORMS.register("spline")
class SplineTransform(CouplingTransform):
  """A monotone rational-quadratic spline (Neural Spline Flows), the identity outside `[-B, B]`.

  `K = num_bins` bins on `[-B, B]` (`B = bound`), the spline of TFP's
  `tfb.RationalQuadraticSpline` evaluated with a one-hot choice of bin (dense operations with
  static shapes). For every unit the conditioner gives `3K - 1` raw numbers `(w, h, d)`:

  ```none
  bin widths   = MIN_BIN_SIZE + (2B - K * MIN_BIN_SIZE) * softmax(w)      K values, sum 2B
  bin heights  = MIN_BIN_SIZE + (2B - K * MIN_BIN_SIZE) * softmax(h)      K values, sum 2B
  knot slopes  = MIN_SLOPE + softplus(d + log(expm1(1 - MIN_SLOPE)))      K - 1 interior knots
  inverse:  z = g(x)              log|dz/dx| = log g'(x)
  forward:  x = g^-1(z)
  ```

  The slopes at `-B` and `B` are 1, so the map is continuously differentiable there, and raw
  parameters 0 give equal bins and slopes 1: exactly the identity. `g'` is 1 outside
  `[-B, B]`. The default `B = 3` covers the logit-space data of `FlowModel`
  (`|logit(0.05 + 0.9 x)| <= 2.95`) and most of a unit-variance activation.

  Args:
    num_bins: number of bins `K` (>= 2).
    bound: `B > 0`: the spline maps `[-B, B]` onto itself.

  Raises:
    InvalidValueError: `num_bins` not an integer >= 2, or `bound` not a finite number large
      enough for `num_bins` bins of the minimal size.

  #### References

  [1] Conor Durkan, Artur Bekasov, Iain Murray and George Papamakarios. Neural Spline Flows.
      In Neural Information Processing Systems, 2019. https://arxiv.org/abs/1906.04032
  """

  def __init__(self, num_bins: int = 8, bound: float = 3.0) -> None:
    self.num_bins = _num_bins(num_bins)
    if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not (
        math.isfinite(bound) and 2 * bound > self.num_bins * MIN_BIN_SIZE):
      raise errors.InvalidValueError(
          f"bound must be a finite number > num_bins * {MIN_BIN_SIZE} / 2 (the splines live "
          f"on [-bound, bound]), got {bound!r}.")
    self.bound = float(bound)
    self.params_per_unit = spline_params_per_unit(self.num_bins)

  def parameters(self, raw: tf.Tensor) -> Params:
    k = self.num_bins
    scale = 2 * self.bound - k * MIN_BIN_SIZE
    # One split rather than three slices: its gradient is one concatenation.
    raw_widths, raw_heights, raw_slopes = tf.split(raw, [k, k, k - 1], axis=-1)
    widths = MIN_BIN_SIZE + scale * tf.nn.softmax(raw_widths)
    heights = MIN_BIN_SIZE + scale * tf.nn.softmax(raw_heights)
    slopes = MIN_SLOPE + tf.nn.softplus(raw_slopes + SLOPE_OFFSET)
    return widths, heights, slopes

  def inverse(self, x: tf.Tensor, params: Params) -> tuple[tf.Tensor, tf.Tensor]:
    # The data -> latent map (the bijector's inverse) is the spline itself.
    widths, heights, slopes = params
    return _spline.rational_quadratic(x, widths, heights, slopes, self.bound, inverse=False)

  def forward(self, z: tf.Tensor, params: Params) -> tuple[tf.Tensor, tf.Tensor]:
    widths, heights, slopes = params
    return _spline.rational_quadratic(z, widths, heights, slopes, self.bound, inverse=True)

  def get_config(self) -> dict[str, Any]:
    return {"num_bins": self.num_bins, "bound": self.bound}


def make_transform(transform: str | CouplingTransform | dict[str, Any],
                   **options: Any) -> CouplingTransform:
  """A `CouplingTransform` from a registered name, an instance or its Keras serialization.

  A name is looked up in `COUPLING_TRANSFORMS` and its class built with those of `options`
  that its constructor takes (e.g. `num_bins` and `bound` for `"spline"`); the others are
  ignored, so a flow can pass all its transform options whatever the transform.

  Raises:
    InvalidValueError: an unknown name (the message lists the registered ones), or bad
      options for the transform.
    InvalidTypeError: anything else.
  """
  if isinstance(transform, dict):
    transform = keras.saving.deserialize_keras_object(transform)
  if isinstance(transform, CouplingTransform):
    return transform
  if not isinstance(transform, str):
    raise errors.InvalidTypeError(
        f"A coupling transform is a registered name ({', '.join(COUPLING_TRANSFORMS)}) or a "
        f"tfp_realnvp.bijectors.CouplingTransform, got {type(transform).__name__}.")
  cls = COUPLING_TRANSFORMS.lookup(transform)
  accepted = inspect.signature(cls).parameters
  return cls(**{key: value for key, value in options.items() if key in accepted})
