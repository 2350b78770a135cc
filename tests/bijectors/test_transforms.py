"""Coupling transforms: the spline against TFP's, the registry, and a transform of our own.

The extension point's promise is that a new elementwise map is one `CouplingTransform`
subclass: registered under a name, `RealNVP`, `Glow` and the presets find it, the conformance
checks pass on it without a case of its own, and a flow built with an instance saves and
loads. `SoftplusAffine` below is such a transform, defined here as a user would.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import tfp_realnvp
from tfp_realnvp import bijectors as rb
from tfp_realnvp import presets

from conformance import check_all, glow_case, real_nvp_case, transform_cases
from helpers import fresh, normal, randomize, uniform

BINS = 6


@pytest.mark.parametrize("spline_forward", [True, False], ids=["data_to_latent", "latent_to_data"])
def test_the_spline_transform_computes_tfps_rational_quadratic_spline(spline_forward):
  # The transform's own one-hot evaluation against `tfb.RationalQuadraticSpline` of the same
  # parameters, in float64: values, log-derivatives and the gradients with respect to the raw
  # parameters and the inputs (units inside and outside [-B, B], steep random splines).
  bound = 2.0
  transform = rb.SplineTransform(BINS, bound)
  raw = 2.0 * normal((16, 3, 3, 2, rb.spline_params_per_unit(BINS)), seed=4)
  values = 1.5 * normal((16, 3, 3, 2), seed=5)

  def both(raw, values):
    params = transform.check_parameters(raw, values, "test")
    ours, ours_log_det = (transform.inverse if spline_forward else transform.forward)(
        values, params)
    spline = tfp.bijectors.RationalQuadraticSpline(*params, range_min=-bound)
    theirs = spline.forward(values) if spline_forward else spline.inverse(values)
    theirs_log_det = spline.forward_log_det_jacobian(
        values if spline_forward else theirs, event_ndims=0)
    return (ours, ours_log_det), (theirs, theirs_log_det)

  with tf.GradientTape(persistent=True) as tape:
    tape.watch([raw, values])
    ours, theirs = both(raw, values)
    # A scalar that weighs every output differently, so the gradients are specific.
    losses = [tf.reduce_sum(tf.sin(y) + 0.3 * log_det) for y, log_det in (ours, theirs)]
  assert np.abs(values.numpy()).max() > bound  # Some units lie outside the splines.
  for mine, reference in zip(ours, theirs, strict=True):
    np.testing.assert_allclose(mine.numpy(), reference.numpy(), rtol=1e-10, atol=1e-10)
  for variable in (raw, values):
    mine, reference = (tape.gradient(loss, variable) for loss in losses)
    np.testing.assert_allclose(mine.numpy(), reference.numpy(), rtol=1e-7, atol=1e-9)


# The registry and `make_transform`.


def test_the_registry_holds_the_package_transforms_and_names_them_in_errors():
  assert {"affine", "additive", "spline"} <= set(rb.COUPLING_TRANSFORMS)
  assert rb.COUPLING_TRANSFORMS["affine"] is rb.AffineTransform
  with pytest.raises(ValueError, match=r"Unknown coupling transform 'cubic'; the registered "
                                       r"ones are 'affine', 'additive', 'spline'"):
    rb.make_transform("cubic")
  with pytest.raises(ValueError, match="'affine' is taken by .*AffineTransform"):
    rb.COUPLING_TRANSFORMS.register("affine", rb.SplineTransform)


def test_make_transform_takes_a_name_an_instance_or_its_serialization():
  spline = rb.SplineTransform(num_bins=4, bound=1.5)
  # A name gets the options its constructor takes, and ignores the others.
  assert rb.make_transform("spline", num_bins=4, bound=1.5, min_scale=0.5) == spline
  assert rb.make_transform("affine", num_bins=4, bound=1.5) == rb.AffineTransform()
  assert rb.make_transform(spline) is spline
  assert rb.make_transform(keras.saving.serialize_keras_object(spline)) == spline
  assert repr(spline) == "SplineTransform(num_bins=4, bound=1.5)"
  with pytest.raises(TypeError, match="registered name .* or a "
                                      "tfp_realnvp.bijectors.CouplingTransform, got int"):
    rb.make_transform(3)


# A transform of our own: an affine map whose scale is positive by a softplus.


@keras.saving.register_keras_serializable(package="tfp_realnvp_tests")
class SoftplusAffine(rb.CouplingTransform):
  """`z = x * scale + shift` with `scale = min_scale + softplus(a + c)` from raw `(a, shift)`.

  `c` makes raw zeros the identity (`scale = 1`), as the extension point asks.
  """

  params_per_unit = 2

  def __init__(self, min_scale=1e-3):
    self.min_scale = float(min_scale)
    self._offset = math.log(math.expm1(1.0 - self.min_scale))

  def parameters(self, raw):
    a, shift = tf.unstack(raw, axis=-1)
    return self.min_scale + tf.nn.softplus(a + self._offset), shift

  def inverse(self, x, params):
    scale, shift = params
    return x * scale + shift, tf.math.log(scale)

  def forward(self, z, params):
    scale, shift = params
    return (z - shift) / scale, tf.math.log(scale)

  def get_config(self):
    return {"min_scale": self.min_scale}


NAME = "softplus_affine_test"


@pytest.fixture
def registered(monkeypatch):
  """`SoftplusAffine` registered as `NAME` for one test; the registry is restored after."""
  registry = rb.COUPLING_TRANSFORMS
  list(registry)  # Loads the plugins first, so that the copy below holds them.
  monkeypatch.setattr(registry, "_entries", dict(registry._entries))  # pylint: disable=protected-access
  registry.register(NAME, SoftplusAffine)
  return NAME


def test_raw_zeros_are_the_identity_and_bad_outputs_are_named():
  transform = SoftplusAffine()
  x = normal((2, 4, 4, 1), seed=1)
  params = transform.check_parameters(tf.zeros((2, 4, 4, 1, 2), tf.float64), x, "test")
  z, log_det = transform.inverse(x, params)
  np.testing.assert_allclose(z.numpy(), x.numpy(), rtol=1e-12)
  np.testing.assert_allclose(log_det.numpy(), 0.0, atol=1e-12)
  with pytest.raises(ValueError, match=r"SoftplusAffine needs \[N, 4, 4, 1, 2\]"):
    transform.check_parameters(tf.zeros((2, 4, 4, 1, 3)), x, "test")


def test_a_registered_transform_is_found_by_name_by_the_flows_and_the_presets(registered):
  assert rb.make_transform(registered, num_bins=3, min_scale=0.5) == SoftplusAffine(0.5)
  x = uniform((2, 8, 8, 1), seed=2)
  real_nvp = tfp_realnvp.RealNVP((8, 8, 1), num_scales=2, num_filters=4, num_blocks=1,
                                 coupling=registered, dtype="float64")
  glow = tfp_realnvp.Glow((8, 8, 1), num_levels=2, num_steps=1, num_filters=4,
                          coupling=registered, dtype="float64")
  for flow in (real_nvp, glow):
    assert {network.params_per_unit for network in flow.coupling_networks} == {2}
    assert {type(coupling.transform) for coupling in couplings(flow.bijector)} == {
        SoftplusAffine}
    assert flow.get_config()["coupling"] == registered
  # A new Real NVP is the identity: the networks start at zero, raw zeros are scale 1.
  np.testing.assert_allclose(real_nvp.bijector.inverse(x).numpy(), x.numpy(), atol=1e-12)

  for preset, flow_class in (("digits", tfp_realnvp.RealNVP), ("glow_digits", tfp_realnvp.Glow)):
    resolved = presets.resolve(preset, (8, 8, 1), coupling=registered, num_filters=4)
    assert resolved.flow.coupling == registered
    assert resolved.flow.flow_kwargs()["coupling"] == registered
    assert resolved.describe().endswith(f", {registered} couplings")
    flow = presets.build_flow(resolved, (8, 8, 1))
    assert isinstance(flow, flow_class) and flow.coupling == registered
    assert {type(coupling.transform) for coupling in couplings(flow.bijector)} == {
        SoftplusAffine}


def couplings(bijector):
  """Every `Coupling` inside a chain of bijectors (split priors aside)."""
  if isinstance(bijector, rb.SplitPrior):
    return []
  if isinstance(bijector, rb.Coupling):
    return [bijector]
  inner = getattr(bijector, "bijectors", None) or [
      getattr(bijector, name) for name in ("bijector", "_bijector", "step")
      if hasattr(bijector, name)]
  return [c for b in inner if isinstance(b, tfp.bijectors.Bijector) for c in couplings(b)]


def test_the_registry_is_restored_after_a_test():
  assert NAME not in rb.COUPLING_TRANSFORMS
  with pytest.raises(ValueError, match=f"Unknown coupling transform '{NAME}'"):
    presets.resolve("digits", (8, 8, 1), coupling=NAME)


@pytest.mark.parametrize("case", transform_cases(NAME), ids=repr)
def test_a_registered_transform_passes_the_conformance_checks(registered, case):
  del registered
  check_all(case)


@pytest.mark.parametrize("case", [
    glow_case((8, 8, 1), 2, 1, coupling=NAME, condition="labels"),
    real_nvp_case((8, 8, 1), 1, coupling=SoftplusAffine(min_scale=0.1)),
    # 30-60 s on 2 shared cores, most of it compiling the flow with XLA.
    pytest.param(real_nvp_case((8, 8, 1), 2, coupling=NAME), marks=pytest.mark.slow),
], ids=repr)
def test_flows_of_a_new_transform_pass_the_conformance_checks(registered, case):
  del registered
  check_all(case)


def test_a_flow_built_with_an_instance_saves_and_loads(tmp_path):
  keras.utils.set_random_seed(0)
  transform = SoftplusAffine(min_scale=0.05)
  flow = tfp_realnvp.RealNVP((8, 8, 1), num_scales=2, num_filters=4, num_blocks=1,
                             coupling=transform)
  model = tfp_realnvp.FlowModel(randomize(flow, seed=3, stddev=0.1))
  x = uniform((6, 8, 8, 1), seed=4, dtype=np.float32)
  expected = model.log_prob(x).numpy()
  untrained = tfp_realnvp.FlowModel(tfp_realnvp.RealNVP(
      (8, 8, 1), num_scales=2, num_filters=4, num_blocks=1, coupling=transform))
  assert np.max(np.abs(untrained.log_prob(x).numpy() - expected)) > 1e-2
  model.save(tmp_path / "softplus_affine.keras")
  loaded = keras.models.load_model(tmp_path / "softplus_affine.keras", safe_mode=True)
  assert loaded.flow.get_config() == flow.get_config()
  assert {coupling.transform for coupling in couplings(loaded.flow.bijector)} == {transform}
  np.testing.assert_allclose(loaded.log_prob(fresh(x)).numpy(), expected, rtol=1e-5)
