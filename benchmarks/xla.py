#!/usr/bin/env python
"""Does XLA pay on this machine? Our training step with and without `jit_compile`, one run.

For each configuration of `--configs` (`_configs.py`, `--flow realnvp` or `glow`) and each
precision of `--precisions`, this script starts two of `speed.py`'s workers for our library,
identical but for `compile(jit_compile=...)`, and reports:

* the first training step of each (tracing and graph optimisation; with XLA, also XLA's
  compilation), and their difference, what XLA adds to the start-up;
* the steady training step of each: the median (and quartiles) of `--rounds` x `--reps` calls,
  the two workers interleaved round by round so that a busy machine's load falls on both alike;
* the ratio of the steady steps (XLA / without) and, where XLA is faster, the number of steps
  after which its start-up cost is repaid.

This is the evidence behind `tfp_realnvp.hardware.choose_jit_compile` for the device kind the
script runs on. Reports go to `OUTPUT/results.jsonl`, a Markdown table to standard output.

Example (from the repository root):

```bash
python benchmarks/xla.py --configs mnist --precisions float32,bfloat16 \\
    --output benchmarks/runs/xla
```
"""

import argparse
import os
import pathlib

import _configs
import _runlog
import speed

_HERE = pathlib.Path(__file__).resolve().parent
FORMS = ("without", "xla")


def parse_args(argv=None):
  """Parses the command line."""
  parser = argparse.ArgumentParser(
      description=__doc__.split("\n\n", maxsplit=1)[0],
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  speed.add_run_arguments(parser, configs="mnist")
  parser.add_argument("--precisions", default="float32,bfloat16",
                      help=f"Comma-separated precisions among {list(speed.PRECISIONS)}.")
  parser.add_argument("--threads", type=int, default=0, help="Threads per worker (0: TF's).")
  parser.add_argument("--output", default=str(_HERE / "runs" / "xla"),
                      help="Folder for results.jsonl.")
  return parser.parse_args(argv)


def measure(args, config, precision):
  """Start-up and interleaved steady steps of both workers; returns the report."""
  specs = {}
  for form in FORMS:
    worker_args = speed.our_worker_args(
        **_configs.architecture(args), batch_size=args.batch_size, threads=args.threads,
        precision=precision, jit=form == "xla")
    specs[form] = (speed.worker_commands(worker_args, config)["tfp_realnvp"],
                   speed.worker_env(worker_args))
  label = f"{config} {precision}"
  with speed.running(specs, label) as workers:
    times, loads = speed.interleave(workers, ["train_step"], args.rounds, args.reps, label)
  report = {"config": config, "flow": args.flow, "precision": precision,
            "batch_size": args.batch_size, "threads": args.threads, "loadavg_1min": loads,
            "cpu": _runlog.cpu_description(), "measured_at": _runlog.utc_now()}
  for form, worker in workers.items():
    report[form] = {"first_train_step_s": worker.info["startup"]["first_train_step_s"],
                    "step": speed.summarize(times[form]["train_step"])}
  off, on = (report[form]["step"]["median_ms"] for form in FORMS)
  extra = report["xla"]["first_train_step_s"] - report["without"]["first_train_step_s"]
  report["step_ratio"] = on / off
  report["xla_extra_startup_s"] = extra
  report["break_even_steps"] = 1e3 * extra / (off - on) if on < off else None
  _runlog.append_jsonl(pathlib.Path(args.output) / "results.jsonl", report)
  return report


def main(argv=None):
  args = parse_args(argv)
  os.makedirs(args.output, exist_ok=True)
  rows = []
  for config in args.configs.split(","):
    for precision in args.precisions.split(","):
      rows.append(measure(args, config, precision))
  print(f"\n{_runlog.cpu_summary()}\n{args.flow}, batch {args.batch_size}, threads "
        f"{args.threads or 'TensorFlow default'}\n")
  print("| configuration | precision | first step without / XLA (s) | steady step without / "
        "XLA (ms) | XLA / without | XLA repaid after |")
  print("| --- | --- | --- | --- | --- | --- |")
  for row in rows:
    off, on = row["without"], row["xla"]
    repaid = (f"{row['break_even_steps']:,.0f} steps" if row["break_even_steps"] is not None
              else "never")
    print(f"| {row['config']} | {row['precision']} | {off['first_train_step_s']:.1f} / "
          f"{on['first_train_step_s']:.1f} | {off['step']['median_ms']:.1f} / "
          f"{on['step']['median_ms']:.1f} | {row['step_ratio']:.2f} | {repaid} |")


if __name__ == "__main__":
  main()
