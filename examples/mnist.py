"""Real NVP on MNIST: the `mnist` preset trained with `model.fit`, resumable, with test bits/dim.

What it shows: training the multi-scale `tfp_realnvp.RealNVP` of the `mnist` preset (3 scales,
28 -> 14 -> 7, coupling ResNets of 2 residual blocks with 32 feature maps, rational-quadratic
spline couplings, batch normalisation, a learned variational dequantizer whose bits/dim are
the variational bound; Adam 1e-3, batch 64, 50 epochs) inside a
`tfp_realnvp.FlowModel` by maximum likelihood. The training run is the library's
`tfp_realnvp.training.train` (what `tfp-realnvp train` runs), not re-written here: it builds the
flow from the preset, calls `model.fit` with a backup of the training state in
`--output-dir/backup` (a killed run resumes after its last finished epoch when the same command
is run again), keeps the weights of the best validation epoch, evaluates the test bits/dim on
the whole test split with fixed dequantization noise, and saves the results.
`examples/cifar10.py` does the same with the paper's CIFAR-10 configuration,
`examples/glow_mnist.py` with Glow on MNIST; the options and the `--tiny` subset they all use
are in `examples/_image_example.py`.

Data (`--data`, read with `tfp_realnvp.data.load_images`):

* an `.npz` file with uint8 arrays `x_train` / `x_test` of 28x28(x1) images; the default is
  `../shared/data/mnist.npz` next to the repository when that file exists;
* otherwise the TensorFlow Datasets name `mnist`, read from `--data-dir` (TFDS's default
  folder if omitted). It is never downloaded unless `--download` is given; without it a data
  set that is not prepared stops the script with the command that prepares it.

Run (the preset's 50 epochs of 938 steps take about 14 hours on one CPU core, at the 0.95
steps per second of the README's benchmark, which reached 1.205 test bits/dim after 30
minutes; `--epochs` shortens the run, `--coupling affine --dequantization uniform` gives the
paper's couplings and noise):

  python examples/mnist.py --output-dir runs/mnist
  python examples/mnist.py --data mnist --data-dir ~/tensorflow_datasets --epochs 10

Every option of `tfp-realnvp train` is accepted (`--epochs`, `--batch-size`,
`--steps-per-epoch`, `--seed`, `--strategy`, `--jit`, `--mixed-precision`, ...; see `tfp-realnvp
train --help`). `--tiny` is a smoke run of well under a minute on 2 idle CPU cores: a
single-scale flow (4 checkerboard spline couplings) with 4 feature maps and 1 residual block, 2
epochs of 4 steps of 32 images, on the first 256 training and 32 test images of the data (copied
to `--output-dir/tiny_subset.npz`).

Writes to `--output-dir` (default `runs/mnist`): `samples/epoch_XXX.png` (a grid of 64
samples after each epoch), `bits_per_dim.png` (training and validation bits/dim per epoch),
`model.keras` (the trained `FlowModel`; `keras.models.load_model` after `import tfp_realnvp`),
`metrics.json` (configuration, per-epoch history, `test_bits_per_dim`) and TensorBoard logs.
Besides the run's own report it prints one line comparing the test bits/dim with the published
figure. Errors (data not found, not prepared, ...) end with one line `mnist.py: error: ...`
and exit status 1.
"""

import sys

import _image_example  # The options and run shared with the other image examples.

# Real NVP on MNIST, as reported by later work (the Real NVP paper has no MNIST result).
PUBLISHED_BITS_PER_DIM = 1.06


def main(argv=None):
  return _image_example.main("mnist.py", __doc__.split("\n\n", maxsplit=1)[0], "mnist",
                             _image_example.default_data("mnist.npz", "mnist"),
                             PUBLISHED_BITS_PER_DIM, argv)


if __name__ == "__main__":
  sys.exit(main())
