"""A Real NVP whose base distribution is a masked autoregressive flow (MAF), on MNIST.

What it shows:

* chaining the package's multi-scale `tfp_realnvp.RealNVP` with TFP's own
  `tfb.MaskedAutoregressiveFlow` driven by the Keras 3 network `tfp_realnvp.networks.MADE`:

  ```none
  z [784] --MAF--> u [784] --Reshape--> u [28, 28, 1] --Real NVP--> y [28, 28, 1] --sigmoid--> x
  ```

  i.e. the Real NVP's latent `u` is no longer a standard normal but a learned autoregressive
  density (a "MAF prior"), while the model's base is the standard normal over `z` `[784]`;
* a Keras layer that owns both parts (so Keras tracks, trains and saves every variable) and
  exposes `.bijector` and `event_shape=(784,)` (the shape of the base);
* training it with `tfp_realnvp.FlowModel(layer, event_shape=(784,))` and `fit`: the model's
  logit preprocessing is elementwise, so it sits between the `[28, 28, 1]` images and the
  chain, and the base over `[784]` reaches the data shape through `tfb.Reshape`;
* that every trainable variable of both parts receives a non-zero gradient and changes during
  training (the counts are printed), and the test bits/dim before and after training.

Data: `--data` names an `.npz` file with uint8 arrays `x_train` / `x_test` of 28x28(x1) images
(default: `../shared/data/mnist.npz` next to the repository), read with
`tfp_realnvp.data.load_images` (dequantized to `[0, 1)`).

Run (a few minutes on 2 CPU cores):

  python examples/maf_prior.py --output-dir runs/maf_prior

and `--tiny` for a smoke run with tiny networks and a handful of steps. Writes `samples.png`
(a grid of samples) and `metrics.json` to `--output-dir`.
"""

import argparse
import json
import math
import os
import pathlib
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# pylint: disable=g-import-not-at-top,wrong-import-position
import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

import tfp_realnvp
from tfp_realnvp import plotting

tfb = tfp.bijectors

IMAGE_SHAPE = (28, 28, 1)
EVENT_SIZE = 784
DEFAULT_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist.npz"


class RealNVPWithMAFPrior(tfp_realnvp.FlowLayer):
  """A multi-scale Real NVP on `[28, 28, 1]` images whose latent is modelled by a MAF.

  `bijector` (TFP's direction, latent -> data) maps base vectors `[784]` to images
  `[28, 28, 1]`: `Chain([realnvp.bijector, Reshape([28, 28, 1], [784]), MAF(made)])`.
  The layer owns the `RealNVP` layer and the `MADE` network, so `trainable_variables` lists
  the variables of both.
  """

  def __init__(self, num_scales=2, num_filters=32, num_blocks=2, made_hidden_units=(512,),
               **kwargs):
    super().__init__(event_shape=(EVENT_SIZE,), **kwargs)
    self.realnvp = tfp_realnvp.RealNVP(IMAGE_SHAPE, num_scales=num_scales,
                                       num_filters=num_filters, num_blocks=num_blocks,
                                       name="realnvp")
    self.made = tfp_realnvp.networks.MADE(event_size=EVENT_SIZE,
                                          hidden_units=made_hidden_units, name="made")
    self.made.build((None, EVENT_SIZE))
    maf = tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=self.made, name="maf")
    bijector = tfb.Chain([
        self.realnvp.bijector,
        tfb.Reshape(event_shape_out=list(IMAGE_SHAPE), event_shape_in=[EVENT_SIZE]),
        maf])
    self._set_bijector(bijector)

  def call(self, x):
    return self._bijector.inverse(x)


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--data", default=str(DEFAULT_DATA),
                      help=".npz file with uint8 x_train / x_test images of 28x28 pixels")
  parser.add_argument("--output-dir", default="runs/maf_prior",
                      help="where samples.png and metrics.json are written")
  parser.add_argument("--num-scales", type=int, default=2)
  parser.add_argument("--num-filters", type=int, default=16)
  parser.add_argument("--num-blocks", type=int, default=1)
  parser.add_argument("--made-hidden-units", type=int, nargs="+", default=[512])
  parser.add_argument("--batch-size", type=int, default=64)
  parser.add_argument("--epochs", type=int, default=3)
  parser.add_argument("--steps-per-epoch", type=int, default=150)
  parser.add_argument("--test-batches", type=int, default=20,
                      help="test batches used for bits/dim (0: the whole test split)")
  parser.add_argument("--learning-rate", type=float, default=1e-3)
  parser.add_argument("--num-samples", type=int, default=16)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--tiny", action="store_true",
                      help="tiny networks and a handful of steps, for smoke tests")
  args = parser.parse_args(argv)
  if args.tiny:
    args.num_scales, args.num_filters, args.num_blocks, args.made_hidden_units = 1, 4, 1, [32]
    args.batch_size, args.epochs, args.steps_per_epoch, args.test_batches = 16, 1, 6, 2
    args.num_samples = 4
  return args


