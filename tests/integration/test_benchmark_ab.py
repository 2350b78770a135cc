"""`benchmarks/ab.py`: our operations with this tree's package against a baseline checkout's."""

import json
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "benchmarks"))
import ab  # pylint: disable=g-import-not-at-top,wrong-import-position

_REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.slow  # Two worker processes: about 40 s.
def test_a_tiny_run_times_both_packages_interleaved(tmp_path, capsys):
  ab.main(["--baseline", str(_REPO), "--configs", "mnist", "--num-filters", "4",
           "--num-blocks", "1", "--num-scales", "1", "--batch-size", "4", "--ops",
           "train_step,log_prob", "--rounds", "2", "--reps", "2", "--output", str(tmp_path)])
  row = json.loads((tmp_path / "results.jsonl").read_text().splitlines()[-1])
  for form in ab.FORMS:
    assert row[form]["startup"]["first_train_step_s"] > 0
    assert row[form]["package"] == str(_REPO / "tfp_realnvp")  # PYTHONPATH's, not another.
    assert {op: times["calls"] for op, times in row[form]["ops"].items()} == {
        "train_step": 4, "log_prob": 4}
  assert row["ratios"]["log_prob"] == pytest.approx(
      row["this tree"]["ops"]["log_prob"]["median_ms"]
      / row["baseline"]["ops"]["log_prob"]["median_ms"])
  assert "| mnist | train_step |" in capsys.readouterr().out


def test_a_baseline_that_is_not_a_checkout_is_refused(tmp_path, capsys):
  with pytest.raises(SystemExit):
    ab.parse_args(["--baseline", str(tmp_path)])
  assert "is not a checkout's root" in capsys.readouterr().err


def test_unknown_operations_are_refused(capsys):
  with pytest.raises(SystemExit):
    ab.parse_args(["--baseline", str(_REPO), "--ops", "train_step,fit"])
  assert "unknown --ops ['fit']" in capsys.readouterr().err
