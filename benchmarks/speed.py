#!/usr/bin/env python
"""Speed benchmark: tfp_realnvp against normflows on the same CPU, in one interleaved run.

For each configuration (`_configs.py`), the same flow is built twice: with `--flow realnvp`
the multi-scale Real NVP (per scale: 3 checkerboard couplings, squeeze, 3 channel couplings,
factor out half; the last scale: 4 checkerboard couplings; every coupling network a
weight-normalised ResNet of the same width and depth), with `--flow glow` the multi-scale Glow
(per level: squeeze, `--num-steps` steps of ActNorm, invertible 1x1 convolution and affine
coupling, then a learned split prior and factor out half):

* ours: `tfp_realnvp.FlowModel(tfp_realnvp.RealNVP(...))` or `FlowModel(tfp_realnvp.Glow(...))`,
  in this process's Python, by a worker process running this file with `--worker`;
* theirs: normflows (PyTorch), by `benchmarks/normflows_worker.py` run with the Python of a
  separate benchmark environment (`--torch-python`; see benchmarks/README.md).

Both workers build their model, warm up (tracing, first allocations), then answer the same
line-based JSON commands (`_worker.py`, shared by both); the warm-up starts with training
steps, which initialise Glow's ActNorms from the data on both sides. The driver interleaves
them: in every round each operation is timed on one library and then on the other (the order
alternates between rounds), so that the load of a shared machine falls on both alike.
Reported: the CPU model and whether it has AMX and AVX-512 BF16 (which decide which published
rows apply), per-call medians (and quartiles), the ratio ours / theirs, parameter counts, each
worker's start-up (from its launch to the end of its first training step: interpreter,
imports, model building, tracing; the libraries start one after the other on an otherwise idle
run), and the peak resident memory of a separate training-only process of each library.
Operations, at batch 64:

* `train_step`: log_prob of a batch, loss (NLL + the L2 penalty on the weight-norm scales),
  gradients, Adam update (`model.train_on_batch` for ours);
* `log_prob`: the log-density of the batch (inference mode);
* `sample`: drawing 64 images (ours through a `tf.function`, whose samples are not checked for
  overflow as an eager `model.sample` checks them: a deep Glow trained for one step on random
  images overflows at temperature 1, and the cost of the computation is what is timed).

With `--profile CALLS`, each worker then runs CALLS more calls of every operation under its
library's profiler and reports the op types that took the time, per call.

Example (from the repository root):

```bash
python benchmarks/speed.py --torch-python .bench-venv/bin/python --output benchmarks/runs/speed
python benchmarks/speed.py --flow glow --configs mnist,cifar --threads 1 \
    --output benchmarks/runs/speed-glow
```

Timings are never tests: the figures go to `benchmarks/RESULTS.md`.
"""

import argparse
import contextlib
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

import _configs
import _runlog
import _worker

_HERE = pathlib.Path(__file__).resolve().parent
_REPO_ROOT = _HERE.parent

OPS = ("train_step", "log_prob", "sample")
PRECISIONS = ("float32", "bfloat16")
SAMPLES = 64


def add_run_arguments(parser, configs="mnist,cifar"):
  """The flags of a run of interleaved workers on `_configs.py`'s configurations: `--configs`
  (default `configs`), the architecture overrides, `--batch-size`, and the interleaved
  `--rounds` of `--reps` calls (`interleave`)."""
  parser.add_argument("--configs", default=configs,
                      help=f"Comma-separated configurations among {list(_configs.NAMES)}.")
  _configs.add_arguments(parser)
  parser.add_argument("--batch-size", type=int, default=64)
  parser.add_argument("--rounds", type=int, default=6,
                      help="Interleaved rounds; each times every operation on every worker.")
  parser.add_argument("--reps", type=int, default=5, help="Calls per operation per round.")


def add_torch_python_argument(parser):
  """`--torch-python`: the Python of the environment with torch and normflows (the
  normflows workers'), `.bench-venv` by default (benchmarks/README.md)."""
  parser.add_argument("--torch-python", default=str(_REPO_ROOT / ".bench-venv" / "bin" / "python"),
                      help="Python of the environment where torch and normflows are installed.")


def require_torch_python(args):
  """Exits with a one-line error unless `args.torch_python` exists."""
  if not pathlib.Path(args.torch_python).exists():
    sys.exit(f"error: no Python at {args.torch_python}; create the normflows environment first "
             "(benchmarks/README.md) or pass --torch-python.")


