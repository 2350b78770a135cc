"""`Glow`: the flow layer, in TFP and Keras.

The TFP contract of its bijector is checked by the conformance suite
(tests/bijectors/test_conformance.py), its networks and split prior in tests/networks and
tests/bijectors; here: shape errors, configs, training with `FlowModel` (ActNorm's
data-dependent initialisation included), saving, export, spline couplings, mixed precision and
MirroredStrategy.
"""

import json
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfp_realnvp
from tfp_realnvp import data
from tfp_realnvp import bijectors as rb

from helpers import fresh, normal, reload_calls, reload_in_fresh_process

SCRIPT = pathlib.Path(__file__).parents[1] / "integration" / "scripts" / "distributed_training.py"
BINS = 6


def small_glow(**kwargs):
  keras.utils.set_random_seed(0)
  return tfp_realnvp.Glow((8, 8, 1), num_levels=2, num_steps=2, num_filters=16, **kwargs)


def initialized_flags(flow):
  """Whether each ActNorm of `flow` (its steps' and its networks') is initialised.

  One flag per ActNorm: the variables of the unrolled layers, or the slices of a scanned
  level's stacked ones.
  """
  return [bool(flag) for variable in flow.variables if variable.path.endswith("initialized")
          for flag in np.ravel(variable.numpy())]


def digits(batch_size=64, seed=0, split="train"):
  return data.load_images("digits", split=split, batch_size=batch_size, seed=seed)


def test_shapes_that_the_levels_cannot_squeeze_are_refused():
  with pytest.raises(ValueError, match=r"supports at most 2 scale\(s\): every scale squeezes"):
    tfp_realnvp.Glow((12, 12, 1), num_levels=3, num_steps=1, num_filters=4)
  with pytest.raises(ValueError, match="Unknown coupling network 'dense'"):
    tfp_realnvp.Glow((8, 8, 1), coupling_network="dense")
  with pytest.raises(ValueError, match="num_classes=3"):
    tfp_realnvp.Glow((8, 8, 1), num_steps=1, num_classes=3, conditional_size=4)


def test_flow_maps_images_to_latents_of_the_same_shape():
  flow = tfp_realnvp.Glow((16, 8, 3), num_levels=3, num_steps=1, num_filters=4)
  assert len(flow.priors) == 2 and len(flow.steps) == 3 and not flow.actnorms
  x = tf.random.stateless_normal([2, 16, 8, 3], seed=[1, 1])
  z = flow(x)
  assert z.shape == x.shape
  np.testing.assert_allclose(flow.bijector.forward(fresh(z)).numpy(), x.numpy(), atol=1e-5)


@pytest.mark.parametrize("kwargs", [{}, {"num_classes": 3}, {"conditional_size": 2},
                                    {"coupling_network": "resnet"},
                                    {"coupling": "spline", "num_bins": 4, "spline_bound": 2.0}],
                         ids=str)
def test_config_round_trip(kwargs):
  flow = tfp_realnvp.Glow((8, 8, 1), num_levels=2, num_steps=1, num_filters=4, **kwargs)
  config = flow.get_config()
  clone = tfp_realnvp.Glow.from_config(config)
  assert clone.get_config() == config
  assert len(clone.weights) == len(flow.weights)
  assert clone.condition_spec == flow.condition_spec


@pytest.fixture(scope="module")
def trained():
  """A small Glow trained for a few steps on the digits, and its losses and ActNorm flags."""
  model = tfp_realnvp.FlowModel(small_glow())
  before = initialized_flags(model.flow)
  model.compile(optimizer=keras.optimizers.Adam(1e-3))
  model.fit(digits(seed=1), epochs=1, steps_per_epoch=1, verbose=0)
  after_one = initialized_flags(model.flow)
  history = model.fit(digits(seed=2), epochs=3, steps_per_epoch=8, verbose=0)
  return model, before, after_one, history.history["loss"]


def test_fit_initialises_actnorm_on_the_first_step_then_the_loss_falls(trained):
  model, before, after_one, losses = trained
  assert len(before) == 2 * 2 * 3  # Per step: the flow's own and two in its coupling network.
  assert not any(before)
  assert all(after_one)
  assert np.all(np.isfinite(losses)) and losses[-1] < losses[0] - 0.1, losses
  result = model.evaluate(digits(split="test"), verbose=0, return_dict=True)
  assert 0.0 < result["bits_per_dim"] < 8.0
  assert np.all(np.isfinite(model.sample(4, seed=1).numpy()))


