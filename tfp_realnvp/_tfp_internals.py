"""Every use of TensorFlow Probability internals by this package, in one module.

Written against TFP 0.25. Public TFP (`tfp.bijectors.Bijector`, `tfb.Chain`, ...) is imported
normally everywhere; what TFP does not publish (private modules, classes and method hooks) is
used here only, so that a TFP upgrade that moves them touches this file alone:

* `GreedyAttributesBijector`: TFP's bijector cache with attributes computed along with the
  transform (`cache_util.BijectorCacheWithGreedyAttrs` and the `_cache` hook);
* `RoutingChain`: TFP's chain that is not a composite tensor (`chain._Chain`, which may hold
  Keras layers) with the per-step hooks `_walk_forward` and `_walk_inverse`.

Both are `IdentityKeyed`: TFP's cache keys every stored result by its bijector, whose hash it
otherwise computes from the bijector's parameters, recursively, at every lookup.
"""

from __future__ import annotations

from typing import Any, Callable

import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.bijectors import chain as chain_lib
from tensorflow_probability.python.internal import cache_util

__all__ = ["GreedyAttributesBijector", "IdentityKeyed", "RoutingChain"]


class IdentityKeyed:
  """A bijector equal only to itself, hashed by identity.

  `tfp.bijectors.Bijector` hashes and compares bijectors by their parameters, and TFP's cache
  hashes the bijector at every lookup. The parameters of this package's bijectors hold Keras
  layers and other bijectors (a chain its steps, `FactorOut` the rest of the flow, `Scan` its
  step), so that hash walks the whole flow below the bijector each time: a Glow's traced
  training step spent seconds in it. Two such bijectors built from the same layers compute the
  same function, but sharing a cache between them is not worth that walk.
  """

  def __hash__(self) -> int:
    return id(self)

  def __eq__(self, other: object) -> bool:
    return self is other


class GreedyAttributesBijector(IdentityKeyed, tfp.bijectors.Bijector):
  """A bijector whose transforms also return attributes that TFP's cache keeps.

  Subclasses implement `_augmented_forward(z, **kwargs)` and `_augmented_inverse(x, **kwargs)`,
  each returning `(result, attributes)` with `attributes` a dict (or `None`). TFP's cache
  stores the attributes on the edge between the input and the result, where
  `_forward_attributes(z, **kwargs)` and `_inverse_attributes(x, **kwargs)` find them: a dict,
  empty when nothing is cached yet, that the caller may update.
  """

  _cache = cache_util.BijectorCacheWithGreedyAttrs(
      forward_name="_augmented_forward", inverse_name="_augmented_inverse")

  def _forward_attributes(self, z: tf.Tensor, **kwargs: Any) -> dict[str, Any]:
    return self._cache.forward_attributes(z, **kwargs)

  def _inverse_attributes(self, x: tf.Tensor, **kwargs: Any) -> dict[str, Any]:
    return self._cache.inverse_attributes(x, **kwargs)


class RoutingChain(IdentityKeyed, chain_lib._Chain):  # pylint: disable=protected-access
  """`tfb.Chain` that hands each bijector the keyword arguments `_route(bijector, kwargs)`.

  `tfb.Chain` routes keyword arguments by bijector name (`chain.forward(z, name={...})`);
  a subclass implements `_route(bijector, kwargs)` to choose them otherwise, for `forward`,
  `inverse` and both log-determinants. Unlike `tfb.Chain`, it is never a composite tensor, so
  its bijectors may hold Keras layers.
  """

  def _route(self, bijector: tfp.bijectors.Bijector, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments that `bijector` receives from the chain's `kwargs`."""
    raise NotImplementedError

  def routed(self, kwargs: dict[str, Any]
             ) -> list[tuple[tfp.bijectors.Bijector, dict[str, Any]]]:
    """`(bijector, its keyword arguments)` for every step, in the order `inverse` applies them."""
    return [(bijector, self._route(bijector, kwargs)) for bijector in self.bijectors]

  def _walk_forward(self, step_fn: Callable[..., tf.Tensor], x: tf.Tensor,
                    **kwargs: Any) -> tf.Tensor:
    for bijector in reversed(self.bijectors):
      x = step_fn(bijector, x, **self._route(bijector, kwargs))
    return x

  def _walk_inverse(self, step_fn: Callable[..., tf.Tensor], y: tf.Tensor,
                    **kwargs: Any) -> tf.Tensor:
    for bijector, routed_kwargs in self.routed(kwargs):
      y = step_fn(bijector, y, **routed_kwargs)
    return y
