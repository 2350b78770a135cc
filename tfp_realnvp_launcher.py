"""The `tfp-realnvp` console script: parses the command line before TensorFlow is imported.

`import tfp_realnvp` imports TensorFlow (the package's `__init__` registers every Keras class),
and every module inside the package runs that `__init__` first. So the parser lives in this
standard-library-only module beside the package (`py_modules` in `setup.cfg`): `--help`,
`--version` and argument errors are answered without TensorFlow, and only a parsed command
imports `tfp_realnvp.cli`, whose function of the command's name runs it (`python -m
tfp_realnvp` runs the same `main`). TensorFlow's C++ start-up lines are kept out of the output
unless `--verbose`.

Errors a user can fix (`tfp_realnvp.errors.Error`, `OSError`, TensorFlow's `OpError`) end with
one line `tfp-realnvp: error: ...` and exit status 1 (2 for argument errors); any other
exception is a bug and shows its traceback, as every error does with `--traceback`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import math
import os
import sys
import tempfile
import types
from typing import Callable, Iterator, Sequence

__all__ = ["PROG", "add_train_arguments", "build_parser", "main", "registered"]

PROG = "tfp-realnvp"
# The fixed choices that argparse checks; a test keeps them equal to the library's
# (`configs.DEQUANTIZATIONS`, `remat.MODES` after `none`). Preset names are not written here
# (an unknown one is refused by the library with the same one-line error), and the extensible
# kinds (flows, coupling transforms and networks) are read from the entry points that
# `tfp_realnvp._registry` loads, so a plugin's appear here too.
STRATEGIES = ("default", "mirrored", "multiworker", "tpu")
MIXED_PRECISIONS = ("auto", "none", "bfloat16", "float16")
REMAT_MODES = ("none", "recompute", "reversible")
JIT_MODES = ("auto", "on", "off")
DEQUANTIZATIONS = ("uniform", "variational")


def registered(group: str) -> tuple[str, ...] | None:
  """The names registered as entry points of `group` (e.g. `tfp_realnvp.flows`), sorted.

  `None` when there are none (a source tree on the path, without the package's metadata):
  argparse then takes any name, and the library's registry refuses an unknown one.
  """
  names = sorted({entry.name for entry in importlib.metadata.entry_points(group=group)})
  return tuple(names) or None


def _int_at_least(minimum: int) -> Callable[[str], int]:
  """An argparse type: an integer >= `minimum`."""
  def parse(text: str) -> int:
    try:
      value = int(text)
    except ValueError:
      raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
    if value < minimum:
      raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
    return value
  return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def _float_at_least(minimum: float, strict: bool) -> Callable[[str], float]:
  """An argparse type: a finite number >= `minimum` (> if `strict`)."""
  def parse(text: str) -> float:
    try:
      value = float(text)
    except ValueError:
      raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < minimum or (strict and value == minimum):
      relation = ">" if strict else ">="
      raise argparse.ArgumentTypeError(f"expected a finite number {relation} {minimum:g}, got "
                                       f"{text!r}")
    return value
  return parse


def _ema_momentum(text: str) -> float:
  """An argparse type: a momentum in [0, 1)."""
  value = _float_at_least(0.0, strict=False)(text)
  if value >= 1:
    raise argparse.ArgumentTypeError(f"expected a momentum in [0, 1) (0: off), got {text!r}")
  return value


def _version() -> str:
  try:
    return importlib.metadata.version("tfp_realnvp")
  except importlib.metadata.PackageNotFoundError:  # Run from a source tree, not installed.
    return "unknown (not installed)"


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument(
      "--data", default="digits",
      help="image source: 'digits' (embedded 8x8 digits, the default), a TensorFlow Datasets "
           "name (mnist, fashion_mnist, cifar10, celeb_a, downsampled_imagenet/32x32, "
           "downsampled_imagenet/64x64), an .npz file or a folder of images")
  parser.add_argument("--data-dir", default=None,
                      help="TensorFlow Datasets data directory (default: TFDS's own)")
  parser.add_argument("--download", action="store_true",
                      help="allow TensorFlow Datasets to download and prepare the data set")


def add_train_arguments(train: argparse.ArgumentParser) -> None:
  """Adds the options of `tfp-realnvp train` to a parser (also used by the image examples)."""
  _add_data_arguments(train)
  train.add_argument("--preset", default=None, metavar="NAME",
                     help="architecture and training settings, a preset of "
                          "tfp_realnvp.presets (default: chosen from the data set's image size;"
                          " an unknown name lists them)")
  train.add_argument("--flow", choices=registered("tfp_realnvp.flows"), default=None,
                     help="kind of flow, Real NVP or Glow (default: the preset's flow, Real NVP "
                          "when no preset is named; with glow and no preset: the Glow preset "
                          "for the data set's image size)")
  train.add_argument("--epochs", type=_positive_int, default=None,
                     help="number of epochs (default: the preset's)")
  train.add_argument("--batch-size", type=_positive_int, default=None,
                     help="global batch size (default: the preset's, 64)")
  train.add_argument("--learning-rate", type=_float_at_least(0.0, strict=True), default=None,
                     help="Adam learning rate (default: the preset's, 1e-3)")
  train.add_argument("--warmup-steps", type=_non_negative_int, default=None,
                     help="steps of linear learning-rate warm-up from 0 (default: the preset's, "
                          "0: none)")
  train.add_argument("--clipnorm", type=_float_at_least(0.0, strict=True), default=None,
                     help="scale the gradients down so that their global norm (over all "
                          "variables) is at most this (Keras's global_clipnorm; default: the "
                          "preset's, no clipping)")
  train.add_argument("--ema", type=_ema_momentum, default=None, metavar="MOMENTUM",
                     help="validate, sample and save an exponential moving average of the "
                          "weights with this momentum, e.g. 0.999 (Keras's use_ema; default: "
                          "the preset's, 0: off)")
  train.add_argument("--steps-per-epoch", type=_positive_int, default=None,
                     help="cap on the training steps per epoch (default: one pass over the data)")
  train.add_argument("--strategy", choices=STRATEGIES, default="default",
                     help="tf.distribute strategy: the default one, MirroredStrategy (all local "
                          "GPUs), MultiWorkerMirroredStrategy (reads TF_CONFIG) or TPUStrategy")
  train.add_argument("--mixed-precision", choices=MIXED_PRECISIONS, default="auto",
                     help="Keras mixed-precision policy of the networks (densities stay "
                          "float32): auto (bfloat16 on TPUs, GPUs of compute capability 8.0 "
                          "and up and CPUs with AMX or AVX-512 BF16, float32 elsewhere; an "
                          "interrupted run resumes in its own), none (float32), bfloat16, "
                          "float16 (default: auto)")
  train.add_argument("--remat", choices=REMAT_MODES, default="none",
                     help="training memory: recompute each coupling's network activations in "
                          "the backward pass, or rebuild every step's input from its output "
                          "with the exact inverse (reversible: memory that does not grow with "
                          "depth); same gradients, slower steps (default: none)")
  train.add_argument("--jit", choices=JIT_MODES, default="auto",
                     help="XLA compilation of the training step: auto (on TPUs and on a GPU "
                          "without tf.distribute, off on CPUs), on, off (default: auto)")
  train.add_argument("--output-dir", default=None, help="output folder (default: runs/<data>)")
  train.add_argument("--seed", type=_non_negative_int, default=0,
                     help="seed of the initial weights, data order and noise (default: 0)")
  train.add_argument("--num-scales", type=_positive_int, default=None,
                     help="Real NVP: override the preset's number of scales")
  train.add_argument("--num-blocks", type=_positive_int, default=None,
                     help="Real NVP: override the preset's residual blocks per coupling network")
  train.add_argument("--num-levels", type=_positive_int, default=None,
                     help="Glow: override the preset's number of levels")
  train.add_argument("--num-steps", type=_positive_int, default=None,
                     help="Glow: override the preset's steps of flow per level")
  train.add_argument("--num-filters", type=_positive_int, default=None,
                     help="override the preset's feature maps of the coupling networks")
  train.add_argument("--coupling-network", choices=registered("tfp_realnvp.coupling_networks"),
                     default=None,
                     help="Glow: override the preset's coupling network (glow: Glow's own; "
                          "resnet: Real NVP's ResNet; or a plugin's)")
  train.add_argument("--coupling", choices=registered("tfp_realnvp.coupling_transforms"),
                     default=None,
                     help="override the preset's couplings (affine: the paper's; additive: "
                          "NICE's; spline: rational-quadratic splines, 8 bins on [-3, 3]; or a "
                          "plugin's)")
  train.add_argument("--dequantization", choices=DEQUANTIZATIONS, default=None,
                     help="override the preset's dequantization (uniform: noise added by the "
                          "data pipeline, the default; variational: a learned dequantizer "
                          "q(u | k) trained with the flow (Flow++), whose bits/dim are the "
                          "variational bound)")
  train.add_argument("--sample-count", type=_positive_int, default=64,
                     help="images in each epoch's sample grid (default: 64)")


def build_parser() -> argparse.ArgumentParser:
  """The `argparse` parser of the command line (standard library only)."""
  parser = argparse.ArgumentParser(
      prog=PROG, description="Train, evaluate and sample Real NVP and Glow normalizing flows.",
      epilog="An error that you can fix (a bad argument, a missing or damaged file, an unknown "
             "data set or preset) is one line on the standard error, with exit status 1 (2 for "
             "the argument errors found before any work); --traceback shows its traceback.")
  parser.set_defaults(prog=PROG)  # The program's name, for the commands' messages.
  parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
  parser.add_argument("--traceback", action="store_true",
                      help="show the full Python traceback of errors")
  parser.add_argument("--verbose", action="store_true",
                      help="show TensorFlow's own log lines (C++ start-up, absl warnings)")
  commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
  add_train_arguments(commands.add_parser(
      "train", help="train a flow by maximum likelihood",
      description="Train a Real NVP or Glow flow and keep the weights of its best validation "
                  "epoch. With no arguments: the 'digits' preset on the embedded 8x8 digits. "
                  "Running the same command again after an interruption resumes after "
                  "the last finished epoch."))

  evaluate = commands.add_parser(
      "evaluate", help="bits/dim of a saved model on a data set",
      description="Print the bits/dim of a saved .keras model on a split of a data set, "
                  "dequantized with a fixed seed (by default the one of train's test bits/dim).")
  evaluate.add_argument("model", metavar="MODEL", help="a .keras file written by train")
  _add_data_arguments(evaluate)
  evaluate.add_argument("--split", default=None,
                        help="split to evaluate (default: test, or for data with a training "
                             "split only the held-out slice that train tests on)")
  evaluate.add_argument("--batch-size", type=_positive_int, default=64, help="default: 64")
  evaluate.add_argument("--seed", type=_non_negative_int, default=None,
                        help="seed of the dequantization noise (default: train's fixed test "
                             "seed, tfp_realnvp.training.TEST_NOISE_SEED)")
  evaluate.add_argument("--importance-samples", type=_positive_int, default=1, metavar="K",
                        help="for a model with a variational dequantizer: noise draws per "
                             "image of the importance-weighted bound (default: 1, the "
                             "variational bound that training reports)")

  image_help = ("image file; its suffix picks the format (.png, .jpg, .bmp, ...: any that "
                "Pillow writes)")
  sample = commands.add_parser("sample", help="draw samples from a saved model into an image grid")
  sample.add_argument("model", metavar="MODEL", help="a .keras file written by train")
  sample.add_argument("--count", type=_positive_int, default=64,
                      help="number of samples (default: 64)")
  sample.add_argument("--temperature", type=_float_at_least(0.0, strict=False), default=1.0,
                      help="standard deviation of the base distribution (default: 1.0)")
  sample.add_argument("--seed", type=_non_negative_int, default=None,
                      help="seed of the samples (default: random)")
  sample.add_argument("--ncols", type=_positive_int, default=None,
                      help="columns of the grid (default: about the square root of --count)")
  sample.add_argument("--output", default="samples.png",
                      help=f"{image_help} (default: samples.png)")

  interpolate = commands.add_parser(
      "interpolate", help="interpolate between 4 test images in the latent space",
      description="Map 4 test images to latents z1..z4 and draw, for p (rows) and q (columns) "
                  "in [0, pi/2], the images of z = cos(p) (z1 cos(q) + z2 sin(q)) + sin(p) "
                  "(z3 cos(q) + z4 sin(q)). The corners are the 4 images.")
  interpolate.add_argument("model", metavar="MODEL", help="a .keras file written by train")
  _add_data_arguments(interpolate)
  interpolate.add_argument("--indices", type=_non_negative_int, nargs=4, default=[0, 1, 2, 3],
                           metavar=("I1", "I2", "I3", "I4"),
                           help="positions of the 4 images in the test split (the held-out "
                                "slice for data with a training split only; default: 0 1 2 3)")
  interpolate.add_argument("--steps", type=_int_at_least(2), default=8,
                           help="rows and columns of the grid (default: 8)")
  interpolate.add_argument("--output", default="interpolation.png",
                           help=f"{image_help} (default: interpolation.png)")

  export = commands.add_parser(
      "export", help="export a saved model as a TensorFlow SavedModel",
      description="Write a SavedModel with the signatures log_prob (serving_default), "
                  "bits_per_dim, sample(count, seed, temperature), forward and inverse; it is "
                  "served by TensorFlow alone (no TFP, no tfp_realnvp).")
  export.add_argument("model", metavar="MODEL", help="a .keras file written by train")
  export.add_argument("output", metavar="OUTPUT", help="SavedModel folder to write")
  export.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT")
  return parser


@contextlib.contextmanager
def _stderr_dropped() -> Iterator[None]:
  """Drops what is written to file descriptor 2 in the block, unless the block raises."""
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile() as sink:
    os.dup2(sink.fileno(), 2)
    try:
      yield
    except BaseException:
      os.dup2(saved, 2)
      sink.seek(0)
      sys.stderr.write(sink.read().decode(errors="replace"))
      raise
    finally:
      os.dup2(saved, 2)
      os.close(saved)


def _import_commands(verbose: bool) -> types.ModuleType:
  """Imports `tfp_realnvp.cli` (and TensorFlow), quietly unless `verbose`.

  Unless `verbose`, `TF_CPP_MIN_LOG_LEVEL` is set to 3 (if not set already) before TensorFlow is
  imported, what the import writes to the standard error is dropped (shown if it fails), and
  absl's warnings are turned off.
  """
  if verbose or "tensorflow" in sys.modules:
    from tfp_realnvp import cli  # pylint: disable=g-import-not-at-top
    return cli
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  with _stderr_dropped():
    from tfp_realnvp import cli  # pylint: disable=g-import-not-at-top
  import absl.logging  # pylint: disable=g-import-not-at-top
  absl.logging.set_verbosity(absl.logging.ERROR)
  return cli


def _user_errors() -> tuple[type[BaseException], ...]:
  """The exception types reported as a one-line error instead of a traceback.

  The package's own errors (`tfp_realnvp.errors.Error`: bad arguments, data, presets, runs),
  the operating system's (missing files, a full disk) and TensorFlow's run-time errors (the
  checks of `validate_args`); any other exception is a bug and keeps its traceback.
  """
  found: list[type[BaseException]] = [OSError]
  for module, name in (("tfp_realnvp.errors", "Error"), ("tensorflow", "errors")):
    value = getattr(sys.modules.get(module), name, None)
    if value is not None:
      found.append(value.OpError if module == "tensorflow" else value)
  return tuple(found)


def _one_line(error: BaseException) -> str:
  text = " ".join(str(error).split())
  return text or type(error).__name__


def main(argv: Sequence[str] | None = None) -> int:
  """Runs the command line; returns the exit status (0 on success).

  Args:
    argv: the arguments after the program's name (default: `sys.argv[1:]`).

  Returns:
    0 on success, 1 for an error that the user can fix (printed as one line), 130 when
    interrupted.

  Raises:
    SystemExit: for `--help`, `--version` and argument errors (argparse's, status 0 or 2).
    Exception: any other error (a bug), or any error with `--traceback`.
  """
  args = build_parser().parse_args(argv)
  try:
    cli = _import_commands(args.verbose)
    return getattr(cli, args.command)(args)
  except KeyboardInterrupt:
    print(f"{PROG}: error: interrupted", file=sys.stderr)
    return 130
  except Exception as error:  # pylint: disable=broad-except
    if args.traceback or not isinstance(error, _user_errors()):
      raise
    print(f"{PROG}: error: {_one_line(error)}", file=sys.stderr)
    return 1


if __name__ == "__main__":
  sys.exit(main())
