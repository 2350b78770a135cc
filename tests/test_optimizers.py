"""`tfp_realnvp.FusedAdam`: Keras's Adam with one TensorFlow kernel per variable update."""

import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfp_realnvp

SHAPES = [(3, 3, 2, 4), (4,), ()]


def _settings(amsgrad=False):
  # A schedule, and betas far from the defaults, so that the bias corrections and the step's
  # learning rate matter.
  return dict(learning_rate=keras.optimizers.schedules.ExponentialDecay(0.1, 2, 0.5),
              beta_1=0.8, beta_2=0.95, epsilon=1e-3, amsgrad=amsgrad)


def _variables(dtype):
  rng = np.random.default_rng(0)
  return [keras.Variable(rng.normal(size=shape), dtype=dtype) for shape in SHAPES]


def _gradients(dtype, steps):
  rng = np.random.default_rng(1)
  # Gradients that shrink, so that AMSGrad's running maximum differs from v.
  return [[tf.constant(rng.normal(size=shape) / (1 + 3 * step), dtype) for shape in SHAPES]
          for step in range(steps)]


def _applier(optimizer, variables, traced):
  """`grads -> optimizer.apply(grads, variables)`, run eagerly or traced."""
  def apply(grads):
    optimizer.apply(grads, variables)
  return tf.function(apply) if traced else apply


def _train(optimizer, dtype, traced, steps=6):
  variables = _variables(dtype)
  optimizer.build(variables)
  apply = _applier(optimizer, variables, traced)
  for grads in _gradients(dtype, steps):
    apply(grads)
  return [v.numpy() for v in variables], [v.numpy() for v in optimizer.variables]


def _numpy_adam(steps=6):
  """The weights after `steps` updates, written from the algorithm in float64."""
  settings = _settings()
  beta_1, beta_2, epsilon = settings["beta_1"], settings["beta_2"], settings["epsilon"]
  weights = [v.numpy() for v in _variables("float64")]
  m = [np.zeros_like(w) for w in weights]
  v = [np.zeros_like(w) for w in weights]
  for t, grads in enumerate(_gradients("float64", steps), start=1):
    # The schedule's value in float32, as Keras keeps the learning rate.
    learning_rate = float(np.float32(settings["learning_rate"](t - 1)))
    for i, g in enumerate(grads):
      g = g.numpy()
      m[i] += (1 - beta_1) * (g - m[i])
      v[i] += (1 - beta_2) * (g * g - v[i])
      weights[i] -= (learning_rate * np.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)
                     * m[i] / (np.sqrt(v[i]) + epsilon))
  return weights


