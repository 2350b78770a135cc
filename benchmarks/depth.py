#!/usr/bin/env python
"""Start-up, step time and memory of Glow as it deepens: scanned levels against unrolled ones.

`tfp_realnvp.Glow(scan=True)` (the default) runs each level's steps as one loop over stacked
variables, traced once; `scan=False` builds a layer per step, which the training graph holds
one by one. For every depth in `--depths` (steps per level, `K`) and both forms, this script
runs `speed.py`'s worker for our library (`_configs.py`'s Glow configuration `--config`, with
`--num-filters`, at `--batch-size`, one thread by default) and reports:

* start-up: launch to the end of the first training step, and the first training step alone
  (tracing and graph optimisation: what grows with an unrolled flow's depth), with and
  without XLA (the `xla` part: the first step then includes XLA's compilation, and the first
  step less a steady one is the start-up XLA adds to tracing);
* the steady training step, with and without XLA: the median of `--rounds` x `--reps` calls,
  the two forms of the same depth interleaved round by round so that a busy machine's load
  falls on both alike;
* memory: separate training-only processes (`_worker.py`'s memory mode) in the standard and
  the reversible mode (`FlowModel(remat="reversible")`), the peak resident memory and its
  excess over the memory after import and building (`above_mb`).

With the `tfp` part, TFP's own Glow (`tfp.bijectors.Glow`, `tfp_glow_worker.py`), and with the
`normflows` part normflows' Glow (`normflows_worker.py --flow glow`, in the `--torch-python`
environment), run beside our scanned Glow at each depth: start-up, interleaved steady steps and
the peak resident memory of each worker process (both parts given: all three in one run).

With the `presets` part, the paper-sized presets of `--presets` (`glow_cifar10`: L=3, K=32;
`glow_imagenet64`: L=4, K=48; 512 filters) are built in both forms, each in its own process,
and trained for two steps on random images at `--preset-batch-size`: launch to the end of the
first step, the first and second steps, and the peak resident memory.

Ratios against the shallowest depth (start-up, memory) and against the unrolled form of the
same depth (steady step) are printed as a Markdown table, and every process's report goes to
`OUTPUT/results.jsonl`.

Example (from the repository root):

```bash
python benchmarks/depth.py --config cifar --num-filters 64 --batch-size 16 --depths 8,32 \\
    --output benchmarks/runs/depth
```
"""

import argparse
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
import speed

_HERE = pathlib.Path(__file__).resolve().parent
FORMS = ("scan", "unrolled")
PEERS = {"tfp": "TFP", "normflows": "normflows"}  # Part and form -> the library's name.
PARTS = ("speed", "xla", "memory", *PEERS, "presets")


