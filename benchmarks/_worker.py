"""The worker side of `speed.py`'s line protocol, shared by both libraries' speed workers.

Standard library only, so that our worker (`speed.py --worker`, TensorFlow) and
`normflows_worker.py` (PyTorch) run the same protocol code and differ only in the model and the
profiler they plug in. A worker gets its operations as zero-argument callables and `run` does
the rest:

* memory mode: `memory_steps` calls of `train_step`, then one line with the resident memory
  before the first step (`baseline_mb`, VmRSS: the library imported and the model built), its
  peak over all steps (`peak_mb`, VmHWM), the peak of the first step alone (`first_peak_mb`:
  for ours, graph tracing), the peak of the later steps (`steady_peak_mb`, VmHWM reset after
  the first step), and the seconds of every step; with `tensor_peak_mb` given, also the
  peak of the library's own tensor allocations in the first step and in the later ones
  (`first_tensor_peak_mb`, `steady_tensor_peak_mb`: activations, gradients and optimizer
  buffers, without the runtime's and the allocator's own memory);
* speed mode: one training step, timed as part of the start-up; `WARMUP_CALLS` calls of every
  operation; a "ready" line (with the start-up times, see `startup_times`), then one JSON
  command per stdin line, each answered with one JSON line on stdout:

  ```none
  {"op": "train_step", "reps": 5}                      -> {"op": ..., "seconds": [...]}
  {"op": "info"}                                       -> {"op": "info", "peak_rss_mb": ...}
  {"op": "profile", "target": "log_prob", "calls": 5}  -> op_table(...) with "op", "target"
  {"op": "quit"}                                       -> exits
  ```
"""

import json
import os
import sys
import time

import _runlog

WARMUP_CALLS = 3

# The driver's wall-clock time (`time.time()`) just before it launched the worker process.
LAUNCHED_AT_VARIABLE = "BENCH_WORKER_LAUNCHED_AT"


def emit(message):
  """Writes one protocol line to stdout."""
  sys.stdout.write(json.dumps(message) + "\n")
  sys.stdout.flush()


def call_times(call, reps):
  """Seconds taken by each of `reps` calls of `call` (PyTorch on CPU and our `.numpy()`-ending
  calls are synchronous, so a call's wall time is its cost)."""
  seconds = []
  for _ in range(reps):
    start = time.perf_counter()
    call()
    seconds.append(time.perf_counter() - start)
  return seconds


def startup_times(built_at, first_step_seconds):
  """The start-up of this worker: launch to built model, and the first training step.

  Args:
    built_at: `time.time()` once the libraries are imported and the model is built.
    first_step_seconds: duration of the first training step (tracing, first allocations).

  Returns:
    A JSON-ready dict; the launch-relative figures are `None` when the driver did not set
    `LAUNCHED_AT_VARIABLE`.
  """
  launched = os.environ.get(LAUNCHED_AT_VARIABLE)
  to_built = built_at - float(launched) if launched else None
  return {"launch_to_built_s": to_built, "first_train_step_s": first_step_seconds,
          "launch_to_first_step_done_s": (None if to_built is None
                                          else to_built + first_step_seconds)}


def op_table(milliseconds, executions, calls, wall_seconds, limit=15):
  """The reply to a `profile` command: where `calls` calls of one operation spent their time.

  Args:
    milliseconds: op type (or PyTorch op name) -> total time inside that op over all calls.
    executions: op type -> number of executions over all calls.
    calls: number of profiled calls.
    wall_seconds: wall time of the profiled calls (profiler overhead included).
    limit: number of op types listed, the most expensive first.

  Returns:
    A JSON-ready dict: per call, the wall time, the summed op time and the top op types.
  """
  top = sorted(milliseconds, key=milliseconds.get, reverse=True)[:limit]
  return {"calls": calls, "wall_ms_per_call": 1e3 * wall_seconds / calls,
          "op_ms_per_call": sum(milliseconds.values()) / calls,
          "executions_per_call": sum(executions.values()) / calls,
          "top": [{"op": op, "ms_per_call": milliseconds[op] / calls,
                   "executions_per_call": executions[op] / calls} for op in top]}


def _answer(name, command, ops, profile):
  """The reply to the command `name` (`command` holds its arguments); `None` for quit."""
  if name == "quit":
    return None
  if name == "info":
    return {"op": "info", "peak_rss_mb": _runlog.peak_rss_mb()}
  if name == "profile" and command.get("target") in ops:
    table = op_table(*profile(ops[command["target"]], int(command.get("calls", 1))))
    return dict(table, op=name, target=command["target"])
  if name in ops:
    return {"op": name, "seconds": call_times(ops[name], int(command.get("reps", 1)))}
  return {"op": name, "error": f"unknown op {name!r}"}


def run(library, ops, profile, mode, memory_steps, ready, tensor_peak_mb=None):
  """Runs a speed worker until the driver sends quit (or closes stdin).

  Args:
    library: the library's name in the replies.
    ops: operation name ("train_step", "log_prob", "sample") -> zero-argument callable.
    profile: `profile(call, calls) -> (milliseconds, executions, calls, wall_seconds)`, the
      arguments of `op_table`, from the library's own profiler.
    mode: "speed" (the protocol) or "memory" (peak RSS of a training process).
    memory_steps: training steps of memory mode.
    ready: callable returning the extra fields of the "ready" line (versions, parameters...).
    tensor_peak_mb: optional callable returning the peak of the library's tensor memory (MB)
      since its previous call (or the start), and starting a new count.
  """
  if mode == "memory":
    baseline_mb = _runlog.proc_status_mb("VmRSS")
    tensors = tensor_peak_mb or (lambda: None)
    tensors()
    seconds = call_times(ops["train_step"], 1)
    first_peak_mb, first_tensor_peak_mb = _runlog.proc_status_mb("VmHWM"), tensors()
    _runlog.reset_peak_rss()
    seconds += call_times(ops["train_step"], memory_steps - 1)
    steady_peak_mb, steady_tensor_peak_mb = _runlog.proc_status_mb("VmHWM"), tensors()
    emit({"library": library, "mode": "memory", "steps": memory_steps,
          "peak_rss_mb": _runlog.peak_rss_mb(), "baseline_mb": baseline_mb,
          "peak_mb": max(first_peak_mb, steady_peak_mb), "first_peak_mb": first_peak_mb,
          "steady_peak_mb": steady_peak_mb, "first_tensor_peak_mb": first_tensor_peak_mb,
          "steady_tensor_peak_mb": steady_tensor_peak_mb, "step_seconds": seconds})
    return
  built_at = time.time()
  startup = startup_times(built_at, call_times(ops["train_step"], 1)[0])
  for call in ops.values():
    call_times(call, WARMUP_CALLS)
  emit(dict(ready(), ready=True, library=library, startup=startup))
  for line in sys.stdin:
    if not line.strip():
      continue
    try:
      command = json.loads(line)
      name = command["op"]
    except (ValueError, KeyError, TypeError) as e:
      emit({"error": f"bad command {line.strip()!r}: {e}"})
      continue
    reply = _answer(name, command, ops, profile)
    if reply is None:
      return
    emit(reply)
