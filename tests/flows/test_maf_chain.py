"""A MAF-chained model: a multi-scale Real NVP whose latent is modelled by a MAF prior.

The flow is the one of `examples/maf_prior.py` on 8x8x1 images:

```none
z [64] --MAF--> u [64] --Reshape--> u [8, 8, 1] --Real NVP--> y [8, 8, 1] --sigmoid--> x
```

so the base (and the latent `z` of `forward` / `inverse`) has shape `[64]` while the data has
shape `[8, 8, 1]`. Every variable is randomised so that neither part is the identity, and the
tests check that a `.keras` file and a SavedModel reproduce that model, not a new one.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import tfp_realnvp
from tfp_realnvp import data

from helpers import normal, randomize, reload_calls, reload_in_fresh_process

tfb = tfp.bijectors

IMAGE_SHAPE = (8, 8, 1)
EVENT_SIZE = 64


@keras.saving.register_keras_serializable(package="test_maf_chain")
class RealNVPWithMAFPrior(tfp_realnvp.FlowLayer):
  """`Chain([realnvp.bijector, Reshape([8, 8, 1], [64]), MAF(made)])`, base vectors `[64]`."""

  def __init__(self, num_filters=4, made_hidden_units=(16,), **kwargs):
    super().__init__(event_shape=(EVENT_SIZE,), **kwargs)
    self.num_filters = int(num_filters)
    self.made_hidden_units = tuple(int(u) for u in made_hidden_units)
    self.realnvp = tfp_realnvp.RealNVP(IMAGE_SHAPE, num_scales=2, num_filters=self.num_filters,
                                       num_blocks=1, batch_norm=True, name="realnvp")
    self.made = tfp_realnvp.networks.MADE(EVENT_SIZE, hidden_units=self.made_hidden_units,
                                          input_order="right-to-left", name="made")
    self.made.build((None, EVENT_SIZE))
    self._set_bijector(tfb.Chain([
        self.realnvp.bijector,
        tfb.Reshape(event_shape_out=list(IMAGE_SHAPE), event_shape_in=[EVENT_SIZE]),
        tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=self.made, name="maf")]))

  def call(self, x):
    return self._bijector.inverse(x)

  def get_config(self):
    config = super().get_config()
    config.update(num_filters=self.num_filters, made_hidden_units=list(self.made_hidden_units))
    return config


def build_model(seed=None):
  """A MAF-chained `FlowModel`; with a `seed`, every variable is randomised from it."""
  keras.utils.set_random_seed(0)
  flow = RealNVPWithMAFPrior(name="realnvp_maf_prior")
  if seed is not None:
    randomize(flow, seed=seed, stddev=0.1)
  return tfp_realnvp.FlowModel(flow, event_shape=(EVENT_SIZE,))


@pytest.fixture(scope="module")
def model():
  return build_model(seed=3)


@pytest.fixture(scope="module")
def images():
  return next(iter(data.load_images("digits", batch_size=6, seed=1))).numpy()


def variable_values(m):
  return {v.path: v.numpy() for v in m.variables}


def test_the_model_is_a_chained_non_identity_flow(model, images):
  assert model.event_shape == (EVENT_SIZE,)
  assert model.distribution.event_shape == IMAGE_SHAPE
  owned = {id(v) for v in model.trainable_variables}
  parts = (model.flow.realnvp.trainable_variables, model.flow.made.trainable_variables)
  assert all(parts) and all(id(v) in owned for part in parts for v in part)
  # Far from a new model (the identity flow up to the logit), so the checks below can fail.
  fresh_log_prob = build_model().log_prob(images).numpy()
  assert np.min(np.abs(model.log_prob(images).numpy() - fresh_log_prob)) > 1.0


def test_keras_file_round_trip(model, images, tmp_path):
  path = tmp_path / "maf_chain.keras"
  model.save(path)
  restored = keras.models.load_model(path)  # safe_mode=True: only registered classes.
  assert isinstance(restored, tfp_realnvp.FlowModel)
  assert isinstance(restored.flow, RealNVPWithMAFPrior)
  assert restored.event_shape == (EVENT_SIZE,)
  assert restored.distribution.event_shape == IMAGE_SHAPE
  assert restored.flow.get_config() == model.flow.get_config()
  # Every variable (batch-norm moving statistics included) comes back with its value.
  expected, actual = variable_values(model), variable_values(restored)
  assert sorted(actual) == sorted(expected)
  for name, value in expected.items():
    np.testing.assert_array_equal(actual[name], value, err_msg=name)
  np.testing.assert_allclose(restored.log_prob(images).numpy(), model.log_prob(images).numpy(),
                             rtol=1e-6)
  np.testing.assert_allclose(restored.sample(3, temperature=0.8, seed=5).numpy(),
                             model.sample(3, temperature=0.8, seed=5).numpy(), atol=1e-6)


@pytest.mark.slow  # Export and a fresh serving process: 25 s.
def test_export_signatures_have_the_data_and_latent_shapes(model, images, tmp_path):
  path = tfp_realnvp.export_saved_model(model, tmp_path / "maf_chain")
  calls = reload_calls(images)
  latents = normal([2, EVENT_SIZE], seed=1, dtype=np.float32)
  calls["forward_of_normal"] = ("forward", {"z": latents})
  served = reload_in_fresh_process(path, calls)
  assert served["modules"] == []  # Served by TensorFlow alone.

  # x is the data [None, 8, 8, 1] (not the base's [None, 64]); z is the base's [None, 64].
  data_spec = [[None, *IMAGE_SHAPE], "float32"]
  latent_spec = [[None, EVENT_SIZE], "float32"]
  specs = served["specs"]
  assert specs["log_prob"] == {"x": data_spec}
  assert specs["bits_per_dim"] == {"x": data_spec}
  assert specs["inverse"] == {"x": data_spec}
  assert specs["forward"] == {"z": latent_spec}
  assert sorted(specs["sample"]) == ["count", "seed", "temperature"]
  assert served["forward_of_normal"].shape == (2, *IMAGE_SHAPE)

  expected = model.log_prob(images).numpy()
  np.testing.assert_allclose(served["log_prob"], expected, rtol=1e-5)
  np.testing.assert_allclose(served["default"], expected, rtol=1e-5)
  np.testing.assert_allclose(served["bits_per_dim"], model.bits_per_dim(images).numpy(),
                             rtol=1e-5)
  z = model.distribution.bijector.inverse(tf.identity(images)).numpy()
  assert z.shape == (len(images), EVENT_SIZE)
  np.testing.assert_allclose(served["z"], z, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(served["round_trip"], images, atol=1e-4)
  # Seeded samples: repeatable, and the images of model.sample with that seed.
  np.testing.assert_array_equal(served["sample"], served["sample_again"])
  samples = model.sample(3, temperature=0.8, seed=7).numpy()
  assert samples.shape == (3, *IMAGE_SHAPE)
  np.testing.assert_allclose(served["sample"], samples, atol=1e-5)
