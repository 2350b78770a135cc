"""The last layer's outputs of a coupling network: an affine pair, or raw parameters per unit."""

from keras import ops

__all__ = ["head_channels", "output_shape", "raw_parameters"]


def head_channels(output_channels, params_per_unit):
  """Channels of the last convolution: 2 per unit (shift, log-scale), or `params_per_unit`."""
  return output_channels * (2 if params_per_unit is None else params_per_unit)


def raw_parameters(h, output_channels, params_per_unit):
  """The last convolution's output `[N, h, w, c * P]` as raw parameters `[N, h, w, c, P]`.

  What a `tfp_realnvp.bijectors.SplineCoupling` takes from its conditioner (`P = 3K - 1`).
  """
  return ops.reshape(h, (-1,) + tuple(h.shape[1:-1]) + (output_channels, params_per_unit))


def output_shape(input_shape, output_channels, params_per_unit):
  """A coupling network's `compute_output_shape`: the `(shift, log_scale)` or raw shapes."""
  shape = tuple(input_shape[:-1]) + (output_channels,)
  return shape + (params_per_unit,) if params_per_unit else (shape, shape)
