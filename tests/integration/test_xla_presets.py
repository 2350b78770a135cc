"""Every preset's training step, `log_prob` and sampling compile with XLA (TPUs run nothing
else) and compute what the plain graph computes, to float32 rounding.

Each preset is built at its image size with narrow networks (4 filters, one block or two steps
per level), as XLA compiles the same operations whatever the width.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfp_realnvp
from tfp_realnvp import presets

# Glow's ActNorms initialise from the first training batch: sixteen images, not two.
TRAIN_BATCH = 16
BATCH = 2
LEARNING_RATE = 1e-2


def _small(preset):
  if preset.flow.kind == "glow":
    return {"num_filters": 4, "num_steps": 2}
  return {"num_filters": 4, "num_blocks": 1}


def _model(preset, shape, jit_compile, dequantizer=False, dtype="float64"):
  keras.utils.set_random_seed(0)
  flow = presets.build_flow(preset, shape, dtype=dtype, **_small(preset))
  model = tfp_realnvp.FlowModel(
      flow, dequantizer=presets.build_dequantizer(preset, shape) if dequantizer else None)
  # Plain SGD: a step moves each variable by -LEARNING_RATE * its gradient.
  model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE), jit_compile=jit_compile)
  return model


def _shape(preset):
  return (*preset.image_size, 1 if preset.image_size[0] in (8, 28) else 3)


@pytest.mark.slow  # About 20-90 s per preset: XLA compiles each of the three programs.
@pytest.mark.parametrize("name", sorted(presets.PRESETS))
def test_every_preset_trains_evaluates_and_samples_under_xla(name):
  preset = presets.get_preset(name)
  shape = _shape(preset)
  # In float64, so that XLA's other order of summation over 64 x 64 x 3 pixels stays far below
  # the tolerances (in float32 some small gradients differed by 0.02 at that size).
  x = np.random.default_rng(0).uniform(0.05, 0.95, (TRAIN_BATCH, *shape))
  plain, compiled = (_model(preset, shape, jit) for jit in (False, True))
  gradients, losses = [], []
  for model in (plain, compiled):
    before = [v.numpy() for v in model.trainable_variables]
    losses.append(model.train_on_batch(x, return_dict=True)["loss"])
    gradients.append([(old - v.numpy()) / LEARNING_RATE
                      for old, v in zip(before, model.trainable_variables, strict=True)])
  np.testing.assert_allclose(losses[1], losses[0], rtol=1e-10)
  scale = max(np.abs(g).max() for g in gradients[0])
  for mine, theirs in zip(*gradients[::-1], strict=True):
    np.testing.assert_allclose(mine, theirs, rtol=1e-6, atol=1e-8 * scale)

  log_prob = tf.function(compiled.log_prob, jit_compile=True)
  np.testing.assert_allclose(log_prob(x), plain.log_prob(x), rtol=1e-10)
  # XLA draws other random numbers from the same seed: the mode's image (temperature 0) is
  # compared, and the random draw is checked to compile and give images of the shape. (Their
  # values are not this test's subject: a narrow Glow whose ActNorms have seen one batch of
  # noise can overflow at temperature 1 on 64 x 64 images, with or without XLA.)
  sample = tf.function(lambda t: compiled.sample(BATCH, temperature=t, seed=(1, 2)),
                       jit_compile=True)
  np.testing.assert_allclose(sample(0.0), plain.sample(BATCH, temperature=0.0), atol=1e-10)
  assert sample(1.0).shape == (BATCH, *shape)


@pytest.mark.slow  # About 30 s per preset.
@pytest.mark.parametrize("name", sorted(n for n, p in presets.PRESETS.items()
                                        if p.training.dequantization == "variational"))
def test_variational_dequantizers_compile_with_xla(name):
  preset = presets.get_preset(name)
  shape = _shape(preset)
  pixels = np.random.default_rng(1).integers(0, 256, (BATCH, *shape)).astype(np.float32)
  plain, compiled = (_model(preset, shape, jit, dequantizer=True, dtype=None)
                     for jit in (False, True))
  # Seeded noise is Philox's under XLA too, so the bound of 8-bit images is the same.
  noise = tf.function(lambda k: compiled.dequantizer(k, seed=(3, 4)), jit_compile=True)
  for a, b in zip(noise(pixels), plain.dequantizer(pixels, seed=(3, 4)), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
  # The training step draws fresh noise, which differs with XLA: it compiles and trains.
  x = np.random.default_rng(0).integers(0, 256, (TRAIN_BATCH, *shape)).astype(np.uint8)
  losses = [m.train_on_batch(x, return_dict=True)["loss"] for m in (plain, compiled)]
  assert np.all(np.isfinite(losses)) and losses[1] == pytest.approx(losses[0], rel=0.2)
