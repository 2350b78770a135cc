"""Run records shared by the benchmark scripts: machine description, timestamps, JSON files.

Standard library only, so that the scripts of both benchmark environments (ours, with
TensorFlow, and the PyTorch one of `normflows_*.py`) import it. Each script runs from this
folder (`python benchmarks/<script>.py`), which puts the folder on `sys.path`.
"""

import argparse
import datetime
import json
import os
import platform
import resource


def parse_marks(text):
  """Parses `"5,10,20,30"` into a sorted list of positive floats (minutes) for `--eval-at`."""
  marks = sorted({float(v) for v in text.split(",") if v.strip()})
  if not marks or marks[0] <= 0:
    raise argparse.ArgumentTypeError(f"--eval-at needs positive minutes, got {text!r}.")
  return marks


def add_budget_arguments(parser, default_marks=()):
  """Adds the training budget of a quality benchmark: `--minutes`, `--eval-at`, `--max-steps`.

  Both libraries' quality scripts take these, so an equal-time comparison means the same thing
  on both sides. Call `resolve_budget` after parsing.

  Args:
    parser: an `argparse.ArgumentParser`.
    default_marks: training minutes to evaluate at when `--eval-at` is not given (those below
      the budget are kept; the budget itself is always a mark).
  """
  parser.add_argument("--minutes", type=float, default=30.0,
                      help="Training-time budget in minutes (evaluation time excluded).")
  parser.add_argument("--eval-at", type=parse_marks, default=list(default_marks),
                      help="Comma-separated training minutes at which to evaluate on the test "
                           "set (the budget is always one).")
  parser.add_argument("--max-steps", type=int, default=0,
                      help="Also stop after this many training steps, with a final evaluation "
                           "(0: no limit).")


def resolve_budget(parser, args):
  """Checks `--minutes`; sets `args.eval_at` to the sorted marks within it, the budget included."""
  if args.minutes <= 0:
    parser.error("--minutes must be positive.")
  args.eval_at = sorted({m for m in args.eval_at if m <= args.minutes} | {args.minutes})


# CPU features that decide which published figures apply: TensorFlow's oneDNN kernels use AMX
# tiles for bfloat16 (and float32 with TF's AMX paths) where present, AVX-512 BF16 otherwise.
CPU_FEATURES = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")


def cpu_description(cpuinfo="/proc/cpuinfo"):
  """`(model, features)`: the first CPU's model name and which of `CPU_FEATURES` it has.

  Read from `cpuinfo` (Linux's /proc/cpuinfo); `(None, {})` where that file does not exist.
  """
  model, flags = None, None
  try:
    with open(cpuinfo, encoding="utf-8") as f:
      for line in f:
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model is None:
          model = value.strip()
        elif key.strip() == "flags" and flags is None:
          flags = set(value.split())
        if model is not None and flags is not None:
          break
  except OSError:
    return None, {}
  return model, {feature: feature in (flags or ()) for feature in CPU_FEATURES}


def cpu_summary(cpuinfo="/proc/cpuinfo"):
  """One line naming the CPU and its AMX / AVX-512 BF16 support, for a benchmark's output."""
  model, features = cpu_description(cpuinfo)
  if not features:
    return f"CPU: {model or 'unknown'} (no /proc/cpuinfo: features unknown)"
  amx = features["amx_tile"] and features["amx_bf16"]
  yes = {True: "yes", False: "no"}
  line = (f"CPU: {model or 'unknown'}; AMX: {yes[amx]}; AVX-512: {yes[features['avx512f']]}; "
          f"AVX-512 BF16: {yes[features['avx512_bf16']]}")
  return line if amx else line + " (figures measured on AMX CPUs do not apply here)"


def machine_info():
  """Describes the machine: CPU count and affinity, CPU model and features, platform, load."""
  model, features = cpu_description()
  return {
      "nproc": os.cpu_count(),
      "sched_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
      "cpu_model": model,
      "cpu_features": features,
      "platform": platform.platform(),
      "python": platform.python_version(),
      "hostname": platform.node(),
      "loadavg_at_start": list(os.getloadavg()),
  }


def utc_now():
  """The current UTC time as `YYYY-MM-DDTHH:MM:SSZ`."""
  return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_json(path, obj):
  """Writes JSON atomically (a killed run never leaves a half-written file)."""
  tmp = path.with_suffix(path.suffix + ".tmp")
  tmp.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")
  os.replace(tmp, path)


def append_jsonl(path, obj):
  """Appends one JSON line and flushes it to disk."""
  with open(path, "a", encoding="utf-8") as f:
    f.write(json.dumps(obj) + "\n")
    f.flush()
    os.fsync(f.fileno())


def keep_lines(path, keep):
  """Keeps the lines of a JSON-lines file whose object satisfies `keep` (atomically).

  Lines that do not parse (the last one, cut by a kill) are dropped too.

  Args:
    path: a `pathlib.Path`; a missing file is left missing.
    keep: a function from a line's object to whether to keep the line.

  Returns:
    The number of lines dropped.
  """
  if not path.exists():
    return 0
  lines = path.read_text(encoding="utf-8").splitlines()
  kept = []
  for line in lines:
    try:
      if keep(json.loads(line)):
        kept.append(line)
    except ValueError:
      continue
  tmp = path.with_suffix(path.suffix + ".tmp")
  tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
  os.replace(tmp, path)
  return len(lines) - len(kept)


def proc_status_mb(field):
  """A memory field of `/proc/self/status` (`"VmRSS"`: resident now, `"VmHWM"`: its peak), MB.

  Linux only (`None` elsewhere).
  """
  try:
    with open("/proc/self/status", encoding="utf-8") as f:
      for line in f:
        if line.startswith(field + ":"):
          return int(line.split()[1]) / 1024.0  # kB
  except OSError:
    pass
  return None


def reset_peak_rss():
  """Resets VmHWM to the current VmRSS (Linux: writes 5 to `/proc/self/clear_refs`)."""
  try:
    with open("/proc/self/clear_refs", "w", encoding="utf-8") as f:
      f.write("5")
  except OSError:
    pass


def peak_rss_mb():
  """Peak resident memory of this process so far, in MB."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