@pytest.mark.parametrize("traced", [False, True], ids=["eager", "traced"])
def test_updates_follow_the_algorithm(traced):
  fused, _ = _train(tfp_realnvp.FusedAdam(**_settings()), "float64", traced)
  for a, b in zip(fused, _numpy_adam(), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
  # Keras's Adam reads its Python-float constants (`1 - beta_1`, `epsilon`) as float32
  # tensors, so in float64 it differs from the algorithm by float32 rounding; in float32
  # both optimizers agree, the moments and every other optimizer variable included.
  weights, variables = _train(tfp_realnvp.FusedAdam(**_settings()), "float32", traced)
  keras_weights, keras_variables = _train(keras.optimizers.Adam(**_settings()), "float32",
                                          traced)
  assert len(variables) == len(keras_variables)
  for a, b in zip(weights + variables, keras_weights + keras_variables, strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_amsgrad_is_keras_update():
  # TensorFlow's fused AMSGrad kernel has no XLA implementation: Keras's update runs.
  fused = _train(tfp_realnvp.FusedAdam(**_settings(amsgrad=True)), "float64", traced=True)
  reference = _train(keras.optimizers.Adam(**_settings(amsgrad=True)), "float64", traced=True)
  for a, b in zip(fused[0] + fused[1], reference[0] + reference[1], strict=True):
    np.testing.assert_array_equal(a, b)
  plain, _ = _train(keras.optimizers.Adam(**_settings()), "float64", traced=True)
  assert not np.allclose(fused[0][0], plain[0], rtol=1e-6)


def test_each_variable_is_updated_by_one_kernel():
  def graph_ops(optimizer):
    variables = _variables("float32")
    optimizer.build(variables)
    grads = _gradients("float32", 1)[0]
    graph = _applier(optimizer, variables, True).get_concrete_function(grads).graph
    return [op.type for op in graph.get_operations()]

  fused = graph_ops(tfp_realnvp.FusedAdam(**_settings()))
  keras_ops = graph_ops(keras.optimizers.Adam(**_settings()))
  assert fused.count("ResourceApplyAdam") == len(SHAPES)
  assert "ResourceApplyAdam" not in keras_ops
  # The bias corrections (two powers) are computed once for the step, not once per variable.
  assert fused.count("Pow") == keras_ops.count("Pow") - 2 * (len(SHAPES) - 1)
  assert len(fused) < len(keras_ops)


def _small_model(optimizer, jit_compile=False):
  keras.utils.set_random_seed(0)
  model = tfp_realnvp.FlowModel(tfp_realnvp.RealNVP((4, 4, 1), num_scales=1, num_filters=4,
                                                    num_blocks=1))
  model.compile(optimizer=optimizer, jit_compile=jit_compile)
  return model


def _pixels(n=32):
  return np.random.default_rng(2).uniform(size=(n, 4, 4, 1)).astype("float32")


@pytest.mark.parametrize("jit_compile, amsgrad", [
    (False, False), pytest.param(True, False, marks=pytest.mark.slow),
    pytest.param(True, True, marks=pytest.mark.slow)],
    ids=["graph", "xla", "xla-amsgrad"])  # xla: about 13 s each
def test_fit_trains_a_flow_like_keras_adam(jit_compile, amsgrad):
  losses = {}
  settings = dict(learning_rate=1e-2, global_clipnorm=10.0, amsgrad=amsgrad)
  for name, optimizer in (("fused", tfp_realnvp.FusedAdam(**settings)),
                          ("keras", keras.optimizers.Adam(**settings))):
    model = _small_model(optimizer, jit_compile)
    history = model.fit(_pixels(), batch_size=8, epochs=3, shuffle=False, verbose=0)
    losses[name] = history.history["loss"]
  np.testing.assert_allclose(losses["fused"], losses["keras"], rtol=1e-5)
  assert losses["fused"][-1] < losses["fused"][0]


@pytest.mark.parametrize("amsgrad", [False, True], ids=["adam", "amsgrad"])
def test_keras_file_keeps_the_optimizer_and_its_state(tmp_path, amsgrad):
  model = _small_model(tfp_realnvp.FusedAdam(1e-2, amsgrad=amsgrad))
  model.fit(_pixels(), batch_size=8, epochs=1, shuffle=False, verbose=0)
  model.save(tmp_path / "flow.keras")
  loaded = keras.models.load_model(tmp_path / "flow.keras")
  assert type(loaded.optimizer) is tfp_realnvp.FusedAdam
  assert loaded.optimizer.amsgrad == amsgrad and int(loaded.optimizer.iterations.numpy()) == 4
  for a, b in zip(model.optimizer.variables, loaded.optimizer.variables, strict=True):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  # Both continue alike.
  new = [m.fit(_pixels(), batch_size=8, epochs=1, shuffle=False, verbose=0).history["loss"]
         for m in (model, loaded)]
  np.testing.assert_allclose(new[0], new[1], rtol=1e-6)


MIRRORED_SCRIPT = textwrap.dedent("""
    import json, os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import tfp_realnvp

    def train(make_optimizer, strategy):
      keras.utils.set_random_seed(0)
      with strategy.scope():
        model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(7, activation="tanh"),
                                  keras.layers.Dense(1)])
        model.compile(optimizer=make_optimizer(), loss="mse")
      rng = np.random.default_rng(0)
      x, y = rng.normal(size=(64, 5)), rng.normal(size=(64, 1))
      model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
      replicas = [[r.numpy().tolist() for r in v.value.values] if hasattr(v.value, "values")
                  else [v.numpy().tolist()] for v in model.trainable_variables]
      return replicas, strategy.num_replicas_in_sync

    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    json.dump({"fused": train(lambda: tfp_realnvp.FusedAdam(1e-2), mirrored),
               "keras": train(lambda: keras.optimizers.Adam(1e-2), mirrored),
               "one": train(lambda: tfp_realnvp.FusedAdam(1e-2), tf.distribute.get_strategy())},
              open(sys.argv[1], "w"))
""")


def test_mirrored_strategy_updates_every_replica_like_keras_adam(tmp_path):
  # Two logical CPU devices must be configured before TensorFlow runs anything: a new process.
  script = tmp_path / "mirrored.py"
  script.write_text(MIRRORED_SCRIPT)
  subprocess.run([sys.executable, str(script), str(tmp_path / "out.json")], check=True)
  out = json.loads((tmp_path / "out.json").read_text())
  (fused, replicas), (reference, _), (one, _) = out["fused"], out["keras"], out["one"]
  assert replicas == 2
  for f, r, o in zip(fused, reference, one, strict=True):
    assert len(f) == 2
    for value in f:
      np.testing.assert_allclose(value, r[0], rtol=1e-5, atol=2e-6)
      np.testing.assert_allclose(value, o[0], rtol=1e-5, atol=2e-6)
    np.testing.assert_array_equal(f[0], f[1])
