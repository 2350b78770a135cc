#!/usr/bin/env python
"""TFP's own Glow (`tfp.bijectors.Glow`) as a speed worker (`_worker.py`), for `depth.py`.

The flow TensorFlow Probability ships: `tfp.bijectors.Glow` with its `tf_keras` networks
(`GlowDefaultNetwork` with `--num-filters` hidden channels in the couplings,
`GlowDefaultExitNetwork` where a level hands half its channels to the latent),
`num_glow_blocks` the configuration's levels and `num_steps_per_block` its steps per level
(`_configs.py`'s Glow configuration `--config`, `--num-steps`), on a standard normal latent of
its shape. The training step is a `tf.function`: the negative log-likelihood of the batch, its
gradient and `tf_keras`'s Adam at 1e-3. The operations are `speed.py`'s (`train_step`,
`log_prob`, `sample` of 64), on the same fixed batch of uniform images; the command line is
`speed.py`'s worker's (`--config`, `--num-steps`, `--num-filters`, `--batch-size`,
`--threads`, `--mode`, `--memory-steps`, `--seed`; the flags of our model are ignored).

Before the timed start, the flow is called once eagerly on the batch, which creates its
variables and runs its ActNorms' data-dependent initialisation (TFP initialises on the first
call, which a traced training step cannot hold); the first training step is then its tracing,
graph optimisation and first run.
"""

import os
import sys

import _configs
import _worker
import speed


def build(args, config):
  """TFP's Glow for `config`; returns the timed operations, name -> zero-argument callable."""
  # pylint: disable=g-import-not-at-top
  import numpy as np
  import tensorflow as tf
  import tensorflow_probability as tfp
  from tensorflow_probability.python.internal import tf_keras
  # pylint: enable=g-import-not-at-top
  tfb, tfd = tfp.bijectors, tfp.distributions
  tf.random.set_seed(args.seed)
  shape = config["image_shape"]

  def coupling_network(input_shape):
    return tfb.GlowDefaultNetwork(input_shape, num_hidden=config["num_filters"])

  glow = tfb.Glow(output_shape=shape, num_glow_blocks=config["num_levels"],
                  num_steps_per_block=config["num_steps"],
                  coupling_bijector_fn=coupling_network,
                  exit_bijector_fn=tfb.GlowDefaultExitNetwork)
  latent = tfd.Sample(tfd.Normal(0.0, 1.0), glow.inverse_event_shape(shape))
  flow = tfd.TransformedDistribution(latent, glow)
  x = tf.constant(np.random.default_rng(args.seed).uniform(size=(args.batch_size,) + shape),
                  tf.float32)
  flow.log_prob(x)  # Variables and ActNorm initialisation (see the module docstring).
  variables = flow.trainable_variables
  optimizer = tf_keras.optimizers.Adam(1e-3)

  @tf.function
  def train_step():
    with tf.GradientTape() as tape:
      loss = -tf.reduce_mean(flow.log_prob(x))
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
    return loss

  log_prob = tf.function(lambda: flow.log_prob(x))
  sample = tf.function(lambda: flow.sample(speed.SAMPLES))
  ops = {"train_step": lambda: train_step().numpy(), "log_prob": lambda: log_prob().numpy(),
         "sample": lambda: sample().numpy()}
  return ops, int(sum(np.prod(v.shape) for v in variables))


def main(argv=None):
  args = speed.parse_args(argv)
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  # pylint: disable=g-import-not-at-top
  import tensorflow as tf
  import tensorflow_probability as tfp
  # pylint: enable=g-import-not-at-top
  if args.threads:
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
  config = _configs.resolve(args, args.config)
  if config["flow"] != "glow":
    sys.exit("error: tfp_glow_worker.py builds Glow only (--flow glow).")
  ops, num_params = build(args, config)

  def ready():
    return {"versions": {"tensorflow": tf.__version__,
                         "tensorflow_probability": tfp.__version__},
            "num_params": num_params}

  _worker.run("tfp", ops, speed.tf_profile, args.mode, args.memory_steps, ready)


if __name__ == "__main__":
  main(sys.argv[1:])
