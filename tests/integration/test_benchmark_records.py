"""The benchmarks' records of the machine and of start-up: the CPU line that tells a reader
which published rows apply, and the start-up times a speed worker reports."""

import io
import json
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "benchmarks"))
import _runlog  # pylint: disable=g-import-not-at-top,wrong-import-position
import _worker  # pylint: disable=g-import-not-at-top,wrong-import-position

_CPUINFO = """processor\t: 0
model name\t: {model}
flags\t\t: fpu sse2 avx2 {flags}

processor\t: 1
model name\t: {model}
flags\t\t: fpu sse2 avx2 {flags}
"""


@pytest.mark.parametrize("flags, amx, bf16", [
    ("avx512f avx512_bf16", "no", "yes"),
    ("avx512f avx512_bf16 amx_tile amx_bf16 amx_int8", "yes", "yes"),
    ("", "no", "no"),
])
def test_cpu_summary_names_amx_and_avx512_bf16(tmp_path, flags, amx, bf16):
  cpuinfo = tmp_path / "cpuinfo"
  cpuinfo.write_text(_CPUINFO.format(model="Some CPU 9000", flags=flags))
  model, features = _runlog.cpu_description(cpuinfo)
  assert model == "Some CPU 9000"
  assert features["avx512_bf16"] == (bf16 == "yes")
  line = _runlog.cpu_summary(cpuinfo)
  assert f"CPU: Some CPU 9000; AMX: {amx};" in line
  assert f"AVX-512 BF16: {bf16}" in line
  assert ("do not apply here" in line) == (amx == "no")


def test_cpu_summary_without_cpuinfo(tmp_path):
  assert _runlog.cpu_description(tmp_path / "missing") == (None, {})
  assert "features unknown" in _runlog.cpu_summary(tmp_path / "missing")


def test_speed_worker_reports_its_start_up(monkeypatch, capsys):
  """The first training step is timed alone, and the launch time comes from the driver."""
  calls = []
  ops = {"train_step": lambda: calls.append("train_step"),
         "log_prob": lambda: calls.append("log_prob")}
  monkeypatch.setenv(_worker.LAUNCHED_AT_VARIABLE, "0.0")
  monkeypatch.setattr(sys, "stdin", io.StringIO('{"op": "quit"}\n'))
  _worker.run("lib", ops, profile=None, mode="speed", memory_steps=0, ready=dict)
  ready = json.loads(capsys.readouterr().out.splitlines()[0])
  assert ready["ready"] and calls[0] == "train_step"
  assert calls.count("train_step") == 1 + _worker.WARMUP_CALLS
  startup = ready["startup"]
  assert startup["first_train_step_s"] >= 0
  assert startup["launch_to_built_s"] > 1e9  # Seconds since the epoch given as the launch.
  assert startup["launch_to_first_step_done_s"] == pytest.approx(
      startup["launch_to_built_s"] + startup["first_train_step_s"])
  monkeypatch.delenv(_worker.LAUNCHED_AT_VARIABLE)
  assert _worker.startup_times(5.0, 1.0)["launch_to_built_s"] is None


@pytest.mark.parametrize("limit", [0, 1, 7, 910, 4243])
@pytest.mark.parametrize("guess", [1, 500, 5000])
def test_memory_batch_search_brackets_the_largest_fitting_batch(limit, guess):
  import memory  # pylint: disable=g-import-not-at-top
  tried = []

  def fits(size):
    assert size >= 1
    tried.append(size)
    return size <= limit

  fitting, failing = memory.largest_fitting(fits, guess)
  assert fitting <= limit < failing
  assert failing - fitting <= max(1, 0.05 * fitting)
  assert len(tried) == len(set(tried)) <= 40  # Each size is trained once.
