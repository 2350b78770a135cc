"""The network-owning examples of TFP's bijector docstrings, runnable with either Keras.

In a process started with `TF_USE_LEGACY_KERAS=1` the examples use TFP's own Keras 2 networks
(`tfb.AutoregressiveNetwork`, `tfb.real_nvp_default_template`) and `tf_keras`, exactly as TFP
documents them; otherwise they use Keras 3 and this package's networks. The only differences
are the two imports below and, for Keras 3, `log_prob_model`: Keras 3's functional API does not
carry TensorFlow calls on symbolic inputs, so `tfk.Model(x_, distribution.log_prob(x_))` becomes
a small subclassed model that owns the network.

Examples (data as in the docstrings, from a seeded generator; trained with `fit` for `epochs`
epochs of `n // batch_size` steps, the docstrings' "usually"):

* `maf`: density estimation with a MAF on 2-D data (`tfb.AutoregressiveNetwork` docstring);
* `conditional_maf`: the conditional MAF on a two-component mixture (same docstring);
* `iaf`: the IAF of the `tfb.MaskedAutoregressiveFlow` docstring, fitted to the `maf` data
  (a subclassed model under both Keras: Keras 2's functional API cannot trace its loop);
* `real_nvp`: `tfb.RealNVP(num_masked=2, real_nvp_default_template(...))` of the `tfb.RealNVP`
  docstring, fitted to 3-D data whose third coordinate depends on the first two.

Run as a script, it trains the examples named on the command line and prints one JSON line
`{example: final loss}` (the mean negative log-likelihood of the whole data set).
"""

import json
import os
import sys

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

KERAS_2 = os.environ.get("TF_USE_LEGACY_KERAS") == "1"
if KERAS_2:
  import tf_keras as keras  # pylint: disable=g-import-not-at-top
  networks = tfp.bijectors
else:
  import keras  # pylint: disable=g-import-not-at-top

  import tfp_realnvp  # pylint: disable=g-import-not-at-top
  networks = tfp_realnvp.networks

tfd, tfb = tfp.distributions, tfp.bijectors

N = 2000
BATCH_SIZE = 25
EXAMPLES = ("maf", "conditional_maf", "iaf", "real_nvp")


def log_prob_model(distribution, network, conditional=False, event_size=2,
                   functional=KERAS_2):
  """A Keras model whose output is `distribution.log_prob` of its input(s).

  Keras 2 (TFP's docstrings): a functional model on symbolic inputs. Keras 3, and Keras 2 where
  its functional API cannot trace the log-density (an IAF's `tf.while_loop`): a subclassed
  model that owns `network`, so that Keras tracks, trains and saves its variables.
  """
  if functional:
    x_ = keras.Input(shape=(event_size,), dtype=tf.float32)
    if not conditional:
      return keras.Model(x_, distribution.log_prob(x_))
    c_ = keras.Input(shape=(1,), dtype=tf.float32)
    return keras.Model([x_, c_], distribution.log_prob(
        x_, bijector_kwargs={"conditional_input": c_}))

  class LogProb(keras.Model):

    def __init__(self):
      super().__init__()
      self.network = network  # Tracked: the model trains and saves its variables.

    def call(self, inputs):
      # New tensors: Keras 3 first traces `call` in a scratch graph, and TFP's bijector cache
      # (keyed by input tensor) would hand the training step a tensor of that graph.
      if not conditional:
        return distribution.log_prob(tf.identity(inputs))
      x, c = inputs
      return distribution.log_prob(tf.identity(x), bijector_kwargs={"conditional_input": c})

  return LogProb()


def maf_data(seed=0):
  """Figure 1 of Papamakarios et al. (2017), as in the `AutoregressiveNetwork` docstring."""
  rng = np.random.default_rng(seed)
  x2 = rng.standard_normal(N).astype(np.float32) * 2.
  x1 = rng.standard_normal(N).astype(np.float32) + (x2 * x2 / 4.)
  return np.stack([x1, x2], axis=-1)