def add_comparison_arguments(parser):
  """`add_run_arguments`' flags and `--torch-python`: a run that compares both libraries."""
  add_run_arguments(parser)
  add_torch_python_argument(parser)


def parse_args(argv=None):
  """Parses the command line."""
  parser = argparse.ArgumentParser(
      description=__doc__.split("\n\n", maxsplit=1)[0],
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  add_comparison_arguments(parser)
  parser.add_argument("--memory-steps", type=int, default=50,
                      help="Training steps of the peak-memory processes.")
  parser.add_argument("--threads", type=int, default=0,
                      help="Threads of both libraries' thread pools (OMP_NUM_THREADS for "
                           "PyTorch, intra- and inter-op threads for TensorFlow); 0 keeps each "
                           "library's default.")
  parser.add_argument("--precision", choices=PRECISIONS, default="float32",
                      help="Precision of the coupling networks on both sides (bfloat16: Real "
                           "NVP only): float32, or "
                           "bfloat16 compute with float32 weights and float32 flow arithmetic "
                           "(Keras's mixed_bfloat16 policy for ours, torch.autocast inside the "
                           "conditioners for normflows).")
  parser.add_argument("--optimizer", choices=("fused", "keras"), default="fused",
                      help="Our side's Adam: tfp_realnvp.FusedAdam (what `tfp-realnvp train` "
                           "uses) or keras.optimizers.Adam (same algorithm, a dozen graph "
                           "operations per variable; for an A/B of start-up and step time).")
  parser.add_argument("--profile", type=int, default=0, metavar="CALLS",
                      help="After the timings, profile CALLS more calls of each operation in "
                           "each library (TensorFlow's profiler, torch.profiler) and report the "
                           "op types that take the time; 0 skips it.")
  parser.add_argument("--output", default=str(_HERE / "runs" / "speed"),
                      help="Folder for results.json.")
  # Worker mode (started by the driver).
  parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
  parser.add_argument("--config", default="mnist", help=argparse.SUPPRESS)
  parser.add_argument("--mode", default="speed", choices=("speed", "memory"),
                      help=argparse.SUPPRESS)
  parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
  parser.add_argument("--remat", default=None, choices=("recompute", "reversible"),
                      help=argparse.SUPPRESS)  # Our worker's `FlowModel(remat=...)`.
  parser.add_argument("--scan", default="on", choices=("on", "off"),
                      help="Our Glow's levels as loops over stacked steps (`Glow(scan=True)`, "
                           "the default) or a layer per step.")
  parser.add_argument("--jit", action="store_true",
                      help="Compile our model's steps with XLA (`compile(jit_compile=True)`).")
  return parser.parse_args(argv)


def our_worker_args(**fields):
  """This script's parsed arguments for one of our workers: its defaults, with `fields` set.

  The benchmarks that start our workers with their own command lines (`xla.py`, `depth.py`,
  `ab.py`) build the worker's arguments here, so that a new flag has one default.
  """
  return argparse.Namespace(**dict(vars(parse_args([])), **fields))


# --- Worker: our library ----------------------------------------------------------------------

def build_ours(args, config, **flow_options):
  """Our model for the resolved `config`, built and compiled as the worker times it.

  `FlowModel(RealNVP(...))` or `FlowModel(Glow(..., coupling_network="glow"))` with
  `args.precision` (Keras's mixed_bfloat16 policy for bfloat16), `args.remat`, `args.scan`
  (Glow), `args.jit` (XLA) and `args.optimizer`, its weights seeded with `args.seed`, and the
  fixed batch of `args.batch_size` uniform images. `flow_options` override the flow's keyword
  arguments (`peak.py` counts the FLOPs of a Glow built with `scan=False` where it has that
  option).

  Returns:
    `(model, x, ops)`: the compiled `FlowModel`, the batch, and the timed operations, name ->
    zero-argument callable (`train_step`, `log_prob`, `sample`; see the module docstring).
  """
  # pylint: disable=g-import-not-at-top
  import keras
  import numpy as np
  import tensorflow as tf
  import tfp_realnvp
  # pylint: enable=g-import-not-at-top

  keras.utils.set_random_seed(args.seed)
  dtype = "mixed_bfloat16" if args.precision == "bfloat16" else None
  if config["flow"] == "glow":
    options = dict(num_levels=config["num_levels"], num_steps=config["num_steps"],
                   num_filters=config["num_filters"], coupling_network="glow",
                   scan=getattr(args, "scan", "on") == "on", dtype=dtype)
    flow = tfp_realnvp.Glow(config["image_shape"], **dict(options, **flow_options))
  else:
    options = dict(num_scales=config["num_scales"], num_filters=config["num_filters"],
                   num_blocks=config["num_blocks"], dtype=dtype)
    flow = tfp_realnvp.RealNVP(config["image_shape"], **dict(options, **flow_options))
  model = tfp_realnvp.FlowModel(flow, remat=args.remat)
  adam = tfp_realnvp.FusedAdam if args.optimizer == "fused" else keras.optimizers.Adam
  model.compile(optimizer=adam(1e-3), jit_compile=getattr(args, "jit", False))
  rng = np.random.default_rng(args.seed)
  x = tf.constant(rng.uniform(size=(args.batch_size,) + config["image_shape"]), tf.float32)
  sample = tf.function(lambda: model.sample(SAMPLES))  # Unchecked (the module docstring).
  ops = {
      "train_step": lambda: model.train_on_batch(x),
      "log_prob": lambda: model.log_prob(x).numpy(),
      "sample": lambda: sample().numpy(),
  }
  return model, x, ops


def run_worker(args):
  """Builds our model for `args.config` and serves the driver's commands (`_worker.run`).

  The "ready" line counts the ActNorms whose data-dependent initialisation has run (Glow).
  """
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  # pylint: disable=g-import-not-at-top
  import keras
  import numpy as np
  import tensorflow as tf
  import tensorflow_probability as tfp
  import tfp_realnvp
  # pylint: enable=g-import-not-at-top

  if args.threads:
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
  config = _configs.resolve(args, args.config)
  model, _, ops = build_ours(args, config)
  actnorm_flags = [v for v in model.non_trainable_variables if v.name == "initialized"]

  def ready():
    return {"precision": args.precision, "optimizer": type(model.optimizer).__name__,
            "package": str(pathlib.Path(tfp_realnvp.__file__).resolve().parent),
            "versions": {"tfp_realnvp": tfp_realnvp.__version__, "tensorflow": tf.__version__,
                         "tensorflow_probability": tfp.__version__, "keras": keras.__version__,
                         "numpy": np.__version__},
            "num_params": int(sum(np.prod(v.shape) for v in model.trainable_variables)),
            "tf_threads": {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                           "inter_op": tf.config.threading.get_inter_op_parallelism_threads()},
            "actnorms_initialized": [sum(bool(v.numpy()) for v in actnorm_flags),
                                     len(actnorm_flags)]}


  def tensor_peak_mb():
    """Peak of TensorFlow's CPU tensor allocations since the previous call, in MB."""
    peak = tf.config.experimental.get_memory_info("CPU:0")["peak"] / 2 ** 20
    tf.config.experimental.reset_memory_stats("CPU:0")
    return peak

  _worker.run("tfp_realnvp", ops, tf_profile, args.mode, args.memory_steps, ready,
              tensor_peak_mb)


def tf_profile(call, calls):
  """Runs `call` `calls` times under TensorFlow's profiler; returns `_worker.op_table`'s args.

  Op time is the duration of every TensorFlow op execution on the executor's threads, by op
  type; with inter-op parallelism, ops overlap and the sum can exceed the wall time.
  """
  # pylint: disable=g-import-not-at-top
  import tempfile
  import tensorflow as tf
  from tensorflow.tsl.profiler.protobuf import xplane_pb2
  # pylint: enable=g-import-not-at-top
  with tempfile.TemporaryDirectory() as logdir:
    tf.profiler.experimental.start(logdir)
    wall = sum(_worker.call_times(call, calls))
    tf.profiler.experimental.stop()
    space = xplane_pb2.XSpace()
    space.ParseFromString(next(pathlib.Path(logdir).rglob("*.xplane.pb")).read_bytes())
  milliseconds, executions = {}, {}
  for plane in space.planes:
    names = {key: meta.name for key, meta in plane.event_metadata.items()}
    for line in plane.lines:
      if not line.name.startswith("tf_Compute"):
        continue
      for event in line.events:
        name = names.get(event.metadata_id, "")
        if "::" in name or ":" not in name:  # Executor bookkeeping, not an op ("name:Type").
          continue
        op_type = name.rsplit(":", 1)[1]
        milliseconds[op_type] = milliseconds.get(op_type, 0.0) + event.duration_ps / 1e9
        executions[op_type] = executions.get(op_type, 0) + 1
  return milliseconds, executions, calls, wall


# --- Driver -----------------------------------------------------------------------------------

class Worker:
  """A worker process speaking the line-based JSON protocol."""

  def __init__(self, command, env):
    self.command = command
    env = dict(env, **{_worker.LAUNCHED_AT_VARIABLE: repr(time.time())})
    self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    text=True, cwd=_REPO_ROOT, env=env)
    self.info = self.receive()
    if not self.info.get("ready"):
      raise RuntimeError(f"worker {command} did not start: {self.info}")

  def receive(self):
    line = self.process.stdout.readline()
    if not line:
      raise RuntimeError(f"worker {self.command} exited with {self.process.wait()}")
    return json.loads(line)

  def ask(self, command):
    self.process.stdin.write(json.dumps(command) + "\n")
    self.process.stdin.flush()
    return self.receive()

  def close(self):
    try:
      self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
      self.process.stdin.close()
      self.process.wait(timeout=60)
    finally:
      if self.process.poll() is None:
        self.process.kill()


