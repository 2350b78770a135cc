"""`training.averaged_weights`: the optimizer's moving averages in the model for a block."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfp_realnvp
from tfp_realnvp import training

from helpers import poison_a_coupling


def _model(**optimizer_settings):
  """A one-layer model whose SGD optimizer (learning rate 1) is built."""
  model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
  model.compile(optimizer=keras.optimizers.SGD(1.0, **optimizer_settings), loss="mse")
  model.optimizer.build(model.trainable_variables)
  return model


def _weights(model):
  return [v.numpy() for v in model.trainable_variables]


def _two_steps(model):
  """Two updates with gradients of ones: every weight goes down by 1, twice."""
  for _ in range(2):
    model.optimizer.apply([tf.ones_like(v) for v in model.trainable_variables],
                          model.trainable_variables)


def test_the_average_is_in_the_model_for_the_block_and_the_raw_weights_after():
  model = _model(use_ema=True, ema_momentum=0.5)
  _two_steps(model)
  raw = _weights(model)
  with training.averaged_weights(model) as averaged:
    assert averaged is model
    # The average is the first step's weights (raw + 1), then 0.5 of it and 0.5 of the second's.
    for inside, weights in zip(_weights(model), raw, strict=True):
      np.testing.assert_allclose(inside, weights + 0.5, rtol=1e-6)
  for after, weights in zip(_weights(model), raw, strict=True):
    np.testing.assert_array_equal(after, weights)
  with pytest.raises(RuntimeError, match="killed"):  # Swapped back on an error too.
    with training.averaged_weights(model):
      raise RuntimeError("killed")
  for after, weights in zip(_weights(model), raw, strict=True):
    np.testing.assert_array_equal(after, weights)


def test_without_an_average_nothing_changes():
  model = _model()
  _two_steps(model)
  raw = _weights(model)
  with training.averaged_weights(model):
    for inside, weights in zip(_weights(model), raw, strict=True):
      np.testing.assert_array_equal(inside, weights)


def test_an_epoch_whose_samples_overflow_gets_no_grid_and_a_warning(tmp_path):
  flow = tfp_realnvp.RealNVP((8, 8, 1), num_scales=1, num_filters=4, num_blocks=1)
  model = tfp_realnvp.FlowModel(flow)
  model.compile(optimizer=keras.optimizers.Adam())
  grid = training.SampleGrid(tmp_path, count=4, seed=0)
  grid.set_model(model)
  grid.on_epoch_end(0)
  assert (tmp_path / "epoch_001.png").is_file()
  poison_a_coupling(flow)
  with pytest.warns(RuntimeWarning, match="No sample grid for epoch 2: 4 of 4 samples"):
    grid.on_epoch_end(1)
  assert not (tmp_path / "epoch_002.png").exists()
