"""`benchmarks/depth.py`'s tfp part: TFP's own Glow (`tfp_glow_worker.py`) against ours."""

import json
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "benchmarks"))
import depth  # pylint: disable=g-import-not-at-top,wrong-import-position


@pytest.mark.slow  # Four worker processes: about 60 s.
def test_the_tfp_part_times_both_glows_at_each_depth(tmp_path, capsys):
  depth.main(["--parts", "tfp", "--config", "mnist", "--depths", "1,2", "--num-filters", "4",
              "--batch-size", "4", "--rounds", "2", "--reps", "2", "--output", str(tmp_path)])
  rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
  timed = {(r["form"], r["depth"]): r for r in rows if r["part"] == "tfp"}
  assert set(timed) == {(form, k) for form in ("scan", "tfp") for k in (1, 2)}
  for row in timed.values():
    assert row["step"]["calls"] == 4 and row["startup"]["first_train_step_s"] > 0
    assert row["num_params"] > 0 and row["peak_rss_mb"] > 0
  table = capsys.readouterr().out
  assert "| steady training step (ms) |" in table and "ours / TFP, K=2" in table


def test_unknown_parts_are_refused():
  with pytest.raises(SystemExit, match="unknown parts"):
    depth.main(["--parts", "speed,tpf"])
