"""Two moons: a 2-D Real NVP with dense conditioners, trained with `FlowModel.fit`.

What it shows:

* the package's image coupling, `tfp_realnvp.bijectors.AffineCoupling` with a channel mask,
  used on plain 2-D vectors: each point is reshaped to a 1x1 "image" with 2 channels
  (`tfb.Reshape`), so a channel coupling transforms one coordinate given the other;
* conditioners that are small Keras 3 MLPs mapping `[N, 1, 1, 1]` to `(shift, log_scale)`,
  each `[N, 1, 1, 1]`, with the parity alternating from one coupling to the next;
* a Keras layer that owns those conditioners and exposes `.bijector` and `event_shape=(2,)`,
  trained by maximum likelihood with `tfp_realnvp.FlowModel(layer, preprocessing=None)` and
  `model.fit` on scikit-learn's `make_moons` data.

It prints the negative log-likelihood (nats per point) of the train and test sets before and
after training, and writes to `--output-dir`:

* `samples.png`: data and flow samples side by side;
* `density.png`: contours of the learned density over the data;
* `metrics.json`: the numbers printed.

Run (a couple of minutes on 2 CPU cores):

  python examples/two_moons.py --output-dir runs/two_moons

and `--tiny` for a few-second smoke run.
"""

import argparse
import json
import math
import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# pylint: disable=g-import-not-at-top,wrong-import-position
import keras
from keras import ops
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn import datasets
import tensorflow_probability as tfp

import tfp_realnvp
from tfp_realnvp import bijectors as rb

tfb = tfp.bijectors


class DenseConditioner(keras.layers.Layer):
  """MLP conditioner of a coupling on 1x1 "images": `[N, 1, 1, 1]` -> `(shift, log_scale)`.

  The log-scale is `scale * tanh(raw)` with a learned `scale`, and the output layer starts at
  zero, so a new coupling is the identity (as in the paper's networks). With
  `params_per_unit=P` it returns `P` raw parameters `[N, 1, 1, 1, P]` instead (those of a
  `SplineCoupling`, also the identity when zero).
  """

  def __init__(self, hidden_units=(64, 64), params_per_unit=None, **kwargs):
    super().__init__(**kwargs)
    self.params_per_unit = params_per_unit
    self.hidden = [keras.layers.Dense(units, activation="relu", name=f"hidden_{i}")
                   for i, units in enumerate(hidden_units)]
    self.out = keras.layers.Dense(params_per_unit or 2, kernel_initializer="zeros", name="out")

  def build(self, input_shape):
    shape = (input_shape[0], 1)
    for layer in self.hidden:
      layer.build(shape)
      shape = (shape[0], layer.units)
    self.out.build(shape)
    if self.params_per_unit is None:
      self.log_scale_factor = self.add_weight(name="log_scale_factor", shape=(),
                                              initializer="ones")

  def call(self, h):
    h = ops.reshape(h, (-1, 1))
    for layer in self.hidden:
      h = layer(h)
    if self.params_per_unit is not None:
      return ops.reshape(self.out(h), (-1, 1, 1, 1, self.params_per_unit))
    shift, raw = ops.split(self.out(h), 2, axis=-1)
    log_scale = self.log_scale_factor * ops.tanh(raw)
    return ops.reshape(shift, (-1, 1, 1, 1)), ops.reshape(log_scale, (-1, 1, 1, 1))


class TwoDimensionalFlow(tfp_realnvp.FlowLayer):
  """A stack of channel couplings on 2-D points, owning every conditioner.

  `bijector` maps latent points `[..., 2]` to data points `[..., 2]` (TFP's direction):
  reshape to `[..., 1, 1, 2]`, apply the couplings, reshape back. `coupling` names their
  transform (`tfp_realnvp.bijectors.COUPLING_TRANSFORMS`): `"spline"` makes splines of
  `num_bins` bins on `[-bound, bound]` (see `examples/spline_vs_affine.py`), `"affine"` (the
  default) Real NVP's affine maps.
  """

  def __init__(self, num_couplings=8, hidden_units=(64, 64), coupling="affine", num_bins=8,
               bound=3.0, **kwargs):
    super().__init__(event_shape=(2,), **kwargs)
    transform = rb.make_transform(coupling, num_bins=num_bins, bound=bound)
    self.conditioners = []
    couplings = []
    for i in range(num_couplings):
      conditioner = DenseConditioner(hidden_units, transform.params_per_unit,
                                     name=f"conditioner_{i}")
      # Build now, so that the variables exist before Keras traces a training step.
      conditioner.build((None, 1, 1, 1))
      self.conditioners.append(conditioner)
      couplings.append(rb.Coupling(conditioner, transform, mask="channel", parity=i % 2,
                                   event_shape=(1, 1, 2), name=f"coupling_{i}"))
    # tfb.Chain applies its last bijector first in the forward (latent -> data) direction.
    bijector = tfb.Chain(
        [tfb.Reshape(event_shape_out=[2], event_shape_in=[1, 1, 2])]
        + couplings[::-1]
        + [tfb.Reshape(event_shape_out=[1, 1, 2], event_shape_in=[2])])
    self._set_bijector(bijector)

  def call(self, x):
    return self._bijector.inverse(x)


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--output-dir", default="runs/two_moons",
                      help="where the PNGs and metrics.json are written")
  parser.add_argument("--num-train", type=int, default=4000, help="training points")
  parser.add_argument("--num-test", type=int, default=2000, help="test points")
  parser.add_argument("--noise", type=float, default=0.05, help="make_moons noise")
  parser.add_argument("--num-couplings", type=int, default=8, help="affine couplings")
  parser.add_argument("--hidden-units", type=int, nargs="+", default=[64, 64],
                      help="widths of each conditioner's hidden layers")
  parser.add_argument("--epochs", type=int, default=60)
  parser.add_argument("--batch-size", type=int, default=128)
  parser.add_argument("--learning-rate", type=float, default=2e-3)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--tiny", action="store_true",
                      help="a few-second run (small data, few epochs) for smoke tests")
  args = parser.parse_args(argv)
  if args.tiny:
    args.num_train, args.num_test, args.epochs = 1000, 500, 8
    args.num_couplings, args.hidden_units = 4, [32, 32]
  return args


