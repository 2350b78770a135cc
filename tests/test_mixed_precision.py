"""Mixed precision: networks compute in bfloat16, log-determinants and densities stay float32."""

import keras
import numpy as np
import pytest

import tfp_realnvp
from tfp_realnvp import data

from helpers import randomize


def model_with_dtype(dtype, coupling="affine"):
  keras.utils.set_random_seed(0)
  flow = tfp_realnvp.RealNVP((8, 8, 1), num_scales=2, num_filters=16, num_blocks=1,
                             batch_norm=True, coupling=coupling, dtype=dtype)
  return tfp_realnvp.FlowModel(flow)


@pytest.mark.parametrize("coupling", [
    "affine", pytest.param("spline", marks=pytest.mark.slow)])  # spline: about 55 s
def test_mixed_bfloat16_matches_float32_within_tolerance(coupling):
  full = model_with_dtype("float32", coupling)
  mixed = model_with_dtype("mixed_bfloat16", coupling)
  randomize(full.flow, seed=4, stddev=0.1)
  mixed.flow.set_weights(full.flow.get_weights())
  assert mixed.flow.conditioners[0].compute_dtype == "bfloat16"
  assert {v.dtype for v in mixed.trainable_variables} == {"float32"}

  x = next(iter(data.load_images("digits", batch_size=64, seed=0)))
  log_prob_full, log_prob_mixed = full.log_prob(x), mixed.log_prob(x)
  assert log_prob_mixed.dtype == "float32"
  # bfloat16 keeps 8 bits of mantissa: the densities agree to about a percent of the NLL.
  nll_full, nll_mixed = -np.mean(log_prob_full.numpy()), -np.mean(log_prob_mixed.numpy())
  assert abs(nll_mixed - nll_full) <= 0.02 * abs(nll_full) + 0.5, (nll_full, nll_mixed)

  mixed.compile(optimizer=keras.optimizers.Adam(1e-3))
  history = mixed.fit(data.load_images("digits", batch_size=64, seed=1), epochs=1, verbose=0,
                      steps_per_epoch=5)
  assert np.all(np.isfinite(history.history["loss"]))
  assert np.all(np.isfinite(mixed.sample(4, seed=1).numpy()))
