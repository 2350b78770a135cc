"""The Keras 3 drop-ins for TFP's `real_nvp_default_template` and
`masked_autoregressive_default_template`, inside `tfb.RealNVP` and
`tfb.MaskedAutoregressiveFlow`."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_realnvp import networks

from helpers import fresh, normal, randomize

tfb = tfp.bijectors


def test_real_nvp_template_in_tfb_real_nvp():
  template = networks.real_nvp_default_template(hidden_layers=[16], dtype="float64")
  nvp = tfb.RealNVP(num_masked=1, shift_and_log_scale_fn=template)
  x = normal((4, 3), seed=3)
  assert nvp.forward(x).shape == (4, 3) and template.output_units == 2
  assert nvp.forward(x[0]).shape == (3,)  # One example, as `nvp.log_prob([0., 0., 0.])`.
  shift, log_scale = template(x[:, :1], 2)
  assert shift.shape == log_scale.shape == (4, 2)
  np.testing.assert_allclose(nvp.inverse(fresh(nvp.forward(x))).numpy(), x.numpy(), atol=1e-12)
  with pytest.raises(ValueError, match="output_units=2"):
    template(x[:, :1], 3)
  with pytest.raises(NotImplementedError, match="no condition"):
    template(x[:, :1], 2, conditional_input=x)
  with pytest.raises(ValueError, match="pass output_units"):
    networks.RealNVPDefaultTemplate([4])(x)
  nice = networks.real_nvp_default_template([4], shift_only=True)
  assert nice(tf.ones((2, 1)), 2)[1] is None
  with pytest.raises(ValueError, match="hidden_layers"):
    networks.real_nvp_default_template(512)


@pytest.mark.parametrize("clip_gradient", [False, True])
def test_masked_autoregressive_template_clips_the_log_scale(clip_gradient):
  template = networks.masked_autoregressive_default_template(
      [8], log_scale_min_clip=-1.0, log_scale_max_clip=1.0,
      log_scale_clip_gradient=clip_gradient, dtype="float64")
  template.build((None, 3))
  randomize(template, seed=4, stddev=0.5)
  x = normal((16, 3), seed=5)
  with tf.GradientTape() as tape:
    tape.watch(x)
    log_scale = template(x)[1]
  raw = networks.AutoregressiveNetwork.call(template, x)[..., 1]  # Unclipped.
  np.testing.assert_allclose(log_scale.numpy(), np.clip(raw.numpy(), -1.0, 1.0))
  outside = np.abs(raw.numpy()) > 1.0
  assert outside.any() and (~outside).any()
  gradient = tape.gradient(log_scale, template.output_bias).numpy()[3:]  # log-scale biases
  per_unit = np.where(outside, 0.0, 1.0).sum(axis=0)
  np.testing.assert_allclose(gradient, per_unit if clip_gradient else 16.0)
  maf = tfb.MaskedAutoregressiveFlow(template)
  assert maf.forward(x).shape == (16, 3)
  shift_only = networks.masked_autoregressive_default_template([8], shift_only=True)
  assert shift_only(tf.ones((2, 3)))[1] is None and shift_only.params == 1
