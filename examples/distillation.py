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
   student's variables are in the gradient). The student never sees the data.

The student's optimisation is slow in its tail (the teacher's density of dequantized 17-level
digits is very peaked), so it runs many cheap steps: `--student-batch-size` samples per step,
Adam with a linear warm-up to `--student-learning-rate` over the first 5% of the steps, then a
cosine decay to zero. The KL is tracked on one fixed set of `--kl-samples` student samples
(so that successive values differ only because the student changed), with its standard
error, at `--num-checkpoints` points of the run. With the defaults it falls from thousands of
nats to about 2.4 nats per image (0.04 nats per dimension); it is still falling slowly at the
end, and longer schedules lower it further (`--student-steps 24000`: about 2.2 nats).

What it prints, each labelled (densities of images on `[0, 1)^64`, in nats per image and in
bits/dim as for 8-bit data; the logit preprocessing is shared, so the KL is the same as in
the 64-D logit space):

* the teacher's NLL of the real test digits, mean and median (what maximum likelihood
  trained it for);
* the KL trajectory, before, during and after distillation;
* on student samples: the teacher's NLL (the cross-entropy `E_s[-log t]`, which distillation
  drives towards the teacher's own entropy) and the student's own NLL (its entropy), whose
  difference is the KL; and the teacher's NLL of the teacher's own samples (its entropy);
* the student's NLL of the real test digits under its *own* density (needs its sequential
  inverse). Distillation does not optimise it: `KL(student || teacher)` is mode-seeking, so
  real digits that lie outside the student's modes get a very low density and the mean is
  dominated by them; the median is printed beside the mean.
* the time to draw `--num-timing-samples` samples from the teacher (sequential) and from the
  student (parallel).

Writes `teacher_samples.png`, `student_samples.png` and `metrics.json`.

Run (about five minutes on 2 CPU cores):

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

  _vector_bijector = tfp_realnvp.Untracked("The bijector without the reshape (TFP object).")

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
    self._vector_bijector = vector_bijector
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
  parser.add_argument("--teacher-epochs", type=int, default=60,
                      help="the teacher's test NLL is best near 60 epochs; it overfits after")
  parser.add_argument("--batch-size", type=int, default=64, help="teacher batch size")
  parser.add_argument("--learning-rate", type=float, default=1e-3,
                      help="teacher learning rate (Adam)")
  parser.add_argument("--student-steps", type=int, default=16000)
  parser.add_argument("--student-batch-size", type=int, default=256,
                      help="student samples per distillation step")
  parser.add_argument("--student-learning-rate", type=float, default=6e-3,
                      help="peak learning rate of the student (warm-up, then cosine decay)")
  parser.add_argument("--kl-samples", type=int, default=4000,
                      help="fixed student samples for the reported KL estimates")
  parser.add_argument("--num-checkpoints", type=int, default=10,
                      help="KL estimates printed during distillation")
  parser.add_argument("--num-timing-samples", type=int, default=1000)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--tiny", action="store_true", help="a short run for smoke tests")
  args = parser.parse_args(argv)
  if args.tiny:
    args.num_layers, args.hidden_units = 1, [64]
    args.teacher_epochs, args.student_steps, args.student_batch_size = 4, 300, 64
    args.kl_samples, args.num_checkpoints, args.num_timing_samples = 500, 4, 200
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


def mean_and_error(values):
  """The mean of `values` and its standard error, as floats."""
  values = np.asarray(values, np.float64)
  return float(values.mean()), float(values.std(ddof=1) / math.sqrt(values.size))


