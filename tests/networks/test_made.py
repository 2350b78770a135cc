"""Tests of the Keras 3 MADE network as the shift-and-log-scale function of TFP's MAF and IAF.

Everything numerical runs in float64 with the zero-initialised output layer randomised, so that
the autoregressive structure, the log-determinants and the round trips are checked on a flow
that is far from the identity.
"""

import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_realnvp.networks.made import MADE
from tfp_realnvp.networks._made_masks import made_masks

from helpers import assert_close_relative, fresh, normal, randomize

tfb = tfp.bijectors
tfd = tfp.distributions

D = 5


def random_made(seed=0, stddev=0.2, **kwargs):
  """A built float64 MADE with every variable (the zero output layer included) randomised.

  `seed` seeds the masks, the initial weights and their randomisation, so that every test is
  deterministic whatever ran before it.
  """
  kwargs.setdefault("hidden_units", (16, 16))
  kwargs.setdefault("dtype", "float64")
  kwargs.setdefault("kernel_initializer", keras.initializers.GlorotUniform(seed=seed))
  made = MADE(D, seed=seed, **kwargs)
  made.build((None, D))
  return randomize(made, seed=seed, stddev=stddev)


def base(dtype=np.float64):
  return tfd.Sample(tfd.Normal(dtype(0), dtype(1)), [D])


def flow_bijector(kind, made):
  maf = tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=made)
  return maf if kind == "maf" else tfb.Invert(maf)


def output_jacobians(made, x, **kwargs):
  """`d shift / d x` and `d log_scale / d x`, each `[batch, D (output), D (input)]`."""
  with tf.GradientTape(persistent=True) as tape:
    tape.watch(x)
    shift, log_scale = made(x, **kwargs)
  jacobians = [tape.batch_jacobian(y, x).numpy() for y in (shift, log_scale)]
  del tape
  return jacobians


def assert_autoregressive(jacobian, degrees, min_fraction_connected=1.0):
  """`jacobian[b, i, j]` is nonzero only where `degrees[j] < degrees[i]`, and mostly nonzero there.

  In the autoregressive order (rows and columns sorted by degree) the Jacobian of every example
  is strictly lower triangular; the allowed entries must not be trivially zero.
  """
  order = np.argsort(degrees)
  permuted = jacobian[:, order][:, :, order]
  assert np.all(np.triu(permuted) == 0), f"not autoregressive in order {degrees}:\n{permuted[0]}"
  allowed = np.tril(np.ones((D, D), bool), k=-1)
  connected = np.any(permuted != 0, axis=0)[allowed]
  assert connected.mean() >= min_fraction_connected, (
      f"only {connected.mean():.0%} of the allowed dependencies are present:\n{permuted[0]}")


def per_example_log_abs_det(fn, x):
  """`log |det d fn(x) / d x|` for every event of `x` `[..., D]`, from the autodiff Jacobian."""
  shape = x.shape
  flat = tf.reshape(x, [-1, D])
  with tf.GradientTape() as tape:
    tape.watch(flat)
    y = tf.reshape(fn(tf.reshape(flat, shape)), [-1, D])
  jacobian = tape.batch_jacobian(y, flat).numpy()
  sign, log_abs_det = np.linalg.slogdet(jacobian)
  assert np.all(sign != 0), "a Jacobian is singular"
  return log_abs_det.reshape(shape[:-1])


# 1. The autoregressive property.

ORDERS = ["left-to-right", "right-to-left", "random", [3, 1, 5, 2, 4]]


@pytest.mark.parametrize("hidden_degrees", ["equal", "random"])
@pytest.mark.parametrize("input_order", ORDERS, ids=str)
def test_jacobian_is_strictly_triangular_in_the_input_order(input_order, hidden_degrees):
  # With random degrees a dependency may run through only one or two units, which a ReLU can
  # switch off for every sample; tanh units never are, so every allowed entry must be nonzero.
  activation = "relu" if hidden_degrees == "equal" else "tanh"
  made = random_made(input_order=input_order, hidden_degrees=hidden_degrees,
                     activation=activation, seed=3)
  degrees = made.input_degrees
  if isinstance(input_order, list):
    np.testing.assert_array_equal(degrees, input_order)
  elif input_order == "left-to-right":
    np.testing.assert_array_equal(degrees, [1, 2, 3, 4, 5])
  elif input_order == "right-to-left":
    np.testing.assert_array_equal(degrees, [5, 4, 3, 2, 1])
  x = normal((8, D), seed=2)
  for jacobian in output_jacobians(made, x):
    assert_autoregressive(jacobian, degrees)


