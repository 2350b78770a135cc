"""The commands of `tfp-realnvp`: each takes the parsed arguments and calls the library.

The parser lives in the standard-library-only launcher `tfp_realnvp_launcher`, which imports
this module only once a command is parsed (so that `--help` answers without TensorFlow); this
module never imports the launcher. A command is a function `command(args) -> exit status` named
after it: `train` (`tfp_realnvp.training.train`), `evaluate` (bits/dim of a saved model on a
split, with a fixed dequantization seed), `sample` (a grid of samples), `interpolate`
(`FlowModel.interpolate` between 4 test images) and `export`
(`tfp_realnvp.export_saved_model`). `args.prog` is the program's name, for messages. Errors a
user can fix are raised as `tfp_realnvp.errors.Error` or `OSError`, which the launcher prints
as one line; run a command in-process with `tfp_realnvp_launcher.main([...])`.
"""

from __future__ import annotations

import argparse
import pathlib
from typing import Any, Sequence

import keras
import numpy as np
import tensorflow as tf

from tfp_realnvp import errors
from tfp_realnvp import data as data_lib
from tfp_realnvp import export as export_lib
from tfp_realnvp import plotting
from tfp_realnvp import training
from tfp_realnvp.model import FlowModel

__all__ = ["evaluate", "export", "interpolate", "sample", "train", "train_options"]

_JIT_COMPILE = {"auto": "auto", "on": True, "off": False}


def _make_strategy(name: str) -> tf.distribute.Strategy:
  """The `tf.distribute` strategy for `--strategy`; created before any other TF op."""
  if name == "default":
    return tf.distribute.get_strategy()
  try:
    if name == "mirrored":
      return tf.distribute.MirroredStrategy()
    if name == "multiworker":
      return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)
  except ValueError as error:  # No TPU found, a malformed TF_CONFIG, ...
    raise errors.InvalidValueError(f"--strategy {name}: {error}") from error


def _load_flow_model(path: str | pathlib.Path, prog: str) -> FlowModel:
  """Loads a `FlowModel` saved as `.keras`, or raises an error naming the problem."""
  path = pathlib.Path(path)
  if not path.exists():
    raise FileNotFoundError(f"{path}: no such model file.")
  if path.is_dir() or path.suffix != ".keras":
    raise errors.InvalidValueError(
        f"{path}: expected a .keras model file written by `{prog} train`.")
  try:
    model = keras.models.load_model(path, compile=False)
  except Exception as error:  # pylint: disable=broad-except
    raise errors.InvalidValueError(
        f"{path}: cannot load the model ({type(error).__name__}: {error}); the "
        f"file is damaged or not a model: write it again with `{prog} "
        "train`.") from error
  if not isinstance(model, FlowModel):
    raise errors.InvalidValueError(
        f"{path}: holds a {type(model).__name__}, not a tfp_realnvp FlowModel.")
  return model


def _model_and_data(args: argparse.Namespace) -> tuple[FlowModel, data_lib.ImageSource]:
  """The saved model of `args.model` and the data source of `args.data`, of the same shape."""
  model = _load_flow_model(args.model, args.prog)
  source = data_lib.get_source(args.data, data_dir=args.data_dir, download=args.download)
  if source.shape != tuple(model.event_shape):
    raise errors.InvalidValueError(
        f"shape mismatch: the model {args.model} is for images of shape "
        f"{tuple(model.event_shape)} (height, width, channels), but the data {args.data!r} has "
        f"images of shape {source.shape}.")
  return model, source