@contextlib.contextmanager
def running(specs, label):
  """Starts a `Worker` for every `name -> (command, env)` of `specs`, one after the other;
  yields them by name and closes them all on leaving (also when one fails to start)."""
  workers = {}
  try:
    for name, (command, env) in specs.items():
      print(f"[{label}] starting {name} ...", flush=True)
      workers[name] = Worker(command, env)
    yield workers
  finally:
    for worker in workers.values():
      worker.close()


def time_libraries(args, config):
  """Both libraries' workers on `config`, interleaved (`args.rounds` x `args.reps` calls of
  every operation), then profiled if `args.profile`.

  Returns:
    A dict: `times` (`interleave`'s), `loads`, `profiles` (library -> operation ->
    `_worker.op_table`, or empty), `infos` (each worker's "ready" line) and `peak_rss_mb` of
    each worker process.
  """
  env = worker_env(args)
  with running({library: (command, env)
                for library, command in worker_commands(args, config).items()},
               config) as workers:
    times, loads = interleave(workers, OPS, args.rounds, args.reps, label=config)
    return {
        "times": times, "loads": loads,
        "profiles": {library: {op: worker.ask({"op": "profile", "target": op,
                                               "calls": args.profile})
                               for op in OPS} if args.profile else {}
                     for library, worker in workers.items()},
        "peak_rss_mb": {library: worker.ask({"op": "info"})["peak_rss_mb"]
                        for library, worker in workers.items()},
        "infos": {library: worker.info for library, worker in workers.items()}}


