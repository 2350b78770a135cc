"""`FlowLayer`: the base of the Keras 3 layers that own a bijector's networks."""

import tensorflow as tf
import tensorflow_probability as tfp

import tfp_realnvp


def test_output_shape_is_the_latent_shape_for_any_flow_layer():
  flow = tfp_realnvp.RealNVP((8, 8, 1), num_scales=2, num_filters=4, num_blocks=1)
  assert flow.compute_output_shape((3, 5, 8, 8, 1)) == (3, 5, 8, 8, 1)

  class Flatten(tfp_realnvp.FlowLayer):  # Latent vectors [64] for [8, 8, 1] data.
    def __init__(self):
      super().__init__(event_shape=(64,))
      self._set_bijector(tfp.bijectors.Reshape([8, 8, 1], [64]))

  layer = Flatten()
  assert layer.compute_output_shape((None, 8, 8, 1)) == (None, 64)
  assert layer(tf.zeros([2, 8, 8, 1])).shape == (2, 64)
