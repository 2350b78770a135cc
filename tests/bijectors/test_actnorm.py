"""Glow's `ActNorm` and its `ActNormParameters`: the data-dependent initialisation.

The TFP contract of the bijector is checked by the conformance suite (`test_conformance.py`);
here: ActNorm's initialisation in eager mode, in a traced step, on restore and under
MirroredStrategy, and the layer it accepts.
"""

import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfp_realnvp
from tfp_realnvp import bijectors as rb

from helpers import fresh

SHAPE = (6, 4, 5, 3)  # [N, H, W, C]


def images(seed=0, shape=SHAPE):
  """Images far from normalised: per-channel means 1, -2, 3 and scales 0.5, 2, 4."""
  rng = np.random.default_rng(seed)
  return tf.constant(rng.normal([1.0, -2.0, 3.0], [0.5, 2.0, 4.0], shape))


class Inverse(keras.layers.Layer):
  """A Keras layer that runs `bijector.inverse`, so that it sees Keras's training flag."""

  def __init__(self, bijector, **kwargs):
    super().__init__(dtype="float64", **kwargs)
    self.bijector = bijector

  def call(self, x):
    return self.bijector.inverse(x)


def actnorm(epsilon=0.0):
  layer = tfp_realnvp.bijectors.ActNormParameters(epsilon=epsilon, dtype="float64")
  layer.build((None,) + SHAPE[1:])
  return layer, rb.ActNorm(layer)


def values(layer):
  return [v.numpy().copy() for v in (layer.log_scale, layer.shift, layer.initialized)]


def assert_normalised(z):
  mean, variance = tf.nn.moments(z, axes=[0, 1, 2])
  np.testing.assert_allclose(mean.numpy(), 0.0, atol=1e-12)
  np.testing.assert_allclose(variance.numpy(), 1.0, rtol=1e-12)


def test_first_training_call_initialises_and_already_returns_normalised_output():
  layer, bijector = actnorm()
  x = images()
  assert not layer.initialized.numpy()
  z = Inverse(bijector)(x, training=True)
  assert layer.initialized.numpy()
  assert_normalised(z)
  std = x.numpy().reshape(-1, 3).std(axis=0)
  np.testing.assert_allclose(layer.shift.numpy(), -x.numpy().reshape(-1, 3).mean(axis=0))
  np.testing.assert_allclose(layer.log_scale.numpy(), -np.log(std))
  ildj = bijector.inverse_log_det_jacobian(fresh(x), event_ndims=3)
  np.testing.assert_allclose(ildj.numpy(), np.full(SHAPE[0], -4 * 5 * np.log(std).sum()))


def test_default_epsilon_is_close_to_unit_variance():
  layer, bijector = actnorm(epsilon=1e-6)
  mean, variance = tf.nn.moments(Inverse(bijector)(images(), training=True), axes=[0, 1, 2])
  np.testing.assert_allclose(mean.numpy(), 0.0, atol=1e-12)
  np.testing.assert_allclose(variance.numpy(), 1.0, rtol=1e-5)


def test_a_second_training_call_does_not_reinitialise():
  layer, bijector = actnorm()
  step = Inverse(bijector)
  step(images(0), training=True)
  before = values(layer)
  z = step(images(1) * 3.0, training=True)
  for a, b in zip(before, values(layer), strict=True):
    np.testing.assert_array_equal(a, b)
  assert np.max(np.abs(tf.nn.moments(z, axes=[0, 1, 2])[1].numpy() - 1.0)) > 1.0


def test_inference_calls_never_initialise_and_leave_the_identity():
  layer, bijector = actnorm()
  x = images()
  outputs = [Inverse(bijector)(x, training=False), Inverse(bijector)(x), bijector.inverse(x),
             bijector.forward(x), tf.function(bijector.inverse)(fresh(x))]
  assert not layer.initialized.numpy()
  for output in outputs:
    np.testing.assert_array_equal(output.numpy(), x.numpy())
  np.testing.assert_array_equal(bijector.forward_log_det_jacobian(x, event_ndims=3), 0.0)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_traced_train_step_initialises_on_its_first_run_only(jit_compile):
  layer, bijector = actnorm()
  step_layer = Inverse(bijector)
  optimizer = keras.optimizers.SGD(0.1)

  @tf.function(jit_compile=jit_compile)
  def train_step(x):
    with tf.GradientTape() as tape:
      z = step_layer(x, training=True)
      loss = tf.reduce_mean(z ** 2) - tf.reduce_mean(
          bijector.inverse_log_det_jacobian(x, event_ndims=3))
    gradients = tape.gradient(loss, layer.trainable_variables)
    optimizer.apply(gradients, layer.trainable_variables)
    return z, gradients

  z, gradients = train_step(images(0))
  assert layer.initialized.numpy()
  assert_normalised(z)  # The first step's output already uses the initialised values.
  assert all(g is not None and np.all(np.isfinite(g.numpy())) for g in gradients)
  before = values(layer)
  _, gradients = train_step(images(1) * 3.0)
  # The second step moves the values by the SGD step alone: no re-initialisation.
  for a, b, g in zip(before[:2], values(layer)[:2], gradients, strict=True):
    np.testing.assert_allclose(b, a - 0.1 * g.numpy(), rtol=1e-6)  # A float32 learning rate.
    assert np.max(np.abs(g.numpy())) > 0


