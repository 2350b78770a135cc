#!/usr/bin/env python
"""Training memory of `FlowModel(remat=...)` against the standard mode and against normflows.

Every configuration trains in its own process: `speed.py`'s worker (ours, with `--remat`) or
`normflows_worker.py` (theirs), in the memory mode of `_worker.py`, which reports the resident
memory after importing the library and building the model, before the first step
(`baseline_mb`, VmRSS of /proc/self/status), its peak over the training steps (`peak_mb`,
VmHWM), the peak of the steps after the first (`steady_peak_mb`: VmHWM reset after the first
step; the allocator keeps what the first step took, so this is rarely lower), for ours the
peak of TensorFlow's tensor allocations in the steps after the first (`steady_tensor_peak_mb`,
`tf.config.experimental.get_memory_info`: activations, gradients, optimizer buffers, without
the graph tracing and runtime memory that dominate the first step's resident peak) and the
seconds of every step. The models are those of `_configs.py`, at batch 64
unless said otherwise. Parts (`--parts`):

* `depth`: peak memory above the baseline as the flow deepens, standard against reversible
  mode: Real NVP `mnist` with 1x, 2x, 4x the residual blocks of every coupling network
  (`--num-blocks`; the number of couplings per scale is fixed by the architecture), and Glow
  `mnist` with 1x, 2x, 4x the steps per level (`--num-steps`, from `--glow-steps`);
* `normflows`: Real NVP `mnist` as configured in `_configs.py`, ours in every mode against
  normflows;
* `batch`: Real NVP `cifar` at two batch sizes per mode; the tensor peak grows linearly with
  the batch (the tracing and runtime memory does not), so the largest batch that trains
  within `--budget-gib` (resident peak) is extrapolated from the two; with `--search` it is
  then found by training: processes of `--search-steps` steps at candidate batch sizes,
  from the extrapolation up or down by 25 % until one fits and one does not, then bisected
  until they are within 5 % (a process may pass the budget while it is measured).

Step time: the median of the steps after the first (which traces), and the ratio of each mode
to the standard mode of the same configuration, measured in the same run.

Example (from the repository root):

```bash
python benchmarks/memory.py --torch-python .bench-venv/bin/python \
    --output benchmarks/runs/memory
```

Results go to `OUTPUT/results.jsonl` (one line per process) and a Markdown table on stdout.
"""

import argparse
import json
import math
import pathlib
import statistics
import subprocess
import sys

import _runlog
import speed

_HERE = pathlib.Path(__file__).resolve().parent
MODES = ("standard", "recompute", "reversible")
PARTS = ("depth", "normflows", "batch")


