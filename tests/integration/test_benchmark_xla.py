"""`benchmarks/xla.py`: our training step with and without XLA, reported side by side."""

import json
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "benchmarks"))
import xla  # pylint: disable=g-import-not-at-top,wrong-import-position


@pytest.mark.slow  # Two worker processes, one compiling with XLA: about 60 s.
def test_a_tiny_run_reports_both_forms_and_their_ratio(tmp_path, capsys):
  xla.main(["--configs", "mnist", "--precisions", "float32", "--num-filters", "4",
            "--num-blocks", "1", "--num-scales", "1", "--batch-size", "4", "--threads", "1",
            "--rounds", "2", "--reps", "2", "--output", str(tmp_path)])
  row = json.loads((tmp_path / "results.jsonl").read_text().splitlines()[-1])
  for form in xla.FORMS:
    assert row[form]["first_train_step_s"] > 0 and row[form]["step"]["calls"] == 4
  assert row["step_ratio"] == pytest.approx(
      row["xla"]["step"]["median_ms"] / row["without"]["step"]["median_ms"])
  assert (row["break_even_steps"] is None) == (row["step_ratio"] >= 1)
  table = capsys.readouterr().out
  assert "| mnist | float32 |" in table and "XLA / without" in table
