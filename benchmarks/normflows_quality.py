#!/usr/bin/env python
"""Equal-time quality benchmark for normflows: MNIST test bits/dim after a training-time budget.

The normflows (PyTorch) counterpart of `mnist_quality.py`: trains the normflows model of
`normflows_worker.py` (the same multi-scale Real NVP, or with `--flow glow` the same Glow, as
`tfp_realnvp`, built from normflows' flows; configurations and flags of `_configs.py`) on the
60,000 MNIST training images for a budget of *training* wall-clock minutes, and at each mark
reports bits/dim on the full 10,000-image test set.

* Training: Adam 1e-3, batch 64, shuffled epochs (the last partial batch of an epoch is
  dropped), every batch dequantized afresh as `x = (k + u) / 256`, `u ~ U[0, 1)`; loss = mean
  NLL (nats) + `5e-5 * sum(g**2)` over the weight-norm scales (Real NVP; Glow has none, so its
  loss is the NLL). A step whose loss is not finite is counted and not applied (no optimizer
  step; its forward pass has already updated the batch-norm moving averages, as a
  training-mode forward pass does); training goes on. Glow's ActNorms initialise themselves
  from the first training batch.
  `--max-steps` stops earlier, with a last evaluation (`mark_minutes: null`).
* Clock: the time of the training steps only (batch preparation, forward, backward, Adam),
  from the first step on; evaluations and file writes are excluded. A mark is evaluated at the
  first step whose training time reaches it (so late by at most one step).
* Evaluation: the test images are dequantized ONCE with `--test-seed`, so every evaluation and
  every run sees the same continuous images; the model is in eval mode (batch norm uses its
  moving averages), batches of `--eval-batch-size`. Bits/dim
  `= (NLL_x + D ln 256) / (D ln 2)`, `NLL_x` the negative log-density of the dequantized `x` in
  `[0, 1)^D` (the logit preprocessing's log-Jacobian included).

`--recipe example` trains instead what a normflows user gets by default: the library's
documented image example (`RECIPES`: its Glow notebook's model, optimizer and batch size,
unconditional, with as many of its three levels as the image's shape allows, two for MNIST),
on the same data, clock and evaluation.

Output folder (`--output`), written as the run goes:

* `run.json`: configuration, library versions, parameter count, machine; rewritten at the end
  with a summary.
* `results.jsonl`: one line per mark (`mark_minutes, train_minutes, steps, test_bpd,
  train_bpd, nonfinite_steps, date_utc, loadavg_1min, eval_seconds`); `train_bpd` is the mean
  over the last `--log-every` finite training steps.
* `progress.jsonl`: one line per `--log-every` steps (`steps, train_minutes, train_bpd,
  steps_per_second, loadavg`).

Example (from the repository root, with the benchmark venv of
`benchmarks/requirements-normflows.txt`):

```bash
.bench-venv/bin/python benchmarks/normflows_quality.py --minutes 30 --eval-at 10,30 \
    --output benchmarks/runs/normflows30
.bench-venv/bin/python benchmarks/normflows_quality.py --flow glow --minutes 30 \
    --eval-at 10,30 --output benchmarks/runs/normflows-glow30
.bench-venv/bin/python benchmarks/normflows_quality.py --recipe example --minutes 30 \
    --eval-at 10,30 --output benchmarks/runs/normflows-example30
```
"""

import argparse
import collections
import json
import math
import os
import pathlib
import sys
import time

import numpy as np
import normflows as nf
import torch

import normflows_worker as worker
import _configs
import _runlog

_REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_DATA = _REPO_ROOT.parent / "shared" / "data" / "mnist.npz"
RECIPES = ("matched", "example")
# `--recipe example`: normflows' documented image example (its notebook
# examples/glow_colab.ipynb, a class-conditional Glow on CIFAR-10), taken unconditional and
# fitted to the data's shape. Up to 3 levels (as many as the image's height and width halve
# to), 16 `GlowBlock`s per level with 256 hidden channels (channel split, sigmoid-scaled affine
# coupling, LU 1x1 convolution, ActNorm), a learned diagonal Gaussian base per level, no logit
# preprocessing (the flow models the dequantized `x` in [0, 1) itself), Adamax with learning
# rate 1e-3 and weight decay 1e-5, batch 128, non-finite steps skipped.
EXAMPLE_MAX_LEVELS = 3
EXAMPLE_STEPS = 16
EXAMPLE_HIDDEN_CHANNELS = 256
EXAMPLE_BATCH_SIZE = 128
EXAMPLE_LEARNING_RATE = 1e-3
EXAMPLE_WEIGHT_DECAY = 1e-5