def parse_args(argv=None):
  parser = argparse.ArgumentParser(
      description=__doc__.split("\n\n", maxsplit=1)[0],
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  parser.add_argument("--parts", default=",".join(PARTS),
                      help=f"Comma-separated parts among {list(PARTS)}.")
  speed.add_torch_python_argument(parser)
  parser.add_argument("--memory-steps", type=int, default=4,
                      help="Training steps of every process (the first traces).")
  parser.add_argument("--threads", type=int, default=1,
                      help="Threads of both libraries (0: each library's default).")
  parser.add_argument("--depth-flows", default="realnvp,glow",
                      help="Comma-separated flows of the depth part.")
  parser.add_argument("--glow-steps", type=int, default=4,
                      help="Glow steps per level of the 1x flow of the depth part.")
  parser.add_argument("--batch-sizes", default="16,64",
                      help="The two batch sizes of the batch part.")
  parser.add_argument("--budget-gib", type=float, default=8.0,
                      help="Memory budget of the batch part.")
  parser.add_argument("--search", action="store_true",
                      help="Batch part: find the largest batch within the budget by training.")
  parser.add_argument("--search-steps", type=int, default=2,
                      help="Training steps of each process of the search (the first traces).")
  parser.add_argument("--output", default=str(_HERE / "runs" / "memory"),
                      help="Folder for results.jsonl.")
  return parser.parse_args(argv)


def measure(args, library, flow, config, mode="standard", batch_size=64, steps=None,
            **overrides):
  """Runs one training process of `steps` steps (default `--memory-steps`); returns its
  memory report with the configuration."""
  worker_args = speed.our_worker_args(
      batch_size=batch_size, memory_steps=steps or args.memory_steps, threads=args.threads,
      torch_python=args.torch_python, flow=flow, **overrides)
  command = speed.worker_commands(worker_args, config, mode="memory")[library]
  if mode != "standard":
    command += ["--remat", mode]
  result = subprocess.run(command, env=speed.worker_env(worker_args), capture_output=True,
                          text=True, check=False)
  if result.returncode != 0:
    raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
  report = json.loads(result.stdout.strip().splitlines()[-1])
  report.update(flow=flow, config=config, remat=mode, batch_size=batch_size,
                overrides=overrides, above_mb=report["peak_mb"] - report["baseline_mb"],
                steady_above_mb=report["steady_peak_mb"] - report["baseline_mb"],
                step_median_s=statistics.median(report["step_seconds"][1:]),
                measured_at=_runlog.utc_now())
  _runlog.append_jsonl(pathlib.Path(args.output) / "results.jsonl", report)
  print(f"{library:11s} {flow:7s} {config:5s} {mode:10s} batch {batch_size:3d} {overrides}: "
        f"baseline {report['baseline_mb']:.0f} MB, peak {report['peak_mb']:.0f} MB, above "
        f"{report['above_mb']:.0f} MB (later steps {report['steady_above_mb']:.0f} MB; "
        f"tensors {report['steady_tensor_peak_mb'] or 0:.0f} MB), "
        f"step {report['step_median_s']:.3f} s", flush=True)
  return report


def depth(args):
  deepened = {"realnvp": ("num_blocks", 2), "glow": ("num_steps", args.glow_steps)}
  for flow in args.depth_flows.split(","):
    key, base = deepened[flow]
    for factor in (1, 2, 4):
      for mode in ("standard", "reversible"):
        measure(args, "tfp_realnvp", flow, "mnist", mode, **{key: base * factor})


def normflows(args):
  for mode in MODES:
    measure(args, "tfp_realnvp", "realnvp", "mnist", mode)
  measure(args, "normflows", "realnvp", "mnist")


def batch(args):
  sizes = [int(size) for size in args.batch_sizes.split(",")]
  budget_mb = args.budget_gib * 1024.0
  for mode in ("standard", "reversible"):
    small, large = (measure(args, "tfp_realnvp", "realnvp", "cifar", mode, size)
                    for size in sizes)
    # The tensors grow with the batch; the first step's tracing and the runtime do not.
    per_example = ((large["steady_tensor_peak_mb"] - small["steady_tensor_peak_mb"])
                   / (sizes[1] - sizes[0]))
    fixed = large["peak_mb"] - per_example * sizes[1]
    largest = int((budget_mb - fixed) / per_example)
    print(f"cifar {mode}: {per_example:.1f} MB per example, {fixed:.0f} MB fixed: largest batch "
          f"within {args.budget_gib:g} GiB ~ {largest} (extrapolated)", flush=True)
    if args.search:
      def fits(size, mode=mode):
        report = measure(args, "tfp_realnvp", "realnvp", "cifar", mode, size,
                         steps=args.search_steps)
        return report["peak_mb"] <= budget_mb
      fitting, failing = largest_fitting(fits, largest)
      print(f"cifar {mode}: largest batch within {args.budget_gib:g} GiB found by training: "
            f"{fitting} ({failing} does not fit)", flush=True)


def largest_fitting(fits, guess, step=1.25, tolerance=0.05):
  """The largest batch size `b` with `fits(b)`, searched from `guess`, for a monotone `fits`.

  Moves from `guess` by factors of `step` until one size fits and another does not, then
  bisects until the failing size is within `tolerance` (relative) of the fitting one.

  Returns:
    `(fitting, failing)`: a size that fits (0 if even 1 does not) and a larger one that does
    not.
  """
  size = max(1, int(guess))
  if fits(size):
    fitting = size
    while fits(math.ceil(fitting * step)):
      fitting = math.ceil(fitting * step)
    failing = math.ceil(fitting * step)
  else:
    failing = size
    while True:
      smaller = int(failing / step)
      if smaller < 1:
        return 0, failing
      if fits(smaller):
        fitting = smaller
        break
      failing = smaller
  while failing - fitting > max(1, tolerance * fitting):
    middle = (fitting + failing) // 2
    if fits(middle):
      fitting = middle
    else:
      failing = middle
  return fitting, failing


def main(argv=None):
  args = parse_args(argv)
  pathlib.Path(args.output).mkdir(parents=True, exist_ok=True)
  print(json.dumps(_runlog.machine_info()), flush=True)
  parts = {"depth": depth, "normflows": normflows, "batch": batch}
  for part in args.parts.split(","):
    if part not in parts:
      raise SystemExit(f"unknown part {part!r}; choose among {list(PARTS)}.")
    parts[part](args)
  return 0


if __name__ == "__main__":
  sys.exit(main())
