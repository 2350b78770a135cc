"""Base class for bijectors that compute their log-determinant along with the transform."""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from tfp_realnvp import _tfp_internals

__all__ = ["CachedLogDetBijector"]


class CachedLogDetBijector(_tfp_internals.GreedyAttributesBijector):
  """A bijector whose `forward`/`inverse` also return the log-determinant, kept in the cache.

  Subclasses implement `_augmented_forward(z)` and `_augmented_inverse(x)`, each returning the
  result and a dict `{"fldj": ..., "ildj": ...}` of the per-example (unreduced over extra event
  dims) log-determinants. A `log_prob` then runs the transform once instead of twice: TFP's
  cache stores the dict on the edge between the input and the output tensors.
  """

  @classmethod
  def _parameter_properties(cls, dtype: tf.DType | None) -> dict[str, Any]:
    return dict()

  def _forward(self, z: tf.Tensor, **kwargs: Any) -> tf.Tensor:
    return self._augmented_forward(z, **kwargs)[0]

  def _inverse(self, x: tf.Tensor, **kwargs: Any) -> tf.Tensor:
    return self._augmented_inverse(x, **kwargs)[0]

  def _forward_log_det_jacobian(self, z: tf.Tensor, **kwargs: Any) -> tf.Tensor:
    cached = self._forward_attributes(z, **kwargs)
    if "fldj" not in cached:
      cached.update(self._augmented_forward(z, **kwargs)[1])
    return cached["fldj"]

  def _inverse_log_det_jacobian(self, x: tf.Tensor, **kwargs: Any) -> tf.Tensor:
    cached = self._inverse_attributes(x, **kwargs)
    if "ildj" not in cached:
      cached.update(self._augmented_inverse(x, **kwargs)[1])
    return cached["ildj"]


def log_dets(ildj: tf.Tensor) -> dict[str, tf.Tensor]:
  """The attribute dict for an inverse log-determinant `ildj`."""
  return {"ildj": ildj, "fldj": -ildj}
