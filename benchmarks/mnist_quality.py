#!/usr/bin/env python
"""Quality benchmark: test bits/dim of a Real NVP or Glow on MNIST after a training-time budget.

Trains a preset (`--preset`: `mnist` by default, a `tfp_realnvp.FlowModel` of
`tfp_realnvp.RealNVP`; `glow_mnist` for `tfp_realnvp.Glow`; Adam, batch 64, the logit
preprocessing and L2 penalty of `FlowModel`), with the overrides of its flow's architecture
(Real NVP: `--num-scales`, `--num-filters`, `--num-blocks`, `--batch-norm`; Glow:
`--num-levels`, `--num-steps`, `--num-filters`, `--coupling-network`; both: `--coupling
{affine,spline}` and `--dequantization {uniform,variational}`; a setting of the other flow is
an error), optionally with mixed-precision networks (`--mixed-precision`), on the 60,000
MNIST training images with `tfp_realnvp.training.train`, for a budget of *training* wall-clock
minutes, and at each evaluation mark reports bits/dim on the full 10,000-image test set. The
training clock excludes evaluation, checkpointing and the first step of each process (which
traces the graph); the first step's time is recorded separately.

The chunks of `--steps-per-epoch` steps are `training.train`'s epochs (without per-epoch
validation), so the run folder is `train`'s: its backup after every chunk, and its run record
`metrics.json`, whose `state` holds this benchmark's description, clock and counters. A
callback keeps the clock, evaluates at the marks and stops training at the budget. Everything
is written as it happens, so a killed run keeps its results:

* `metrics.json`: `train`'s configuration and per-chunk history; `state`: command, data,
  the benchmark's own settings, machine, library versions, parameter count, the clock and
  counters (steps, training seconds, marks done, non-finite steps, tracing times, resumes), and
  `summary` (steps/s, the marks so far), as of the last chunk; at the end, `train`'s test
  figure of the final model.
* `results.jsonl`: one line per evaluation mark,
  `{train_minutes, steps, test_bpd, train_bpd, ...}`: the benchmark's figures.
* `progress.jsonl`: one line per chunk of `--steps-per-epoch` steps (mean training loss and
  bits/dim over all the steps of the chunk, an evaluation mark inside it or not; steps/s, load
  average), to see divergence as it happens.
* `backup/` (while the run is unfinished), `model.keras`, `samples/`, `logs/`,
  `bits_per_dim.png`: as for any `train` run.

A run that is killed resumes when the same command is run again with the same `--output`:
from its last finished chunk, with its clock and counters; the lines of `results.jsonl` and
`progress.jsonl` written after that chunk are dropped, since their steps are trained again.

Example (from the repository root):

```bash
python benchmarks/mnist_quality.py --minutes 30 --eval-at 5,10,20,30 \
    --output benchmarks/runs/mnist30
python benchmarks/mnist_quality.py --preset glow_mnist --minutes 30 --eval-at 5,10,20,30 \
    --output benchmarks/runs/glow_mnist30
python benchmarks/mnist_quality.py --coupling spline --minutes 30 --eval-at 5,10,20,30 \
    --output benchmarks/runs/mnist30_spline    # the mnist preset with spline couplings
```

Bits/dim: for dequantized 8-bit images `x = (k + u) / 256`,
`bpd = (NLL_x + D ln 256) / (D ln 2)`, which is what `FlowModel` reports; see
`benchmarks/README.md`. With `--dequantization variational` the model learns the noise
`u ~ q(u | k)` (`tfp_realnvp.VariationalDequantizer`) and every figure is the variational
bound `(-E_q[log p((k + u) / 256) - log q(u | k)] + D ln 256) / (D ln 2)` (Flow++), still an
upper bound on the bits/dim of the 8-bit data; the test images are then the quantized `k / 256`
and the dequantizer draws fresh noise at each evaluation (on 10,000 images its Monte Carlo
error is far below the reported digits).
"""

import argparse
import json
import math
import os
import pathlib
import platform
import sys
import time

import _runlog

_REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_DATA = _REPO_ROOT.parent / "shared" / "data" / "mnist.npz"
NUM_TEST_IMAGES = 10000
# The chunks are `training.train`'s epochs: the budget, not their number, ends the run.
MAX_CHUNKS = 10**6
# The benchmark's settings that a resumed run must share (`train` checks the flow's).
RESUME_SETTINGS = ("test_seed", "eval_batch_size", "precise_bn_steps", "terminate_on_nan")


def parse_args(argv=None):
  """Parses the command line."""
  parser = argparse.ArgumentParser(
      description=__doc__.split("\n\n", maxsplit=1)[0],
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  parser.add_argument("--data", default=str(DEFAULT_DATA),
                      help="MNIST .npz with uint8 x_train (60000, 28, 28[, 1]) and x_test.")
  parser.add_argument("--output", default=str(_REPO_ROOT / "benchmarks" / "runs" / "mnist"),
                      help="Folder of the run (metrics.json, results.jsonl, progress.jsonl, "
                           "backup/); a run interrupted there resumes.")
  _runlog.add_budget_arguments(parser, default_marks=(5.0, 10.0, 20.0, 30.0))
  parser.add_argument("--resume", action="store_true",
                      help="Accepted for old command lines and ignored: an interrupted run in "
                           "--output always resumes.")
  parser.add_argument("--preset", default="mnist",
                      help="Preset of tfp_realnvp.presets (mnist: Real NVP; glow_mnist: Glow); "
                           "the options below default to its settings.")
  parser.add_argument("--num-scales", type=int, default=None, help="Real NVP.")
  parser.add_argument("--num-blocks", type=int, default=None, help="Real NVP.")
  parser.add_argument("--batch-norm", action=argparse.BooleanOptionalAction, default=None,
                      help="Real NVP: follow every coupling with a batch-norm bijector.")
  parser.add_argument("--num-levels", type=int, default=None, help="Glow.")
  parser.add_argument("--num-steps", type=int, default=None, help="Glow: steps per level.")
  parser.add_argument("--coupling-network", default=None,
                      help="Glow.")
  parser.add_argument("--num-filters", type=int, default=None,
                      help="Feature maps of the coupling networks.")
  parser.add_argument("--coupling", default=None,
                      help="The couplings: affine or rational-quadratic splines (the preset's "
                           "by default: splines for mnist, affine for glow_mnist).")
  parser.add_argument("--dequantization", choices=("uniform", "variational"), default=None,
                      help="uniform noise (the presets') or a learned variational dequantizer, "
                           "whose figures are the variational bound.")
  parser.add_argument("--learning-rate", type=float, default=None)
  parser.add_argument("--warmup-steps", type=int, default=None,
                      help="Steps of linear learning-rate warm-up (default: the preset's).")
  parser.add_argument("--clipnorm", type=float, default=None,
                      help="Global gradient-norm clip (default: the preset's).")
  parser.add_argument("--ema", type=float, default=None,
                      help="Momentum of the weights' moving average, which the marks evaluate "
                           "(default: the preset's; 0: off).")
  parser.add_argument("--mixed-precision", choices=("bfloat16", "float16"), default=None,
                      help="Compute the networks in this precision (Keras's mixed_bfloat16 or "
                           "mixed_float16 with loss scaling; densities stay float32); "
                           "default float32.")
  parser.add_argument("--batch-size", type=int, default=None)
  parser.add_argument("--steps-per-epoch", type=int, default=100,
                      help="Steps per chunk (training.train's epochs): one progress line and "
                           "one backup per chunk.")
  parser.add_argument("--eval-batch-size", type=int, default=500)
  parser.add_argument("--seed", type=int, default=0,
                      help="Seed of the weights, shuffling and training dequantization noise.")
  parser.add_argument("--test-seed", type=int, default=1234,
                      help="Seed of the (fixed) dequantization noise of the test set.")
  parser.add_argument("--precise-bn-steps", type=int, default=300,
                      help="At each mark, also report test bits/dim after re-estimating the "
                           "batch-norm moving statistics with this many training-mode forward "
                           "passes over training batches (weights untouched, statistics "
                           "restored afterwards); 0 turns it off. Skipped, with a message, "
                           "for a model without batch normalisation (Glow's own networks).")
  parser.add_argument("--no-terminate-on-nan", action="store_true",
                      help="Keep training after a non-finite loss (to count them all).")
  args = parser.parse_args(argv)
  _runlog.resolve_budget(parser, args)
  return args


def _check_data(path):
  """Fails with a clear message if the MNIST file is missing."""
  path = pathlib.Path(path)
  if not path.is_file():
    sys.exit(
        f"error: MNIST data not found at {path}.\n"
        "This benchmark needs the MNIST .npz (uint8 x_train (60000, 28, 28, 1) and x_test "
        "(10000, 28, 28, 1)); on this team's machines it is ../shared/data/mnist.npz from the "
        "repository root. Pass another location with --data PATH.")
  return path


def has_batch_norm(model):
  """Whether `model` keeps batch-norm moving statistics (what precise BN re-estimates).

  Keras's `BatchNormalization` (in the coupling ResNets) and the batch-norm bijectors'
  `tfp_realnvp.bijectors.BatchNormStatistics` both name them `moving_mean`.
  """
  return any(variable.name == "moving_mean" for variable in model.non_trainable_variables)


def library_versions():
  """Versions of Python and the libraries that matter for the numbers."""
  import keras  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_probability as tfp  # pylint: disable=g-import-not-at-top
  import tfp_realnvp  # pylint: disable=g-import-not-at-top

  return {"python": platform.python_version(), "tensorflow": tf.__version__,
          "tensorflow_probability": tfp.__version__, "keras": keras.__version__,
          "numpy": np.__version__, "tfp_realnvp": tfp_realnvp.__version__}


class ChunkMeans:
  """Means of per-step training values over a chunk, from Keras's running means.

  Keras's batch logs hold running means since its metrics were last reset (at the start of
  each chunk, and by the `reset_metrics` after an evaluation mark). `n * mean_n` is the sum of
  the values since that reset, so the chunk's sums are those of its segments between resets:
  the means cover every step of the chunk, before and after a mark.
  """

  KEYS = ("loss", "bits_per_dim")

  def __init__(self):
    self.start()

  def start(self):
    """A new chunk (Keras has just reset its metrics)."""
    self.steps = 0
    self._closed = dict.fromkeys(self.KEYS, 0.0)
    self._segment = dict.fromkeys(self.KEYS, 0.0)
    self._segment_steps = 0

  def step(self, logs):
    """One training step; `logs` are Keras's batch logs (running means since the last reset)."""
    self.steps += 1
    self._segment_steps += 1
    self._segment = {key: self._segment_steps * float(logs.get(key, math.nan))
                     for key in self.KEYS}

  def metrics_reset(self):
    """Keras's metrics were reset within the chunk (after an evaluation)."""
    self._closed = {key: self._closed[key] + self._segment[key] for key in self.KEYS}
    self._segment = dict.fromkeys(self.KEYS, 0.0)
    self._segment_steps = 0

  def means(self):
    """`{key: mean over the chunk's steps so far}` (NaN before the first step)."""
    return {key: (self._closed[key] + self._segment[key]) / self.steps if self.steps else math.nan
            for key in self.KEYS}


def _done(state, args):
  """Whether a run whose state is `state` has evaluated all its marks, or reached its steps."""
  return (all(mark in state["marks_done"] for mark in args.eval_at)
          or bool(args.max_steps and state["steps"] >= args.max_steps))


def _epochs(metrics_path, args):
  """`train`'s epochs: `MAX_CHUNKS`, or the chunks done by a run whose record says it is done.

  Such a run was killed during `train`'s final evaluation: it resumes without training.
  """
  try:
    metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    if _done(metrics["state"], args):
      return metrics["history"][-1]["epoch"]
  except (OSError, ValueError, KeyError, TypeError, IndexError):
    pass  # No record to read: resume as usual.
  return MAX_CHUNKS


def main(argv=None):
  """Runs the benchmark; returns the process exit status."""
  args = parse_args(argv)
  data_path = _check_data(args.data)
  output = pathlib.Path(args.output)
  results_path = output / "results.jsonl"
  progress_path = output / "progress.jsonl"

  # pylint: disable=g-import-not-at-top
  import keras
  import numpy as np
  import tensorflow as tf
  import tfp_realnvp
  from tfp_realnvp import presets
  from tfp_realnvp import training
  # pylint: enable=g-import-not-at-top
  finite_or_none = training.finite_or_none

  # The preset with the overrides (all but the epochs: the budget ends the run), checked
  # before any work: a setting of another flow is one line.
  try:
    preset = presets.resolve(
        args.preset, tfp_realnvp.data.get_source(str(data_path)).shape,
        **{name: getattr(args, name, None) for name in tfp_realnvp.configs.all_settings()
           if name != "epochs"})
  except ValueError as error:
    sys.exit(f"error: {error}")

  folder = training.RunFolder.for_process(output, tf.distribute.get_strategy())
  if not training.Backup(folder.backup).exists() and (
      folder.metrics.exists() or results_path.exists()):
    sys.exit(f"error: {output} holds a finished run (or one stopped before its first chunk "
             "ended, or one of an older version of this script); choose another --output.")
  epochs = _epochs(folder.metrics, args)

  # --- Test data --------------------------------------------------------------------------------
  # The test set is dequantized once, with a fixed seed, so every evaluation (and every run)
  # sees exactly the same 10,000 continuous images. A variational dequantizer takes the
  # quantized images instead, and draws their noise itself.
  uniform = preset.training.dequantization == "uniform"
  test_images = np.concatenate(list(tfp_realnvp.data.load_images(
      str(data_path), split="test", batch_size=1000, seed=args.test_seed, shuffle=False,
      repeat=False, dequantize=uniform).as_numpy_iterator()))
  if len(test_images) != NUM_TEST_IMAGES:
    sys.exit(f"error: expected {NUM_TEST_IMAGES} test images in {data_path}, got "
             f"{len(test_images)}.")
  test_ds = tf.data.Dataset.from_tensor_slices(test_images).batch(args.eval_batch_size)
  # Training batches for re-estimating the normalisation statistics (precise BN).
  calibration_batches = iter(tfp_realnvp.data.load_images(
      str(data_path), split="train", batch_size=preset.training.batch_size,
      seed=args.test_seed + 1,
      repeat=True, shuffle=True, drop_remainder=True, dequantize=uniform))

  settings = {"test_seed": args.test_seed, "eval_batch_size": args.eval_batch_size,
              "precise_bn_steps": args.precise_bn_steps,
              "terminate_on_nan": not args.no_terminate_on_nan}
  # The record's state (`training.train` restores it in place when the run resumes).
  state = {}

  def summary():
    seconds = state["train_seconds"]
    timed_steps = state["steps"] - len(state["trace_seconds"])
    return {"steps": state["steps"], "train_minutes": seconds / 60.0,
            "steps_per_second": timed_steps / seconds if seconds > 0 else None,
            "nonfinite_steps": state["nonfinite_steps"],
            "first_nonfinite_step": state["first_nonfinite_step"],
            "trace_seconds": state["trace_seconds"],
            "marks_done": state["marks_done"], "updated_utc": _runlog.utc_now(),
            "loadavg": list(os.getloadavg())}

  class QualityBenchmark(keras.callbacks.Callback):
    """Keeps the training clock, counts non-finite losses, evaluates at the marks, stops."""

    def on_train_begin(self, logs=None):
      del logs
      if settings["precise_bn_steps"] and not has_batch_norm(self.model):
        print(f"--precise-bn-steps skipped: the {preset.name!r} model has no batch "
              "normalisation (no test_bpd_precise_bn)", flush=True)
        settings["precise_bn_steps"] = 0
      if state:
        self._resume()
      else:
        self._start()
      state.update(budget_minutes=args.minutes, eval_at_minutes=args.eval_at, pid=os.getpid())
      self.pending = [m for m in args.eval_at if m not in state["marks_done"]]
      self._last = None
      self._first_batch = True
      self._chunk_start_steps = state["steps"]
      self._chunk_start_seconds = state["train_seconds"]
      self.chunk = ChunkMeans()
      self._training_mode_forward = tf.function(
          # In training mode every batch-norm layer and bijector normalises with the batch's
          # statistics and updates its moving averages; nothing else changes.
          lambda x: self.model(x, training=True))
      print(f"{state['num_trainable_params']} trainable parameters; settings {settings}; "
            f"{state['steps']} steps and {state['train_seconds'] / 60:.2f} training minutes "
            f"done; marks to go {self.pending}", flush=True)

    def _start(self):
      """A new run: its description, and its clock and counters at zero."""
      model = self.model
      state.update({
          "benchmark": "mnist_quality", "date_utc": _runlog.utc_now(),
          "command": " ".join([sys.executable] + sys.argv), "data": str(data_path.resolve()),
          "config": {**settings, "preprocessing": "logit", "alpha": model.alpha,
                     "l2": model.l2, "optimizer": "Adam"},
          "machine": _runlog.machine_info(), "versions": library_versions(),
          "tf_threads": {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                         "inter_op": tf.config.threading.get_inter_op_parallelism_threads()},
          "clock": "training wall clock; excludes test evaluation, checkpointing and the first "
                   "step of each process (graph tracing), which is in summary.trace_seconds",
          "num_trainable_params": int(sum(np.prod(v.shape) for v in model.trainable_variables)),
          "steps": 0, "train_seconds": 0.0, "marks_done": [], "nonfinite_steps": 0,
          "first_nonfinite_step": None, "trace_seconds": [], "resumes": []})
      for path in (results_path, progress_path):
        path.unlink(missing_ok=True)

    def _resume(self):
      """An interrupted run: same settings; drops the lines of the steps trained again."""
      started = {key: state["config"][key] for key in RESUME_SETTINGS}
      if started != settings:
        raise training.RunError(
            f"{output} holds a run started with other settings ({started}); run its command "
            "again to resume it, or choose another --output.")
      dropped = sum(_runlog.keep_lines(path, lambda line: line["steps"] <= state["steps"])
                    for path in (results_path, progress_path))
      state["resumes"].append({"date_utc": _runlog.utc_now(), "at_steps": state["steps"],
                               "at_train_minutes": state["train_seconds"] / 60.0,
                               "lines_dropped": dropped, "command": " ".join(sys.argv),
                               "loadavg": list(os.getloadavg())})
      print(f"Resuming the run in {output} at step {state['steps']} ({dropped} result and "
            "progress lines after it dropped)", flush=True)

    def on_epoch_begin(self, epoch, logs=None):
      del epoch, logs
      self.chunk.start()  # Keras has reset its metrics for the new chunk.

    def on_train_batch_begin(self, batch, logs=None):
      if self._last is None:  # The clock restarts after a chunk's end (backup, samples).
        self._last = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
      now = time.perf_counter()
      elapsed = now - self._last
      self._last = now
      state["steps"] += 1
      if self._first_batch:
        # The first step traces the training graph: not training time.
        self._first_batch = False
        state["trace_seconds"].append(round(elapsed, 2))
        print(f"first step (graph tracing) took {elapsed:.1f} s", flush=True)
      else:
        state["train_seconds"] += elapsed
      self.chunk.step(logs or {})
      loss = float((logs or {}).get("loss", float("nan")))
      if not math.isfinite(loss):
        state["nonfinite_steps"] += 1
        if state["first_nonfinite_step"] is None:
          state["first_nonfinite_step"] = state["steps"]
        print(f"non-finite loss {loss} at step {state['steps']}", flush=True)
      minutes = state["train_seconds"] / 60.0
      while self.pending and minutes >= self.pending[0]:
        self._evaluate(self.pending.pop(0))
      if self.pending and args.max_steps and state["steps"] >= args.max_steps:
        self._evaluate(None)  # A final evaluation at the step limit.
      if _done(state, args):
        self.model.stop_training = True
      # Evaluation is not training time.
      self._last = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
      del epoch
      self._last = None
      seconds = state["train_seconds"] - self._chunk_start_seconds
      steps = state["steps"] - self._chunk_start_steps
      means = self.chunk.means()
      # Keras's epoch logs miss the steps before a mark's metric reset: the run record gets
      # the chunk's means over all its steps instead.
      logs.update(means)
      record = {"steps": state["steps"], "train_minutes": state["train_seconds"] / 60.0,
                "chunk_steps": steps, "train_loss": finite_or_none(means["loss"]),
                "train_bpd": finite_or_none(means["bits_per_dim"]),
                "chunk_steps_per_second": steps / seconds if seconds > 0 else None,
                "nonfinite_steps": state["nonfinite_steps"],
                "loadavg_1min": os.getloadavg()[0]}
      _runlog.append_jsonl(progress_path, record)
      print(json.dumps(record), flush=True)
      self._chunk_start_steps = state["steps"]
      self._chunk_start_seconds = state["train_seconds"]
      state["summary"] = summary()

    def on_train_end(self, logs=None):
      del logs
      state["summary"] = summary()
      state["finished_utc"] = _runlog.utc_now()
      state["stopped_because"] = (
          "budget reached" if not self.pending
          else "max steps reached" if args.max_steps and state["steps"] >= args.max_steps
          else "non-finite loss (TerminateOnNaN)")

    def _precise_bn_test_bpd(self):
      """Test bits/dim with moving statistics re-estimated at the current weights."""
      variables = self.model.non_trainable_variables
      saved = [v.numpy() for v in variables]
      for _ in range(settings["precise_bn_steps"]):
        self._training_mode_forward(next(calibration_batches))
      result = self.model.evaluate(test_ds, verbose=0, return_dict=True)["bits_per_dim"]
      for variable, value in zip(variables, saved, strict=True):
        variable.assign(value)
      return result

    def _evaluate(self, mark):
      start = time.perf_counter()
      # evaluate() shares the model's metric trackers: reset them afterwards, so that the
      # chunk's training running mean restarts instead of mixing in the test batches.
      # With --ema, the marks evaluate the averaged weights (those train saves).
      with training.averaged_weights(self.model):
        test = self.model.evaluate(test_ds, verbose=0, return_dict=True)
        eval_seconds = time.perf_counter() - start
        precise_bpd = None
        if settings["precise_bn_steps"] > 0:
          start = time.perf_counter()
          precise_bpd = finite_or_none(self._precise_bn_test_bpd())
          precise_seconds = round(time.perf_counter() - start, 1)
      self.model.reset_metrics()
      self.chunk.metrics_reset()
      record = {"mark_minutes": mark, "train_minutes": state["train_seconds"] / 60.0,
                "steps": state["steps"], "test_bpd": finite_or_none(test["bits_per_dim"]),
                "test_loss": finite_or_none(test["loss"]),
                "test_bpd_precise_bn": precise_bpd,
                "train_bpd": finite_or_none(self.chunk.means()["bits_per_dim"]),
                "train_bpd_note": "mean over the steps of the current chunk up to this one",
                "nonfinite_steps": state["nonfinite_steps"],
                "eval_seconds": round(eval_seconds, 1), "date_utc": _runlog.utc_now(),
                "loadavg_1min": os.getloadavg()[0]}
      if precise_bpd is not None:
        record["precise_bn_steps"] = settings["precise_bn_steps"]
        record["precise_bn_seconds"] = precise_seconds
      if mark is not None:
        state["marks_done"].append(mark)
      _runlog.append_jsonl(results_path, record)
      state["summary"] = summary()
      print("EVAL " + json.dumps(record), flush=True)

  callbacks = [QualityBenchmark()]
  if not args.no_terminate_on_nan:
    callbacks.append(keras.callbacks.TerminateOnNaN())
  try:
    result = training.train(
        str(data_path), output, preset, epochs=epochs, steps_per_epoch=args.steps_per_epoch,
        seed=args.seed, mixed_precision=args.mixed_precision, verbose=0, callbacks=callbacks,
        validation_freq=0, state=state)
  except training.RunError as error:
    sys.exit(f"error: {error}")
  print(json.dumps(state["summary"], indent=2), flush=True)
  print(f"Stopped: {state['stopped_because']}. Results: {results_path}; run record: "
        f"{result.folder.metrics}", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