def test_keras_file_reproduces_log_prob(trained, tmp_path):
  model = trained[0]
  x = next(iter(digits(batch_size=8, seed=3)))
  model.save(tmp_path / "glow.keras")
  loaded = keras.models.load_model(tmp_path / "glow.keras", safe_mode=True)
  assert isinstance(loaded.flow, tfp_realnvp.Glow)
  np.testing.assert_allclose(loaded.log_prob(x).numpy(), model.log_prob(x).numpy(), rtol=1e-5)
  assert all(initialized_flags(loaded.flow)) and loaded.flow.scan


def test_export_reloads_without_this_package_or_tfp(trained, tmp_path):
  model = trained[0]
  exported = tfp_realnvp.export_saved_model(model, tmp_path / "glow")
  x = next(iter(digits(batch_size=4, seed=4))).numpy()
  served = reload_in_fresh_process(exported, reload_calls(x))
  assert served["modules"] == []
  np.testing.assert_allclose(served["log_prob"], model.log_prob(x).numpy(), rtol=1e-5)
  np.testing.assert_allclose(served["round_trip"], x, atol=1e-4)
  np.testing.assert_allclose(served["sample"], model.sample(3, temperature=0.8, seed=7).numpy(),
                             atol=1e-5)


def test_conditional_glow_trains_on_labels():
  keras.utils.set_random_seed(0)
  flow = tfp_realnvp.Glow((8, 8, 1), num_levels=2, num_steps=1, num_filters=8, num_classes=10)
  model = tfp_realnvp.FlowModel(flow)
  model.compile(optimizer=keras.optimizers.Adam(1e-3))
  dataset = data.load_images("digits", batch_size=64, seed=0, with_labels=True)
  history = model.fit(dataset, epochs=1, steps_per_epoch=3, verbose=0)
  assert np.all(np.isfinite(history.history["loss"]))
  x, labels = next(iter(dataset))
  mismatched = (labels + 1) % 10
  assert not np.allclose(model.log_prob(x, labels).numpy(), model.log_prob(x, mismatched).numpy())


def test_mixed_bfloat16_gives_float32_densities():
  keras.utils.set_random_seed(0)
  model = tfp_realnvp.FlowModel(tfp_realnvp.Glow((8, 8, 1), num_levels=2, num_steps=1,
                                                 num_filters=8, dtype="mixed_bfloat16"))
  assert model.flow.steps[0].template.network.compute_dtype == "bfloat16"
  assert {v.dtype for v in model.trainable_variables} == {"float32"}
  model.compile(optimizer=keras.optimizers.Adam(1e-3))
  history = model.fit(digits(seed=1), epochs=1, steps_per_epoch=3, verbose=0)
  assert np.all(np.isfinite(history.history["loss"]))
  log_prob = model.log_prob(next(iter(digits(batch_size=8, seed=2))))
  assert log_prob.dtype == "float32" and np.all(np.isfinite(log_prob.numpy()))


def test_mirrored_strategy_matches_one_device_including_actnorm_initialisation(tmp_path):
  out = tmp_path / "mirrored.json"
  result = subprocess.run([sys.executable, str(SCRIPT), "mirrored", str(out), "glow"],
                          capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(out.read_text())
  assert report["replicas"] == 2 and report["initialized"] == [True, True]
  assert report["mirrored_loss"] == pytest.approx(report["single_loss"], rel=1e-5)
  # The update of every variable (ActNorm's initialisation from the global batch included)
  # relative to the size of the whole update.
  errors = np.array(report["gradient_errors"])
  assert report["gradient_norm"] > 0
  assert np.sqrt(np.sum(errors ** 2)) <= 1e-5 * report["gradient_norm"]


# Spline couplings (coupling="spline").


@pytest.mark.parametrize("coupling_network", ["glow", "resnet"])
def test_new_networks_start_spline_couplings_at_the_identity(coupling_network):
  flow = tfp_realnvp.Glow((8, 8, 1), num_levels=2, num_steps=1, num_filters=8,
                          coupling_network=coupling_network, coupling="spline", num_bins=BINS,
                          dtype="float64")
  # The first level's coupling sees the first half of the squeezed [4, 4, 4] channels.
  for network in flow.coupling_networks[:1]:
    raw = network(normal((2, 4, 4, 2), seed=2))
    assert raw.shape == (2, 4, 4, 2, rb.spline_params_per_unit(BINS))
    np.testing.assert_array_equal(raw.numpy(), 0.0)


@pytest.mark.parametrize("bound", [0.0, -1.0, float("inf"), float("nan"), "3", 1e-4])
def test_bad_bound_is_named(bound):
  with pytest.raises(ValueError, match="bound"):
    tfp_realnvp.Glow((8, 8, 1), num_levels=1, num_steps=1, num_filters=4, coupling="spline",
                     spline_bound=bound)