@pytest.mark.parametrize("hidden_units", [(), (3,), (3, 2), (16, 16, 16)], ids=str)
def test_any_depth_and_narrow_layers_stay_autoregressive(hidden_units):
  made = random_made(hidden_units=hidden_units, input_order="random", activation="tanh",
                     seed=11)
  shift_jacobian, log_scale_jacobian = output_jacobians(made, normal((8, D), seed=3))
  # Narrow layers cannot carry every dependency; depth >= 1 with width >= D - 1 must.
  full = 1.0 if hidden_units in [(), (16, 16, 16)] else 0.3
  assert_autoregressive(shift_jacobian, made.input_degrees, full)
  assert_autoregressive(log_scale_jacobian, made.input_degrees, full)


def test_equal_degrees_are_balanced_and_masks_are_numpy_constants():
  made = MADE(D, hidden_units=(16, 9))
  input_degrees, masks = made_masks(D, (16, 9))
  np.testing.assert_array_equal(input_degrees, [1, 2, 3, 4, 5])
  # The first hidden layer sees input 1 through 4 units of each degree 1..4.
  np.testing.assert_array_equal(masks[0].sum(axis=1), [16, 12, 8, 4, 0])
  assert [m.shape for m in made.masks] == [(D, 16), (16, 9), (9, 2 * D)]
  assert all(isinstance(m, np.ndarray) and m.dtype == bool for m in made.masks)
  made.build((None, D))
  assert len(made.variables) == len(made.trainable_variables) == 6


# 2. MAF and IAF: round trips and log-determinants.


@pytest.mark.parametrize("batch_shape", [(3,), (2, 3)], ids=str)
@pytest.mark.parametrize("kind", ["maf", "iaf"])
def test_log_dets_match_the_autodiff_jacobian(kind, batch_shape):
  bijector = flow_bijector(kind, random_made(input_order="random", seed=5))
  z = normal(batch_shape + (D,), seed=4)
  fldj = bijector.forward_log_det_jacobian(fresh(z), event_ndims=1).numpy()
  assert fldj.shape == batch_shape
  assert_close_relative(fldj, per_example_log_abs_det(bijector.forward, z), 1e-8)
  assert np.min(np.abs(fldj)) > 1e-3, "the randomised flow should not preserve volume"

  x = bijector.forward(fresh(z))
  assert x.shape == z.shape
  ildj = bijector.inverse_log_det_jacobian(fresh(x), event_ndims=1).numpy()
  assert_close_relative(ildj, per_example_log_abs_det(bijector.inverse, fresh(x)), 1e-8)
  assert_close_relative(fldj, -ildj, 1e-10)


@pytest.mark.parametrize("batch_shape", [(3,), (2, 3)], ids=str)
@pytest.mark.parametrize("kind", ["maf", "iaf"])
def test_round_trips_without_cache(kind, batch_shape):
  bijector = flow_bijector(kind, random_made(input_order="right-to-left"))
  z = normal(batch_shape + (D,), seed=6)
  x = bijector.forward(fresh(z))
  assert np.max(np.abs(x.numpy() - z.numpy())) > 1e-2, "the randomised flow should move z"
  np.testing.assert_allclose(bijector.inverse(fresh(x)).numpy(), z.numpy(), rtol=0, atol=1e-10)
  data = normal(batch_shape + (D,), seed=7)
  latent = bijector.inverse(fresh(data))
  np.testing.assert_allclose(bijector.forward(fresh(latent)).numpy(), data.numpy(), rtol=0,
                             atol=1e-10)


def test_flow_density_is_normalised_change_of_variables():
  made = random_made(seed=2)
  flow = tfd.TransformedDistribution(base(), flow_bijector("maf", made))
  x = normal((4, D), seed=8)
  maf = flow.bijector
  expected = base().log_prob(maf.inverse(fresh(x))) + maf.inverse_log_det_jacobian(
      fresh(x), event_ndims=1)
  np.testing.assert_allclose(flow.log_prob(fresh(x)).numpy(), expected.numpy(), rtol=1e-12)
  assert flow.sample(3, seed=1).shape == (3, D)


