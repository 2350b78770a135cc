"""What `examples/mnist.py` and `examples/cifar10.py` share: options, the `--tiny` subset, the run.

Both scripts train a preset with `tfp_realnvp.training.train` (the library function behind
`tfp-realnvp train`): they take the options of `tfp-realnvp train` (defined once, in
`tfp_realnvp_launcher.add_train_arguments`) with their own defaults, plus `--tiny`, and print
the test bits/dim next to the published figure.
"""

import argparse
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np

from tfp_realnvp import cli
from tfp_realnvp import data
from tfp_realnvp import training
import tfp_realnvp_launcher

__all__ = ["TINY_IMAGES", "TINY_OPTIONS", "main", "tiny_subset"]

# `--tiny`: images of each split copied from the data, and the defaults of the options.
TINY_IMAGES = {"train": 256, "test": 32}
TINY_OPTIONS = {"epochs": 2, "steps_per_epoch": 4, "batch_size": 32, "num_scales": 1,
                "num_filters": 4, "num_blocks": 1, "sample_count": 16}


def tiny_subset(source, data_dir, download, path):
  """Copies the first images of each split of `source` into an `.npz` file; returns `path`."""
  arrays = {}
  for split, count in TINY_IMAGES.items():
    images = data.load_images(source, split, batch_size=count, shuffle=False, data_dir=data_dir,
                              download=download, dequantize=False)
    # Without dequantization the pipeline yields k / 256 exactly.
    arrays[f"x_{split}"] = np.round(next(iter(images)).numpy() * 256).astype(np.uint8)
  path.parent.mkdir(parents=True, exist_ok=True)
  np.savez(path, **arrays)
  return path


def _parse(argv, description, defaults):
  parser = argparse.ArgumentParser(description=description, allow_abbrev=False)
  tfp_realnvp_launcher.add_train_arguments(parser)
  parser.add_argument("--tiny", action="store_true",
                      help="smoke run: tiny flow, a few steps, the first images of the data")
  parser.set_defaults(**defaults)
  args = parser.parse_args(argv)
  if args.tiny:  # Parse again with the tiny defaults: options given by the user win.
    parser.set_defaults(**TINY_OPTIONS)
    args = parser.parse_args(argv)
  return args


def main(script, description, preset, default_data, published, argv=None):
  """Trains `preset` on `--data` (default `default_data`) and compares with `published`.

  Returns:
    The exit status; a user error (unknown or unprepared data, ...) is one line on stderr.
  """
  args = _parse(argv, description, {"data": default_data, "preset": preset,
                                    "output_dir": os.path.join("runs", preset)})
  try:
    if args.tiny:
      args.data = os.fspath(tiny_subset(args.data, args.data_dir, args.download,
                                        pathlib.Path(args.output_dir) / "tiny_subset.npz"))
      print(f"Tiny run on the first {TINY_IMAGES['train']} training and {TINY_IMAGES['test']} "
            f"test images, copied to {args.data}")
    result = training.train(**cli.train_options(args))
  except (OSError, ValueError) as error:
    print(f"{script}: error: {' '.join(str(error).split())}", file=sys.stderr)
    return 1
  if result.test_bits_per_dim is None:  # metrics.json holds non-finite numbers as null.
    print(f"{script}: error: the test bits/dim is not finite", file=sys.stderr)
    return 1
  print(f"{preset}: test bits/dim {result.test_bits_per_dim:.4f} after "
        f"{len(result.metrics['history'])} epoch(s), best epoch {result.best_epoch} (published "
        f"Real NVP: {published:.2f} after full training)")
  return 0
