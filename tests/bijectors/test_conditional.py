"""Conditions in the bijectors: a coupling hands its condition to its conditioner, and
`ConditionalChain` hands it to the bijectors that take it.

The conformance suite (`test_conformance.py`) checks conditional couplings and flows as every
bijector; conditional flows: tests/flows/test_conditional.py.
"""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import tfp_realnvp
from tfp_realnvp import bijectors as rb
from tfp_realnvp.bijectors import conditional

from helpers import fresh, normal, randomize

tfb = tfp.bijectors

K = 3  # Size of the condition vectors.


def test_coupling_hands_the_flattened_condition_to_its_conditioner():
  seen = []

  def conditioner(h, **kwargs):
    seen.append({name: tuple(value.shape) for name, value in kwargs.items()})
    return 0.1 * h, 0.05 * tf.tanh(h)

  coupling = rb.AffineCoupling(conditioner, mask="channel", event_shape=(4, 4, 2))
  z = normal((2, 3, 4, 4, 2), seed=14)
  coupling.forward(fresh(z))
  coupling.forward(fresh(z), conditional_input=normal([2, 3, K]))
  coupling.forward(fresh(z), conditional_input=normal([K]))
  coupling.forward(fresh(z), conditional_input=normal([3, K]))
  assert seen == [{}] + [{"conditional_input": (6, K)}] * 3
  with pytest.raises(ValueError, match=r"does not match the batch shape \[2, 3\]"):
    coupling.forward(fresh(z), conditional_input=normal([2, K]))
  with pytest.raises(ValueError, match=r"shape \[\.\.\., K\]"):
    coupling.forward(fresh(z), conditional_input=tf.constant(1.0))


@pytest.mark.parametrize("mask, width", [("checkerboard", 5), ("channel", 4)])
def test_a_feature_map_condition_reaches_the_conditioner_aligned_with_its_input(mask, width):
  seen = []

  def conditioner(h, conditional_input):
    seen.append((h, conditional_input))
    return 0.1 * h, 0.05 * tf.tanh(h)

  coupling = rb.AffineCoupling(conditioner, mask=mask, event_shape=(3, width, 2))
  z = normal((2, 3, 3, width, 2), seed=15)
  coupling.forward(fresh(z), conditional_input=z)  # The image as its own feature map.
  h, features = seen[-1]
  if mask == "checkerboard":  # Each slot: the features of its conditioning, then transformed pixel.
    assert features.shape == (6, 3, 3, 4)
    np.testing.assert_array_equal(features[..., :2], h)
    transformed = rb.CheckerboardMask(0).split(tf.reshape(z, [6, 3, width, 2]))[1]
    np.testing.assert_array_equal(features[..., 2:], transformed)
  else:  # The whole map, with the conditioning channels where the conditioner's input has them.
    assert features.shape == (6, 3, width, 2)
    np.testing.assert_array_equal(features[..., 1:], h)
  coupling.forward(fresh(z), conditional_input=normal([1, 1, 3, width, 5]))  # Broadcast.
  assert seen[-1][1].shape[0] == 6
  with pytest.raises(ValueError, match=r"feature map \[\.\.\., 3, " + str(width)):
    coupling.forward(fresh(z), conditional_input=normal([2, 3, 3, width + 1, 2]))
  with pytest.raises(ValueError, match="does not match the batch shape"):
    coupling.forward(fresh(z), conditional_input=normal([4, 3, 3, width, 2]))


def test_conditional_chain_passes_the_condition_only_to_bijectors_that_take_it():
  def shift_by_condition(h, conditional_input):
    return tf.zeros_like(h) + conditional_input[:, None, None, :], tf.zeros_like(h)

  coupling = rb.AffineCoupling(shift_by_condition, mask="channel", event_shape=(2, 2, 2))
  # tfb.Scale takes no keyword arguments: it would raise if the chain handed it the condition.
  chain = conditional.ConditionalChain([tfb.Scale(tf.constant(2.0, tf.float64)), coupling])
  assert conditional.takes_conditional_input(chain)
  assert not conditional.takes_conditional_input(tfb.Scale(2.0))
  z = tf.zeros([2, 2, 2, 2], tf.float64)
  c = tf.constant([[1.0], [-1.0]], tf.float64)
  x = chain.forward(z, conditional_input=c).numpy()
  # The coupling shifts the transformed channel by -c (forward), then the scale doubles it.
  np.testing.assert_allclose(x[:, 0, 0, :], [[-2.0, 0.0], [2.0, 0.0]])
  # Without keyword arguments it is tfb.Chain.
  flow = tfp_realnvp.RealNVP((8, 8, 1), num_scales=2, num_filters=4, num_blocks=1,
                             dtype="float64")
  randomize(flow, seed=1)
  assert isinstance(flow.bijector, conditional.ConditionalChain)
  plain = tfb.Chain(flow.bijector.bijectors)
  z = normal((2, 8, 8, 1), seed=15)
  np.testing.assert_array_equal(flow.bijector.forward(fresh(z)).numpy(),
                                plain.forward(fresh(z)).numpy())
