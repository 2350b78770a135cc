"""`RealNVP`: the multi-scale flow layer, its place in TFP and Keras, and its spline couplings.

The TFP contract of its bijector is checked by the conformance suite
(tests/bijectors/test_conformance.py); here: a new flow is the identity, the density of its
samples, float32 and float64, the variables it owns, its composition with TFP's bijectors, its
errors, and saving a spline flow.
"""

import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import tfp_realnvp
from tfp_realnvp import data

from helpers import fresh, normal, randomize

tfb = tfp.bijectors
tfd = tfp.distributions

BINS = 6


def small_flow(event_shape=(8, 8, 1), num_scales=2, dtype="float32", seed=0, **kwargs):
  flow = tfp_realnvp.RealNVP(event_shape, num_scales=num_scales, num_filters=8, num_blocks=1,
                             dtype=dtype, **kwargs)
  return flow if seed is None else randomize(flow, seed=seed)


def base(event_shape, dtype=tf.float32):
  return tfd.Sample(tfd.Normal(tf.constant(0., dtype), 1.), list(event_shape))


def test_new_flow_is_the_identity():
  flow = small_flow(seed=None)
  x = tf.random.stateless_normal([4, 8, 8, 1], seed=[1, 2])
  dist = tfd.TransformedDistribution(base((8, 8, 1)), flow.bijector)
  np.testing.assert_allclose(dist.log_prob(x).numpy(), base((8, 8, 1)).log_prob(x).numpy(),
                             rtol=1e-6)
  np.testing.assert_allclose(flow(fresh(x)).numpy(), x.numpy(), atol=1e-6)


@pytest.mark.parametrize("event_shape,num_scales", [((8, 8, 1), 2), ((16, 16, 3), 3)])
def test_sample_then_log_prob_is_base_density_plus_log_det(event_shape, num_scales):
  flow = small_flow(event_shape, num_scales, dtype="float64")
  dist = tfd.TransformedDistribution(base(event_shape, tf.float64), flow.bijector)
  x = dist.sample(5, seed=3)
  assert x.shape == (5,) + event_shape
  z = flow.bijector.inverse(fresh(x))
  expected = (base(event_shape, tf.float64).log_prob(z)
              + flow.bijector.inverse_log_det_jacobian(fresh(x), event_ndims=3))
  np.testing.assert_allclose(dist.log_prob(fresh(x)).numpy(), expected.numpy(), rtol=1e-10)
  assert not np.allclose(dist.log_prob(fresh(x)).numpy(),
                         base(event_shape, tf.float64).log_prob(x).numpy())


def test_float32_full_flow_round_trip_within_1e_4():
  flow = small_flow((16, 16, 3), 3)
  z = tf.random.stateless_normal([4, 16, 16, 3], seed=[3, 4])
  x = flow.bijector.forward(z)
  assert np.max(np.abs(flow.bijector.inverse(fresh(x)).numpy() - z.numpy())) <= 1e-4
  data = tf.random.stateless_normal([4, 16, 16, 3], seed=[5, 6])
  back = flow.bijector.forward(fresh(flow.bijector.inverse(data)))
  assert np.max(np.abs(back.numpy() - data.numpy())) <= 1e-4


def test_float64_through_keras_floatx():
  # Keras fixes its global dtype policy on first use, so set_floatx must come before any layer
  # is built: run it in a fresh process, as a user script would.
  code = """
import keras
keras.config.set_floatx("float64")
import tensorflow as tf
import tfp_realnvp
flow = tfp_realnvp.RealNVP((8, 8, 1), num_scales=2, num_filters=4, num_blocks=1)
assert {v.dtype for v in flow.variables} == {"float64"}, {v.dtype for v in flow.variables}
x = tf.random.stateless_normal([2, 8, 8, 1], seed=[0, 1], dtype=tf.float64)
assert flow.bijector.inverse(x).dtype == tf.float64
assert flow.bijector.inverse_log_det_jacobian(x, event_ndims=3).dtype == tf.float64
print("float64 ok")
"""
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, check=False)
  assert "float64 ok" in result.stdout, result.stderr[-2000:]


def test_every_variable_is_owned_by_the_layer_and_gets_a_gradient():
  flow = small_flow()
  dist = tfd.TransformedDistribution(base((8, 8, 1)), flow.bijector)
  x = tf.random.stateless_normal([4, 8, 8, 1], seed=[7, 8])
  with tf.GradientTape() as tape:
    loss = -tf.reduce_mean(dist.log_prob(x))
  used = {id(v) for v in tape.watched_variables()}
  owned = {id(v.value) for v in flow.trainable_variables}  # The tf.Variable behind each.
  assert used == owned, "the bijector uses variables the layer does not own, or vice versa"
  # 10 couplings of 2 scales, each: 4 batch norms (2 vars), 4 convs (3 vars), 1 log-scale factor.
  assert len(flow.conditioners) == 10
  assert len(flow.trainable_variables) == 10 * (4 * 2 + 4 * 3 + 1)
  grads = tape.gradient(loss, flow.trainable_variables)
  for variable, grad in zip(flow.trainable_variables, grads, strict=True):
    assert grad is not None, variable.path
    assert np.any(grad.numpy() != 0), f"zero gradient for {variable.path}"


