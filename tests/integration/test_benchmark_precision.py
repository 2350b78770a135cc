"""`benchmarks/precision_agreement.py`: a trained model's figures in both precisions."""

import argparse
import pathlib
import sys

import numpy as np
import pytest

import tfp_realnvp
from helpers import randomize

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "benchmarks"))
import precision_agreement  # pylint: disable=g-import-not-at-top,wrong-import-position


@pytest.mark.parametrize("trained_in", ["float32", "mixed_bfloat16"])
def test_both_precisions_of_a_saved_model(tmp_path, trained_in):
  flow = tfp_realnvp.RealNVP((8, 8, 1), num_scales=1, num_filters=4, num_blocks=1,
                             dtype=trained_in)
  dequantizer = tfp_realnvp.VariationalDequantizer((8, 8, 1), num_filters=4, num_blocks=1,
                                                   num_couplings=2, dtype=trained_in)
  model = tfp_realnvp.FlowModel(flow, dequantizer=dequantizer)
  pixels = np.random.default_rng(0).integers(0, 256, size=(12, 8, 8, 1), dtype=np.uint8)
  model.log_prob(pixels[:2].astype(np.float32) / 256)
  randomize(model, seed=1, stddev=0.1)  # A new flow is the identity, in either precision.
  path = tmp_path / "model.keras"
  model.save(path)
  args = argparse.Namespace(batch_size=8, seed=3)
  row = precision_agreement.measure(path, pixels, args)
  assert row["trained_in"] == trained_in and row["images"] == 12
  figures = row["bits_per_dim"]
  assert all(np.isfinite(v) and v > 0 for v in figures.values())
  # The same weights in the other precision: close, but bfloat16's rounding shows.
  assert 0 < row["difference_max_abs"] < 0.1
  assert row["difference_mean_abs"] <= row["difference_max_abs"]