def parse_args(argv=None):
  """Parses the command line."""
  parser = argparse.ArgumentParser(
      description=__doc__.split("\n\n", maxsplit=1)[0],
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  parser.add_argument("--config", choices=_configs.NAMES, default="mnist",
                      help="Model configuration (_configs.py); the data must have its image "
                           "shape.")
  _configs.add_arguments(parser)
  parser.add_argument("--data", default=str(DEFAULT_DATA),
                      help=".npz with uint8 x_train and x_test, (N, H, W[, C]).")
  parser.add_argument("--output", required=True,
                      help="Folder for run.json, results.jsonl and progress.jsonl.")
  _runlog.add_budget_arguments(parser)
  parser.add_argument("--recipe", choices=RECIPES, default="matched",
                      help="matched: the tfp_realnvp architecture and training of --config; "
                           "example: normflows' documented image example (its Glow notebook), "
                           "what a normflows user gets by default.")
  parser.add_argument("--batch-size", type=int, default=None,
                      help="Default: 64 (matched) or 128 (example).")
  parser.add_argument("--eval-batch-size", type=int, default=500)
  parser.add_argument("--log-every", type=int, default=100,
                      help="Steps per progress line (and the window of train_bpd).")
  parser.add_argument("--seed", type=int, default=0,
                      help="Seed of the weights, the shuffling and the training noise.")
  parser.add_argument("--test-seed", type=int, default=1234,
                      help="Seed of the fixed dequantization noise of the test set.")
  args = parser.parse_args(argv)
  _runlog.resolve_budget(parser, args)
  if args.batch_size is None:
    args.batch_size = EXAMPLE_BATCH_SIZE if args.recipe == "example" else 64
  try:
    args.model_config = _configs.resolve(args, args.config)
  except ValueError as e:
    parser.error(str(e))
  overrides = _configs.override_flags(args)[2::2]  # The flags after `--flow <name>`.
  if args.recipe == "example" and (overrides or args.flow != "realnvp"):
    parser.error(f"--recipe example has its own architecture (normflows' Glow example); drop "
                 f"{', '.join(overrides) or '--flow'}.")
  return args


def build_example_glow(image_shape):
  """The Glow of normflows' image example for channels-last `image_shape` (see `RECIPES`).

  Returns:
    `(model, num_levels)`.

  Raises:
    ValueError: an image whose height and width cannot be halved once.
  """
  h, w, c = image_shape
  levels = EXAMPLE_MAX_LEVELS
  while levels and (h % 2**levels or w % 2**levels):
    levels -= 1
  if not levels:
    raise ValueError(f"the example's Glow needs an even height and width, got {h}x{w}.")
  bases, merges, flows = [], [], []
  for i in range(levels):  # normflows' order: from the coarsest level to the data.
    flows.append([nf.flows.GlowBlock(c * 2 ** (levels + 1 - i), EXAMPLE_HIDDEN_CHANNELS,
                                     split_mode="channel", scale=True)
                  for _ in range(EXAMPLE_STEPS)] + [nf.flows.Squeeze()])
    if i:
      merges.append(nf.flows.Merge())
      factor = 2 ** (levels - i)
      base_shape = (c * factor, h // factor, w // factor)
    else:
      base_shape = (c * 2 ** (levels + 1), h // 2**levels, w // 2**levels)
    bases.append(nf.distributions.DiagGaussian(base_shape))
  return nf.MultiscaleFlow(bases, flows, merges), levels


def example_train_step(model, optimizer):
  """The example's training step: `(loss, nll)`, both the mean NLL; non-finite ones skipped."""

  def step(x):
    optimizer.zero_grad(set_to_none=True)
    nll = -model.log_prob(x, None).mean()
    if torch.isfinite(nll):
      nll.backward()
      optimizer.step()
    return nll.detach(), nll.detach()

  return step


def load_images(path, image_shape):
  """Loads uint8 `x_train` and `x_test` from `path` as NCHW uint8 arrays."""
  path = pathlib.Path(path)
  if not path.is_file():
    sys.exit(f"error: data not found at {path}; pass --data PATH (an .npz with uint8 x_train "
             "and x_test).")
  with np.load(path) as data:
    arrays = [data["x_train"], data["x_test"]]
  h, w, c = image_shape
  result = []
  for x in arrays:
    if x.ndim == 3:
      x = x[..., None]
    if x.dtype != np.uint8 or x.shape[1:] != (h, w, c):
      sys.exit(f"error: expected uint8 images of shape (N, {h}, {w}, {c}) in {path}, got "
               f"{x.dtype} {x.shape}.")
    result.append(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
  return result


def _mean_or_none(values):
  """Mean of `values`, or `None` if there are none."""
  return float(np.mean(values)) if values else None


def evaluate_bpd(model, x_test, batch_size, num_dims):
  """Mean test bits/dim of the fixed dequantized test set, in eval mode."""
  model.eval()
  total = 0.0
  with torch.no_grad():
    for start in range(0, len(x_test), batch_size):
      total += -model.log_prob(x_test[start:start + batch_size], None).double().sum().item()
  model.train()
  return worker.bits_per_dim(total / len(x_test), num_dims)


def main(argv=None):
  """Runs the benchmark; returns the exit status."""
  args = parse_args(argv)
  config = args.model_config
  output = pathlib.Path(args.output)
  run_path, results_path, progress_path = (
      output / "run.json", output / "results.jsonl", output / "progress.jsonl")
  if results_path.exists() or progress_path.exists():
    sys.exit(f"error: {output} already holds a run; choose another --output.")

  x_train, x_test_uint8 = load_images(args.data, config["image_shape"])
  num_dims = int(np.prod(x_train.shape[1:]))
  test_noise = np.random.default_rng(args.test_seed).uniform(size=x_test_uint8.shape)
  x_test = torch.from_numpy(((x_test_uint8 + test_noise) / 256.0).astype(np.float32))
  x_train = torch.from_numpy(x_train)

  torch.manual_seed(args.seed)
  common = {"batch_size": args.batch_size, "eval_batch_size": args.eval_batch_size,
            "seed": args.seed, "test_seed": args.test_seed, "max_steps": args.max_steps}
  try:
    if args.recipe == "example":
      model, num_levels = build_example_glow(config["image_shape"])
      optimizer = torch.optim.Adamax(model.parameters(), lr=EXAMPLE_LEARNING_RATE,
                                     weight_decay=EXAMPLE_WEIGHT_DECAY)
      train_step = example_train_step(model, optimizer)
      run_config = {"recipe": "example", "source": "normflows examples/glow_colab.ipynb",
                    "flow": "glow", "image_shape": config["image_shape"],
                    "num_levels": num_levels, "num_steps": EXAMPLE_STEPS,
                    "num_filters": EXAMPLE_HIDDEN_CHANNELS, "base": "learned DiagGaussian",
                    "preprocessing": "none", "optimizer": "Adamax",
                    "learning_rate": EXAMPLE_LEARNING_RATE,
                    "weight_decay": EXAMPLE_WEIGHT_DECAY, **common}
    else:
      model, _ = worker.build_model(config)
      optimizer = torch.optim.Adam(model.parameters(), lr=worker.LEARNING_RATE)
      train_step = worker.make_train_step(model, optimizer)
      run_config = {"recipe": "matched", "name": args.config, **config,
                    "preprocessing": "logit", "alpha": worker.LOGIT_ALPHA,
                    "l2": worker.L2_SCALE, "optimizer": "Adam",
                    "learning_rate": worker.LEARNING_RATE, **common}
  except ValueError as e:
    sys.exit(f"error: {e}")
  num_params = worker.count_params(model)
  run = {"benchmark": "normflows_quality", "library": "normflows", "date_utc": _runlog.utc_now(),
         "command": " ".join([sys.executable] + sys.argv),
         "data": str(pathlib.Path(args.data).resolve()),
         "budget_minutes": args.minutes, "eval_at_minutes": args.eval_at,
         "config": run_config,
         "num_trainable_params": num_params, "versions": worker.versions(),
         "torch_threads": torch.get_num_threads(), "machine": _runlog.machine_info(),
         "clock": "training steps only (batch preparation, forward, backward, Adam); "
                  "excludes evaluation and file writes"}
  output.mkdir(parents=True, exist_ok=True)
  _runlog.write_json(run_path, run)
  print(f"{num_params} trainable parameters; config {run['config']}", file=sys.stderr,
        flush=True)

  rng = np.random.default_rng(args.seed)
  noise = torch.Generator().manual_seed(args.seed)
  steps_per_epoch = len(x_train) // args.batch_size
  order = rng.permutation(len(x_train))
  train_seconds = 0.0
  steps = nonfinite = 0
  first_nonfinite_step = None
  window_bpd = []  # Bits/dim of the finite steps since the last progress line.
  recent_bpd = collections.deque(maxlen=args.log_every)  # Those of the last finite steps.
  window_start_seconds = 0.0
  pending = list(args.eval_at)

  def evaluate(mark):
    """Evaluates the test bits/dim and appends a line to results.jsonl."""
    start = time.perf_counter()
    test_bpd = evaluate_bpd(model, x_test, args.eval_batch_size, num_dims)
    record = {"mark_minutes": mark, "train_minutes": train_seconds / 60.0, "steps": steps,
              "test_bpd": test_bpd if math.isfinite(test_bpd) else None,
              "train_bpd": _mean_or_none(recent_bpd),
              "nonfinite_steps": nonfinite, "date_utc": _runlog.utc_now(),
              "loadavg_1min": os.getloadavg()[0],
              "eval_seconds": round(time.perf_counter() - start, 1)}
    _runlog.append_jsonl(results_path, record)
    print("EVAL " + json.dumps(record), file=sys.stderr, flush=True)

  stopped_because = "budget reached"
  while pending:
    if args.max_steps and steps >= args.max_steps:
      evaluate(None)
      stopped_because = "max steps reached"
      break
    start = time.perf_counter()
    index = steps % steps_per_epoch
    if index == 0 and steps:
      order = rng.permutation(len(x_train))
    batch = torch.from_numpy(order[index * args.batch_size:(index + 1) * args.batch_size])
    k = x_train[batch].float()
    x = (k + torch.rand(k.shape, generator=noise)) / 256.0
    loss, nll = train_step(x)
    loss = loss.item()
    train_seconds += time.perf_counter() - start
    steps += 1
    if math.isfinite(loss):
      bpd = worker.bits_per_dim(nll.item(), num_dims)
      window_bpd.append(bpd)
      recent_bpd.append(bpd)
    else:
      nonfinite += 1
      first_nonfinite_step = first_nonfinite_step or steps
      print(f"non-finite loss {loss} at step {steps}; step skipped", file=sys.stderr, flush=True)
    if steps % args.log_every == 0:
      window = train_seconds - window_start_seconds
      record = {"steps": steps, "train_minutes": train_seconds / 60.0,
                "train_bpd": _mean_or_none(window_bpd),
                "steps_per_second": args.log_every / window if window > 0 else None,
                "nonfinite_steps": nonfinite, "loadavg": list(os.getloadavg())}
      _runlog.append_jsonl(progress_path, record)
      print(json.dumps(record), file=sys.stderr, flush=True)
      window_bpd = []
      window_start_seconds = train_seconds
    while pending and train_seconds / 60.0 >= pending[0]:
      evaluate(pending.pop(0))

  run["summary"] = {"steps": steps, "train_minutes": train_seconds / 60.0,
                    "steps_per_second": steps / train_seconds if train_seconds > 0 else None,
                    "nonfinite_steps": nonfinite, "first_nonfinite_step": first_nonfinite_step,
                    "stopped_because": stopped_because, "finished_utc": _runlog.utc_now(),
                    "peak_rss_mb": _runlog.peak_rss_mb(), "loadavg": list(os.getloadavg())}
  _runlog.write_json(run_path, run)
  return 0


if __name__ == "__main__":
  sys.exit(main())