def worker_commands(args, config, mode="speed"):
  """The command lines of our worker and of the normflows worker."""
  common = ["--config", config, "--batch-size", str(args.batch_size), "--mode", mode,
            "--memory-steps", str(args.memory_steps), "--precision", args.precision]
  common += _configs.override_flags(args)
  ours = ["--scan", getattr(args, "scan", "on")]
  if getattr(args, "jit", False):
    ours.append("--jit")
  return {
      "tfp_realnvp": [sys.executable, str(_HERE / "speed.py"), "--worker",
                      "--threads", str(args.threads), "--optimizer", args.optimizer] + ours
                     + common,
      "normflows": [args.torch_python, str(_HERE / "normflows_worker.py")] + common,
  }


def worker_env(args):
  """The workers' environment: quiet TensorFlow, and the thread count if one is set."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow")
  if args.threads:
    env["OMP_NUM_THREADS"] = str(args.threads)
  return env


def summarize(seconds):
  """Median and quartiles (milliseconds) of a list of durations."""
  q1, median, q3 = statistics.quantiles(seconds, n=4)
  return {"median_ms": 1e3 * median, "q1_ms": 1e3 * q1, "q3_ms": 1e3 * q3, "calls": len(seconds)}


def interleave(workers, ops, rounds, reps, label):
  """Times `ops` on every worker, round by round, alternating the workers' order.

  In every round, each operation is called `reps` times on each worker in turn; the order of
  the workers is reversed every other round, so that a shared machine's load falls on all
  alike.

  Returns:
    `(times, loads)`: `times[name][op]`, the seconds of every call, and the 1-minute load
    average after each round.
  """
  times = {name: {op: [] for op in ops} for name in workers}
  loads = []
  for round_index in range(rounds):
    order = list(workers) if round_index % 2 == 0 else list(reversed(workers))
    for op in ops:
      for name in order:
        times[name][op].extend(workers[name].ask({"op": op, "reps": reps})["seconds"])
    loads.append(os.getloadavg()[0])
    print(f"[{label}] round {round_index + 1}/{rounds} done (load {loads[-1]:.1f})",
          flush=True)
  return times, loads


def measure_config(args, config):
  """Interleaved timings of both libraries on `config`; returns the config's results."""
  timed = time_libraries(args, config)
  times = timed["times"]
  memory = {}
  for library, command in worker_commands(args, config, mode="memory").items():
    out = subprocess.run(command, capture_output=True, text=True, cwd=_REPO_ROOT, check=True,
                         env=worker_env(args))
    memory[library] = json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mb"]

  result = {"config": dict(_configs.resolve(args, config), batch_size=args.batch_size,
                           samples=SAMPLES),
            "workers": timed["infos"], "loadavg_1min": timed["loads"], "ops": {},
            "peak_rss_mb_training": memory, "peak_rss_mb_speed_process": timed["peak_rss_mb"]}
  if args.profile:
    result["profile"] = timed["profiles"]
  for op in OPS:
    ours, theirs = (summarize(times[lib][op]) for lib in ("tfp_realnvp", "normflows"))
    result["ops"][op] = {"tfp_realnvp": ours, "normflows": theirs,
                         "ratio": ours["median_ms"] / theirs["median_ms"]}
  return result