def load_data(args):
  path = pathlib.Path(args.data)
  if not path.is_file():
    raise SystemExit(
        f"maf_prior.py: data file {path} not found. Pass --data PATH to an .npz file with "
        f"uint8 arrays x_train and x_test of 28x28 images (e.g. MNIST saved with "
        f"np.savez(PATH, x_train=..., x_test=...)).")
  shape = tfp_realnvp.data.image_shape(str(path))
  if tuple(shape) != IMAGE_SHAPE:
    raise SystemExit(f"maf_prior.py: {path} holds images of shape {tuple(shape)}; this "
                     f"example models {IMAGE_SHAPE} images.")
  train = tfp_realnvp.data.load_images(str(path), split="train", batch_size=args.batch_size,
                                       seed=args.seed, repeat=True)
  test = tfp_realnvp.data.load_images(str(path), split="test", batch_size=args.batch_size,
                                      shuffle=False, seed=args.seed + 1)
  if args.test_batches:
    test = test.take(args.test_batches)
  return train, test


def gradient_report(model, layer, batch):
  """Per part: (variables, with a non-zero gradient) on one batch."""
  with tf.GradientTape() as tape:
    loss = -tf.reduce_mean(model.log_prob(tf.identity(batch)))
  parts = {"realnvp": layer.realnvp.trainable_variables, "made": layer.made.trainable_variables}
  grads = tape.gradient(loss, parts)
  return {name: (len(parts[name]),
                 sum(g is not None and bool(np.any(g.numpy() != 0)) for g in grads[name]))
          for name in parts}


def main(argv=None):
  args = parse_args(argv)
  output_dir = pathlib.Path(args.output_dir)
  output_dir.mkdir(parents=True, exist_ok=True)
  keras.utils.set_random_seed(args.seed)
  train, test = load_data(args)

  layer = RealNVPWithMAFPrior(args.num_scales, args.num_filters, args.num_blocks,
                              tuple(args.made_hidden_units), name="realnvp_maf_prior")
  model = tfp_realnvp.FlowModel(layer, event_shape=(EVENT_SIZE,))
  model.compile(optimizer=keras.optimizers.Adam(args.learning_rate))
  owned = {id(v) for v in model.trainable_variables}
  parts = {"realnvp": layer.realnvp.trainable_variables, "made": layer.made.trainable_variables}
  assert all(id(v) in owned for vs in parts.values() for v in vs), "a part is not tracked"
  for name, variables in parts.items():
    print(f"{name}: {len(variables)} trainable variables, "
          f"{sum(int(np.prod(v.shape)) for v in variables)} parameters")

  bpd_before = float(model.evaluate(test, verbose=0, return_dict=True)["bits_per_dim"])
  print(f"test bits/dim before training: {bpd_before:.4f}")
  initial = {name: [v.numpy().copy() for v in variables] for name, variables in parts.items()}

  start = time.time()
  history = model.fit(train, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
                      verbose=2)
  train_seconds = time.time() - start
  bpd_after = float(model.evaluate(test, verbose=0, return_dict=True)["bits_per_dim"])
  print(f"test bits/dim after {args.epochs * args.steps_per_epoch} steps "
        f"({train_seconds:.0f} s): {bpd_after:.4f}")

  changed = {name: sum(bool(np.any(v.numpy() != v0))
                       for v, v0 in zip(variables, initial[name], strict=True))
             for name, variables in parts.items()}
  grads = gradient_report(model, layer, next(iter(test)))
  for name in parts:
    total, nonzero = grads[name]
    print(f"{name}: {nonzero}/{total} variables with a non-zero gradient, "
          f"{changed[name]}/{total} changed by training")

  start = time.time()
  # In a tf.function the MAF's sequential pass is a graph while-loop, much faster than eager.
  draw = tf.function(lambda: model.sample(args.num_samples, temperature=0.7, seed=args.seed))
  samples = draw()
  sample_seconds = time.time() - start
  plotting.save_image_grid(samples, output_dir / "samples.png")
  print(f"drew {args.num_samples} samples in {sample_seconds:.1f} s "
        f"(the MAF samples sequentially); wrote {output_dir / 'samples.png'}")

  metrics = {
      "bits_per_dim_before": bpd_before, "bits_per_dim_after": bpd_after,
      "train_loss": [float(v) for v in history.history["loss"]],
      "gradients": {name: {"variables": t, "nonzero": n} for name, (t, n) in grads.items()},
      "changed": changed, "train_seconds": train_seconds,
  }
  with open(output_dir / "metrics.json", "w", encoding="utf-8") as f:
    json.dump(metrics, f, indent=2)
  if not (math.isfinite(bpd_before) and math.isfinite(bpd_after)):
    raise SystemExit("non-finite bits/dim")


if __name__ == "__main__":
  main()