def parse_args(argv=None):
  """Parses the command line."""
  parser = argparse.ArgumentParser(
      description=__doc__.split("\n\n", maxsplit=1)[0],
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  parser.add_argument("--config", choices=_configs.NAMES, default="cifar",
                      help="The Glow configuration of `_configs.py` (image shape, levels).")
  parser.add_argument("--num-filters", type=int, default=64,
                      help="Width of the coupling networks.")
  parser.add_argument("--depths", default="8,32", help="Steps per level, comma-separated.")
  parser.add_argument("--batch-size", type=int, default=16)
  parser.add_argument("--threads", type=int, default=1, help="Threads per worker (0: TF's).")
  parser.add_argument("--rounds", type=int, default=4)
  parser.add_argument("--reps", type=int, default=5, help="Training steps per form per round.")
  parser.add_argument("--memory-steps", type=int, default=4,
                      help="Training steps of each memory process.")
  parser.add_argument("--parts", default="speed,xla,memory",
                      help="Comma-separated: speed (start-up, steady step), xla (start-up "
                           "with jit_compile=True), memory (standard and reversible), tfp "
                           "(TFP's own tfp.bijectors.Glow against our scanned Glow), normflows "
                           "(normflows' Glow against ours), presets.")
  speed.add_torch_python_argument(parser)
  parser.add_argument("--presets", default="glow_cifar10,glow_imagenet64",
                      help="The presets of the presets part.")
  parser.add_argument("--preset-batch-size", type=int, default=4)
  parser.add_argument("--preset-worker", default=None, help=argparse.SUPPRESS)
  parser.add_argument("--scan", default="on", choices=("on", "off"), help=argparse.SUPPRESS)
  parser.add_argument("--output", default=str(_HERE / "runs" / "depth"),
                      help="Folder for results.jsonl.")
  return parser.parse_args(argv)


def _worker_args(args, depth, form, jit=False):
  """The `speed.py` arguments of our worker for one depth and form."""
  return speed.our_worker_args(
      batch_size=args.batch_size, memory_steps=args.memory_steps, threads=args.threads,
      flow="glow", num_steps=depth, num_filters=args.num_filters,
      scan="on" if form == "scan" else "off", jit=jit, torch_python=args.torch_python)


def _record(args, report, **fields):
  report = dict(report, **fields, measured_at=_runlog.utc_now())
  _runlog.append_jsonl(pathlib.Path(args.output) / "results.jsonl", report)
  return report


def _worker_command(args, depth, form, jit=False):
  """The command line of the worker of `form` at `depth`: ours (`scan`, `unrolled`) is
  `speed.py`'s worker, TFP's Glow (`tfp`) `tfp_glow_worker.py` with the same flags, normflows'
  Glow (`normflows`) `speed.py`'s normflows worker."""
  commands = speed.worker_commands(_worker_args(args, depth, form, jit), args.config)
  if form == "normflows":
    return commands["normflows"]
  command = commands["tfp_realnvp"]
  if form == "tfp":
    command = [sys.executable, str(_HERE / "tfp_glow_worker.py")] + command[2:]
  return command


def speed_part(args, depth, jit, forms=FORMS, part=None):
  """Start-up of `forms` at `depth`, then their interleaved steady steps.

  Records are marked with `part` (default: `xla` with XLA, else `speed`)."""
  part = part or ("xla" if jit else "speed")
  specs = {form: (_worker_command(args, depth, form, jit),
                  speed.worker_env(_worker_args(args, depth, form))) for form in forms}
  label = f"K={depth}{' XLA' if jit else ''}"
  with speed.running(specs, label) as workers:
    times, _ = speed.interleave(workers, ["train_step"], args.rounds, args.reps, label=label)
    reports = {}
    for form, worker in workers.items():
      report = {"part": part, "depth": depth, "form": form,
                "startup": worker.info["startup"], "num_params": worker.info["num_params"],
                "peak_rss_mb": worker.ask({"op": "info"})["peak_rss_mb"],
                "actnorms_initialized": worker.info.get("actnorms_initialized")}
      if times[form]["train_step"]:
        report["step"] = speed.summarize(times[form]["train_step"])
      reports[form] = _record(args, report, loadavg_1min=os.getloadavg()[0])
      startup = report["startup"]
      print(f"{label} {form}: launch to first step done "
            f"{startup['launch_to_first_step_done_s']:.1f} s, first step "
            f"{startup['first_train_step_s']:.1f} s"
            + (f", steady step {report['step']['median_ms']:.1f} ms" if "step" in report
               else ""),
            flush=True)
    return reports


def memory_part(args, depth, form, remat):
  """One training-only process: its memory report."""
  command = speed.worker_commands(_worker_args(args, depth, form), args.config,
                                  mode="memory")["tfp_realnvp"]
  if remat != "standard":
    command += ["--remat", remat]
  result = subprocess.run(command, env=speed.worker_env(_worker_args(args, depth, form)),
                          capture_output=True, text=True, check=False, cwd=_HERE.parent)
  if result.returncode != 0:
    raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
  report = json.loads(result.stdout.strip().splitlines()[-1])
  report = _record(args, report, part="memory", depth=depth, form=form, remat=remat,
                   above_mb=report["peak_mb"] - report["baseline_mb"],
                   step_median_s=statistics.median(report["step_seconds"][1:]))
  print(f"K={depth} {form} {remat}: baseline {report['baseline_mb']:.0f} MB, peak "
        f"{report['peak_mb']:.0f} MB, above {report['above_mb']:.0f} MB, first step "
        f"{report['step_seconds'][0]:.1f} s", flush=True)
  return report


def run_preset_worker(args):
  """Builds preset `args.preset_worker` (`--scan`), trains two steps; prints one JSON line."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  # pylint: disable=g-import-not-at-top
  import numpy as np
  import tensorflow as tf
  import tfp_realnvp
  from tfp_realnvp import presets
  # pylint: enable=g-import-not-at-top
  if args.threads:
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
  preset = presets.get_preset(args.preset_worker)
  shape = (*preset.image_size, 3)
  model = tfp_realnvp.FlowModel(presets.build_flow(preset, shape, scan=args.scan == "on"))
  model.compile(optimizer=tfp_realnvp.FusedAdam(1e-3))
  x = np.random.default_rng(0).uniform(size=(args.preset_batch_size, *shape)).astype("float32")
  built_at, baseline_mb = time.time(), _runlog.proc_status_mb("VmRSS")
  first, second = _worker.call_times(lambda: model.train_on_batch(x), 2)
  print(json.dumps({"startup": _worker.startup_times(built_at, first), "second_step_s": second,
                    "baseline_mb": baseline_mb, "peak_mb": _runlog.peak_rss_mb(),
                    "num_params": int(sum(np.prod(v.shape) for v in model.trainable_variables))}))


def presets_part(args, name, form):
  """One process training preset `name` in `form` for two steps: its report."""
  command = [sys.executable, str(_HERE / "depth.py"), "--preset-worker", name,
             "--scan", "on" if form == "scan" else "off", "--threads", str(args.threads),
             "--preset-batch-size", str(args.preset_batch_size)]
  env = dict(speed.worker_env(_worker_args(args, 0, form)),
             **{_worker.LAUNCHED_AT_VARIABLE: repr(time.time())})
  result = subprocess.run(command, env=env, capture_output=True, text=True, check=False,
                          cwd=_HERE.parent)
  if result.returncode != 0:
    raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
  report = _record(args, json.loads(result.stdout.strip().splitlines()[-1]), part="presets",
                   preset=name, form=form, depth=None, batch_size=args.preset_batch_size)
  print(f"{name} {form}: launch to first step done "
        f"{report['startup']['launch_to_first_step_done_s']:.1f} s (first step "
        f"{report['startup']['first_train_step_s']:.1f} s, second {report['second_step_s']:.1f} s"
        f"), peak {report['peak_mb']:.0f} MB", flush=True)
  return report


def print_table(rows, depths):
  """The Markdown table of the run: per measure, each form at each depth, and the ratios."""
  shallow, deep = depths[0], depths[-1]

  def value(part, form, depth, get, **match):
    found = [r for r in rows if r["part"] == part and r["form"] == form and r["depth"] == depth
             and all(r.get(k) == v for k, v in match.items())]
    return get(found[0]) if found else None

  measures = [
      ("launch to first training step done (s)", "speed", {},
       lambda r: r["startup"]["launch_to_first_step_done_s"]),
      ("first training step (s)", "speed", {}, lambda r: r["startup"]["first_train_step_s"]),
      ("first training step, XLA (s)", "xla", {}, lambda r: r["startup"]["first_train_step_s"]),
      ("first step less a steady step, XLA (s)", "xla", {},
       lambda r: r["startup"]["first_train_step_s"] - r["step"]["median_ms"] / 1000),
      ("steady training step (ms)", "speed", {}, lambda r: r["step"]["median_ms"]),
      ("steady training step, XLA (ms)", "xla", {}, lambda r: r["step"]["median_ms"]),
      ("peak resident memory, training (MB)", "memory", {"remat": "standard"},
       lambda r: r["peak_mb"]),
      ("reversible: peak above built model (MB)", "memory", {"remat": "reversible"},
       lambda r: r["above_mb"]),
  ]
  header = [f"{form}, K={depth}" for form in FORMS for depth in depths]
  print("| measure | " + " | ".join(header) + f" | scan K={deep} / K={shallow} | "
        f"unrolled K={deep} / K={shallow} | scan / unrolled, K={deep} |")
  print("|" + " --- |" * (len(header) + 4))
  for name, part, match, get in measures:
    cells = {(form, depth): value(part, form, depth, get, **match)
             for form in FORMS for depth in depths}
    if all(v is None for v in cells.values()):
      continue

    def ratio(a, b):
      return f"{a / b:.2f}" if a is not None and b else "-"

    print(f"| {name} | " + " | ".join("-" if cells[key] is None else f"{cells[key]:.1f}"
                                     for key in cells)
          + f" | {ratio(cells['scan', deep], cells['scan', shallow])}"
          + f" | {ratio(cells['unrolled', deep], cells['unrolled', shallow])}"
          + f" | {ratio(cells['scan', deep], cells['unrolled', deep])} |")


def print_peer_table(rows, depths, peers):
  """The Markdown table of the peer parts: our scanned Glow and each of `peers` at each depth."""
  by_key = {(r["form"], r["depth"]): r for r in rows}
  measures = [("launch to first training step done (s)",
               lambda r: r["startup"]["launch_to_first_step_done_s"]),
              ("first training step (s)", lambda r: r["startup"]["first_train_step_s"]),
              ("steady training step (ms)", lambda r: r["step"]["median_ms"]),
              ("peak resident memory of the process (MB)", lambda r: r["peak_rss_mb"])]
  forms = ("scan", *peers)
  names = {"scan": "ours", **PEERS}
  print("| measure | " + " | ".join(f"{names[form]}, K={depth}" for form in forms
                                    for depth in depths)
        + "".join(f" | ours / {PEERS[peer]}, K={depths[-1]}" for peer in peers) + " |")
  print("|" + " --- |" * ((len(depths) + 1) * len(forms)))
  for name, get in measures:
    cells = [get(by_key[form, depth]) for form in forms for depth in depths]
    ours = get(by_key["scan", depths[-1]])
    ratios = [ours / get(by_key[peer, depths[-1]]) for peer in peers]
    print(f"| {name} | " + " | ".join(f"{c:.1f}" for c in cells)
          + "".join(f" | {r:.2f}" for r in ratios) + " |")


def main(argv=None):
  args = parse_args(argv)
  if args.preset_worker:
    run_preset_worker(args)
    return 0
  depths = [int(d) for d in args.depths.split(",")]
  parts = args.parts.split(",")
  unknown = set(parts) - set(PARTS)
  if unknown:
    sys.exit(f"error: unknown parts {sorted(unknown)}; choose among {', '.join(PARTS)}.")
  peers = [peer for peer in PEERS if peer in parts]
  if "normflows" in peers:
    speed.require_torch_python(args)
  pathlib.Path(args.output).mkdir(parents=True, exist_ok=True)
  print(_runlog.cpu_summary(), flush=True)
  _record(args, {"part": "machine", "machine": _runlog.machine_info(),
                 "command": " ".join([sys.executable] + sys.argv)})
  rows = []
  for depth in depths:
    if "speed" in parts:
      rows += speed_part(args, depth, jit=False).values()
    if "xla" in parts:
      rows += speed_part(args, depth, jit=True).values()
    if "memory" in parts:
      rows += [memory_part(args, depth, form, remat)
               for form in FORMS for remat in ("standard", "reversible")]
  if rows:
    print_table(rows, depths)
  if peers:
    print_peer_table([row for depth in depths
                      for row in speed_part(args, depth, jit=False, forms=("scan", *peers),
                                            part="peers").values()], depths, peers)
  if "presets" in parts:
    reports = {(name, form): presets_part(args, name, form)
               for name in args.presets.split(",") for form in FORMS}
    print("| preset | form | launch to first step done (s) | first step (s) | second step (s) "
          "| peak RSS (MB) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for (name, form), r in reports.items():
      print(f"| {name} | {form} | {r['startup']['launch_to_first_step_done_s']:.1f} | "
            f"{r['startup']['first_train_step_s']:.1f} | {r['second_step_s']:.1f} | "
            f"{r['peak_mb']:.0f} |")
  return 0


if __name__ == "__main__":
  sys.exit(main())