def mixture_data(seed=0):
  """The conditional example's data: `x ~ N(0, 1)` given `c = 0`, `N(5, 1)` given `c = 1`."""
  rng = np.random.default_rng(seed)
  c = np.r_[np.zeros(N // 2), np.ones(N // 2)].astype(np.float32)[:, None]
  x = np.r_[rng.standard_normal(N // 2), rng.standard_normal(N // 2) + 5].astype(np.float32)
  return x[:, None], c


def real_nvp_data(seed=0):
  """3-D points: two standard normal coordinates and a third that depends on them."""
  rng = np.random.default_rng(seed)
  x12 = rng.standard_normal((N, 2)).astype(np.float32)
  x3 = (2. * np.sin(x12[:, :1]) + 0.5 * x12[:, 1:] ** 2
        + 0.3 * rng.standard_normal((N, 1))).astype(np.float32)
  return np.concatenate([x12, x3], axis=-1)


def build(example, crippled=False):
  """`(model, inputs, learning_rate)` of one example, networks as the docstrings make them.

  `crippled=True` gives a network that cannot fit the data (shift only, no scale), to show
  that the loss comparison can fail.
  """
  if example in ("maf", "iaf"):
    units = [10, 10] if example == "maf" else [512, 512]
    made = networks.AutoregressiveNetwork(params=1 if crippled else 2, hidden_units=units)
    fn = (lambda y: (made(y)[..., 0], None)) if crippled else made
    bijector = tfb.MaskedAutoregressiveFlow(fn)
    if example == "iaf":
      bijector = tfb.Invert(bijector)
    distribution = tfd.TransformedDistribution(
        distribution=tfd.Sample(tfd.Normal(loc=0., scale=1.), sample_shape=[2]),
        bijector=bijector)
    return (log_prob_model(distribution, made, functional=KERAS_2 and example == "maf"),
            maf_data(), 1e-3)
  if example == "conditional_maf":
    made = networks.AutoregressiveNetwork(
        params=2, hidden_units=[2, 2], event_shape=(1,), conditional=True,
        kernel_initializer=keras.initializers.VarianceScaling(0.1),
        conditional_event_shape=(1,))
    distribution = tfd.TransformedDistribution(
        distribution=tfd.Sample(tfd.Normal(loc=0., scale=1.), sample_shape=[1]),
        bijector=tfb.MaskedAutoregressiveFlow(made))
    return (log_prob_model(distribution, made, conditional=True, event_size=1),
            list(mixture_data()), 0.1)
  if example == "real_nvp":
    template = networks.real_nvp_default_template(hidden_layers=[512, 512],
                                                  shift_only=crippled)
    distribution = tfd.TransformedDistribution(
        distribution=tfd.MultivariateNormalDiag(loc=[0., 0., 0.]),
        bijector=tfb.RealNVP(num_masked=2, shift_and_log_scale_fn=template))
    return log_prob_model(distribution, template, event_size=3), real_nvp_data(), 1e-3
  raise ValueError(f"unknown example {example!r}; one of {EXAMPLES}")


def train(example, epochs, seed=0, crippled=False):
  """Trains one example with `fit` as the docstrings do; returns `(model, final loss)`."""
  keras.utils.set_random_seed(seed)
  model, inputs, learning_rate = build(example, crippled)
  model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
                loss=lambda _, log_prob: -log_prob)
  targets = np.zeros((N, 0), dtype=np.float32)
  model.fit(x=inputs, y=targets, batch_size=BATCH_SIZE, epochs=epochs,
            steps_per_epoch=N // BATCH_SIZE, shuffle=True, verbose=0)
  loss = model.evaluate(x=inputs, y=targets, batch_size=500, verbose=0)
  return model, float(loss)


if __name__ == "__main__":
  epochs = int(sys.argv[1])
  print(json.dumps({name: train(name, epochs)[1] for name in sys.argv[2:]}))
