"""A scanned `Glow` (each level's steps one loop over stacked variables) is the unrolled one.

The two forms of the same weights give the same densities, samples, log-determinants and
gradients (float64), train alike (ActNorm's initialisation included) in every memory mode, and
the scanned training step is traced once per level, however many steps the levels have.
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfp_realnvp
from tfp_realnvp import data
from tfp_realnvp import training

from helpers import Interrupted, randomize, stop_before_finish

SHAPE = (8, 8, 1)


def glow(scan, num_steps=2, dtype="float64", **kwargs):
  keras.utils.set_random_seed(0)
  return tfp_realnvp.Glow(SHAPE, num_levels=2, num_steps=num_steps, num_filters=4, scan=scan,
                          dtype=dtype, **kwargs)


def step_variables(flow):
  """`[[variables of step k] for k]` per level of an unrolled Glow, in the template's order."""
  per_step = [[*a.weights, *c.weights, *n.weights]
              for a, c, n in zip(flow.actnorms, flow.convs, flow.conditioners, strict=True)]
  steps = flow.num_steps
  return [per_step[level * steps:(level + 1) * steps] for level in range(flow.num_levels)]


def same_weights(**kwargs):
  """An unrolled Glow randomised, and a scanned one given the same values."""
  flat = randomize(glow(scan=False, **kwargs), seed=3, stddev=0.05)
  scanned = glow(scan=True, **kwargs)
  for stacked, steps in zip(scanned.steps, step_variables(flat), strict=True):
    for index, variable in enumerate(stacked.stacked):
      variable.assign(np.stack([step[index].numpy() for step in steps]))
  for mine, theirs in zip(scanned.priors, flat.priors, strict=True):
    mine.set_weights(theirs.get_weights())
  return flat, scanned


def test_the_same_seed_gives_the_same_initial_weights():
  flat, scanned = glow(scan=False), glow(scan=True)
  for stacked, steps in zip(scanned.steps, step_variables(flat), strict=True):
    for index, variable in enumerate(stacked.stacked):
      np.testing.assert_array_equal(variable.numpy(),
                                    np.stack([step[index].numpy() for step in steps]))
  assert len(scanned.trainable_variables) < len(flat.trainable_variables)