def train_options(args: argparse.Namespace) -> dict[str, Any]:
  """The `tfp_realnvp.training.train` arguments of parsed `train` options (strategy created).

  `args` holds the options of `tfp_realnvp_launcher.add_train_arguments` (the image examples
  add them to their own parsers).
  """
  return dict(
      data=args.data, output_dir=args.output_dir, preset=args.preset, flow=args.flow,
      steps_per_epoch=args.steps_per_epoch, seed=args.seed,
      strategy=_make_strategy(args.strategy),  # First: MultiWorkerMirroredStrategy requires it.
      mixed_precision=None if args.mixed_precision == "none" else args.mixed_precision,
      remat=None if args.remat == "none" else args.remat,
      jit_compile=_JIT_COMPILE[args.jit], sample_count=args.sample_count,
      data_dir=args.data_dir, download=args.download, epochs=args.epochs,
      batch_size=args.batch_size, learning_rate=args.learning_rate,
      warmup_steps=args.warmup_steps, clipnorm=args.clipnorm, ema=args.ema,
      num_scales=args.num_scales,
      num_blocks=args.num_blocks, num_levels=args.num_levels, num_steps=args.num_steps,
      num_filters=args.num_filters, coupling_network=args.coupling_network,
      coupling=args.coupling, dequantization=args.dequantization)


def train(args: argparse.Namespace) -> int:
  """`tfp-realnvp train`."""
  training.train(**train_options(args))
  return 0


def evaluate(args: argparse.Namespace) -> int:
  """`tfp-realnvp evaluate`."""
  seed = training.TEST_NOISE_SEED if args.seed is None else args.seed
  model, source = _model_and_data(args)
  split = args.split or source.training_splits()[-1]
  model.compile(jit_compile=False)
  bits, count = training.evaluate_test(model, source, split, args.batch_size, seed=seed,
                                       num_samples=args.importance_samples)
  if model.dequantizer is None:
    how = "dequantized"
  elif args.importance_samples == 1:
    how = "variational bound, dequantizer noise"
  else:
    how = f"importance-weighted bound of {args.importance_samples} dequantizer draws"
  print(f"{split} bits/dim: {float('nan') if bits is None else bits:.4f} ({args.data!r} split "
        f"{split!r}, {count} images, {how} with seed {seed})")
  return 0


def sample(args: argparse.Namespace) -> int:
  """`tfp-realnvp sample`."""
  plotting.image_format(args.output)  # Before the slow part.
  model = _load_flow_model(args.model, args.prog)
  images = model.sample(args.count, temperature=args.temperature, seed=args.seed)
  path = plotting.save_image_grid(images.numpy(), args.output, ncols=args.ncols)
  print(f"Wrote {args.count} samples (temperature {args.temperature:g}) to {path}")
  return 0


def _test_images(source: data_lib.ImageSource, indices: Sequence[int]) -> np.ndarray:
  """The 8-bit test (or held-out) images of `source` at `indices`, as floats `k / 256`."""
  split = source.training_splits()[-1]
  ds = data_lib.load_images(source, split, batch_size=256, shuffle=False, dequantize=False)
  needed = max(indices) + 1
  batches, count = [], 0
  for batch in ds:
    batches.append(batch.numpy())
    count += len(batches[-1])
    if count >= needed:
      return np.concatenate(batches)[list(indices)]
  raise errors.InvalidValueError(
      f"--indices {max(indices)} is out of range: the split {split!r} of "
      f"{source.name!r} has {count} images.")


def interpolate(args: argparse.Namespace) -> int:
  """`tfp-realnvp interpolate`."""
  plotting.image_format(args.output)
  model, source = _model_and_data(args)
  corners = _test_images(source, args.indices)
  grid = model.interpolate(corners, args.steps)
  path = plotting.save_image_grid(grid.numpy(), args.output, ncols=args.steps)
  print(f"Wrote the {args.steps}x{args.steps} interpolation grid between test images "
        f"{' '.join(str(i) for i in args.indices)} of {args.data!r} to {path}")
  return 0


def export(args: argparse.Namespace) -> int:
  """`tfp-realnvp export`."""
  model = _load_flow_model(args.model, args.prog)
  path = export_lib.export_saved_model(model, args.output, overwrite=args.overwrite)
  print(f"Wrote the SavedModel {path} (signatures: "
        f"{', '.join(export_lib.signatures_of(model))}, serving_default = log_prob)")
  return 0