# 3. A new MADE is the identity.


@pytest.mark.parametrize("conditional_size", [None, 2])
def test_new_made_gives_the_identity_flow(conditional_size):
  made = MADE(D, hidden_units=(8,), conditional_size=conditional_size, dtype="float64")
  kwargs = {} if conditional_size is None else {"conditional_input": normal((3, 2), seed=1)}
  z = normal((3, D), seed=9)
  shift, log_scale = made(z, **kwargs)
  assert np.all(shift.numpy() == 0) and np.all(log_scale.numpy() == 0)
  for kind in ("maf", "iaf"):
    bijector = flow_bijector(kind, made)
    np.testing.assert_array_equal(bijector.forward(fresh(z), **kwargs).numpy(), z.numpy())
    np.testing.assert_array_equal(bijector.inverse(fresh(z), **kwargs).numpy(), z.numpy())
    assert np.all(bijector.forward_log_det_jacobian(fresh(z), event_ndims=1,
                                                    **kwargs).numpy() == 0)


# 4. Conditional MADE.


def test_conditional_input_changes_the_density_and_keeps_the_autoregressive_property():
  made = random_made(conditional_size=2, input_order="random", seed=4)
  flow = tfd.TransformedDistribution(base(), flow_bijector("maf", made))
  x = normal((4, D), seed=10)
  c1, c2 = normal((4, 2), seed=11), normal((4, 2), seed=12)
  log_prob1 = flow.log_prob(x, bijector_kwargs={"conditional_input": c1}).numpy()
  log_prob2 = flow.log_prob(x, bijector_kwargs={"conditional_input": c2}).numpy()
  assert log_prob1.shape == (4,)
  assert np.min(np.abs(log_prob1 - log_prob2)) > 1e-3

  for jacobian in output_jacobians(made, normal((8, D), seed=13),
                                   conditional_input=normal((8, 2), seed=14)):
    assert_autoregressive(jacobian, made.input_degrees)

  # A single conditional vector broadcasts over the batch; sampling and round trips work.
  samples = flow.sample(3, seed=2, bijector_kwargs={"conditional_input": c1[0]})
  assert samples.shape == (3, D)
  maf = flow.bijector
  z = normal((4, D), seed=15)
  x = maf.forward(fresh(z), conditional_input=c1)
  np.testing.assert_allclose(maf.inverse(fresh(x), conditional_input=c1).numpy(), z.numpy(),
                             atol=1e-10)
  fldj = maf.forward_log_det_jacobian(fresh(z), event_ndims=1, conditional_input=c1).numpy()
  autodiff = per_example_log_abs_det(lambda t: maf.forward(t, conditional_input=c1), z)
  assert_close_relative(fldj, autodiff, 1e-8)


def test_conditional_input_errors():
  conditional = random_made(conditional_size=2)
  maf = flow_bijector("maf", conditional)
  x = normal((2, D))
  with pytest.raises(ValueError, match="conditional_size=2.*conditional_input"):
    maf.inverse(x)
  with pytest.raises(ValueError, match="conditional_size"):
    conditional(x, conditional_input=normal((2, 3)))
  unconditional = random_made()
  with pytest.raises(ValueError, match="without conditional_size"):
    unconditional(x, conditional_input=normal((2, 2)))
  with pytest.raises(ValueError, match="unexpected keyword arguments"):
    unconditional(x, foo=normal((2, 2)))


# 5. tf.function and XLA.


@pytest.mark.parametrize("conditional_size", [None, 2])
def test_eager_function_and_xla_agree(conditional_size):
  made = random_made(conditional_size=conditional_size, input_order="random", seed=7)
  c = normal((2, 2), seed=16)
  kwargs = {} if conditional_size is None else {"conditional_input": c}
  z = normal((2, D), seed=17)

  def everything(z, x):
    results = []
    for kind in ("maf", "iaf"):
      bijector = flow_bijector(kind, made)
      results += [bijector.forward(z, **kwargs),
                  bijector.forward_log_det_jacobian(z, event_ndims=1, **kwargs),
                  bijector.inverse(x, **kwargs),
                  bijector.inverse_log_det_jacobian(x, event_ndims=1, **kwargs)]
    return results

  x = flow_bijector("maf", made).forward(fresh(z), **kwargs)
  eager = everything(fresh(z), fresh(x))
  for jit in (False, True):
    compiled = tf.function(everything, jit_compile=jit)(fresh(z), fresh(x))
    for a, b in zip(eager, compiled, strict=True):
      np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12)


