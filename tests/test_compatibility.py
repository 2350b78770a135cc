"""Files written by tfp_realnvp 0.1.0 load in this version and give the same densities.

The fixtures were written by `tests/fixtures/make_fixtures_0_1_0.py` at version 0.1.0.
"""

import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfp_realnvp

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def io():
  with np.load(FIXTURES / "io_0.1.0.npz") as arrays:
    return dict(arrays)


@pytest.mark.parametrize("name", ["realnvp", "glow", "dequantized"])
def test_keras_file_of_0_1_0_gives_the_same_log_prob(io, name):
  model = keras.models.load_model(FIXTURES / f"{name}_0.1.0.keras")
  assert isinstance(model, tfp_realnvp.FlowModel)
  if name == "glow":  # Saved with a layer per step, before scanned levels existed.
    assert model.flow.scan is False
  condition = io.get(f"{name}_condition")
  log_prob = model.log_prob(io[f"{name}_x"], condition).numpy()
  np.testing.assert_allclose(log_prob, io[f"{name}_log_prob"], rtol=1e-5, atol=1e-4)
  if name == "dequantized":
    bound = model.log_prob_bound(io["dequantized_pixels"], num_samples=2, seed=7).numpy()
    np.testing.assert_allclose(bound, io["dequantized_bound"], rtol=1e-5, atol=1e-4)


def test_saved_model_of_0_1_0_gives_the_same_log_prob(io):
  served = tf.saved_model.load(str(FIXTURES / "exported_0.1.0"))
  log_prob = served.signatures["log_prob"](x=tf.constant(io["exported_x"]))["log_prob"]
  np.testing.assert_allclose(log_prob.numpy(), io["exported_log_prob"], rtol=1e-5, atol=1e-4)
