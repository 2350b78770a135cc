"""Glow on MNIST: the `glow_mnist` preset trained with `model.fit`, resumable, with test bits/dim.

What it shows: training a multi-scale `tfp_realnvp.Glow` (Kingma & Dhariwal, 2018: per level a
squeeze, then steps of actnorm, invertible 1x1 convolution and affine coupling, then a split
with a learned prior) inside a `tfp_realnvp.FlowModel` by maximum likelihood, with the same
library run as the Real NVP examples: `tfp_realnvp.training.train`, what
`tfp-realnvp train --preset glow_mnist` (or `--data mnist --flow glow`) runs. The
architecture is that of the `glow_mnist` preset (`tfp_realnvp.presets`: its levels, steps per
level and width are listed there); Adam 1e-3, batch 64. The run keeps a backup of the
training state in `--output-dir/backup` (a killed run resumes after its last finished epoch
when the same command is run again), keeps the weights of the best validation epoch,
evaluates the test bits/dim on the whole test split with fixed dequantization noise, and
saves the results. `examples/mnist.py` trains Real NVP on the same data; the options and the
`--tiny` subset they share are in `examples/_image_example.py`.

Published figure for comparison: 1.05 test bits/dim on MNIST is the figure quoted for Glow
in the literature (e.g. Table 2 of FFJORD, Grathwohl et al. 2019, next to Real NVP's 1.06;
the Glow paper's own tables report CIFAR-10, ImageNet and LSUN), for models far larger and
trained far longer than this preset's epochs on a CPU.

Data (`--data`, read with `tfp_realnvp.data.load_images`):

* an `.npz` file with uint8 arrays `x_train` / `x_test` of 28x28(x1) images; the default is
  `../shared/data/mnist.npz` next to the repository when that file exists;
* otherwise the TensorFlow Datasets name `mnist`, read from `--data-dir` (TFDS's default
  folder if omitted). It is never downloaded unless `--download` is given; without it a data
  set that is not prepared stops the script with the command that prepares it.

Run (`--epochs` shortens the run; `--num-levels`, `--num-steps`, `--num-filters` and
`--coupling-network` override the preset's architecture):

  python examples/glow_mnist.py --data ../shared/data/mnist.npz --output-dir runs/glow_mnist
  python examples/glow_mnist.py --data mnist --data-dir ~/tensorflow_datasets --epochs 10

Every option of `tfp-realnvp train` is accepted (see `tfp-realnvp train --help`). `--tiny` is
a smoke run of well under a minute on 2 idle CPU cores, which the test suite runs
(`tests/integration/test_image_examples.py`): a Glow of one level of one step with 4 feature
maps, 2 epochs of 4 steps of 32 images, on the first 256 training and 32 test images of the data
(copied to `--output-dir/tiny_subset.npz`).

Writes to `--output-dir` (default `runs/glow_mnist`) the files of `examples/mnist.py`:
`samples/epoch_XXX.png`, `bits_per_dim.png`, `model.keras` (which `tfp-realnvp sample`,
`interpolate`, `evaluate` and `export` read), `metrics.json` and TensorBoard logs. Besides the
run's own report it prints one line comparing the test bits/dim with the published figure.
Errors end with one line `glow_mnist.py: error: ...` and exit status 1.
"""

import sys

import _image_example  # The options and run shared with the other image examples.

# Glow on MNIST (Kingma & Dhariwal, 2018).
PUBLISHED_BITS_PER_DIM = 1.05


def main(argv=None):
  return _image_example.main("glow_mnist.py", __doc__.split("\n\n", maxsplit=1)[0],
                             "glow_mnist", _image_example.default_data("mnist.npz", "mnist"),
                             PUBLISHED_BITS_PER_DIM, argv)


if __name__ == "__main__":
  sys.exit(main())