def test_unknown_batch_shape_in_tf_function():
  made = random_made()
  fn = tf.function(lambda x: made(x),
                   input_signature=[tf.TensorSpec([None, None, D], tf.float64)])
  x = normal((2, 3, D), seed=18)
  for a, b in zip(fn(x), made(x), strict=True):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12)


# 6. Gradients.


def test_every_variable_gets_a_gradient_and_masked_weights_get_none():
  made = random_made(conditional_size=2, hidden_units=(16, 16), seed=8)
  flow = tfd.TransformedDistribution(base(), flow_bijector("maf", made))
  x, c = normal((16, D), seed=19), normal((16, 2), seed=20)
  with tf.GradientTape() as tape:
    loss = -tf.reduce_mean(flow.log_prob(x, bijector_kwargs={"conditional_input": c}))
  grads = tape.gradient(loss, made.trainable_variables)
  assert len(grads) == 9  # 2 x (kernel, bias, conditional kernel) + output's three.
  for variable, grad in zip(made.trainable_variables, grads, strict=True):
    assert grad is not None and np.any(grad.numpy() != 0), variable.path
  kernels = zip(made.trainable_variables[0::3], grads[0::3], made.masks, strict=True)
  for variable, grad, mask in kernels:
    assert "conditional" not in variable.path and variable.shape == mask.shape
    assert np.all(grad.numpy()[~mask] == 0), variable.path


def test_keras_model_tracks_and_trains_the_made():

  class Flow(keras.Model):

    def __init__(self):
      super().__init__()
      self.made = MADE(D, hidden_units=(8, 8), seed=0)

    def call(self, x):
      maf = tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=self.made)
      return -tfd.TransformedDistribution(base(np.float32), maf).log_prob(x)

  model = Flow()
  x = np.random.default_rng(0).standard_normal((64, D)).astype(np.float32) * 2 + 1
  model(x[:1])
  assert len(model.trainable_variables) == 6
  model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=lambda _, nll: nll)
  history = model.fit(x, np.zeros(64, np.float32), batch_size=32, epochs=2, verbose=0)
  assert np.all(np.isfinite(history.history["loss"]))
  assert np.any(model.made.output_kernel.numpy() != 0)


# 7. Saving, configuration, dtypes, errors.


def test_save_and_load_round_trip(tmp_path):
  made = MADE(D, hidden_units=(8, 8), activation="tanh", input_order="random",
              hidden_degrees="random", conditional_size=2, log_scale_bound=3.0, name="made")
  x_in, c_in = keras.Input((D,)), keras.Input((2,))
  shift, log_scale = made(x_in, conditional_input=c_in)
  model = keras.Model([x_in, c_in], [shift, log_scale])
  randomize(made, seed=9, stddev=0.5)
  path = tmp_path / "m.keras"
  model.save(path)
  loaded = keras.models.load_model(path, safe_mode=True)
  loaded_made = loaded.get_layer("made")
  assert isinstance(loaded_made, MADE)
  assert loaded_made.seed == made.seed is not None  # Drawn once, stored in the config.
  np.testing.assert_array_equal(loaded_made.input_degrees, made.input_degrees)
  for a, b in zip(loaded_made.masks, made.masks, strict=True):
    np.testing.assert_array_equal(a, b)
  x, c = normal((4, D), seed=21, dtype=np.float32), normal((4, 2), seed=22, dtype=np.float32)
  for a, b in zip(loaded([x, c]), model([x, c]), strict=True):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  assert np.max(np.abs(model([x, c])[1].numpy())) > 1e-2


def test_config_round_trip_with_explicit_order():
  made = MADE(D, hidden_units=[4], input_order=np.array([2, 1, 3, 5, 4]), log_scale_bound=2)
  config = made.get_config()
  assert config["input_order"] == [2, 1, 3, 5, 4] and config["seed"] is None
  clone = MADE.from_config(config)
  np.testing.assert_array_equal(clone.input_degrees, [2, 1, 3, 5, 4])
  assert clone.log_scale_bound == 2.0 and clone.hidden_units == (4,)


