#!/usr/bin/env python
"""Quality benchmark: test bits/dim of a Real NVP on MNIST after a fixed training-time budget.

Trains `tfp_realnvp.FlowModel(tfp_realnvp.RealNVP(...))` on the 60,000 MNIST training images
with `model.fit` (Adam, batch 64, the paper's logit preprocessing and L2 penalty) for a budget
of *training* wall-clock minutes, and at each evaluation mark reports bits/dim on the full
10,000-image test set. The training clock excludes evaluation, checkpointing and the first
step (which traces the graph); the first step's time is recorded separately.

Everything is written to the output folder as it happens, so a killed run keeps its results:

* `run.json`: configuration, machine, library versions, parameter count, and a summary that
  is rewritten at each mark (steps, steps/s, non-finite count, the marks so far).
* `results.jsonl`: one line per evaluation mark,
  `{train_minutes, steps, test_bpd, train_bpd, ...}`.
* `progress.jsonl`: one line per chunk of `--steps-per-epoch` steps (mean training loss and
  bits/dim over all the steps of the chunk, an evaluation mark inside it or not; steps/s, load
  average), to see divergence as it happens.
* `checkpoint.keras` and `state.json`: the model with its optimizer state, and the clock, so
  that `--resume` continues where the run stopped.

Example (from the repository root):

```bash
python benchmarks/mnist_quality.py --minutes 30 --eval-at 5,10,20,30 \
    --output benchmarks/runs/mnist30
```

Bits/dim: for dequantized 8-bit images `x = (k + u) / 256`,
`bpd = (NLL_x + D ln 256) / (D ln 2)`, which is what `FlowModel` reports; see
`benchmarks/README.md`.
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


def parse_args(argv=None):
  """Parses the command line."""
  parser = argparse.ArgumentParser(
      description=__doc__.split("\n\n", maxsplit=1)[0],
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  parser.add_argument("--data", default=str(DEFAULT_DATA),
                      help="MNIST .npz with uint8 x_train (60000, 28, 28[, 1]) and x_test.")
  parser.add_argument("--output", default=str(_REPO_ROOT / "benchmarks" / "runs" / "mnist"),
                      help="Folder for run.json, results.jsonl, progress.jsonl, checkpoint.")
  _runlog.add_budget_arguments(parser, default_marks=(5.0, 10.0, 20.0, 30.0))
  parser.add_argument("--resume", action="store_true",
                      help="Continue the run in --output from its last checkpoint.")
  parser.add_argument("--num-scales", type=int, default=3)
  parser.add_argument("--num-filters", type=int, default=32)
  parser.add_argument("--num-blocks", type=int, default=2)
  parser.add_argument("--batch-norm", action=argparse.BooleanOptionalAction, default=True,
                      help="Follow every coupling with a batch-norm bijector.")
  parser.add_argument("--learning-rate", type=float, default=1e-3)
  parser.add_argument("--batch-size", type=int, default=64)
  parser.add_argument("--steps-per-epoch", type=int, default=100,
                      help="Size of the chunks model.fit trains in (progress log granularity).")
  parser.add_argument("--eval-batch-size", type=int, default=500)
  parser.add_argument("--seed", type=int, default=0,
                      help="Seed of the weights, shuffling and training dequantization noise.")
  parser.add_argument("--test-seed", type=int, default=1234,
                      help="Seed of the (fixed) dequantization noise of the test set.")
  parser.add_argument("--precise-bn-steps", type=int, default=300,
                      help="At each mark, also report test bits/dim after re-estimating the "
                           "batch-norm moving statistics with this many training-mode forward "
                           "passes over training batches (weights untouched, statistics "
                           "restored afterwards); 0 turns it off.")
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


def main(argv=None):
  """Runs the benchmark; returns the process exit status."""
  args = parse_args(argv)
  data_path = _check_data(args.data)
  output = pathlib.Path(args.output)
  output.mkdir(parents=True, exist_ok=True)
  checkpoint_path = output / "checkpoint.keras"
  state_path = output / "state.json"
  run_path = output / "run.json"
  results_path = output / "results.jsonl"
  progress_path = output / "progress.jsonl"
  if not args.resume and (results_path.exists() or checkpoint_path.exists()):
    sys.exit(f"error: {output} already holds a run; pass --resume to continue it or choose "
             "another --output.")
  if args.resume and not (checkpoint_path.exists() and state_path.exists()):
    sys.exit(f"error: --resume but no checkpoint.keras/state.json in {output}.")

  # pylint: disable=g-import-not-at-top
  import keras
  import numpy as np
  import tensorflow as tf
  import tfp_realnvp
  from tfp_realnvp import training
  # pylint: enable=g-import-not-at-top
  finite_or_none = training.finite_or_none

  # --- Model ------------------------------------------------------------------------------------
  if args.resume:
    state = json.loads(state_path.read_text(encoding="utf-8"))
    run = json.loads(run_path.read_text(encoding="utf-8"))
    model = keras.models.load_model(checkpoint_path)
    run.setdefault("resumes", []).append({"date_utc": _runlog.utc_now(), "at_steps": state["steps"],
                                          "at_train_minutes": state["train_seconds"] / 60.0,
                                          "loadavg": list(os.getloadavg())})
    run["budget_minutes"] = args.minutes
    run["eval_at_minutes"] = args.eval_at
    config = run["config"]
  else:
    keras.utils.set_random_seed(args.seed)
    flow = tfp_realnvp.RealNVP(event_shape=(28, 28, 1), num_scales=args.num_scales,
                               num_filters=args.num_filters, num_blocks=args.num_blocks,
                               batch_norm=args.batch_norm)
    model = tfp_realnvp.FlowModel(flow)
    model.compile(optimizer=keras.optimizers.Adam(args.learning_rate))
    state = {"steps": 0, "train_seconds": 0.0, "marks_done": [], "nonfinite_steps": 0,
             "first_nonfinite_step": None, "trace_seconds": []}
    config = {"event_shape": [28, 28, 1], "num_scales": args.num_scales,
              "num_filters": args.num_filters, "num_blocks": args.num_blocks,
              "batch_norm": args.batch_norm, "preprocessing": "logit", "alpha": model.alpha,
              "l2": model.l2, "optimizer": "Adam", "learning_rate": args.learning_rate,
              "batch_size": args.batch_size, "steps_per_epoch": args.steps_per_epoch,
              "eval_batch_size": args.eval_batch_size, "seed": args.seed,
              "test_seed": args.test_seed,
              "precise_bn_steps": args.precise_bn_steps,
              "terminate_on_nan": not args.no_terminate_on_nan}
    run = {"benchmark": "mnist_quality", "date_utc": _runlog.utc_now(),
           "command": " ".join([sys.executable] + sys.argv), "data": str(data_path.resolve()),
           "budget_minutes": args.minutes, "eval_at_minutes": args.eval_at, "config": config,
           "machine": _runlog.machine_info(), "versions": library_versions(),
           "tf_threads": {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                          "inter_op": tf.config.threading.get_inter_op_parallelism_threads()},
           "clock": "training wall clock; excludes test evaluation, checkpointing and the first "
                    "step of each process (graph tracing), which is in summary.trace_seconds"}
  num_params = int(sum(np.prod(v.shape) for v in model.trainable_variables))
  run["num_trainable_params"] = num_params
  run["pid"] = os.getpid()

  # --- Data -------------------------------------------------------------------------------------
  # New shuffling and noise streams after a resume, so that a resumed run does not replay the
  # same batches.
  train_seed = args.seed + 1000 * len(run.get("resumes", []))
  train_ds = tfp_realnvp.data.load_images(
      str(data_path), split="train", batch_size=config["batch_size"], seed=train_seed,
      repeat=True, shuffle=True, drop_remainder=True)
  # The test set is dequantized once, with a fixed seed, so every evaluation (and every run)
  # sees exactly the same 10,000 continuous images.
  test_images = np.concatenate(list(tfp_realnvp.data.load_images(
      str(data_path), split="test", batch_size=1000, seed=config["test_seed"], shuffle=False,
      repeat=False).as_numpy_iterator()))
  if len(test_images) != NUM_TEST_IMAGES:
    sys.exit(f"error: expected {NUM_TEST_IMAGES} test images in {data_path}, got "
             f"{len(test_images)}.")
  test_ds = tf.data.Dataset.from_tensor_slices(test_images).batch(args.eval_batch_size)
  # Training batches for re-estimating the normalisation statistics (precise BN).
  calibration_batches = iter(tfp_realnvp.data.load_images(
      str(data_path), split="train", batch_size=config["batch_size"],
      seed=config["test_seed"] + 1, repeat=True, shuffle=True, drop_remainder=True))

  @tf.function
  def training_mode_forward(x):
    # In training mode every batch-norm layer and bijector normalises with the batch's
    # statistics and updates its moving averages; nothing else changes.
    return model(x, training=True)

  def precise_bn_test_bpd():
    """Test bits/dim with moving statistics re-estimated at the current weights."""
    saved = [v.numpy() for v in model.non_trainable_variables]
    for _ in range(args.precise_bn_steps):
      training_mode_forward(next(calibration_batches))
    result = model.evaluate(test_ds, verbose=0, return_dict=True)["bits_per_dim"]
    for variable, value in zip(model.non_trainable_variables, saved, strict=True):
      variable.assign(value)
    return result

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

  run["summary"] = summary()
  _runlog.write_json(run_path, run)
  print(f"{num_params} trainable parameters; config {config}", flush=True)

  class QualityBenchmark(keras.callbacks.Callback):
    """Keeps the training clock, counts non-finite losses, evaluates at the marks, stops."""

    def __init__(self):
      super().__init__()
      self._last = None
      self._first_batch = True
      self._chunk_start_steps = state["steps"]
      self._chunk_start_seconds = state["train_seconds"]
      self.chunk = ChunkMeans()
      self.pending = [m for m in args.eval_at if m not in state["marks_done"]]

    def on_epoch_begin(self, epoch, logs=None):
      del epoch, logs
      self.chunk.start()  # Keras has reset its metrics for the new chunk.

    def on_train_batch_begin(self, batch, logs=None):
      if self._last is None:
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
        self.model.stop_training = True
      if not self.pending:
        self.model.stop_training = True
      # Evaluation and checkpointing are not training time.
      self._last = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
      del epoch, logs  # Keras's epoch logs miss the steps before a mark's metric reset.
      seconds = state["train_seconds"] - self._chunk_start_seconds
      steps = state["steps"] - self._chunk_start_steps
      if steps == 0:  # The chunk that ended right after the last evaluation: nothing to log.
        return
      means = self.chunk.means()
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

    def _evaluate(self, mark):
      start = time.perf_counter()
      # evaluate() shares the model's metric trackers: reset them afterwards, so that the
      # chunk's training running mean restarts instead of mixing in the test batches.
      test = self.model.evaluate(test_ds, verbose=0, return_dict=True)
      eval_seconds = time.perf_counter() - start
      precise_bpd = None
      if args.precise_bn_steps > 0:
        start = time.perf_counter()
        precise_bpd = finite_or_none(precise_bn_test_bpd())
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
        record["precise_bn_steps"] = args.precise_bn_steps
        record["precise_bn_seconds"] = precise_seconds
      if mark is not None:
        state["marks_done"].append(mark)
      start = time.perf_counter()
      training.save_model(self.model, checkpoint_path)  # Atomically: a kill keeps the old one.
      _runlog.write_json(state_path, state)
      record["checkpoint_seconds"] = round(time.perf_counter() - start, 1)
      _runlog.append_jsonl(results_path, record)
      run["summary"] = summary()
      _runlog.write_json(run_path, run)
      print("EVAL " + json.dumps(record), flush=True)

  benchmark = QualityBenchmark()
  callbacks = [benchmark]
  if config.get("terminate_on_nan", True) and not args.no_terminate_on_nan:
    callbacks.append(keras.callbacks.TerminateOnNaN())
  if benchmark.pending:
    initial_epoch = state["steps"] // config["steps_per_epoch"]
    model.fit(train_ds, epochs=initial_epoch + 10**7, initial_epoch=initial_epoch,
              steps_per_epoch=config["steps_per_epoch"], callbacks=callbacks, verbose=0)
  run["summary"] = summary()
  run["finished_utc"] = _runlog.utc_now()
  run["stopped_because"] = (
      "non-finite loss (TerminateOnNaN)" if state["nonfinite_steps"] and benchmark.pending
      else "budget reached" if not benchmark.pending else "max steps reached")
  _runlog.write_json(state_path, state)
  _runlog.write_json(run_path, run)
  print(json.dumps(run["summary"], indent=2), flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
