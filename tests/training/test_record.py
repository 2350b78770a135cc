"""`training.RunRecord`: the epochs and the best epoch of `metrics.json`, and the checks that an
interrupted run is the one that resumes it."""

import json

import pytest

from tfp_realnvp import training


def test_run_record_tracks_the_best_epoch():
  record = training.RunRecord(config={})
  assert record.add_epoch(1, {"val_bits_per_dim": 5.0, "loss": 1.0}, 1.0)
  record.best = {"epoch": 1, "val_bits_per_dim": 5.0}
  assert not record.add_epoch(2, {"val_bits_per_dim": 5.5}, 1.0)
  assert not record.add_epoch(3, {"val_bits_per_dim": float("nan")}, 1.0)
  assert record.history[2]["val_bits_per_dim"] is None
  metrics = record.as_json()
  assert metrics["best_epoch"] == 1 and metrics["status"] == "running"
  json.dumps(metrics, allow_nan=False)


def test_resuming_with_other_averaging_or_warm_up_is_refused(tmp_path):
  # Both change the optimizer's variables, which the backup holds (an average per weight; a
  # learning-rate variable, or a schedule without one).
  record = training.RunRecord(config={"ema": 0.0, "warmup_steps": 0, "clipnorm": None})
  for key, value in [("ema", 0.9), ("warmup_steps", 100)]:
    with pytest.raises(training.RunError, match=f"different {key}"):
      record.check_resumable({"config": {key: value}}, tmp_path)
  record.check_resumable({"config": {"clipnorm": 5.0}}, tmp_path)  # Clipping may change.