@pytest.mark.parametrize("condition", [None, "labels"])
def test_densities_samples_log_dets_and_gradients_are_the_unrolled_flows(condition):
  kwargs = {"num_classes": 3} if condition else {}
  flat, scanned = same_weights(**kwargs)
  labels = np.array([0, 2, 1, 1]) if condition else None
  x = np.random.default_rng(1).uniform(0.02, 0.98, (4,) + SHAPE)
  models = [tfp_realnvp.FlowModel(flow) for flow in (flat, scanned)]
  log_probs = [m.log_prob(x, labels).numpy() for m in models]
  np.testing.assert_allclose(log_probs[1], log_probs[0], rtol=1e-10, atol=1e-10)
  samples = [m.sample(4, condition=labels, seed=5).numpy() for m in models]
  np.testing.assert_allclose(samples[1], samples[0], rtol=1e-10, atol=1e-10)
  z = tf.constant(np.random.default_rng(2).normal(size=(4,) + SHAPE))
  kwargs_of = [flow.bijector_kwargs(labels) for flow in (flat, scanned)]
  for method in ("forward_log_det_jacobian", "inverse_log_det_jacobian"):
    values = [getattr(f.bijector, method)(tf.identity(z * 0.5), 3, **k).numpy()
              for f, k in zip((flat, scanned), kwargs_of, strict=True)]
    np.testing.assert_allclose(values[1], values[0], rtol=1e-10, atol=1e-10)
  with tf.GradientTape(persistent=True) as tape:
    losses = [-tf.reduce_mean(m.log_prob(x, labels)) for m in models]
  for stacked, steps in zip(scanned.steps, step_variables(flat), strict=True):
    for index, variable in enumerate(stacked.stacked):
      if not variable.trainable:
        continue
      mine = tf.convert_to_tensor(tape.gradient(losses[1], variable)).numpy()
      for k, step in enumerate(steps):
        np.testing.assert_allclose(mine[k], tape.gradient(losses[0], step[index]).numpy(),
                                   rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("remat", ["recompute", "reversible"])
def test_the_memory_modes_give_the_standard_gradients(remat):
  _, scanned = same_weights()
  x = np.random.default_rng(1).uniform(0.02, 0.98, (4,) + SHAPE)
  gradients = []
  for mode in (None, remat):
    model = tfp_realnvp.FlowModel(scanned, remat=mode)
    with tf.GradientTape() as tape:
      loss = -tf.reduce_mean(model.log_prob(x))
    gradients.append([tf.convert_to_tensor(g).numpy()
                      for g in tape.gradient(loss, scanned.trainable_variables)])
  for standard, saving in zip(*gradients, strict=True):
    np.testing.assert_allclose(saving, standard, rtol=1e-8, atol=1e-10)


def _fit(scan, remat=None, jit_compile=False, dtype="float32"):
  flow = glow(scan, dtype=dtype)  # Sets the global seed, which the shuffled order mixes in.
  images = next(iter(data.load_images("digits", batch_size=96, seed=0))).numpy()
  model = tfp_realnvp.FlowModel(flow, remat=remat)
  model.compile(optimizer=tfp_realnvp.FusedAdam(1e-3), jit_compile=jit_compile)
  history = model.fit(images, batch_size=32, epochs=2, shuffle=False, verbose=0)
  return history.history["loss"], model


def test_training_is_the_unrolled_flows_actnorm_initialisation_included():
  flat_losses, _ = _fit(scan=False)
  losses, model = _fit(scan=True)
  np.testing.assert_allclose(losses, flat_losses, rtol=1e-5)
  flags = [v.numpy() for v in model.flow.variables if v.path.endswith("initialized")]
  assert flags and all(np.all(flag) for flag in flags)


@pytest.mark.slow  # About 40 s: XLA compiles the training step of both memory modes.
@pytest.mark.parametrize("remat", [None, "reversible"])
def test_training_compiles_with_xla(remat):
  # In float64: in float32, XLA's other order of summation moves the smallest gradients, and
  # Adam's first updates (about the learning rate times their sign) differ where they do.
  losses, _ = _fit(scan=True, remat=remat, dtype="float64")
  xla_losses, _ = _fit(scan=True, remat=remat, jit_compile=True, dtype="float64")
  np.testing.assert_allclose(xla_losses, losses, rtol=1e-8)


def _training_op_count(scan, num_steps):
  model = tfp_realnvp.FlowModel(glow(scan, num_steps=num_steps, dtype="float32"))
  model.compile(optimizer=tfp_realnvp.FusedAdam(1e-3))
  model.optimizer.build(model.trainable_variables)
  spec = tf.TensorSpec((8,) + SHAPE, tf.float32)
  return len(tf.function(model.train_step).get_concrete_function(spec).graph.get_operations())


def test_the_training_graph_does_not_grow_with_depth():
  flat, deep = _training_op_count(True, 2), _training_op_count(True, 8)
  assert deep <= 1.03 * flat, (flat, deep)
  # The unrolled flow's does, which is what the scan removes.
  assert _training_op_count(False, 8) > 2 * _training_op_count(False, 2)


def test_a_glow_saved_without_scan_loads_unrolled_and_a_scanned_one_scanned(tmp_path):
  for scan in (False, True):
    model = tfp_realnvp.FlowModel(glow(scan, dtype="float32"))
    model.save(tmp_path / f"{scan}.keras")
    loaded = keras.models.load_model(tmp_path / f"{scan}.keras")
    assert loaded.flow.scan is scan
    x = next(iter(data.load_images("digits", batch_size=4, seed=1)))
    np.testing.assert_allclose(loaded.log_prob(x), model.log_prob(x), rtol=1e-6)
  config = tfp_realnvp.Glow(SHAPE, num_levels=1, num_steps=1, num_filters=4).get_config()
  del config["scan"]  # A config written before scanned levels existed.
  assert tfp_realnvp.Glow.from_config(config).scan is False


def test_a_glow_run_begun_before_scanned_levels_resumes_with_its_own_layout(tmp_path):
  """An interrupted run whose record has no `scan` (its flow was unrolled) resumes unrolled;
  asking for the other layout is refused as a different flow."""
  output = tmp_path / "run"
  run = dict(data="digits", flow="glow", num_levels=1, num_steps=2, num_filters=4,
             steps_per_epoch=2, sample_count=4, verbose=0)
  with pytest.MonkeyPatch.context() as patch:
    stop_before_finish(patch)
    with pytest.raises(Interrupted):
      training.train(output_dir=output, epochs=1, scan=False, **run)
  recorded = json.loads((output / "backup" / "training_metadata.json").read_text())
  assert "scan" not in recorded["config"]["flow"]  # The record of a run from before.
  with pytest.raises(training.RunError, match="different flow"):
    training.train(output_dir=output, epochs=2, scan=True, **run)
  result = training.train(output_dir=output, epochs=2, **run)
  assert result.resumed_at == 1 and result.model.flow.scan is False
  assert [r["epoch"] for r in result.metrics["history"]] == [1, 2]
  fresh = training.train(output_dir=tmp_path / "fresh", epochs=1, **run)
  assert fresh.model.flow.scan is True and fresh.metrics["config"]["flow"]["scan"] is True
