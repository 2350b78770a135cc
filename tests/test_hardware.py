"""`tfp_realnvp.hardware`: the precision and XLA a run chooses for its devices, and `train`'s
automatic choices (named in the banner and the record; a resumed run keeps its precision)."""

import json

import keras
import pytest
import tensorflow as tf

from tfp_realnvp import hardware
from tfp_realnvp import training

from helpers import Interrupted, stop_before_finish

_CPUINFO = "processor\t: {index}\nmodel name\t: Some CPU\nflags\t\t: fpu sse2 avx2 {extra}\n\n"


def cpuinfo(tmp_path, extra):
  path = tmp_path / "cpuinfo"
  path.write_text("".join(_CPUINFO.format(index=i, extra=extra) for i in range(2)))
  return path


@pytest.mark.parametrize("extra, precision, named", [
    ("avx512f avx512_bf16", "bfloat16", "AVX-512 BF16"),
    ("amx_tile amx_bf16 avx512_bf16", "bfloat16", "AMX and AVX-512 BF16"),
    ("avx512f", "float32", "neither AMX nor AVX-512 BF16"),
])
def test_a_cpu_gets_bfloat16_where_it_computes_it_natively(tmp_path, extra, precision, named):
  choice = hardware.choose_precision(cpuinfo=cpuinfo(tmp_path, extra))
  assert choice.value == choice.precision == precision and named in choice.reason
  assert choice.policy == ("mixed_bfloat16" if precision == "bfloat16" else "float32")
  assert hardware.cpu_flags(cpuinfo(tmp_path, extra)) >= set(extra.split())


def test_unreadable_cpu_flags_mean_float32(tmp_path):
  assert hardware.cpu_flags(tmp_path / "missing") == frozenset()
  assert hardware.choose_precision(cpuinfo=tmp_path / "missing").value == "float32"


@pytest.mark.parametrize("capabilities, precision", [
    ([(8, 0)], "bfloat16"), ([(8, 6), (9, 0)], "bfloat16"), ([(7, 5)], "float32"),
    ([(8, 0), (7, 0)], "float32"), ([None], "float32")])
def test_gpus_get_bfloat16_from_compute_capability_8_0(monkeypatch, capabilities, precision):
  monkeypatch.setattr(hardware, "_device_kind", lambda strategy: "GPU")
  monkeypatch.setattr(hardware, "_gpu_capabilities",
                      lambda: [(f"GPU {i}", c) for i, c in enumerate(capabilities)])
  choice = hardware.choose_precision()
  assert choice.value == precision
  assert "compute capability" in choice.reason
  assert hardware.choose_jit_compile().value is True  # One device, no tf.distribute.


def test_tpus_get_bfloat16_and_xla(monkeypatch):
  monkeypatch.setattr(hardware, "_device_kind", lambda strategy: "TPU")
  assert hardware.choose_precision().value == "bfloat16"
  assert hardware.choose_jit_compile().value is True


def test_this_machine_computes_on_its_cpu():
  """No GPU or TPU here: the CPU rows, for the default strategy and a CPU MirroredStrategy."""
  for strategy in (None, tf.distribute.MirroredStrategy(["/cpu:0"])):
    assert hardware._device_kind(strategy) == "CPU"  # pylint: disable=protected-access
    assert hardware.choose_jit_compile(strategy).value is False
    assert hardware.choose_precision(strategy) == hardware.choose_precision()


RUN = dict(data="digits", preset="digits", num_scales=1, num_filters=4, num_blocks=1,
           steps_per_epoch=2, sample_count=4)


def test_train_chooses_for_the_hardware_and_a_resumed_run_keeps_its_precision(tmp_path, capsys):
  chosen = hardware.choose_precision()
  policy = chosen.policy
  result = training.train(output_dir=tmp_path / "auto", epochs=1, verbose=1, **RUN)
  out = capsys.readouterr().out
  assert f"{policy} networks (auto: {chosen.reason})" in out
  assert "XLA off (auto: " in out
  config = result.metrics["config"]
  assert config["mixed_precision"] == ("bfloat16" if policy != "float32" else "none")
  assert config["precision_choice"] == f"auto: {chosen.reason}"
  assert config["jit_compile"] is False
  assert result.model.flow.dtype_policy.name == policy

  # A run begun in the other precision resumes in it, whatever this machine would choose.
  other = None if policy != "float32" else "bfloat16"
  folder = tmp_path / "other"
  with pytest.MonkeyPatch.context() as patch:
    stop_before_finish(patch)
    with pytest.raises(Interrupted):
      training.train(output_dir=folder, epochs=1, mixed_precision=other, verbose=0, **RUN)
  resumed = training.train(output_dir=folder, epochs=2, verbose=1, **RUN)
  assert "networks (the interrupted run's)" in capsys.readouterr().out
  assert resumed.resumed_at == 1
  assert resumed.model.flow.dtype_policy.name == (f"mixed_{other}" if other else "float32")
  metrics = json.loads((folder / "metrics.json").read_text())
  assert metrics["config"]["mixed_precision"] == (other or "none")
  assert keras.mixed_precision.global_policy().name == "float32"
