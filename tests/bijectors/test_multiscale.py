"""The multi-scale architecture: `scale_shapes`, `multiscale_real_nvp` and its latent layout.

The TFP contract of whole multi-scale flows is checked by the conformance suite
(`test_conformance.py`, through the `RealNVP` and `Glow` cases).
"""

import numpy as np
import pytest
import tensorflow as tf

import tfp_realnvp
from tfp_realnvp import bijectors as rb

from helpers import normal


def test_odd_spatial_size_is_rejected_with_the_size():
  with pytest.raises(ValueError, match="height 7"):
    tfp_realnvp.RealNVP((28, 28, 1), num_scales=4)
  with pytest.raises(ValueError, match="height 7"):
    rb.scale_shapes((28, 28, 1), 4)


def test_every_scale_but_the_last_squeezes_and_keeps_half_of_the_channels():
  assert rb.scale_shapes((16, 16, 3), 3) == [(16, 16, 3), (8, 8, 6), (4, 4, 12)]
  assert rb.scale_shapes((16, 16, 3), 1) == [(16, 16, 3)]
  # Glow's levels all squeeze, so one level fewer fits.
  assert rb.scale_shapes((8, 8, 1), 2, squeeze_last=True) == [(8, 8, 1), (4, 4, 2)]
  with pytest.raises(ValueError, match=r"supports at most 2 scale\(s\): every scale squeezes"):
    rb.scale_shapes((12, 12, 1), 3, squeeze_last=True)
  with pytest.raises(ValueError, match="num_scales"):
    rb.scale_shapes((8, 8, 1), 0)


def shift_conditioners(shifted_scale, calls):
  """`make_conditioner` of conditioners that shift by 1 in scale `shifted_scale`, else by 0."""
  def make_conditioner(input_shape, output_channels, name):
    calls.append((name, input_shape, output_channels))
    shift = 1.0 if f"scale{shifted_scale}_" in name else 0.0

    def conditioner(h):
      zeros = tf.zeros(tf.concat([tf.shape(h)[:-1], [output_channels]], 0), h.dtype)
      return zeros + shift, zeros
    return conditioner
  return make_conditioner


def test_couplings_of_each_scale_and_the_shapes_their_conditioners_see():
  calls = []
  rb.multiscale_real_nvp((16, 16, 3), 2, shift_conditioners(None, calls))
  # Scale 0: 3 checkerboard couplings on [16, 16, 3] (half-width packed), 3 channel couplings
  # on the squeezed [8, 8, 12]; scale 1: 4 checkerboard couplings on the kept [8, 8, 6].
  assert [shape for _, shape, _ in calls] == (
      [(16, 8, 3)] * 3 + [(8, 8, 6)] * 3 + [(8, 4, 6)] * 4)
  assert [channels for _, _, channels in calls] == [3] * 3 + [6] * 3 + [6] * 4
  assert len({name for name, _, _ in calls}) == 10


def test_the_units_a_scale_factors_out_are_the_first_half_of_the_squeezed_latent():
  # Only the second scale moves its units: squeezing the latent once, the first 2C channels
  # (factored out by the first scale) are those of the squeezed data, the last 2C are not.
  flow = rb.multiscale_real_nvp((8, 8, 1), 2, shift_conditioners(1, []))
  x = normal((2, 8, 8, 1), seed=1)
  squeezed_data = rb.Squeeze((8, 8, 1)).forward(x).numpy()
  squeezed_latent = rb.Squeeze((8, 8, 1)).forward(flow.inverse(x)).numpy()
  assert squeezed_latent.shape == (2, 4, 4, 4)
  np.testing.assert_array_equal(squeezed_latent[..., :2], squeezed_data[..., :2])
  assert np.min(np.abs(squeezed_latent[..., 2:] - squeezed_data[..., 2:])) > 0.5