def test_composes_with_invert_reshape_and_masked_autoregressive_flow():
  event_shape = (8, 8, 1)
  flow = small_flow(event_shape, seed=1)

  class MaskedDense(keras.layers.Layer):
    """A one-layer autoregressive conditioner: output i sees inputs < i only."""

    def __init__(self, size, **kwargs):
      super().__init__(**kwargs)
      self.mask = np.tril(np.ones((size, size), np.float32), -1).T  # [in, out], in < out
      self.shift = self.add_weight(shape=(size, size), initializer="random_normal")
      self.log_scale = self.add_weight(shape=(size, size), initializer="random_normal")

    def call(self, x):
      return (x @ (self.shift * self.mask),
              0.1 * keras.ops.tanh(x @ (self.log_scale * self.mask)))

  size = int(np.prod(event_shape))
  maf = tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=MaskedDense(size))
  iaf = tfb.Invert(tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=MaskedDense(size)))
  chain = tfb.Chain([tfb.Invert(tfb.Invert(flow.bijector)),
                     tfb.Reshape(event_shape_out=event_shape, event_shape_in=[size]),
                     maf, iaf])
  dist = tfd.TransformedDistribution(tfd.Sample(tfd.Normal(0., 1.), [size]), chain)
  x = dist.sample(3, seed=5)
  assert x.shape == (3,) + event_shape
  log_prob = dist.log_prob(fresh(x))
  assert log_prob.shape == (3,) and np.all(np.isfinite(log_prob.numpy()))
  # The chain's density is the change of variables through each part.
  z = chain.inverse(fresh(x))
  expected = (tfd.Sample(tfd.Normal(0., 1.), [size]).log_prob(z)
              + chain.inverse_log_det_jacobian(fresh(x), event_ndims=3))
  np.testing.assert_allclose(log_prob.numpy(), expected.numpy(), rtol=1e-5)


def test_wrong_event_shape_and_bad_arguments_are_named():
  flow = small_flow(seed=None)
  with pytest.raises(ValueError, match=r"expected events of shape \(8, 8, 1\)"):
    flow.bijector.inverse(tf.zeros([2, 16, 16, 1]))
  with pytest.raises(ValueError, match="num_scales"):
    tfp_realnvp.RealNVP((8, 8, 1), num_scales=0)


# Spline couplings (coupling="spline").


def test_a_new_spline_flow_is_the_identity():
  real_nvp = tfp_realnvp.RealNVP((8, 8, 1), num_scales=2, num_filters=4, num_blocks=1,
                                 coupling="spline", num_bins=BINS, dtype="float64")
  x = 3.0 * normal((3, 8, 8, 1), seed=3)
  np.testing.assert_allclose(real_nvp.bijector.inverse(x).numpy(), x.numpy(), rtol=0, atol=1e-12)
  np.testing.assert_allclose(
      real_nvp.bijector.inverse_log_det_jacobian(fresh(x), event_ndims=3).numpy(), 0.0,
      atol=1e-12)


@pytest.mark.parametrize("num_bins", [1, 0, 2.5, True, "8"])
def test_bad_num_bins_is_named(num_bins):
  with pytest.raises(ValueError, match="num_bins"):
    tfp_realnvp.RealNVP((8, 8, 1), num_filters=4, num_blocks=1, coupling="spline",
                        num_bins=num_bins)


def test_flow_options_are_checked():
  with pytest.raises(ValueError, match=r"Unknown coupling transform 'quadratic'; the registered "
                     r"ones are .*'affine', .*'spline'"):
    tfp_realnvp.RealNVP((8, 8, 1), num_filters=4, num_blocks=1, coupling="quadratic")
  with pytest.raises(ValueError, match="additive=True .* coupling='spline'"):
    tfp_realnvp.RealNVP((8, 8, 1), num_filters=4, num_blocks=1, coupling="spline",
                        additive=True)


@pytest.mark.slow  # About 55 s, most of it building and tracing the spline flow.
def test_keras_file_round_trip_of_a_trained_spline_flow(tmp_path):
  keras.utils.set_random_seed(0)
  flow = tfp_realnvp.RealNVP((8, 8, 1), num_scales=2, num_filters=8, num_blocks=1,
                             batch_norm=True, coupling="spline", num_bins=BINS,
                             spline_bound=2.5)
  model = tfp_realnvp.FlowModel(flow)
  model.compile(optimizer=keras.optimizers.Adam(1e-3))
  images = data.load_images("digits", split="train", batch_size=64, seed=0, shuffle=True)
  # A few steps move the weights and the batch-norm statistics away from their initial values.
  assert np.all(np.isfinite(model.fit(images, epochs=1, steps_per_epoch=3,
                                      verbose=0).history["loss"]))
  model.save(tmp_path / "spline.keras")
  loaded = keras.models.load_model(tmp_path / "spline.keras", safe_mode=True)
  assert loaded.flow.get_config() == flow.get_config()
  assert (loaded.flow.coupling, loaded.flow.num_bins, loaded.flow.spline_bound) == (
      "spline", BINS, 2.5)
  x = next(iter(data.load_images("digits", split="test", batch_size=16, seed=1)))
  np.testing.assert_allclose(loaded.log_prob(x).numpy(), model.log_prob(x).numpy(), rtol=1e-5)
