#!/usr/bin/env python
"""Did a change make our operations faster? This tree's package against a baseline checkout.

For each configuration of `--configs` (`_configs.py`, `--flow realnvp` or `glow`), this script
starts two of `speed.py`'s workers for our library, identical but for the package they import:
the baseline's (`--baseline`, the root of another checkout, for example a `git worktree` of
main) and this tree's. Both run this tree's worker code, so the baseline must be recent enough
to build the same models. It reports each worker's start-up (launch to first training step
done, and the first step alone) and the median and quartiles of every operation
(`train_step`, `log_prob`, `sample`; `--ops`), the two workers interleaved round by round so
that a busy machine's load falls on both alike, with the ratio this tree / baseline. With
`--jit`, both workers compile their training steps with XLA.

This is how a performance change earns its place (and how one that did not win is reported):
run it on the change before and after, with the CPU named. Reports go to
`OUTPUT/results.jsonl`, a Markdown table to standard output.

Example (from the repository root):

```bash
git worktree add ../baseline main
python benchmarks/ab.py --baseline ../baseline --configs mnist --threads 1 \\
    --output benchmarks/runs/ab
```
"""

import argparse
import os
import pathlib

import _configs
import _runlog
import speed

_HERE = pathlib.Path(__file__).resolve().parent
FORMS = ("baseline", "this tree")


def parse_args(argv=None):
  """Parses the command line."""
  parser = argparse.ArgumentParser(
      description=__doc__.split("\n\n", maxsplit=1)[0],
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  parser.add_argument("--baseline", required=True, type=pathlib.Path,
                      help="Root of the checkout whose `tfp_realnvp` is the baseline.")
  speed.add_run_arguments(parser, configs="mnist")
  parser.set_defaults(rounds=8)
  parser.add_argument("--ops", default=",".join(speed.OPS),
                      help=f"Comma-separated operations among {list(speed.OPS)}.")
  parser.add_argument("--precision", choices=speed.PRECISIONS, default="float32")
  parser.add_argument("--jit", action="store_true",
                      help="Compile both workers' training steps with XLA (jit_compile=True).")
  parser.add_argument("--threads", type=int, default=1, help="Threads per worker (0: TF's).")
  parser.add_argument("--output", default=str(_HERE / "runs" / "ab"),
                      help="Folder for results.jsonl.")
  args = parser.parse_args(argv)
  if not (args.baseline / "tfp_realnvp" / "__init__.py").is_file():
    parser.error(f"--baseline {args.baseline} is not a checkout's root (no "
                 "tfp_realnvp/__init__.py in it).")
  args.ops = [op for op in args.ops.split(",") if op]
  unknown = sorted(set(args.ops) - set(speed.OPS))
  if unknown:
    parser.error(f"unknown --ops {unknown}; choose among {list(speed.OPS)}.")
  return args


def measure(args, config):
  """Start-up and interleaved operations of both workers; returns the report."""
  worker_args = speed.our_worker_args(
      **_configs.architecture(args), batch_size=args.batch_size, threads=args.threads,
      precision=args.precision, jit=args.jit)
  roots = {"baseline": args.baseline.resolve(), "this tree": _HERE.parent}
  command = speed.worker_commands(worker_args, config)["tfp_realnvp"]
  specs = {form: (command, dict(speed.worker_env(worker_args), PYTHONPATH=str(root)))
           for form, root in roots.items()}
  with speed.running(specs, config) as workers:
    for form, worker in workers.items():  # An installed copy could shadow PYTHONPATH's.
      if pathlib.Path(worker.info["package"]) != roots[form] / "tfp_realnvp":
        raise RuntimeError(f"the {form} worker imported {worker.info['package']}, not the "
                           f"package of {roots[form]}.")
    times, loads = speed.interleave(workers, args.ops, args.rounds, args.reps, label=config)
  report = {"config": config, "flow": args.flow, "precision": args.precision, "jit": args.jit,
            "batch_size": args.batch_size, "threads": args.threads, "loadavg_1min": loads,
            "roots": {form: str(root) for form, root in roots.items()},
            "cpu": _runlog.cpu_description(), "measured_at": _runlog.utc_now()}
  for form, worker in workers.items():
    report[form] = {"startup": worker.info["startup"], "package": worker.info["package"],
                    "ops": {op: speed.summarize(times[form][op]) for op in args.ops}}
  report["ratios"] = {op: report["this tree"]["ops"][op]["median_ms"]
                          / report["baseline"]["ops"][op]["median_ms"] for op in args.ops}
  _runlog.append_jsonl(pathlib.Path(args.output) / "results.jsonl", report)
  return report


def main(argv=None):
  args = parse_args(argv)
  os.makedirs(args.output, exist_ok=True)
  rows = [measure(args, config) for config in args.configs.split(",")]
  print(f"\n{_runlog.cpu_summary()}\n{args.flow}, {args.precision}{', XLA' if args.jit else ''}, "
        f"batch {args.batch_size}, "
        f"threads {args.threads or 'TensorFlow default'}\n")
  print("| configuration | operation | baseline (ms) | this tree (ms) | this tree / baseline |")
  print("| --- | --- | --- | --- | --- |")
  for row in rows:
    for op in args.ops:
      print(f"| {row['config']} | {op} | {speed.cell(row['baseline']['ops'][op])} | "
            f"{speed.cell(row['this tree']['ops'][op])} | {row['ratios'][op]:.3f} |")
    first = [row[form]["startup"]["first_train_step_s"] for form in FORMS]
    print(f"| {row['config']} | first training step (s) | {first[0]:.1f} | {first[1]:.1f} | "
          f"{first[1] / first[0]:.3f} |")


if __name__ == "__main__":
  main()
