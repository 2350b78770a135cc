"""Variational inference with a Real NVP: fitting a flow to an unnormalised 2-D density.

What it shows: a flow `q` (Real NVP channel couplings with dense Keras conditioners, the flow
of `two_moons.py`) fitted to a target known only up to its normalising constant,
`p(x) = p~(x) / Z`, by minimising the reverse KL divergence

```none
KL(q || p) = E_q[log q(x) - log p~(x)] + log Z,
```

estimated with samples drawn from the flow itself: `z ~ N(0, I)`, `x = f(z)` (the bijector's
forward, latent -> data), `log q(x) = log N(z) - log |det df/dz|`. The sample is
reparameterised, so the gradient flows through `f` into every conditioner; the training loop is
a plain `tf.GradientTape` loop over the Keras layer's `trainable_variables`. This is how flows
are used as variational posteriors (Rezende and Mohamed, 2015).

Targets (`--target`), `log p~(x)` for `x = (x1, x2)`:

* `ring`: the ring with two lobes of Rezende and Mohamed (2015, Table 1, U1),
  `-0.5 ((|x| - 2) / 0.4)^2 + log(exp(-0.5 ((x1 - 2) / 0.6)^2) + exp(-0.5 ((x1 + 2) / 0.6)^2))`;
* `banana`: `x1 ~ N(0, 2^2)`, `x2 | x1 ~ N(x1^2 / 4 - 1, 0.5^2)` without its constants, so
  `log Z = log(2 pi)` exactly.

It prints, before and after training, the ELBO `E_q[log p~ - log q]`, the importance-sampling
estimate of `log Z` (`log mean exp(log p~ - log q)`), the reverse KL `log Z - ELBO` (with
`log Z` from a fine grid quadrature) and the effective sample size of the importance weights,
and writes `target_vs_flow.png` and `metrics.json` to `--output-dir`.

Run (about a minute on 2 CPU cores):

  python examples/variational_inference.py --target ring --output-dir runs/vi

and `--tiny` for a short smoke run.
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
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

# The 2-D flow (channel couplings on 1x1 "images", dense conditioners) of the two-moons example.
from two_moons import TwoDimensionalFlow

tfd = tfp.distributions

def log_ring(x):
  """Unnormalised log-density U1 of Rezende and Mohamed (2015): a ring with two lobes."""
  x1 = x[..., 0]
  radius = tf.norm(x, axis=-1)
  lobes = tf.reduce_logsumexp(
      tf.stack([-0.5 * ((x1 - 2.0) / 0.6) ** 2, -0.5 * ((x1 + 2.0) / 0.6) ** 2], axis=-1),
      axis=-1)
  return -0.5 * ((radius - 2.0) / 0.4) ** 2 + lobes


def log_banana(x):
  """Unnormalised banana: x1 ~ N(0, 4), x2 | x1 ~ N(x1^2 / 4 - 1, 0.25); log Z = log(2 pi)."""
  x1, x2 = x[..., 0], x[..., 1]
  return -0.5 * (x1 / 2.0) ** 2 - 0.5 * ((x2 - 0.25 * x1 ** 2 + 1.0) / 0.5) ** 2


# name: (log p~, box (x1_min, x1_max, x2_min, x2_max) outside which p is negligible, plot box).
TARGETS = {
    "ring": (log_ring, (-4.0, 4.0, -4.0, 4.0), (-4.0, 4.0, -4.0, 4.0)),
    # x1 within 6 standard deviations; x2 follows the parabola x1^2 / 4 - 1 up to 35.
    "banana": (log_banana, (-12.0, 12.0, -5.0, 40.0), (-6.0, 6.0, -3.0, 9.0)),
}


def grid_log_z(log_target, box, size=1500):
  """`log Z` by a midpoint quadrature on the rectangle `box`, in float64."""
  (x1_min, x1_max, x2_min, x2_max) = box
  step1, step2 = (x1_max - x1_min) / size, (x2_max - x2_min) / (2 * size)
  xx, yy = np.meshgrid(x1_min + step1 * (np.arange(size) + 0.5),
                       x2_min + step2 * (np.arange(2 * size) + 0.5))
  points = tf.constant(np.stack([xx.ravel(), yy.ravel()], -1), tf.float64)
  values = log_target(points).numpy()
  return float(np.logaddexp.reduce(values) + math.log(step1 * step2))


class ReverseKL:
  """The variational family `q` (a flow over a standard normal) and its objective."""

  def __init__(self, flow, log_target):
    self.flow = flow
    self.log_target = log_target
    self.base = tfd.Sample(tfd.Normal(0.0, 1.0), [2])

  def sample_and_log_q(self, n, seed=None):
    """Reparameterised samples `x = f(z)` and `log q(x)`, by the forward direction only."""
    z = self.base.sample(n, seed=seed)
    x = self.flow.bijector.forward(z)
    log_q = self.base.log_prob(z) - self.flow.bijector.forward_log_det_jacobian(z, event_ndims=1)
    return x, log_q

  def loss(self, n):
    """Monte Carlo estimate of `E_q[log q - log p~]` (the negative ELBO)."""
    x, log_q = self.sample_and_log_q(n)
    return tf.reduce_mean(log_q - self.log_target(x))


def evaluate(objective, num_samples, seed, log_z_exact):
  """ELBO, importance-sampling log Z, reverse KL and effective sample size fraction."""
  x, log_q = objective.sample_and_log_q(num_samples, seed=seed)
  log_w = (objective.log_target(x) - log_q).numpy().astype(np.float64)
  elbo = float(log_w.mean())
  log_z_is = float(np.logaddexp.reduce(log_w) - math.log(num_samples))
  w = np.exp(log_w - log_w.max())
  ess = float(w.sum() ** 2 / (w ** 2).sum() / num_samples)
  return {"elbo": elbo, "log_z_importance": log_z_is, "kl": log_z_exact - elbo,
          "ess_fraction": ess}


def print_metrics(stage, m):
  print(f"{stage}: ELBO {m['elbo']:.4f}  log Z (importance sampling) "
        f"{m['log_z_importance']:.4f}  KL(q||p) {m['kl']:.4f}  ESS {100 * m['ess_fraction']:.1f}%")


def save_plot(log_target, log_z, box, samples, path, size=200):
  xx, yy = np.meshgrid(np.linspace(box[0], box[1], size), np.linspace(box[2], box[3], size))
  points = tf.constant(np.stack([xx.ravel(), yy.ravel()], -1), tf.float32)
  density = np.exp(log_target(points).numpy() - log_z).reshape(size, size)
  fig, axes = plt.subplots(1, 2, figsize=(9, 4.3), sharex=True, sharey=True)
  axes[0].contourf(xx, yy, density, levels=30, cmap="viridis")
  axes[0].set_title("target density p(x)")
  axes[1].contourf(xx, yy, density, levels=30, cmap="Greys")
  axes[1].scatter(samples[:, 0], samples[:, 1], s=2, alpha=0.4, color="tab:orange")
  axes[1].set_title("flow samples over the target")
  for ax in axes:
    ax.set_xlim(box[0], box[1])
    ax.set_ylim(box[2], box[3])
    ax.set_aspect("equal")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--target", choices=sorted(TARGETS), default="ring")
  parser.add_argument("--output-dir", default="runs/variational_inference",
                      help="where target_vs_flow.png and metrics.json are written")
  parser.add_argument("--num-couplings", type=int, default=8)
  parser.add_argument("--hidden-units", type=int, nargs="+", default=[64, 64])
  parser.add_argument("--steps", type=int, default=3000, help="optimisation steps")
  parser.add_argument("--batch-size", type=int, default=256,
                      help="flow samples per step for the KL estimate")
  parser.add_argument("--learning-rate", type=float, default=1e-3)
  parser.add_argument("--eval-samples", type=int, default=20000,
                      help="samples for the ELBO and the importance-sampling log Z")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--tiny", action="store_true", help="a short run for smoke tests")
  args = parser.parse_args(argv)
  if args.tiny:
    args.num_couplings, args.hidden_units, args.steps = 4, [32, 32], 300
  return args


def main(argv=None):
  args = parse_args(argv)
  output_dir = pathlib.Path(args.output_dir)
  output_dir.mkdir(parents=True, exist_ok=True)
  keras.utils.set_random_seed(args.seed)
  log_target, quadrature_box, plot_box = TARGETS[args.target]
  log_z = grid_log_z(log_target, quadrature_box)
  print(f"target {args.target!r}: log Z = {log_z:.4f} (grid quadrature)")

  flow = TwoDimensionalFlow(args.num_couplings, tuple(args.hidden_units), name="vi_flow")
  objective = ReverseKL(flow, log_target)
  optimizer = keras.optimizers.Adam(args.learning_rate)
  variables = flow.trainable_variables
  optimizer.build(variables)

  @tf.function
  def train_step():
    with tf.GradientTape() as tape:
      loss = objective.loss(args.batch_size)
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
    return loss

  eval_seed = tf.constant([args.seed, 1])
  before = evaluate(objective, args.eval_samples, eval_seed, log_z)
  print_metrics("before training", before)
  start = time.time()
  for step in range(1, args.steps + 1):
    loss = float(train_step())
    if step % max(1, args.steps // 10) == 0:
      print(f"  step {step:5d}  KL estimate {loss + log_z:.4f}")
  seconds = time.time() - start
  after = evaluate(objective, args.eval_samples, eval_seed, log_z)
  print_metrics(f"after {args.steps} steps ({seconds:.0f} s)", after)

  samples, _ = objective.sample_and_log_q(3000, seed=tf.constant([args.seed, 2]))
  save_plot(log_target, log_z, plot_box, samples.numpy(), output_dir / "target_vs_flow.png")
  print(f"wrote {output_dir / 'target_vs_flow.png'}")
  with open(output_dir / "metrics.json", "w", encoding="utf-8") as f:
    json.dump({"target": args.target, "log_z_quadrature": log_z, "before": before,
               "after": after, "train_seconds": seconds}, f, indent=2)
  if not all(math.isfinite(v) for m in (before, after) for v in m.values()):
    raise SystemExit("non-finite result")


if __name__ == "__main__":
  main()
