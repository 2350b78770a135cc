"""A chain that hands one conditional input to every bijector of a flow that takes it."""

from __future__ import annotations

from typing import Any

import tensorflow_probability as tfp

from tfp_realnvp import _tfp_internals

__all__ = ["ConditionalChain", "takes_conditional_input"]


def takes_conditional_input(bijector: tfp.bijectors.Bijector) -> bool:
  """Whether `bijector` takes the `conditional_input` keyword argument of this package.

  A bijector declares it with an attribute `takes_conditional_input` that is true
  (`AffineCoupling`, `ConditionalChain`, and a `FactorOut` whose inner bijector takes it).
  """
  return bool(getattr(bijector, "takes_conditional_input", False))


class ConditionalChain(_tfp_internals.RoutingChain):
  """`tfb.Chain` that passes its keyword arguments to every bijector that takes a condition.

  TFP's convention for conditional bijectors is a keyword argument, e.g.
  `bijector.forward(z, conditional_input=c)` or
  `dist.log_prob(x, bijector_kwargs={"conditional_input": c})`. `tfb.Chain` routes keyword
  arguments by bijector *name* (`chain.forward(z, coupling_3={"conditional_input": c})`), which
  would make a user name and address each of the ~20 couplings of a multi-scale flow. This
  chain takes the keyword arguments once and hands all of them to each of its bijectors for
  which `takes_conditional_input(bijector)` is true (couplings, nested conditional chains,
  factor-out steps); the others (squeeze, batch norm, logit, any TFP bijector) are called
  without them:

  ```none
  forward(z, **kwargs)  = b_1(b_2(... b_n(z, **kwargs_n) ...), **kwargs_1)
  kwargs_i = kwargs if takes_conditional_input(b_i) else {}
  ```

  and likewise for `inverse` and both log-determinants. Without keyword arguments it is
  exactly `tfb.Chain`. As everywhere in TFP, `forward` applies the list from its end, so the
  list reads in the order `inverse` (data -> latent) applies it, and TFP's bijector cache keys
  every result by its input and its keyword arguments, so a condition changes the cache entry.

  #### Example

  ```python
  flow = ConditionalChain([coupling_1, batch_norm, coupling_0])  # couplings on a condition
  x = flow.forward(z, conditional_input=c)  # c [..., K] reaches coupling_0 and coupling_1
  ```
  """

  takes_conditional_input = True

  def _route(self, bijector: tfp.bijectors.Bijector, kwargs: dict[str, Any]) -> dict[str, Any]:
    return kwargs if takes_conditional_input(bijector) else {}
