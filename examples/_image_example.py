"""What the image examples share: options, the `--tiny` subset, the default data, the run.

`examples/mnist.py`, `examples/glow_mnist.py` and `examples/cifar10.py` train a preset (Real
NVP or Glow) with `tfp_realnvp.training.train` (the library function behind
`tfp-realnvp train`): they take the options of `tfp-realnvp train` (defined once, in
`tfp_realnvp_launcher.add_train_arguments`) with their own defaults, plus `--tiny`, and print
the test bits/dim next to the published figure for the example's preset.
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
from tfp_realnvp import presets
from tfp_realnvp import training
import tfp_realnvp_launcher

__all__ = ["SHARED_DATA", "TINY_FLOW_OPTIONS", "TINY_IMAGES", "TINY_OPTIONS", "default_data",
           "main", "tiny_subset"]

# The team's shared data folder, next to the repository.
SHARED_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"
# `--tiny`: images of each split copied from the data, and the defaults of the options: those
# of every run, and the tiny flow of each kind (a single scale or level, one block or step).
TINY_IMAGES = {"train": 256, "test": 32}
TINY_OPTIONS = {"epochs": 2, "steps_per_epoch": 4, "batch_size": 32, "num_filters": 4,
                "sample_count": 16}
TINY_FLOW_OPTIONS = {"realnvp": {"num_scales": 1, "num_blocks": 1},
                     "glow": {"num_levels": 1, "num_steps": 1}}


def default_data(npz_name, tfds_name):
  """`SHARED_DATA / npz_name` when that file exists, else the TFDS name `tfds_name`."""
  path = SHARED_DATA / npz_name
  return os.fspath(path) if path.is_file() else tfds_name


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
  """The parsed options; with `--tiny`, the tiny defaults of the flow that will be trained.

  Raises:
    ValueError: with `--tiny`, for an unknown preset (the run would raise it too).
  """
  parser = argparse.ArgumentParser(description=description, allow_abbrev=False)
  tfp_realnvp_launcher.add_train_arguments(parser)
  parser.add_argument("--tiny", action="store_true",
                      help="smoke run: tiny flow, a few steps, the first images of the data")
  parser.set_defaults(**defaults)
  args = parser.parse_args(argv)
  if args.tiny:  # Parse again with the tiny defaults: options given by the user win.
    flow = args.flow or presets.get_preset(args.preset).flow.kind
    parser.set_defaults(**TINY_OPTIONS, **TINY_FLOW_OPTIONS[flow])
    args = parser.parse_args(argv)
  return args


def main(script, description, preset, default_data, published, argv=None):
  """Trains `preset` on `--data` (default `default_data`) and compares with `published`.

  `published` is the published test bits/dim of the flow of `preset` on the data (printed
  with that flow's title, whatever `--preset` or `--flow` trained).

  Returns:
    The exit status; a user error (unknown or unprepared data, ...) is one line on stderr.
  """
  try:
    args = _parse(argv, description, {"data": default_data, "preset": preset,
                                      "output_dir": os.path.join("runs", preset)})
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
  print(f"{result.metrics['config']['preset']}: test bits/dim {result.test_bits_per_dim:.4f} "
        f"after {len(result.metrics['history'])} epoch(s), best epoch {result.best_epoch} "
        f"(published {presets.get_preset(preset).title}: {published:.2f} after full training)")
  return 0