def make_data(num_train, num_test, noise, seed):
  """Standardised two-moons points (the statistics of the training set for both splits)."""
  x_train, _ = datasets.make_moons(num_train, noise=noise, random_state=seed)
  x_test, _ = datasets.make_moons(num_test, noise=noise, random_state=seed + 1)
  mean, std = x_train.mean(axis=0), x_train.std(axis=0)
  return ((x_train - mean) / std).astype(np.float32), ((x_test - mean) / std).astype(np.float32)


def mean_nll(model, x):
  return float(-np.mean(model.predict(x, batch_size=1000, verbose=0)))


def save_samples_plot(x_data, x_flow, path):
  fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), sharex=True, sharey=True)
  for ax, points, title in ((axes[0], x_data, "test data"), (axes[1], x_flow, "flow samples")):
    ax.scatter(points[:, 0], points[:, 1], s=3, alpha=0.5)
    ax.set_title(title)
    ax.set_aspect("equal")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def save_density_plot(model, x_data, path, size=150):
  lim = 3.0
  grid = np.linspace(-lim, lim, size, dtype=np.float32)
  xx, yy = np.meshgrid(grid, grid)
  points = np.stack([xx.ravel(), yy.ravel()], axis=-1)
  density = np.exp(model.predict(points, batch_size=5000, verbose=0)).reshape(size, size)
  fig, ax = plt.subplots(figsize=(5, 4.5))
  contour = ax.contourf(xx, yy, density, levels=30, cmap="viridis")
  ax.scatter(x_data[:300, 0], x_data[:300, 1], s=2, c="white", alpha=0.6)
  fig.colorbar(contour, ax=ax, label="p(x)")
  ax.set_title("learned density (white: test data)")
  ax.set_aspect("equal")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  # Riemann sum of the density over the grid: close to 1 if the flow is a proper density.
  return float(density.sum() * (grid[1] - grid[0]) ** 2)


def main(argv=None):
  args = parse_args(argv)
  output_dir = pathlib.Path(args.output_dir)
  output_dir.mkdir(parents=True, exist_ok=True)
  keras.utils.set_random_seed(args.seed)

  x_train, x_test = make_data(args.num_train, args.num_test, args.noise, args.seed)
  flow = TwoDimensionalFlow(args.num_couplings, tuple(args.hidden_units), name="moons_flow")
  model = tfp_realnvp.FlowModel(flow, preprocessing=None)
  model.compile(optimizer=keras.optimizers.Adam(args.learning_rate))
  print(f"flow: {args.num_couplings} channel couplings, "
        f"{sum(int(np.prod(v.shape)) for v in model.trainable_variables)} parameters")

  before = {"train_nll": mean_nll(model, x_train), "test_nll": mean_nll(model, x_test)}
  print(f"before training: train NLL {before['train_nll']:.4f}  "
        f"test NLL {before['test_nll']:.4f}  (nats per point)")
  history = model.fit(x_train, batch_size=args.batch_size, epochs=args.epochs,
                      shuffle=True, verbose=2 if not args.tiny else 0)
  after = {"train_nll": mean_nll(model, x_train), "test_nll": mean_nll(model, x_test)}
  print(f"after training:  train NLL {after['train_nll']:.4f}  "
        f"test NLL {after['test_nll']:.4f}  (nats per point)")

  samples = model.sample(len(x_test), seed=args.seed).numpy()
  save_samples_plot(x_test, samples, output_dir / "samples.png")
  mass = save_density_plot(model, x_test, output_dir / "density.png")
  print(f"probability mass of the learned density on [-3, 3]^2: {mass:.4f}")
  print(f"wrote {output_dir / 'samples.png'} and {output_dir / 'density.png'}")

  metrics = {
      "before": before, "after": after, "grid_mass": mass,
      "final_loss": float(history.history["loss"][-1]),
      "sample_mean": samples.mean(axis=0).tolist(), "sample_std": samples.std(axis=0).tolist(),
  }
  with open(output_dir / "metrics.json", "w", encoding="utf-8") as f:
    json.dump(metrics, f, indent=2)
  if not all(math.isfinite(v) for v in (*before.values(), *after.values(), mass)):
    raise SystemExit("non-finite result")


if __name__ == "__main__":
  main()
