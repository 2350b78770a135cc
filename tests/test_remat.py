"""`FlowModel(remat=...)`: the recompute and reversible modes give the standard gradients.

Gradients are compared per variable, relative to the size of that variable's standard gradient,
with a floor: the biases of the convolutions just before a batch normalisation have a
gradient that is exactly 0 in theory and rounding noise in practice (~1e-17 of the largest
gradient in float64, ~1e-8 in float32), so a relative error on them measures rounding only.
The floor is 1e-6 of the model's largest gradient in float64, 1e-3 in float32.
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
from tfp_realnvp import _keras_internals
from tfp_realnvp import presets
from tfp_realnvp import remat

from helpers import randomize, uniform

SCRIPT = pathlib.Path(__file__).parent / "integration" / "scripts" / "distributed_training.py"
MODES = (None,) + remat.MODES


def small_real_nvp(**kwargs):
  keras.utils.set_random_seed(0)
  flow = tfp_realnvp.RealNVP((8, 8, 1), num_scales=1, num_filters=4, num_blocks=1,
                             batch_norm=True, dtype="float64", **kwargs)
  return randomize(flow, seed=1)


def small_glow(**kwargs):
  keras.utils.set_random_seed(0)
  return tfp_realnvp.Glow((8, 8, 1), num_levels=2, num_steps=1, num_filters=4, dtype="float64",
                          **kwargs)


def loss_and_gradients(model, inputs):
  """The training loss (`training=True`) and its gradient for every trainable variable."""
  with tf.GradientTape() as tape:
    loss = -tf.reduce_mean(model(inputs, training=True))
  return float(loss), [g.numpy() for g in tape.gradient(loss, model.trainable_variables)]


def relative_errors(gradients, reference, floor=1e-6):
  """Per variable: `max |g - g_ref| / (max |g_ref| + floor * max over variables of |g_ref|)`."""
  floor = floor * max(np.max(np.abs(g)) for g in reference)
  return np.array([np.max(np.abs(g - r)) / (np.max(np.abs(r)) + floor)
                   for g, r in zip(gradients, reference, strict=True)])


def state(model):
  """The values of every variable (moving averages and ActNorm flags included)."""
  return [v.numpy() for v in model.variables]


@pytest.mark.parametrize("kind", ["real_nvp_conditional", "glow_new"])
def test_every_variable_gets_the_standard_gradient(kind):
  # A conditional Real NVP with batch norm (one scale; randomised: no coupling is the
  # identity), and a new Glow (two levels: factor-out and split prior), whose ActNorm layers
  # initialise in this very call: every mode on its own copy.
  x = uniform((16, 8, 8, 1), seed=3)
  labels = tf.constant(np.arange(16) % 3)
  results = {}
  for mode in MODES:
    if kind == "glow_new":
      model, inputs = tfp_realnvp.FlowModel(small_glow(), remat=mode), x
    else:
      model, inputs = tfp_realnvp.FlowModel(small_real_nvp(num_classes=3), remat=mode), (x, labels)
    results[mode] = loss_and_gradients(model, inputs) + (state(model),)
  standard_loss, standard_gradients, standard_state = results[None]
  assert np.count_nonzero([np.any(g) for g in standard_gradients]) > 10
  for mode in remat.MODES:
    loss, gradients, after = results[mode]
    assert loss == pytest.approx(standard_loss, rel=1e-12), mode
    assert relative_errors(gradients, standard_gradients).max() <= 1e-8, mode
    # Moving averages updated once, ActNorm initialised once, as in the standard mode.
    for value, expected in zip(after, standard_state, strict=True):
      np.testing.assert_allclose(value, expected, rtol=1e-12, atol=1e-14, err_msg=mode)


def test_a_variational_dequantizer_gets_the_standard_gradient():
  # The bound's gradient reaches the dequantizer's variables through the flow's input, which a
  # remat mode's custom gradient returns: every variable of both, in every mode, with the
  # dequantization noise fixed by a seed.
  pixels = tf.constant(np.random.default_rng(7).integers(0, 256, (8, 8, 8, 1)), tf.float64)
  seed = tf.constant([0, 3])
  results = {}
  for mode in MODES:
    keras.utils.set_random_seed(0)
    dequantizer = randomize(tfp_realnvp.VariationalDequantizer(
        (8, 8, 1), num_couplings=2, num_filters=4, dtype="float64"), seed=2)
    model = tfp_realnvp.FlowModel(small_real_nvp(), dequantizer=dequantizer, remat=mode,
                                  dtype="float64")
    # As in `fit`'s step (in Keras's training context), with a seeded noise, eagerly.
    with tf.GradientTape() as tape, _keras_internals.training_context(True):
      loss = -tf.reduce_mean(model._log_prob_bound(  # pylint: disable=protected-access
          pixels, None, 1, seed, training=True))
    results[mode] = float(loss), tape.gradient(loss, model.trainable_variables)
  standard_loss, standard_gradients = results[None]
  dequantizer_gradients = standard_gradients[-len(dequantizer.trainable_variables):]
  assert all(np.any(g) for g in dequantizer_gradients)
  for mode in remat.MODES:
    loss, gradients = results[mode]
    assert loss == pytest.approx(standard_loss, rel=1e-12), mode
    assert relative_errors(gradients, standard_gradients).max() <= 1e-8, mode


@pytest.mark.slow  # About 1 minute on a shared core.
def test_condition_vectors_get_the_standard_gradient():
  flow = small_real_nvp(conditional_size=2)
  x = uniform((8, 8, 8, 1), seed=4)
  condition = tf.Variable(np.random.default_rng(5).standard_normal((8, 2)))
  gradients = {}
  for mode in (None, "reversible"):
    model = tfp_realnvp.FlowModel(flow, remat=mode)
    with tf.GradientTape() as tape:
      loss = -tf.reduce_mean(model((x, condition), training=False))
    gradients[mode] = tape.gradient(loss, condition).numpy()
  assert np.any(gradients[None])
  np.testing.assert_allclose(gradients["reversible"], gradients[None], rtol=1e-8)


@pytest.mark.slow  # About 25 s of CPU; the float64 gradient tests above stay in the default run.
def test_fit_trains_in_reversible_mode_like_the_standard_mode():
  images = np.random.default_rng(0).uniform(0.0, 1.0, (32, 8, 8, 1))
  histories, first_step = {}, {}
  for mode in (None, "reversible"):
    model = tfp_realnvp.FlowModel(small_real_nvp(), remat=mode)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.train_on_batch(images[:16])
    # The moving averages of every batch norm (the flow's and the networks'), updated once.
    first_step[mode] = [v.numpy() for v in model.non_trainable_variables]
    histories[mode] = model.fit(images, batch_size=16, epochs=2, shuffle=False,
                                verbose=0).history["loss"]
  for value, expected in zip(first_step["reversible"], first_step[None], strict=True):
    np.testing.assert_allclose(value, expected, rtol=1e-10)
  np.testing.assert_allclose(histories["reversible"], histories[None], rtol=1e-9)


@pytest.mark.parametrize("scan", [False, True])
def test_rebuilt_inputs_match_the_forward_pass(scan):
  flow = small_glow(scan=scan)
  model = tfp_realnvp.FlowModel(flow)
  x = uniform((16, 8, 8, 1), seed=6)
  model(x, training=True)  # Initialises the ActNorm layers.
  errors = remat.reconstruction_errors(model.distribution.bijector, x, 3, training=True)
  # Logit, squeezes, steps, split prior; a scanned step is rebuilt as a whole, an unrolled one
  # bijector by bijector.
  per_step = 1 if scan else 3
  assert len(errors) == 1 + 2 * (1 + per_step) + 1 + 2
  assert max(float(e) for e in errors) <= 1e-12


def test_remat_mode_is_saved_and_checked():
  model = tfp_realnvp.FlowModel(small_glow(), remat="recompute")
  assert tfp_realnvp.FlowModel.from_config(model.get_config()).remat == "recompute"
  with pytest.raises(ValueError, match="remat must be None or one of"):
    tfp_realnvp.FlowModel(small_glow(), remat="checkpoint")


def one_ulp_up(x, seed=3):
  """Float32 `x` with half of its elements, chosen at random, raised by one ulp."""
  chosen = np.random.default_rng(seed).uniform(size=x.shape) < 0.5
  return np.where(chosen, np.nextafter(x, np.float32(np.inf)), x)


@pytest.mark.slow  # About 1.5 minutes on an idle core.
def test_mnist_preset_gradients_in_float32():
  """Recomputation matches the standard gradients to 1e-4; the reversible mode as closely as
  float32 allows: closer than the standard mode's own gradients at an input one ulp away.

  The reversible rebuilds differ from the stored inputs by float32 rounding (about 1e-6 in
  logit space, `reconstruction_errors`). The standard float32 gradient of this flow is itself
  that sensitive, as this test measures: raising half the input pixels by one ulp moves it by
  2.6e-3 relative (largest per variable; 2026-11-30). So a bound below that sensitivity (issue
  #14 asked 1e-4) would need a bit-exact rebuild.
  """
  x = np.random.default_rng(7).uniform(0.0, 1.0, (16, 28, 28, 1)).astype(np.float32)

  def gradients(mode, inputs):
    keras.utils.set_random_seed(0)
    flow = randomize(presets.build_flow("mnist", (28, 28, 1)), seed=2, stddev=0.05)
    return loss_and_gradients(tfp_realnvp.FlowModel(flow, remat=mode), tf.constant(inputs))

  loss, standard = gradients(None, x)
  sensitivity = relative_errors(gradients(None, one_ulp_up(x))[1], standard, floor=1e-3).max()
  print(f"standard mode, half the pixels one ulp up: {sensitivity:.3g}")
  assert sensitivity > 1e-4  # Else this test should hold the reversible mode to 1e-4.
  for mode in remat.MODES:
    mode_loss, mode_gradients = gradients(mode, x)
    errors = relative_errors(mode_gradients, standard, floor=1e-3)
    print(f"{mode}: largest relative gradient error {errors.max():.3g}")
    assert mode_loss == pytest.approx(loss, rel=1e-5)
    # Recompute: 2.5e-5. Reversible: 9.2e-4 (2026-11-30).
    assert errors.max() <= (1e-4 if mode == "recompute" else sensitivity), mode


@pytest.mark.slow  # The deepest preset flow (192 Glow steps of 512 filters): ~1.5 minutes.
def test_reconstruction_drift_of_the_deepest_preset_is_small():
  glows = [p for p in presets.PRESETS.values() if p.flow.kind == "glow"]
  deepest = max(glows, key=lambda p: (p.flow.num_levels * p.flow.num_steps, p.image_size))
  assert deepest.name == "glow_imagenet64"
  keras.utils.set_random_seed(0)
  flow = presets.build_flow(deepest.name, deepest.image_size + (3,))
  randomize(flow, seed=3, stddev=1e-3)  # Couplings and split priors no longer the identity.
  model = tfp_realnvp.FlowModel(flow)
  x = tf.constant(np.random.default_rng(8).uniform(0.0, 1.0, (2,) + deepest.image_size + (3,)),
                  tf.float32)
  errors = [float(e) for e in remat.reconstruction_errors(model.distribution.bijector, x, 3,
                                                          training=True)]
  print(f"{deepest.name}: {len(errors)} steps, largest rebuild error {max(errors):.3g} "
        f"(first step {errors[0]:.3g})")
  # 1.2e-5 in logit space (2026-11-30): the walk restarts from the kept input of every
  # level (it was 0.0125 when it rebuilt all 588 steps in one go).
  assert max(errors) <= 1e-4


@pytest.mark.slow  # Two TensorFlow processes' worth of work: ~2.5 minutes on a shared core.
def test_mirrored_strategy_matches_one_device_in_reversible_mode(tmp_path):
  out = tmp_path / "mirrored.json"
  result = subprocess.run([sys.executable, str(SCRIPT), "mirrored", str(out), "realnvp",
                           "reversible"], capture_output=True, text=True, timeout=900,
                          check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(out.read_text())
  assert report["replicas"] == 2
  assert report["mirrored_loss"] == pytest.approx(report["single_loss"], rel=1e-5)
  errors = np.array(report["gradient_errors"])
  assert report["gradient_norm"] > 0
  assert np.sqrt(np.sum(errors ** 2)) <= 1e-5 * report["gradient_norm"]


@pytest.mark.slow  # About 10-15 s of CPU.
def test_mixed_bfloat16_trains_in_reversible_mode():
  keras.mixed_precision.set_global_policy("mixed_bfloat16")
  try:
    keras.utils.set_random_seed(0)
    flow = tfp_realnvp.RealNVP((8, 8, 1), num_scales=1, num_filters=8, num_blocks=1,
                               batch_norm=True)
    model = tfp_realnvp.FlowModel(flow, remat="reversible")
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    images = np.random.default_rng(0).uniform(0.0, 1.0, (32, 8, 8, 1)).astype(np.float32)
    losses = model.fit(images, batch_size=16, epochs=2, verbose=0).history["loss"]
  finally:
    keras.mixed_precision.set_global_policy("float32")
  assert np.all(np.isfinite(losses))


@pytest.mark.slow  # XLA compiles two training steps: about 1 minute of CPU.
@pytest.mark.parametrize("mode", remat.MODES)
def test_the_remat_modes_compile_with_xla(mode):
  # A training step compiled by XLA (`jit_compile=True`, what a TPU needs) updates the weights
  # exactly as the standard mode's compiled step does.
  images = np.random.default_rng(0).uniform(0.0, 1.0, (16, 8, 8, 1))
  initial = [v.numpy() for v in small_real_nvp().trainable_variables]
  weights = {}
  for remat_mode in (None, mode):
    model = tfp_realnvp.FlowModel(small_real_nvp(), remat=remat_mode)
    model.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=True)
    model.train_on_batch(images)
    assert model.jit_compile
    weights[remat_mode] = [v.numpy() for v in model.trainable_variables]
  assert sum(np.any(w != w0) for w, w0 in zip(weights[None], initial, strict=True)) > 10
  for value, expected in zip(weights[mode], weights[None], strict=True):
    np.testing.assert_allclose(value, expected, rtol=1e-9, atol=1e-12)
