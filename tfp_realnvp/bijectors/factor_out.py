"""Multi-scale factor-out: half of the channels leave the flow, the other half go on."""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tensorflow_probability as tfp

from tfp_realnvp import errors
from tfp_realnvp.bijectors import _checks
from tfp_realnvp.bijectors import _cached_log_det
from tfp_realnvp.bijectors import conditional

__all__ = ["FactorOut"]


class FactorOut(_cached_log_det.CachedLogDetBijector):
  """Passes the first half of the channels through and applies `bijector` to the rest.

  This is the factor-out step of the multi-scale architecture of Real NVP (Dinh et al., 2017,
  Sec. 3.6): at each scale, half of the units are "factored out", i.e. modelled directly by
  the Gaussian base distribution, and the flow goes on with the other half only. Keeping the
  factored-out units in place (rather than returning a list of tensors) makes the whole
  multi-scale flow map `[H, W, C]` to `[H, W, C]`, so its base is a plain
  `tfd.Sample(tfd.Normal(0., 1.), [H, W, C])` and it composes with any TFP bijector.

  For events `[..., H, W, C]` with `k = C // 2` (`bijector` must preserve the shape
  `[H, W, C - k]`):

  ```none
  forward:  x = concat([z[..., :k], bijector.forward(z[..., k:])], axis=-1)
  inverse:  z = concat([x[..., :k], bijector.inverse(x[..., k:])], axis=-1)
  forward_log_det_jacobian(z) = bijector.forward_log_det_jacobian(z[..., k:], event_ndims=3)
  inverse_log_det_jacobian(x) = bijector.inverse_log_det_jacobian(x[..., k:], event_ndims=3)
  ```

  As everywhere in this package, `forward` maps latent to data and `inverse` data to latent.

  Keyword arguments (e.g. `conditional_input=c` of a conditional flow) go to `bijector`
  unchanged; the factored-out half does not depend on them. The step takes a condition
  (`takes_conditional_input`, see `tfp_realnvp.bijectors.conditional.ConditionalChain`) when
  `bijector` does.

  #### Example

  ```python
  inner = tfp_realnvp.bijectors.AffineCoupling(conditioner, mask="checkerboard")
  step = tfp_realnvp.bijectors.FactorOut(inner)  # events [8, 8, 4]: inner sees [8, 8, 2]
  ```

  #### References

  [1] Laurent Dinh, Jascha Sohl-Dickstein and Samy Bengio. Density estimation using Real NVP.
      In International Conference on Learning Representations, 2017, Sec. 3.6.
      https://arxiv.org/abs/1605.08803
  """

  def __init__(self, bijector: tfp.bijectors.Bijector, validate_args: bool = False,
               name: str = "factor_out") -> None:
    """Builds a factor-out step.

    Args:
      bijector: shape-preserving bijector on events `[H, W, C - C // 2]` (the kept channels).
      validate_args: if `True`, inputs are checked at run time to be finite.
      name: name of the bijector.
    """
    parameters = dict(locals())
    with tf.name_scope(name) as name:
      self._bijector = bijector
      super().__init__(
          forward_min_event_ndims=_checks.EVENT_NDIMS,
          is_constant_jacobian=bijector.is_constant_jacobian,
          validate_args=validate_args,
          parameters=parameters,
          name=name)

  @property
  def bijector(self) -> tfp.bijectors.Bijector:
    return self._bijector

  @property
  def takes_conditional_input(self) -> bool:
    return conditional.takes_conditional_input(self._bijector)

  def _split(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    x = _checks.check_image_event(x, self.name, validate_args=self.validate_args)
    channels = x.shape[-1]
    if channels < 2:
      raise errors.InvalidValueError(
          f"{self.name}: factoring out needs at least 2 channels, got {channels}.")
    return x[..., :channels // 2], x[..., channels // 2:]

  def _augmented_forward(self, z: tf.Tensor, **kwargs: Any
                         ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    factored, kept = self._split(z)
    x = tf.concat([factored, self._bijector.forward(kept, **kwargs)], axis=-1)
    fldj = self._bijector.forward_log_det_jacobian(kept, event_ndims=_checks.EVENT_NDIMS,
                                                   **kwargs)
    return x, _cached_log_det.log_dets(-fldj)

  def _augmented_inverse(self, x: tf.Tensor, **kwargs: Any
                         ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    factored, kept = self._split(x)
    z = tf.concat([factored, self._bijector.inverse(kept, **kwargs)], axis=-1)
    ildj = self._bijector.inverse_log_det_jacobian(kept, event_ndims=_checks.EVENT_NDIMS,
                                                   **kwargs)
    return z, _cached_log_det.log_dets(ildj)
