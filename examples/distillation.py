"""Probability density distillation: a MAF teacher, an IAF student, on the embedded digits.

What it shows (after Parallel WaveNet, van den Oord et al., 2018):

1. A teacher MAF, `tfb.MaskedAutoregressiveFlow` driven by the Keras 3 network
   `tfp_realnvp.networks.MADE`, trained by maximum likelihood with `tfp_realnvp.FlowModel` on
   the 8x8 digits seen as vectors of 64 logit-space values (the model's logit preprocessing
   acts elementwise on the `[8, 8, 1]` images, `tfb.Reshape` maps the 64-vector to them). Its
   density is one network pass (`inverse`), but sampling takes 64 sequential passes.
2. A student IAF, `tfb.Invert(tfb.MaskedAutoregressiveFlow(MADE))`, which samples in one pass
   (its `forward`) and knows the density of its own samples from the same pass, trained to
   minimise `KL(student || teacher) = E_s[log s(x) - log t(x)]` on its own reparameterised
   samples; the teacher scores them in one parallel pass. The teacher is frozen (only the
   student's variables are in the gradient). Both densities are compared in the 64-D logit
   space, where the KL is the same as for the images since the same bijection maps both.

It prints the KL estimate before and after distillation, the test bits/dim of both models
(the student's density of real data needs its sequential inverse, so it is evaluated once) and
the time to draw `--num-timing-samples` samples from the teacher (sequential) and from the
student (parallel). Writes `teacher_samples.png`, `student_samples.png` and `metrics.json`.

Run (a few minutes on 2 CPU cores):

  python examples/distillation.py --output-dir runs/distillation

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
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

import tfp_realnvp
from tfp_realnvp import plotting

tfb = tfp.bijectors
tfd = tfp.distributions

IMAGE_SHAPE = (8, 8, 1)
EVENT_SIZE = 64


class AutoregressiveFlow(tfp_realnvp.FlowLayer):
  """A stack of MAFs (or, with `inverse_autoregressive=True`, IAFs) over 64-vectors.

  `bijector` maps base vectors `[64]` to `[8, 8, 1]` images in logit space;
  `vector_bijector` is the same without the final reshape. Successive layers reverse the
  autoregressive order. The layer owns every `MADE`.
  """

  def __init__(self, num_layers=2, hidden_units=(256, 256), inverse_autoregressive=False,
               **kwargs):
    super().__init__(event_shape=(EVENT_SIZE,), **kwargs)
    self.mades = []
    steps = []
    for i in range(num_layers):
      made = tfp_realnvp.networks.MADE(
          event_size=EVENT_SIZE, hidden_units=hidden_units, log_scale_bound=5.0,
          input_order="left-to-right" if i % 2 == 0 else "right-to-left", name=f"made_{i}")
      made.build((None, EVENT_SIZE))
      self.mades.append(made)
      maf = tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=made, name=f"maf_{i}")
      steps.append(tfb.Invert(maf, name=f"iaf_{i}") if inverse_autoregressive else maf)
    vector_bijector = tfb.Chain(steps)
    bijector = tfb.Chain([
        tfb.Reshape(event_shape_out=list(IMAGE_SHAPE), event_shape_in=[EVENT_SIZE]),
        vector_bijector])
    object.__setattr__(self, "_vector_bijector", vector_bijector)  # TFP object: untracked.
    self._set_bijector(bijector)

  @property
  def vector_bijector(self):
    return self._vector_bijector

  def call(self, x):
    return self._bijector.inverse(x)


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--output-dir", default="runs/distillation",
                      help="where the sample grids and metrics.json are written")
  parser.add_argument("--num-layers", type=int, default=2, help="MAF / IAF layers")
  parser.add_argument("--hidden-units", type=int, nargs="+", default=[256, 256])
  parser.add_argument("--teacher-epochs", type=int, default=60)
  parser.add_argument("--student-steps", type=int, default=2000)
  parser.add_argument("--batch-size", type=int, default=64)
  parser.add_argument("--learning-rate", type=float, default=1e-3)
  parser.add_argument("--kl-samples", type=int, default=2000,
                      help="student samples for the reported KL estimate")
  parser.add_argument("--num-timing-samples", type=int, default=1000)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--tiny", action="store_true", help="a short run for smoke tests")
  args = parser.parse_args(argv)
  if args.tiny:
    args.num_layers, args.hidden_units = 1, [64]
    args.teacher_epochs, args.student_steps, args.num_timing_samples = 4, 150, 200
    args.kl_samples = 500
  return args


def timed(fn, repeats=3):
  """Best wall time of `fn()` over `repeats` calls, after one warm-up call (tracing)."""
  fn()
  best = math.inf
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    best = min(best, time.perf_counter() - start)
  return best


def main(argv=None):
  args = parse_args(argv)
  output_dir = pathlib.Path(args.output_dir)
  output_dir.mkdir(parents=True, exist_ok=True)
  keras.utils.set_random_seed(args.seed)
  train = tfp_realnvp.data.load_images("digits", split="train", batch_size=args.batch_size,
                                       seed=args.seed)
  test = tfp_realnvp.data.load_images("digits", split="test", batch_size=512, shuffle=False,
                                      seed=args.seed + 1)
  hidden = tuple(args.hidden_units)

  # 1. The teacher, by maximum likelihood.
  teacher_flow = AutoregressiveFlow(args.num_layers, hidden, name="teacher")
  teacher = tfp_realnvp.FlowModel(teacher_flow, name="teacher_model")
  teacher.compile(optimizer=keras.optimizers.Adam(args.learning_rate))
  start = time.time()
  teacher.fit(train, epochs=args.teacher_epochs, verbose=0)
  teacher_bpd = float(teacher.evaluate(test, verbose=0, return_dict=True)["bits_per_dim"])
  print(f"teacher MAF: test bits/dim {teacher_bpd:.4f} after {args.teacher_epochs} epochs "
        f"({time.time() - start:.0f} s)")

  # 2. The student, by minimising KL(student || teacher) on its own samples.
  student_flow = AutoregressiveFlow(args.num_layers, hidden, inverse_autoregressive=True,
                                    name="student")
  base = tfd.Sample(tfd.Normal(0.0, 1.0), [EVENT_SIZE])
  teacher_dist = tfd.TransformedDistribution(base, teacher_flow.vector_bijector)
  iaf = student_flow.vector_bijector

  def kl_estimate(n, seed=None):
    z = base.sample(n, seed=seed)
    x = iaf.forward(z)  # One parallel pass per IAF layer.
    log_student = base.log_prob(z) - iaf.forward_log_det_jacobian(z, event_ndims=1)
    return tf.reduce_mean(log_student - teacher_dist.log_prob(x))

  variables = student_flow.trainable_variables
  optimizer = keras.optimizers.Adam(args.learning_rate)
  optimizer.build(variables)

  @tf.function
  def student_step():
    with tf.GradientTape() as tape:
      loss = kl_estimate(args.batch_size)
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss

  kl_seed = tf.constant([args.seed, 7])
  kl_before = float(kl_estimate(args.kl_samples, kl_seed))
  print(f"KL(student || teacher) before distillation: {kl_before:.4f} nats")
  start = time.time()
  for step in range(1, args.student_steps + 1):
    loss = float(student_step())
    if step % max(1, args.student_steps // 5) == 0:
      print(f"  step {step:5d}  KL estimate {loss:.4f}")
  kl_after = float(kl_estimate(args.kl_samples, kl_seed))
  print(f"KL(student || teacher) after {args.student_steps} steps "
        f"({time.time() - start:.0f} s): {kl_after:.4f} nats")

  student = tfp_realnvp.FlowModel(student_flow, name="student_model")
  student.compile()
  student_bpd = float(student.evaluate(test, verbose=0, return_dict=True)["bits_per_dim"])
  print(f"student IAF: test bits/dim {student_bpd:.4f} (teacher {teacher_bpd:.4f})")

  # 3. Sampling speed: the MAF runs its network once per dimension, the IAF once.
  n = args.num_timing_samples
  teacher_sample = tf.function(lambda: teacher.sample(n))
  student_sample = tf.function(lambda: student.sample(n))
  teacher_seconds = timed(teacher_sample)
  student_seconds = timed(student_sample)
  print(f"time to draw {n} samples: teacher (sequential MAF) {1000 * teacher_seconds:.1f} ms, "
        f"student (parallel IAF) {1000 * student_seconds:.1f} ms, "
        f"{teacher_seconds / student_seconds:.1f}x faster")

  plotting.save_image_grid(teacher.sample(64, seed=args.seed), output_dir / "teacher_samples.png")
  plotting.save_image_grid(student.sample(64, seed=args.seed), output_dir / "student_samples.png")
  print(f"wrote {output_dir / 'teacher_samples.png'} and {output_dir / 'student_samples.png'}")
  metrics = {"teacher_bits_per_dim": teacher_bpd, "student_bits_per_dim": student_bpd,
             "kl_before": kl_before, "kl_after": kl_after,
             "teacher_sample_seconds": teacher_seconds,
             "student_sample_seconds": student_seconds, "num_timing_samples": n}
  with open(output_dir / "metrics.json", "w", encoding="utf-8") as f:
    json.dump(metrics, f, indent=2)
  if not all(math.isfinite(v) for v in metrics.values()):
    raise SystemExit("non-finite result")


if __name__ == "__main__":
  main()
