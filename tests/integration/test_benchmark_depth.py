"""`benchmarks/depth.py`'s peer parts: TFP's own Glow (`tfp_glow_worker.py`) and normflows' Glow
(`normflows_worker.py`) against ours."""

import json
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "benchmarks"))
import depth  # pylint: disable=g-import-not-at-top,wrong-import-position


TORCH_PYTHON = pathlib.Path(depth.parse_args([]).torch_python)


@pytest.mark.slow  # Four to six worker processes: 60-90 s.
@pytest.mark.parametrize("peers", [
    ["tfp"],
    pytest.param(["tfp", "normflows"], marks=pytest.mark.skipif(
        not TORCH_PYTHON.exists(), reason="needs the normflows environment (.bench-venv)")),
])
def test_the_peer_parts_time_each_glow_at_each_depth(tmp_path, capsys, peers):
  depth.main(["--parts", ",".join(peers), "--config", "mnist", "--depths", "1,2",
              "--num-filters", "4", "--batch-size", "4", "--rounds", "2", "--reps", "2",
              "--output", str(tmp_path)])
  rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
  timed = {(r["form"], r["depth"]): r for r in rows if r["part"] == "peers"}
  assert set(timed) == {(form, k) for form in ("scan", *peers) for k in (1, 2)}
  for row in timed.values():
    assert row["step"]["calls"] == 4 and row["startup"]["first_train_step_s"] > 0
    assert row["num_params"] > 0 and row["peak_rss_mb"] > 0
  table = capsys.readouterr().out
  assert "| steady training step (ms) |" in table
  for peer in peers:
    assert f"ours / {depth.PEERS[peer]}, K=2" in table


def test_the_normflows_part_needs_its_environment(tmp_path):
  with pytest.raises(SystemExit, match="no Python at"):
    depth.main(["--parts", "normflows", "--torch-python", str(tmp_path / "none"),
                "--output", str(tmp_path)])


def test_unknown_parts_are_refused():
  with pytest.raises(SystemExit, match="unknown parts"):
    depth.main(["--parts", "speed,tpf"])