def test_restored_layers_do_not_reinitialise(tmp_path):
  layer, bijector = actnorm()
  Inverse(bijector)(images(0), training=True)
  trained = values(layer)

  clone = tfp_realnvp.bijectors.ActNormParameters.from_config(layer.get_config())
  clone.build((None,) + SHAPE[1:])
  clone.set_weights(layer.get_weights())
  inputs = keras.Input(SHAPE[1:], dtype="float64")
  model = keras.Model(inputs, clone(inputs))
  model.save(tmp_path / "actnorm.keras")
  loaded = keras.models.load_model(tmp_path / "actnorm.keras")
  (restored,) = [sub for sub in loaded.layers
                 if isinstance(sub, tfp_realnvp.bijectors.ActNormParameters)]
  for candidate in (clone, restored):
    Inverse(rb.ActNorm(candidate))(images(1) * 3.0, training=True)
    for a, b in zip(trained, values(candidate), strict=True):
      np.testing.assert_array_equal(a, b)


MIRRORED_SCRIPT = textwrap.dedent("""
    import json, os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import tfp_realnvp
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
      layer = tfp_realnvp.bijectors.ActNormParameters(epsilon=0.0, dtype="float64")
      layer.build((None, 4, 5, 3))
    rng = np.random.default_rng(0)
    # The two replicas' halves of the batch have very different statistics.
    x = np.concatenate([rng.normal(1.0, 0.5, (4, 4, 5, 3)), rng.normal(-3.0, 4.0, (4, 4, 5, 3))])
    batches = [strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices(data).batch(8)) for data in (x, 5.0 * x)]
    step = tf.function(lambda b: strategy.run(lambda b: layer(b, training=True), args=(b,)))
    results = []
    for dataset in batches:
      for batch in dataset:
        results.append([[t.numpy().tolist() for t in replica]
                        for replica in strategy.experimental_local_results(step(batch))])
    flat = x.reshape(-1, 3)

    # `fit` initialises from the first global batch and trains: the replicas stay identical.
    import keras
    class Inverse(keras.layers.Layer):
      def __init__(self, layer):
        super().__init__(dtype="float64")
        self.layer = layer
        self.bijector = tfp_realnvp.bijectors.ActNorm(layer)
      def call(self, x):
        return self.bijector.inverse(x)
    with strategy.scope():
      trained = tfp_realnvp.bijectors.ActNormParameters(dtype="float64")
      trained.build((None, 4, 5, 3))
      inputs = keras.Input((4, 5, 3), dtype="float64")
      model = keras.Model(inputs, Inverse(trained)(inputs))
      model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model.fit(x, np.zeros_like(x), batch_size=8, epochs=2, shuffle=False, verbose=0)
    json.dump({"results": results, "log_scale": (-np.log(flat.std(0))).tolist(),
               "shift": (-flat.mean(0)).tolist(), "initialized": bool(layer.initialized.numpy()),
               "replicas": strategy.num_replicas_in_sync,
               "fit": [[r.numpy().tolist() for r in v.value.values]
                       for v in (trained.log_scale, trained.shift)]}, open(sys.argv[1], "w"))
""")


def test_mirrored_strategy_initialises_every_replica_from_the_global_batch(tmp_path):
  # Two logical CPU devices must be configured before TensorFlow runs anything: a new process.
  out = tmp_path / "mirrored.json"
  result = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT, str(out)], capture_output=True,
                          text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(out.read_text())
  assert report["replicas"] == 2 and report["initialized"]
  for step in report["results"]:  # The initialising step, then a step on other data.
    for log_scale, shift in step:  # Every replica.
      np.testing.assert_allclose(log_scale, report["log_scale"], rtol=1e-12)
      np.testing.assert_allclose(shift, report["shift"], rtol=1e-12)
  # After `fit` (2 SGD steps of the loss mean(z^2) on the global batch), identical on both
  # replicas: mean(z^2) starts at 1 (its gradient in each log-scale is 2/3 on 3 channels),
  # then is exp(-2 * 0.1 * 2/3); the shifts do not move (mean(z) stays 0).
  log_scales, shifts = report["fit"]
  for replicas in (log_scales, shifts):
    np.testing.assert_array_equal(replicas[0], replicas[1])
  step = 0.1 * 2 / 3 * (1 + np.exp(-0.2 * 2 / 3))
  np.testing.assert_allclose(log_scales[0], np.subtract(report["log_scale"], step), rtol=1e-6)
  np.testing.assert_allclose(shifts[0], report["shift"], rtol=1e-6)


def test_actnorm_rejects_another_layer():
  with pytest.raises(TypeError, match="ActNormParameters"):
    rb.ActNorm(tfp_realnvp.bijectors.BatchNormStatistics())


def test_a_parameter_layer_of_another_class_is_refused():
  with pytest.raises(TypeError,
                     match="must be an instance of the Keras layer ActNormParameters, got Dense"):
    rb.ActNorm(keras.layers.Dense(3))
