"""Real NVP on MNIST: the `mnist` preset trained with `model.fit`, resumable, with test bits/dim.

What it shows: training the multi-scale `tfp_realnvp.RealNVP` of the `mnist` preset (3 scales,
28 -> 14 -> 7, coupling ResNets of 2 residual blocks with 32 feature maps, batch normalisation;
Adam 1e-3, batch 64, 50 epochs) inside a `tfp_realnvp.FlowModel` by maximum likelihood. The
training run is the package's own `tfp-realnvp train` pipeline, called as
`tfp_realnvp.cli.main(["train", ...])` rather than re-written here: it builds the flow from the
preset, calls `model.fit` with a `keras.callbacks.BackupAndRestore` in `--output-dir/backup`
(a killed run resumes after its last finished epoch when the same command is run again),
evaluates the test bits/dim on the whole test split with fixed dequantization noise, and saves
the results. `examples/cifar10.py` runs the same pipeline with the paper's CIFAR-10
configuration, reusing `add_arguments` and `train` from this file.

Data (`--data`, read with `tfp_realnvp.data.load_images`):

* an `.npz` file with uint8 arrays `x_train` / `x_test` of 28x28(x1) images; the default is
  `../shared/data/mnist.npz` next to the repository when that file exists;
* otherwise the TensorFlow Datasets name `mnist`, read from `--data-dir` (TFDS's default
  folder if omitted). It is never downloaded unless `--download` is given; without it a data
  set that is not prepared stops the script with the command that prepares it.

Run (the preset's 50 epochs of 938 steps take about 10 hours on 2 CPU cores, at the 1.2
steps per second of the README's benchmark, which reached 1.475 test bits/dim after 30
minutes; `--epochs` shortens the run):

  python examples/mnist.py --output-dir runs/mnist
  python examples/mnist.py --data mnist --data-dir ~/tensorflow_datasets --epochs 10

Any other option of `tfp-realnvp train` is passed on to it (`--epochs`, `--batch-size`,
`--steps-per-epoch`, `--seed`, `--strategy`, `--jit`, `--mixed-precision`, ...; see
`tfp-realnvp train --help`). `--tiny` is a smoke run of well under a minute on 2 idle CPU
cores: a single-scale flow (4 checkerboard couplings) with 4 feature maps and 1 residual
block, 2 epochs of 4 steps of 32 images, on the first 256 training and 32 test images of the
data (copied to `--output-dir/tiny_subset.npz`).

Writes to `--output-dir` (default `runs/mnist`): `samples/epoch_XXX.png` (a grid of 64
samples after each epoch), `bits_per_dim.png` (training and validation bits/dim per epoch),
`model.keras` (the trained `FlowModel`; `keras.models.load_model` after `import tfp_realnvp`),
`metrics.json` (configuration, per-epoch history, `test_bits_per_dim`) and TensorBoard logs.
Besides the pipeline's own report it prints one line comparing the test bits/dim with the
published figure.
"""

import argparse
import json
import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np

from tfp_realnvp import cli
from tfp_realnvp import data

DEFAULT_NPZ = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist.npz"
# Real NVP on MNIST, as reported by later work (the Real NVP paper has no MNIST result).
PUBLISHED_BITS_PER_DIM = 1.06
# `--tiny`: images of each split copied from the data, then `tfp-realnvp train` options.
TINY_IMAGES = {"train": 256, "test": 32}
TINY_OPTIONS = ("--epochs", "2", "--steps-per-epoch", "4", "--batch-size", "32",
                "--num-scales", "1", "--num-filters", "4", "--num-blocks", "1",
                "--sample-count", "16")


def add_arguments(parser, default_output_dir):
  """Adds the options of the image examples that are not passed on to `tfp-realnvp train`.

  Args:
    parser: an `argparse.ArgumentParser`.
    default_output_dir: default of `--output-dir`.
  """
  parser.add_argument("--output-dir", default=default_output_dir,
                      help=f"where the results are written (default: {default_output_dir})")
  parser.add_argument("--data-dir", default=None,
                      help="TensorFlow Datasets data directory (default: TFDS's own)")
  parser.add_argument("--download", action="store_true",
                      help="allow TensorFlow Datasets to download and prepare the data set")
  parser.add_argument("--tiny", action="store_true",
                      help="smoke run: tiny flow, a few steps, the first images of the data")


