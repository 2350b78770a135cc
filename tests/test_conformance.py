"""One conformance test suite, parametrized over every bijector of the package.

Every case is built in float64 with its networks randomised away from the identity, and checked
for: log-determinants against the autodiff Jacobian, round trips with the cache bypassed,
shapes over several batch shapes, equal numbers in eager / tf.function / XLA, and clear errors
on bad input.
"""

import dataclasses
from typing import Callable

import numpy as np
import pytest
import tensorflow as tf

import tfp_realnvp
from tfp_realnvp import bijectors as rb

from helpers import assert_close_relative, autodiff_log_abs_det, fresh, normal, randomize
from helpers import resnet_conditioner, uniform


@dataclasses.dataclass
class Case:
  name: str
  build: Callable  # (dtype, validate_args) -> bijector
  event_shape: tuple  # shape of the events `forward` takes (the latent side)
  sample_data: Callable = normal  # (shape, seed) -> valid input of `inverse`
  image_event: bool = True  # False for elementwise bijectors, which accept any rank

  def __repr__(self):
    return self.name


def coupling_case(mask, parity, event_shape, additive=False):
  def build(dtype="float64", validate_args=False):
    input_shape, channels = rb.CheckerboardMask(parity).conditioner_shape(event_shape) \
        if mask == "checkerboard" else rb.ChannelMask(parity).conditioner_shape(event_shape)
    conditioner = resnet_conditioner(input_shape, channels, dtype, seed=parity)
    return rb.AffineCoupling(conditioner, mask=mask, parity=parity, additive=additive,
                             event_shape=event_shape, validate_args=validate_args)
  kind = "additive" if additive else "affine"
  return Case(f"{kind}-{mask}-{parity}-{'x'.join(map(str, event_shape))}", build, event_shape)


def squeeze_case(event_shape):
  def build(dtype="float64", validate_args=False):
    del dtype
    return rb.Squeeze(event_shape, validate_args=validate_args)
  return Case(f"squeeze-{'x'.join(map(str, event_shape))}", build, event_shape)