def main(argv=None):
  args = parse_args(argv)
  output_dir = pathlib.Path(args.output_dir)
  output_dir.mkdir(parents=True, exist_ok=True)
  keras.utils.set_random_seed(args.seed)
  train = tfp_realnvp.data.load_images("digits", split="train", batch_size=args.batch_size,
                                       seed=args.seed)
  test = tfp_realnvp.data.load_images("digits", split="test", batch_size=512, shuffle=False,
                                      seed=args.seed + 1)
  x_test = tf.concat(list(test), axis=0)
  hidden = tuple(args.hidden_units)
  num_dims = EVENT_SIZE

  # 1. The teacher, by maximum likelihood.
  teacher_flow = AutoregressiveFlow(args.num_layers, hidden, name="teacher")
  teacher = tfp_realnvp.FlowModel(teacher_flow, name="teacher_model")

  def bits(nll):
    """Bits/dim of 8-bit data for an NLL in nats per image (the FlowModel's convention)."""
    return float(teacher.bits_from_log_prob(-nll))

  teacher.compile(optimizer=keras.optimizers.Adam(args.learning_rate))
  start = time.time()
  teacher.fit(train, epochs=args.teacher_epochs, verbose=0)
  teacher_test_nlls = -teacher.log_prob(x_test).numpy().astype(np.float64)
  teacher_test_nll = float(np.mean(teacher_test_nlls))
  teacher_test_nll_median = float(np.median(teacher_test_nlls))
  print(f"teacher MAF ({args.teacher_epochs} epochs, {time.time() - start:.0f} s): "
        f"teacher NLL of the real test digits {teacher_test_nll:.2f} nats/image = "
        f"{bits(teacher_test_nll):.4f} bits/dim")

  # 2. The student, by minimising KL(student || teacher) on its own samples. Both densities
  # are evaluated on the 64-D logit-space vectors y; `logit` maps them to images, so
  # log p(image) = log p(y) - logit.forward_log_det_jacobian(y) for either model.
  student_flow = AutoregressiveFlow(args.num_layers, hidden, inverse_autoregressive=True,
                                    name="student")
  student = tfp_realnvp.FlowModel(student_flow, name="student_model")
  base = tfd.Sample(tfd.Normal(0.0, 1.0), [EVENT_SIZE])
  teacher_dist = tfd.TransformedDistribution(base, teacher_flow.vector_bijector)
  iaf = student_flow.vector_bijector
  logit = tfp_realnvp.bijectors.Logit(teacher.alpha)

  def student_sample_log_probs(n, seed=None):
    """`(log s(y), log t(y))` per student sample `y`, in logit space."""
    z = base.sample(n, seed=seed)
    y = iaf.forward(z)  # One parallel pass per IAF layer.
    log_student = base.log_prob(z) - iaf.forward_log_det_jacobian(z, event_ndims=1)
    return log_student, teacher_dist.log_prob(y), y

  kl_seed = tf.constant([args.seed, 7])
  fixed_sample_log_probs = tf.function(
      lambda: student_sample_log_probs(args.kl_samples, kl_seed))

  def kl_estimate():
    log_student, log_teacher, _ = fixed_sample_log_probs()
    return mean_and_error((log_student - log_teacher).numpy())

  variables = student_flow.trainable_variables
  warmup = max(1, args.student_steps // 20)
  schedule = keras.optimizers.schedules.CosineDecay(
      0.0, max(1, args.student_steps - warmup), warmup_target=args.student_learning_rate,
      warmup_steps=warmup)
  optimizer = keras.optimizers.Adam(schedule)
  optimizer.build(variables)

  @tf.function
  def student_step():
    with tf.GradientTape() as tape:
      log_student, log_teacher, _ = student_sample_log_probs(args.student_batch_size)
      loss = tf.reduce_mean(log_student - log_teacher)
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
    return loss

  kl_before, kl_before_error = kl_estimate()
  print(f"KL(student || teacher) before distillation: {kl_before:.4f} nats "
        f"(+- {kl_before_error:.4f})")
  print(f"distillation: {args.student_steps} steps of {args.student_batch_size} student samples, "
        f"Adam, warm-up to {args.student_learning_rate:g} then cosine decay; KL(student || "
        f"teacher) on {args.kl_samples} fixed student samples, nats/image +- standard error:")
  trajectory = [{"step": 0, "kl": kl_before, "standard_error": kl_before_error}]
  checkpoints = set(np.linspace(0, args.student_steps, args.num_checkpoints + 1).astype(int)[1:])
  start = time.time()
  for step in range(1, args.student_steps + 1):
    student_step()
    if step in checkpoints:
      kl, error = kl_estimate()
      trajectory.append({"step": step, "kl": kl, "standard_error": error})
      print(f"  step {step:6d}  KL {kl:9.4f} +- {error:.4f}  "
            f"(learning rate {float(schedule(step - 1)):.2e}, {time.time() - start:.0f} s)")
  student_seconds = time.time() - start
  kl_after, kl_after_error = trajectory[-1]["kl"], trajectory[-1]["standard_error"]
  half = [p for p in trajectory if p["step"] <= args.student_steps // 2][-1]
  print(f"KL(student || teacher) after {args.student_steps} steps ({student_seconds:.0f} s): "
        f"{kl_after:.4f} nats (+- {kl_after_error:.4f}); it fell by "
        f"{trajectory[-2]['kl'] - kl_after:.4f} nats over the last "
        f"{args.student_steps - trajectory[-2]['step']} steps and by "
        f"{half['kl'] - kl_after:.4f} since step {half['step']}")

  # 3. What the student learned, in image space (comparable with the test NLLs).
  log_student, log_teacher, y = fixed_sample_log_probs()
  image_log_det = logit.forward_log_det_jacobian(y, event_ndims=1)
  teacher_nll_of_student_samples = -float(tf.reduce_mean(log_teacher - image_log_det))
  student_entropy = -float(tf.reduce_mean(log_student - image_log_det))
  # The teacher's own samples take 64 sequential passes per layer: a graph while-loop.
  y_teacher = tf.function(lambda: teacher_dist.sample(args.kl_samples, seed=kl_seed + 1))()
  teacher_entropy = -float(tf.reduce_mean(
      teacher_dist.log_prob(y_teacher)
      - logit.forward_log_det_jacobian(y_teacher, event_ndims=1)))
  # The student's density of real data needs its sequential inverse (a tf.while_loop inside
  # TFP, so no autograph is needed): once, in a graph.
  student_log_prob = tf.function(lambda x: student.log_prob(x), autograph=False)
  student_test_nll = -student_log_prob(x_test).numpy().astype(np.float64)
  student_test_nll_mean = float(np.mean(student_test_nll))
  student_test_nll_median = float(np.median(student_test_nll))

  def row(label, nll):
    print(f"  {label:<58s} {nll:10.2f} nats/image = {bits(nll):8.4f} bits/dim")

  print(f"densities on [0, 1)^{num_dims} (nats/image; bits/dim as for 8-bit data):")
  row("teacher NLL of the real test digits, mean", teacher_test_nll)
  row("teacher NLL of the real test digits, median", teacher_test_nll_median)
  row("teacher NLL of the teacher's own samples (its entropy)", teacher_entropy)
  row("teacher NLL of the student's samples (cross-entropy)", teacher_nll_of_student_samples)
  row("student NLL of the student's own samples (its entropy)", student_entropy)
  print(f"  (cross-entropy - student entropy = "
        f"{teacher_nll_of_student_samples - student_entropy:.4f} nats = the KL above)")
  row("student NLL of the real test digits, median", student_test_nll_median)
  row("student NLL of the real test digits, mean", student_test_nll_mean)
  print("  (the student never saw data and KL(student || teacher) is mode-seeking: digits "
        "outside its modes get a very low density and dominate the mean)")

  # 4. Sampling speed: the MAF runs its network once per dimension, the IAF once.
  n = args.num_timing_samples
  teacher_sample = tf.function(lambda: teacher.sample(n))
  student_sample = tf.function(lambda: student.sample(n))
  teacher_seconds = timed(teacher_sample)
  student_seconds_per_draw = timed(student_sample)
  print(f"time to draw {n} samples: teacher (sequential MAF) {1000 * teacher_seconds:.1f} ms, "
        f"student (parallel IAF) {1000 * student_seconds_per_draw:.1f} ms, "
        f"{teacher_seconds / student_seconds_per_draw:.1f}x faster")

  plotting.save_image_grid(teacher.sample(64, seed=args.seed), output_dir / "teacher_samples.png")
  plotting.save_image_grid(student.sample(64, seed=args.seed), output_dir / "student_samples.png")
  print(f"wrote {output_dir / 'teacher_samples.png'} and {output_dir / 'student_samples.png'}")
  metrics = {
      "teacher_test_nll": teacher_test_nll, "teacher_test_bits_per_dim": bits(teacher_test_nll),
      "teacher_test_nll_median": teacher_test_nll_median,
      "kl_before": kl_before, "kl_after": kl_after, "kl_after_standard_error": kl_after_error,
      "kl_trajectory": trajectory, "student_train_seconds": student_seconds,
      "teacher_entropy": teacher_entropy,
      "teacher_nll_of_student_samples": teacher_nll_of_student_samples,
      "student_entropy": student_entropy,
      "student_test_nll_median": student_test_nll_median,
      "student_test_nll_mean": student_test_nll_mean,
      "teacher_sample_seconds": teacher_seconds,
      "student_sample_seconds": student_seconds_per_draw, "num_timing_samples": n}
  with open(output_dir / "metrics.json", "w", encoding="utf-8") as f:
    json.dump(metrics, f, indent=2)
  numbers = [v for v in metrics.values() if not isinstance(v, list)]
  numbers += [p[key] for p in trajectory for key in ("kl", "standard_error")]
  if not all(math.isfinite(v) for v in numbers):
    raise SystemExit("non-finite result")


if __name__ == "__main__":
  main()