def test_log_scale_bound():
  bounded = random_made(log_scale_bound=0.5, stddev=1.0)
  unbounded = MADE.from_config({**bounded.get_config(), "log_scale_bound": None})
  unbounded.build((None, D))
  for a, b in zip(unbounded.variables, bounded.variables, strict=True):
    a.assign(b)
  x = normal((32, D), seed=23)
  shift, log_scale = bounded(x)
  raw_shift, raw = unbounded(x)
  np.testing.assert_array_equal(shift.numpy(), raw_shift.numpy())
  np.testing.assert_allclose(log_scale.numpy(), 0.5 * np.tanh(raw.numpy() / 0.5), rtol=1e-12)
  assert np.max(np.abs(raw.numpy())) > 1.0 and np.max(np.abs(log_scale.numpy())) <= 0.5


@pytest.mark.parametrize("dtype", ["float32", "float64", "mixed_bfloat16"])
def test_outputs_follow_the_compute_dtype(dtype):
  made = MADE(D, hidden_units=(4,), dtype=dtype)
  for shape in [(D,), (3, D), (2, 3, D)]:
    shift, log_scale = made(np.ones(shape, np.float32))
    assert shift.shape == log_scale.shape == shape
    assert shift.dtype == log_scale.dtype == made.compute_dtype


def test_event_size_one():
  made = MADE(1, hidden_units=(4,), conditional_size=1, dtype="float64")
  made.build((None, 1))
  randomize(made)
  maf = tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=made)
  z, c = normal((3, 1), seed=24), normal((3, 1), seed=25)
  x = maf.forward(fresh(z), conditional_input=c)
  np.testing.assert_allclose(maf.inverse(fresh(x), conditional_input=c).numpy(), z.numpy(),
                             atol=1e-12)


@pytest.mark.parametrize("kwargs, match", [
    ({"event_size": 0}, "event_size"),
    ({"event_size": 2.5}, "event_size"),
    ({"hidden_units": 64}, "hidden_units"),
    ({"hidden_units": (64, 0)}, "hidden_units"),
    ({"input_order": "up-to-down"}, "input_order.*up-to-down"),
    ({"input_order": [1, 2, 3]}, r"permutation of 1\.\.5"),
    ({"input_order": [0, 1, 2, 3, 4]}, "1-based"),
    ({"input_order": [1.0, 2, 3, 4, 5]}, "input_order"),
    ({"hidden_degrees": "uniform"}, "hidden_degrees.*uniform"),
    ({"conditional_size": 0}, "conditional_size"),
    ({"log_scale_bound": 0.0}, "log_scale_bound"),
    ({"log_scale_bound": "3"}, "log_scale_bound"),
    ({"seed": 1.5}, "seed"),
], ids=lambda v: str(v) if isinstance(v, dict) else "")
def test_bad_arguments(kwargs, match):
  kwargs = {"event_size": D, **kwargs}
  with pytest.raises(ValueError, match=match):
    MADE(**kwargs)


def test_bad_call_inputs():
  made = random_made()
  with pytest.raises(ValueError, match=r"last dimension of x \(4.*event_size \(5\)"):
    made(tf.zeros((2, 4), tf.float64))
  with pytest.raises(TypeError, match="floating-point"):
    made(tf.zeros((2, D), tf.int32))


def test_a_file_saved_by_version_0_1_0_loads_with_the_same_outputs():
  # Saved before MADE became a convenience over AutoregressiveNetwork (conditional, random
  # order and degrees, bounded log-scale, every variable randomised), with its inputs and
  # outputs: the configuration, the variable order and the output layout must still match.
  fixtures = pathlib.Path(__file__).parents[1] / "fixtures"
  loaded = keras.models.load_model(fixtures / "made_0.1.0.keras", safe_mode=True)
  assert isinstance(loaded.get_layer("made"), MADE)
  with np.load(fixtures / "made_0.1.0_io.npz") as io:
    shift, log_scale = loaded([io["x"], io["c"]])
    np.testing.assert_allclose(shift.numpy(), io["shift"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(log_scale.numpy(), io["log_scale"], rtol=1e-6, atol=1e-6)
    assert np.max(np.abs(io["shift"])) > 0.1 and np.max(np.abs(io["log_scale"])) > 0.1