def factor_out_case(event_shape):
  def build(dtype="float64", validate_args=False):
    kept = tuple(event_shape[:2]) + (event_shape[2] - event_shape[2] // 2,)
    input_shape, channels = rb.ChannelMask(0).conditioner_shape(kept)
    inner = rb.AffineCoupling(resnet_conditioner(input_shape, channels, dtype), mask="channel",
                              event_shape=kept, validate_args=validate_args)
    return rb.FactorOut(inner, validate_args=validate_args)
  return Case(f"factor-out-{'x'.join(map(str, event_shape))}", build, event_shape)


def batch_norm_case(event_shape):
  def build(dtype="float64", validate_args=False):
    statistics = tfp_realnvp.networks.BatchNormStatistics(dtype=dtype)
    statistics.build((None,) + event_shape)
    return rb.BatchNorm(randomize(statistics, seed=3), validate_args=validate_args)
  return Case(f"batch-norm-{'x'.join(map(str, event_shape))}", build, event_shape)


def logit_case(event_shape):
  def build(dtype="float64", validate_args=False):
    del dtype
    return rb.Logit(alpha=0.05, validate_args=validate_args)
  return Case(f"logit-{'x'.join(map(str, event_shape))}", build, event_shape,
              sample_data=uniform, image_event=False)


def real_nvp_case(event_shape, num_scales, batch_norm=False):
  def build(dtype="float64", validate_args=False):
    flow = tfp_realnvp.RealNVP(event_shape, num_scales=num_scales, num_filters=4, num_blocks=1,
                               batch_norm=batch_norm, validate_args=validate_args, dtype=dtype)
    return randomize(flow, seed=num_scales).bijector
  suffix = "-batchnorm" if batch_norm else ""
  return Case(f"realnvp-{'x'.join(map(str, event_shape))}-{num_scales}scales{suffix}", build,
              event_shape)


CASES = [
    coupling_case("checkerboard", 0, (4, 4, 2)),
    coupling_case("checkerboard", 1, (5, 3, 2)),
    coupling_case("channel", 0, (4, 4, 3)),
    coupling_case("channel", 1, (4, 4, 3)),
    coupling_case("checkerboard", 0, (4, 4, 2), additive=True),
    coupling_case("channel", 1, (4, 4, 4), additive=True),
    squeeze_case((4, 6, 2)),
    factor_out_case((4, 4, 4)),
    batch_norm_case((4, 4, 3)),
    logit_case((4, 4, 2)),
    real_nvp_case((8, 8, 1), 2),
    real_nvp_case((8, 8, 1), 3),
    real_nvp_case((16, 16, 3), 2),
    real_nvp_case((16, 16, 3), 3),
    real_nvp_case((8, 8, 2), 2, batch_norm=True),
]


@pytest.fixture(params=CASES, ids=repr)
def case(request):
  return request.param


def test_log_det_matches_autodiff_jacobian(case):
  bijector = case.build()
  z = normal(case.event_shape, seed=1)
  fldj = bijector.forward_log_det_jacobian(fresh(z), event_ndims=3).numpy()
  assert_close_relative(fldj, autodiff_log_abs_det(bijector.forward, z), 1e-8)

  x = bijector.forward(fresh(z))
  ildj = bijector.inverse_log_det_jacobian(fresh(x), event_ndims=3).numpy()
  assert_close_relative(ildj, autodiff_log_abs_det(bijector.inverse, fresh(x)), 1e-8)
  assert_close_relative(fldj, -ildj, 1e-10)
  if not bijector.is_constant_jacobian:
    assert abs(fldj) > 1e-3, "the randomised bijector should not be volume preserving"


def test_round_trips_without_cache(case):
  bijector = case.build()
  z = normal((3,) + case.event_shape, seed=2)
  x = bijector.forward(fresh(z))
  np.testing.assert_allclose(bijector.inverse(fresh(x)).numpy(), z.numpy(), rtol=0, atol=1e-10)
  data = case.sample_data(x.shape, seed=3)
  latent = bijector.inverse(fresh(data))
  np.testing.assert_allclose(bijector.forward(fresh(latent)).numpy(), data.numpy(), rtol=0,
                             atol=1e-10)
  if x.shape == z.shape:  # The randomised flow must really move its input.
    assert np.max(np.abs(x.numpy() - z.numpy())) > 1e-3


@pytest.mark.parametrize("batch_shape", [(), (2,), (2, 3)], ids=str)
def test_shapes(case, batch_shape):
  bijector = case.build()
  event = tf.TensorShape(case.event_shape)
  data_event = bijector.forward_event_shape(event)
  assert bijector.inverse_event_shape(data_event) == event
  assert list(bijector.forward_event_shape_tensor(case.event_shape).numpy()) == data_event
  assert list(bijector.inverse_event_shape_tensor(data_event).numpy()) == list(event)

  z = normal(batch_shape + case.event_shape, seed=4)
  x = bijector.forward(z)
  assert x.shape == batch_shape + data_event
  assert bijector.forward_log_det_jacobian(z, event_ndims=3).shape == batch_shape
  z_back = bijector.inverse(fresh(x))
  assert z_back.shape == z.shape
  assert bijector.inverse_log_det_jacobian(fresh(x), event_ndims=3).shape == batch_shape
  # Extra event dimensions are summed over, as for any TFP bijector.
  if batch_shape:
    ldj4 = bijector.forward_log_det_jacobian(fresh(z), event_ndims=4)
    assert ldj4.shape == batch_shape[:-1]


def test_eager_function_and_xla_agree(case):
  bijector = case.build()
  z = normal((2,) + case.event_shape, seed=5)
  x = bijector.forward(fresh(z))

  def both_ways(z, x):
    return (bijector.forward(z), bijector.forward_log_det_jacobian(z, event_ndims=3),
            bijector.inverse(x), bijector.inverse_log_det_jacobian(x, event_ndims=3))

  eager = both_ways(fresh(z), fresh(x))
  for jit in (False, True):
    compiled = tf.function(both_ways, jit_compile=jit)(fresh(z), fresh(x))
    for a, b in zip(eager, compiled):
      np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-10)


def test_float32_follows_input_dtype(case):
  bijector = case.build(dtype="float32")
  z = normal((2,) + case.event_shape, seed=6, dtype=np.float32)
  x = bijector.forward(z)
  ldj = bijector.forward_log_det_jacobian(z, event_ndims=3)
  assert x.dtype == tf.float32 and ldj.dtype == tf.float32
  np.testing.assert_allclose(bijector.inverse(fresh(x)).numpy(), z.numpy(), atol=1e-4)


def test_rejects_wrong_rank_and_dtype(case):
  bijector = case.build()
  if case.image_event:
    with pytest.raises(ValueError, match="rank"):
      bijector.forward(tf.zeros(case.event_shape[1:], tf.float64))
  with pytest.raises(TypeError, match="floating-point"):
    bijector.forward(tf.zeros((2,) + case.event_shape, tf.int32))
  with pytest.raises(TypeError, match="floating-point"):
    bijector.inverse(tf.zeros((2,) + tuple(bijector.forward_event_shape(case.event_shape)),
                              tf.int32))


def test_validate_args_rejects_non_finite_values(case):
  bijector = case.build(validate_args=True)
  z = normal((2,) + case.event_shape, seed=7).numpy()
  z[1, 0, 0, 0] = np.nan
  with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or Inf"):
    bijector.forward(tf.constant(z))
  x = case.sample_data((2,) + tuple(bijector.forward_event_shape(case.event_shape)),
                       seed=8).numpy()
  x[0, -1, -1, -1] = np.inf
  with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or Inf"):
    bijector.inverse_log_det_jacobian(tf.constant(x), event_ndims=3)
