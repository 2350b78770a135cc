"""Glow's learned prior of a factored-out half, as a coupling onto a standard-normal base."""

from __future__ import annotations

from typing import Any, Callable, Sequence

from tfp_realnvp.bijectors import coupling

__all__ = ["SplitPrior"]


class SplitPrior(coupling.Coupling):
  """Glow's split prior `z2 ~ N(mu(z1), sigma(z1))`, whitened: a channel affine coupling.

  At each split Glow factors out the first half `z2` of the channels (the units a `FactorOut`
  sends to the base) and models it by a Gaussian whose mean and standard deviation are
  computed from the half `z1` that continues through the flow. Whitening `z2` with that
  Gaussian leaves a standard-normal `eps`, so the factored-out latent keeps the flow's
  `tfd.Normal(0, 1)` base; the whitening is exactly a channel-mask `AffineCoupling`
  (`parity=0`: the first `C // 2` channels are transformed, conditioned on the others) with
  `log_scale = -log sigma(z1)` and `shift = -mu(z1) / sigma(z1)`:

  ```none
  inverse:  eps = (z2 - mu(z1)) / sigma(z1) = z2 * exp(s(z1)) + t(z1),   z1 unchanged
  forward:  z2 = (eps - t(z1)) * exp(-s(z1)) = mu(z1) + sigma(z1) * eps
  inverse_log_det_jacobian = sum s(z1) = -sum log sigma(z1)
  ```

  so that `log N(eps; 0, 1) + ildj = log N(z2; mu(z1), sigma(z1))`. As everywhere in this
  package, `forward` maps latent to data and `inverse` data to latent. The conditioner is
  Glow's zero-initialised convolution (`tfp_realnvp.networks.SplitPriorNetwork`), so a new
  split prior is the standard normal prior (the identity bijector). A conditional conditioner
  takes `conditional_input=c` like any coupling's.

  #### Example

  ```python
  network = tfp_realnvp.networks.SplitPriorNetwork(2)   # owned by your Keras model
  network.build((None, 8, 8, 2))
  prior = tfp_realnvp.bijectors.SplitPrior(network, event_shape=(8, 8, 4))
  step = tfb.Chain([tfp_realnvp.bijectors.FactorOut(next_level), prior])  # data -> latent
  ```

  #### References

  [1] Diederik P. Kingma and Prafulla Dhariwal. Glow: Generative Flow with Invertible 1x1
      Convolutions. In Neural Information Processing Systems, 2018, Sec. 3 and the code's
      `split2d`. https://arxiv.org/abs/1807.03039
  """

  def __init__(self, conditioner: Callable[..., Any], event_shape: Sequence[int] | None = None,
               validate_args: bool = False, name: str = "split_prior") -> None:
    """Builds a split prior.

    Args:
      conditioner: Keras 3 layer or callable mapping the continuing half `[N, h, w, C - C//2]`
        to `(shift, log_scale)` of the factored-out half `[N, h, w, C // 2]`; for a conditional
        flow it also takes `conditional_input` `[N, K]`.
      event_shape: optional `(H, W, C)` of the events before the split.
      validate_args: if `True`, inputs are checked at run time to be finite.
      name: name of the bijector.
    """
    parameters = dict(locals())
    super().__init__(conditioner, "affine", mask="channel", parity=0, event_shape=event_shape,
                     validate_args=validate_args, name=name, parameters=parameters)