def tiny_subset(source, data_dir, download, path):
  """Copies the first images of each split of `source` into an `.npz` file.

  Args:
    source: a `tfp_realnvp.data.load_images` source.
    data_dir: TensorFlow Datasets data directory, or `None`.
    download: whether TensorFlow Datasets may download a missing data set.
    path: the `.npz` file to write (`x_train`, `x_test`: uint8 `[N, H, W, C]`).

  Returns:
    `path`.
  """
  arrays = {}
  for split, count in TINY_IMAGES.items():
    images = data.load_images(source, split, batch_size=count, shuffle=False, data_dir=data_dir,
                              download=download, dequantize=False)
    # Without dequantization the pipeline yields k / 256 exactly.
    arrays[f"x_{split}"] = np.round(next(iter(images)).numpy() * 256).astype(np.uint8)
  path.parent.mkdir(parents=True, exist_ok=True)
  np.savez(path, **arrays)
  return path


def train(script, source, preset, args, train_options, published):
  """Runs `tfp-realnvp train` for a preset and prints the test bits/dim next to a published one.

  Args:
    script: the example's file name, for error messages.
    source: the data source (`--data` of `tfp-realnvp train`).
    preset: the preset name.
    args: the parsed options of `add_arguments`.
    train_options: further `tfp-realnvp train` options (strings).
    published: the published test bits/dim of Real NVP on these data.

  Raises:
    SystemExit: if the data cannot be read (with the reason), the training run fails, or the
      test bits/dim is not finite.
  """
  output_dir = pathlib.Path(args.output_dir)
  if args.tiny:
    try:
      source = tiny_subset(source, args.data_dir, args.download,
                           output_dir / "tiny_subset.npz")
    except (FileNotFoundError, ValueError) as error:
      raise SystemExit(f"{script}: error: {error}") from None
    print(f"Tiny run on the first {TINY_IMAGES['train']} training and {TINY_IMAGES['test']} "
          f"test images, copied to {source}")
    train_options = [*TINY_OPTIONS, *train_options]  # Options given by the user win.
  argv = ["train", "--data", os.fspath(source), "--preset", preset, "--output-dir",
          os.fspath(output_dir)]
  if args.data_dir is not None:
    argv += ["--data-dir", args.data_dir]
  if args.download:
    argv.append("--download")
  status = cli.main(argv + list(train_options))
  if status:
    raise SystemExit(status)
  metrics = json.loads((output_dir / "metrics.json").read_text())
  if metrics["test_bits_per_dim"] is None:  # metrics.json holds non-finite numbers as null.
    raise SystemExit(f"{script}: error: the test bits/dim is not finite")
  print(f"{preset}: test bits/dim {metrics['test_bits_per_dim']:.4f} after "
        f"{len(metrics['history'])} epoch(s) (published Real NVP: {published:.2f} after full "
        "training)")


def main(argv=None):
  parser = argparse.ArgumentParser(
      description=__doc__.split("\n\n", maxsplit=1)[0], allow_abbrev=False,
      epilog="Other options are passed on to `tfp-realnvp train` (see `tfp-realnvp train --help`).")
  default_data = os.fspath(DEFAULT_NPZ) if DEFAULT_NPZ.is_file() else "mnist"
  parser.add_argument("--data", default=default_data,
                      help=".npz file of 28x28 uint8 images (x_train, x_test) or the TFDS name "
                           f"'mnist' (default: {default_data})")
  add_arguments(parser, "runs/mnist")
  args, train_options = parser.parse_known_args(argv)
  train("mnist.py", args.data, "mnist", args, train_options, PUBLISHED_BITS_PER_DIM)


if __name__ == "__main__":
  main()
