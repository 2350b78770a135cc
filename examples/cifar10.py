"""Real NVP on CIFAR-10 with the paper's configuration, from TensorFlow Datasets.

What it shows: the CIFAR-10 model of Dinh, Sohl-Dickstein and Bengio (2017), the `cifar10`
preset: 32x32x3 images downscaled once (2 scales: 3 checkerboard couplings, squeeze, 3 channel
couplings, factor-out of half the units, then 4 checkerboard couplings on 16x16x6), coupling
ResNets of 8 residual blocks with 64 feature maps, batch normalisation bijectors, Adam 1e-3,
batch 64, the L2 penalty 5e-5 on the weight-norm scales, 100 epochs. The paper reports 3.49
test bits/dim. One difference: the paper doubles the feature maps when the resolution halves,
the preset keeps 64 at both scales.

It runs the library's `tfp_realnvp.training.train` (what `tfp-realnvp train` runs; the options
and `--tiny` subset shared with `examples/mnist.py` are in `examples/_image_example.py`): it
trains with `model.fit` and a backup of the training state in `--output-dir/backup` (a killed
run resumes after its last finished epoch when the same command is run again), keeps the
weights of the best validation epoch, evaluates the test bits/dim on the 10,000
test images with fixed dequantization noise, and writes the same files as `mnist.py`:
`samples/epoch_XXX.png`, `bits_per_dim.png`, `model.keras`, `metrics.json` and TensorBoard logs
(default `--output-dir`: `runs/cifar10`). It prints the run's report and one line that
compares the test bits/dim with the paper's 3.49.

Data: TFDS `cifar10` in `--data-dir` (TFDS's default folder if omitted), prepared beforehand;
nothing is downloaded unless `--download` is given. To prepare it once (about 160 MB), on a
machine with network access:

  python -c "import tensorflow_datasets as tfds; \
             tfds.builder('cifar10', data_dir='DIR').download_and_prepare()"

and copy `DIR` to the training machine if needed (or run this script once with `--download`).

What to expect:

* On 2 CPU cores this configuration is far too big. By a count of its convolutions a training
  step of 64 images costs about 1.1e12 floating-point operations (10 coupling ResNets of 8
  blocks of two 3x3 convolutions with 64 feature maps, 3 of them at 32x32 and 7 at 16x16,
  forward and backward). Measured on the 2 shared CPU cores used for development, at low
  priority while other jobs ran: about 30 s per step once traced (the first step, which
  traces the graph, took several minutes), i.e. hours per epoch of 782 steps and weeks for
  the 100 epochs; idle cores are faster, but not by the factor that would make this
  practical. On a CPU, use `--tiny` (a single-scale flow with 4 feature maps and 1 residual
  block, 2 epochs of 4 steps on the first 256 training and 32 test images, well under a
  minute on 2 idle cores) to check that everything runs, or `--epochs` / `--steps-per-epoch`
  for a short run whose bits/dim will be far above 3.49.
* On a GPU host: `python examples/cifar10.py --data-dir ~/tensorflow_datasets`. The default
  `--jit auto` compiles the training step with XLA there when no distribution strategy is
  used (`--jit on` / `--jit off` force it); `--strategy mirrored` trains on all local GPUs
  (the batch of 64 is global), `--strategy multiworker` on several machines (`TF_CONFIG` set
  on each), `--strategy tpu` on a TPU VM, and `--mixed-precision bfloat16` (or `float16` on
  GPUs) runs the networks in half precision while densities stay float32. These options, and
  every other option of `tfp-realnvp train` (`--epochs`, `--batch-size`, `--steps-per-epoch`,
  `--seed`, ...), are accepted. GPU speed has not been measured for this package: by
  the operation count above, a GPU that sustains 10 TFLOP/s would need about 0.1 s per step,
  some 2 minutes per epoch. The preset's 100 epochs are a starting point, not the paper's
  schedule, so reaching 3.49 bits/dim may take longer training.
"""

import sys

import _image_example  # The options and run shared with examples/mnist.py.

PUBLISHED_BITS_PER_DIM = 3.49  # Real NVP, CIFAR-10 test set (Dinh et al., 2017).


def main(argv=None):
  return _image_example.main("cifar10.py", __doc__.split("\n\n", maxsplit=1)[0], "cifar10",
                             "cifar10", PUBLISHED_BITS_PER_DIM, argv)


if __name__ == "__main__":
  sys.exit(main())