def print_profiles(results, rows=8):
  """Prints, per configuration, operation and library, the most expensive op types."""
  for config, result in results.items():
    for library, per_op in result.get("profile", {}).items():
      for op, table in per_op.items():
        top = ", ".join(f"{row['op']} {row['ms_per_call']:.1f} ({row['executions_per_call']:g}x)"
                        for row in table["top"][:rows])
        print(f"[{result['config']['flow']} {config}] {library} {op}: wall "
              f"{table['wall_ms_per_call']:.1f} ms, ops {table['op_ms_per_call']:.1f} ms in "
              f"{table['executions_per_call']:g} executions per call; top ms per call: {top}")


def cell(times):
  """`summarize`'s figures as a table cell: `median [first quartile, third quartile]` (ms)."""
  return f"{times['median_ms']:.1f} [{times['q1_ms']:.1f}, {times['q3_ms']:.1f}]"


def print_table(results):
  """Prints the Markdown table that RESULTS.md and the README show (median [quartiles])."""
  print("| flow, config | operation | tfp_realnvp (ms) | normflows (ms) | ours / theirs |")
  print("| --- | --- | --- | --- | --- |")
  for config, result in results.items():
    label = f"{result['config']['flow']} {config}"
    for op, row in result["ops"].items():
      print(f"| {label} | {op} | {cell(row['tfp_realnvp'])} | {cell(row['normflows'])} | "
            f"{row['ratio']:.2f} |")
    startup = {library: info["startup"]["launch_to_first_step_done_s"]
               for library, info in result["workers"].items()}
    print(f"| {label} | start-up to first training step done (s) | "
          f"{startup['tfp_realnvp']:.1f} | {startup['normflows']:.1f} | "
          f"{startup['tfp_realnvp'] / startup['normflows']:.2f} |")
    memory = result["peak_rss_mb_training"]
    print(f"| {label} | peak RSS, training (MB) | {memory['tfp_realnvp']:.0f} | "
          f"{memory['normflows']:.0f} | {memory['tfp_realnvp'] / memory['normflows']:.2f} |")


def run_driver(args):
  """Times every configuration and writes `results.json`."""
  require_torch_python(args)
  if args.rounds * args.reps < 2:
    sys.exit("error: --rounds x --reps must be at least 2 to give medians and quartiles.")
  configs = [c.strip() for c in args.configs.split(",") if c.strip()]
  for config in configs:
    try:
      _configs.resolve(args, config)
    except ValueError as e:
      sys.exit(f"error: {e}")
  output = pathlib.Path(args.output)
  output.mkdir(parents=True, exist_ok=True)
  print(_runlog.cpu_summary(), flush=True)
  run = {"benchmark": "speed", "date_utc": _runlog.utc_now(),
         "command": " ".join([sys.executable] + sys.argv),
         "machine": _runlog.machine_info(), "rounds": args.rounds, "reps": args.reps,
         "flow": args.flow, "threads": args.threads or "library defaults",
         "precision": args.precision,
         "results": {}}
  for config in configs:
    run["results"][config] = measure_config(args, config)
    _runlog.write_json(output / "results.json", run)
  print_profiles(run["results"])
  print_table(run["results"])
  print(f"results: {output / 'results.json'}")


def main(argv=None):
  args = parse_args(argv)
  if args.worker:
    run_worker(args)
  else:
    run_driver(args)


if __name__ == "__main__":
  main()
