"""What the machine computes natively: the precision and XLA choices of a training run.

`tfp_realnvp.training.train` and `tfp-realnvp train` resolve their defaults
`mixed_precision="auto"` and `jit_compile="auto"` here, from the devices a run trains on:

| device | networks' precision | XLA |
| --- | --- | --- |
| TPU | bfloat16 (`mixed_bfloat16`) | on (TPUs run only compiled programs) |
| GPU of compute capability >= 8.0 (Ampere on) | bfloat16 | on without `tf.distribute` |
| older GPU | float32 | on without `tf.distribute` |
| CPU with AMX (`amx_bf16`) or AVX-512 BF16 (`avx512_bf16`) | bfloat16 | off |
| other CPU | float32 (bfloat16 would be emulated) | off |

The CPU rows follow the measurements in `benchmarks/RESULTS.md`. A model built outside `train`
gets Keras's global policy; `choose_precision().policy` is the machine's choice.
"""

from __future__ import annotations

import dataclasses
import pathlib

import tensorflow as tf

__all__ = ["Choice", "choose_jit_compile", "choose_precision", "cpu_flags"]

# CPU flags (as Linux's /proc/cpuinfo spells them) of native bfloat16 arithmetic, with their
# names in words.
BFLOAT16_CPU_FLAGS = {"amx_bf16": "AMX", "avx512_bf16": "AVX-512 BF16"}
# The first compute capability whose tensor cores compute bfloat16 (Ampere).
BFLOAT16_GPU_CAPABILITY = (8, 0)


@dataclasses.dataclass(frozen=True)
class Choice:
  """A setting chosen for the hardware, and why.

  Attributes:
    value: the chosen value: `"bfloat16"` or `"float32"` for the precision, `True` or
      `False` for XLA.
    reason: the device and the property that decided it, in words, for a run's banner and
      record.
  """

  value: str | bool
  reason: str

  @property
  def precision(self) -> str:
    """The precision as `train`'s `mixed_precision` names it: `"bfloat16"` or `"float32"`."""
    return str(self.value)

  @property
  def policy(self) -> str:
    """The Keras dtype policy of the networks: `"mixed_bfloat16"` or `"float32"`."""
    return "mixed_bfloat16" if self.value == "bfloat16" else "float32"


def cpu_flags(cpuinfo: str | pathlib.Path = "/proc/cpuinfo") -> frozenset[str]:
  """The feature flags of the first CPU in `cpuinfo` (Linux); empty where it cannot be read."""
  try:
    text = pathlib.Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
  except OSError:
    return frozenset()
  for line in text.splitlines():
    key, _, value = line.partition(":")
    if key.strip() == "flags":
      return frozenset(value.split())
  return frozenset()


def _device_kind(strategy: tf.distribute.Strategy | None) -> str:
  """`"TPU"`, `"GPU"` or `"CPU"`: what `strategy` (default: the current one) computes on."""
  strategy = strategy or tf.distribute.get_strategy()
  if isinstance(strategy, tf.distribute.TPUStrategy):
    return "TPU"
  try:
    devices = [tf.DeviceSpec.from_string(device).device_type
               for device in strategy.extended.worker_devices]
  except RuntimeError:  # The default strategy: Keras places the ops on a GPU when there is one.
    return "GPU" if tf.config.list_logical_devices("GPU") else "CPU"
  return "GPU" if "GPU" in devices else "CPU"


def _gpu_capabilities() -> list[tuple[str, tuple[int, int] | None]]:
  """`(name, compute capability or None)` of every visible GPU."""
  found = []
  for gpu in tf.config.list_physical_devices("GPU"):
    details = tf.config.experimental.get_device_details(gpu)
    found.append((details.get("device_name", gpu.name), details.get("compute_capability")))
  return found


def choose_precision(strategy: tf.distribute.Strategy | None = None,
                     cpuinfo: str | pathlib.Path = "/proc/cpuinfo") -> Choice:
  """The networks' precision for the devices of `strategy` (default: the current strategy).

  bfloat16 where the device computes it natively (TPUs, GPUs of compute capability 8.0 and
  up, CPUs with AMX or AVX-512 BF16), float32 elsewhere; the module's table.

  Args:
    strategy: the `tf.distribute.Strategy` of the run.
    cpuinfo: where the CPU's flags are read (Linux's `/proc/cpuinfo`).

  Returns:
    A `Choice` whose `value` is `"bfloat16"` or `"float32"`.
  """
  kind = _device_kind(strategy)
  if kind == "TPU":
    return Choice("bfloat16", "TPUs compute bfloat16 natively")
  if kind == "GPU":
    gpus = _gpu_capabilities()
    old = [(name, capability) for name, capability in gpus
           if capability is None or tuple(capability) < BFLOAT16_GPU_CAPABILITY]
    if gpus and not old:
      return Choice("bfloat16", f"{gpus[0][0]} (compute capability "
                                f"{'.'.join(map(str, gpus[0][1] or ()))}) computes bfloat16 "
                                "natively")
    name, capability = old[0] if old else ("the GPU", None)
    shown = "unknown" if capability is None else ".".join(map(str, capability))
    return Choice("float32", f"{name} (compute capability {shown}) has no native bfloat16; "
                             "it needs 8.0 or more")
  flags = cpu_flags(cpuinfo)
  native = [words for flag, words in BFLOAT16_CPU_FLAGS.items() if flag in flags]
  if native:
    return Choice("bfloat16", f"this CPU computes bfloat16 natively ({' and '.join(native)})")
  return Choice("float32", "this CPU has neither AMX nor AVX-512 BF16: bfloat16 would be "
                           "emulated")


def choose_jit_compile(strategy: tf.distribute.Strategy | None = None) -> Choice:
  """Whether the training step is compiled with XLA on the devices of `strategy`.

  On TPUs always (they run only compiled programs); on a GPU without `tf.distribute`; not on
  CPUs, where the compilation costs more than it saves in the runs measured
  (`benchmarks/RESULTS.md`), nor under `tf.distribute` on GPUs (Keras compiles no XLA
  program there).

  Returns:
    A `Choice` whose `value` is `True` or `False`.
  """
  kind = _device_kind(strategy)
  if kind == "TPU":
    return Choice(True, "TPUs run compiled programs only")
  if kind == "GPU":
    if (strategy or tf.distribute.get_strategy()).num_replicas_in_sync > 1:
      return Choice(False, "Keras compiles no XLA program under tf.distribute on GPUs")
    return Choice(True, "XLA fuses the step's kernels on a GPU")
  return Choice(False, "on CPUs XLA's compilation costs more than it saves")
