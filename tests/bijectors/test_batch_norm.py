"""`BatchNorm`: the batch-normalisation bijector of Real NVP and its `BatchNormStatistics`.

Its TFP contract is checked by the conformance suite (`test_conformance.py`); here: the
migration of `tfb.BatchNormalization` on vectors, and the layer it accepts.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import tfp_realnvp
from tfp_realnvp import bijectors as rb

from helpers import fresh, normal

tfb = tfp.bijectors


# The migration of tfb.BatchNormalization documented in the README.


def test_batch_norm_on_vectors_through_a_reshape():
  stats = tfp_realnvp.bijectors.BatchNormStatistics(dtype="float64")
  stats.build((None, 1, 1, 3))
  bijector = tfb.Chain([tfb.Reshape([3], [1, 1, 3]), tfp_realnvp.bijectors.BatchNorm(stats),
                        tfb.Reshape([1, 1, 3], [3])])
  y = normal((64, 3), seed=6) * 3.0 + 1.0
  stats(tf.reshape(y, [64, 1, 1, 3]), training=True)  # One moving-average update.
  x = bijector.inverse(fresh(y))
  np.testing.assert_allclose(bijector.forward(fresh(x)).numpy(), y.numpy(), atol=1e-10)
  ildj = bijector.inverse_log_det_jacobian(fresh(y), event_ndims=1).numpy()
  expected = -0.5 * np.sum(np.log(stats.moving_variance.numpy() + stats.epsilon))
  np.testing.assert_allclose(ildj, expected)
  assert np.all(np.abs(np.log(stats.moving_variance.numpy())) > 0.1)


def test_a_parameter_layer_of_another_class_is_refused():
  with pytest.raises(TypeError,
                     match="must be an instance of the Keras layer BatchNormStatistics, got Dense"):
    rb.BatchNorm(keras.layers.Dense(3))
