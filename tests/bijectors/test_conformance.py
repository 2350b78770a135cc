"""One conformance test suite, parametrized over every bijector of the package.

Every case is built in float64 with its networks randomised away from the identity, and checked
for: log-determinants against the autodiff Jacobian, round trips with the cache bypassed,
shapes over several batch shapes, equal numbers in eager / tf.function / XLA, and clear errors
on bad input.

Conditional cases (a coupling or a flow conditioned on vectors or on class labels) take their
condition by TFP's keyword convention, `bijector.forward(z, conditional_input=c)`: every check
runs for a fixed condition, with one condition per example (a single one, broadcast, where the
test is about shapes), and the round trips also check that another condition gives another map.
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

K = 3  # Size of the condition vectors, and number of classes, of the conditional cases.


def no_condition(batch_shape, dtype, seed):
  del batch_shape, dtype, seed
  return {}


def vector_condition(batch_shape, dtype, seed):
  return {"conditional_input": normal(tuple(batch_shape) + (K,), seed=seed + 100, dtype=dtype)}


@dataclasses.dataclass
class Case:
  name: str
  build: Callable  # (dtype, validate_args) -> bijector
  event_shape: tuple  # shape of the events `forward` takes (the latent side)
  sample_data: Callable = normal  # (shape, seed) -> valid input of `inverse`
  image_event: bool = True  # False for elementwise bijectors, which accept any rank
  # (batch_shape, numpy dtype, seed) -> keyword arguments of every call of the bijector built
  # last in that dtype: a condition per example of that batch shape, for a conditional case.
  bijector_kwargs: Callable = no_condition

  def __repr__(self):
    return self.name


SPLINE_BINS = 5
SPLINE_BOUND = 2.0  # Small enough that some of the normal test inputs fall outside [-B, B].


def coupling_case(mask, parity, event_shape, kind="affine", conditional_size=None):
  """A coupling with a randomised `CouplingResNet`; `kind` "affine", "additive" or "spline"."""
  def build(dtype="float64", validate_args=False):
    input_shape, channels = rb.CheckerboardMask(parity).conditioner_shape(event_shape) \
        if mask == "checkerboard" else rb.ChannelMask(parity).conditioner_shape(event_shape)
    params_per_unit = rb.spline_params_per_unit(SPLINE_BINS) if kind == "spline" else None
    conditioner = resnet_conditioner(input_shape, channels, dtype, seed=parity,
                                     conditional_size=conditional_size,
                                     params_per_unit=params_per_unit)
    if kind == "spline":
      return rb.SplineCoupling(conditioner, mask=mask, parity=parity, num_bins=SPLINE_BINS,
                               bound=SPLINE_BOUND, event_shape=event_shape,
                               validate_args=validate_args)
    return rb.AffineCoupling(conditioner, mask=mask, parity=parity, additive=kind == "additive",
                             event_shape=event_shape, validate_args=validate_args)
  if conditional_size is None:
    return Case(f"{kind}-{mask}-{parity}-{'x'.join(map(str, event_shape))}", build, event_shape)
  assert conditional_size == K
  return Case(f"conditional-{kind}-{mask}-{parity}-{'x'.join(map(str, event_shape))}", build,
              event_shape, bijector_kwargs=vector_condition)


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
    statistics = tfp_realnvp.bijectors.BatchNormStatistics(dtype=dtype)
    statistics.build((None,) + event_shape)
    return rb.BatchNorm(randomize(statistics, seed=3), validate_args=validate_args)
  return Case(f"batch-norm-{'x'.join(map(str, event_shape))}", build, event_shape)


def actnorm_case(event_shape):
  def build(dtype="float64", validate_args=False):
    layer = tfp_realnvp.bijectors.ActNormParameters(dtype=dtype)
    layer.build((None,) + event_shape)
    randomize(layer, seed=4)
    assert layer.initialized.numpy()  # Randomised, so it must never initialise again.
    return rb.ActNorm(layer, validate_args=validate_args)
  return Case(f"actnorm-{'x'.join(map(str, event_shape))}", build, event_shape)


def conv1x1_case(event_shape, lu=True):
  def build(dtype="float64", validate_args=False):
    layer = tfp_realnvp.bijectors.InvertibleConv1x1Parameters(lu=lu, seed=5, dtype=dtype)
    layer.build((None,) + event_shape)
    randomize(layer, seed=5)  # The learned factors; the permutation and signs stay.
    return rb.InvertibleConv1x1(layer, validate_args=validate_args)
  kind = "lu" if lu else "full"
  return Case(f"conv1x1-{kind}-{'x'.join(map(str, event_shape))}", build, event_shape)


def logit_case(event_shape):
  def build(dtype="float64", validate_args=False):
    del dtype
    return rb.Logit(alpha=0.05, validate_args=validate_args)
  return Case(f"logit-{'x'.join(map(str, event_shape))}", build, event_shape,
              sample_data=uniform, image_event=False)


def flow_case(kind, details, make_flow, event_shape, seed, condition=None, stddev=0.2):
  """A randomised `FlowLayer` `make_flow(dtype, validate_args, conditional_size, num_classes)`.

  `condition` is `"vectors"` (`conditional_size=K`), `"labels"` (`num_classes=K`) or `None`;
  `stddev` the noise of `randomize`.
  """
  flows = {}  # The flow built last in each dtype, whose `bijector_kwargs` encode the labels.

  def build(dtype="float64", validate_args=False):
    flow = make_flow(dtype, validate_args, conditional_size=K if condition == "vectors" else None,
                     num_classes=K if condition == "labels" else None)
    flows[np.dtype(dtype).name] = randomize(flow, seed=seed, stddev=stddev)
    return flow.bijector

  def label_condition(batch_shape, dtype, seed):
    labels = np.random.default_rng(seed + 100).integers(0, K, batch_shape).astype(np.int32)
    kwargs = flows[np.dtype(dtype).name].bijector_kwargs(labels)  # One-hot vectors [..., K].
    assert kwargs["conditional_input"].shape == tuple(batch_shape) + (K,)
    return kwargs

  prefix = f"conditional-{condition}-" if condition else ""
  bijector_kwargs = {None: no_condition, "vectors": vector_condition,
                     "labels": label_condition}[condition]
  return Case(f"{prefix}{kind}-{'x'.join(map(str, event_shape))}-{details}", build, event_shape,
              bijector_kwargs=bijector_kwargs)


def real_nvp_case(event_shape, num_scales, batch_norm=False, condition=None, coupling="affine"):
  """A randomised `RealNVP`; `condition` `"vectors"` (`conditional_size=K`) or `"labels"`."""
  def make_flow(dtype, validate_args, **condition_args):
    return tfp_realnvp.RealNVP(
        event_shape, num_scales=num_scales, num_filters=4, num_blocks=1, batch_norm=batch_norm,
        validate_args=validate_args, dtype=dtype, coupling=coupling, num_bins=SPLINE_BINS,
        spline_bound=SPLINE_BOUND, **condition_args)
  suffix = ("-batchnorm" if batch_norm else "") + ("" if coupling == "affine" else f"-{coupling}")
  return flow_case("realnvp", f"{num_scales}scales{suffix}", make_flow, event_shape,
                   seed=num_scales, condition=condition)


def glow_case(event_shape, num_levels, num_steps, coupling_network="glow", condition=None,
              coupling="affine"):
  """A randomised `Glow` with 4 filters per coupling network.

  Randomised less than Real NVP: a sigmoid scale can shrink (so sampling can expand) without
  bound, and larger random weights overflow a few steps down the flow.
  """
  def make_flow(dtype, validate_args, **condition_args):
    return tfp_realnvp.Glow(
        event_shape, num_levels=num_levels, num_steps=num_steps, num_filters=4,
        coupling_network=coupling_network, validate_args=validate_args, dtype=dtype,
        coupling=coupling, num_bins=SPLINE_BINS, spline_bound=SPLINE_BOUND, **condition_args)
  suffix = "" if coupling == "affine" else f"-{coupling}"
  return flow_case(f"glow-{coupling_network}", f"{num_levels}levels-{num_steps}steps{suffix}",
                   make_flow, event_shape, seed=num_levels + 10, condition=condition,
                   stddev=0.05)


def split_prior_case(event_shape, conditional_size=None):
  def build(dtype="float64", validate_args=False):
    input_shape, channels = rb.ChannelMask(0).conditioner_shape(event_shape)
    network = tfp_realnvp.networks.SplitPriorNetwork(channels, conditional_size=conditional_size,
                                                     dtype=dtype)
    network.build((None,) + input_shape)
    return rb.SplitPrior(randomize(network, seed=6), event_shape=event_shape,
                         validate_args=validate_args)
  prefix = "conditional-" if conditional_size else ""
  return Case(f"{prefix}split-prior-{'x'.join(map(str, event_shape))}", build, event_shape,
              bijector_kwargs=vector_condition if conditional_size else no_condition)


CASES = [
    coupling_case("checkerboard", 0, (4, 4, 2)),
    coupling_case("checkerboard", 1, (5, 3, 2)),
    coupling_case("channel", 0, (4, 4, 3)),
    coupling_case("channel", 1, (4, 4, 3)),
    coupling_case("checkerboard", 0, (4, 4, 2), kind="additive"),
    coupling_case("channel", 1, (4, 4, 4), kind="additive"),
    coupling_case("checkerboard", 0, (4, 4, 2), kind="spline"),
    coupling_case("checkerboard", 1, (5, 3, 2), kind="spline"),
    coupling_case("channel", 0, (4, 4, 3), kind="spline"),
    coupling_case("channel", 1, (1, 1, 5), kind="spline"),  # A vector as a 1x1 image.
    coupling_case("checkerboard", 1, (4, 4, 2), kind="spline", conditional_size=K),
    squeeze_case((4, 6, 2)),
    factor_out_case((4, 4, 4)),
    batch_norm_case((4, 4, 3)),
    logit_case((4, 4, 2)),
    actnorm_case((4, 3, 3)),
    conv1x1_case((4, 3, 4)),
    conv1x1_case((3, 4, 4), lu=False),
    real_nvp_case((8, 8, 1), 2),
    real_nvp_case((8, 8, 1), 3),
    real_nvp_case((16, 16, 3), 2),
    real_nvp_case((16, 16, 3), 3),
    real_nvp_case((8, 8, 2), 2, batch_norm=True),
    real_nvp_case((8, 8, 1), 2, coupling="spline"),
    coupling_case("checkerboard", 1, (4, 4, 2), conditional_size=K),
    real_nvp_case((8, 8, 1), 2, batch_norm=True, condition="vectors"),
    real_nvp_case((8, 8, 1), 3, condition="vectors"),
    real_nvp_case((8, 8, 1), 2, condition="labels"),
    split_prior_case((4, 4, 4)),
    split_prior_case((4, 4, 3), conditional_size=K),
    glow_case((8, 8, 1), 2, 2),
    glow_case((4, 4, 3), 1, 1, coupling_network="resnet"),
    glow_case((8, 8, 1), 2, 1, condition="labels"),
    glow_case((8, 8, 1), 2, 2, coupling="spline"),
    glow_case((4, 4, 3), 1, 1, coupling_network="resnet", coupling="spline",
              condition="vectors"),
]


@pytest.fixture(params=CASES, ids=repr)
def case(request):
  return request.param


def test_log_det_matches_autodiff_jacobian(case):
  bijector = case.build()
  kwargs = case.bijector_kwargs((), np.float64, seed=1)  # The condition of one event.
  z = normal(case.event_shape, seed=1)
  fldj = bijector.forward_log_det_jacobian(fresh(z), event_ndims=3, **kwargs).numpy()
  assert_close_relative(
      fldj, autodiff_log_abs_det(lambda t: bijector.forward(t, **kwargs), z), 1e-8)

  x = bijector.forward(fresh(z), **kwargs)
  ildj = bijector.inverse_log_det_jacobian(fresh(x), event_ndims=3, **kwargs).numpy()
  assert_close_relative(
      ildj, autodiff_log_abs_det(lambda t: bijector.inverse(t, **kwargs), fresh(x)), 1e-8)
  assert_close_relative(fldj, -ildj, 1e-10)
  if not bijector.is_constant_jacobian:
    assert abs(fldj) > 1e-3, "the randomised bijector should not be volume preserving"


def test_round_trips_without_cache(case):
  bijector = case.build()
  kwargs = case.bijector_kwargs((3,), np.float64, seed=2)  # One condition per example.
  z = normal((3,) + case.event_shape, seed=2)
  x = bijector.forward(fresh(z), **kwargs)
  np.testing.assert_allclose(bijector.inverse(fresh(x), **kwargs).numpy(), z.numpy(), rtol=0,
                             atol=1e-10)
  data = case.sample_data(x.shape, seed=3)
  latent = bijector.inverse(fresh(data), **kwargs)
  np.testing.assert_allclose(bijector.forward(fresh(latent), **kwargs).numpy(), data.numpy(),
                             rtol=0, atol=1e-10)
  if x.shape == z.shape:  # The randomised flow must really move its input.
    assert np.max(np.abs(x.numpy() - z.numpy())) > 1e-3
  if kwargs:  # And another condition must give another map, in both directions.
    other = case.bijector_kwargs((3,), np.float64, seed=4)
    assert np.max(np.abs(bijector.forward(fresh(z), **other).numpy() - x.numpy())) > 1e-3
    assert np.max(np.abs(bijector.inverse(fresh(data), **other).numpy() - latent.numpy())) > 1e-3


@pytest.mark.parametrize("batch_shape", [(), (2,), (2, 3)], ids=str)
def test_shapes(case, batch_shape):
  bijector = case.build()
  event = tf.TensorShape(case.event_shape)
  data_event = bijector.forward_event_shape(event)
  assert bijector.inverse_event_shape(data_event) == event
  assert list(bijector.forward_event_shape_tensor(case.event_shape).numpy()) == data_event
  assert list(bijector.inverse_event_shape_tensor(data_event).numpy()) == list(event)

  kwargs = case.bijector_kwargs((), np.float64, seed=4)  # A single condition for all examples.
  z = normal(batch_shape + case.event_shape, seed=4)
  x = bijector.forward(z, **kwargs)
  assert x.shape == batch_shape + data_event
  fldj = bijector.forward_log_det_jacobian(z, event_ndims=3, **kwargs)
  assert fldj.shape == batch_shape
  z_back = bijector.inverse(fresh(x), **kwargs)
  assert z_back.shape == z.shape
  assert bijector.inverse_log_det_jacobian(fresh(x), event_ndims=3, **kwargs).shape == batch_shape
  # Extra event dimensions are summed over, as for any TFP bijector.
  if batch_shape:
    ldj4 = bijector.forward_log_det_jacobian(fresh(z), event_ndims=4, **kwargs)
    assert ldj4.shape == batch_shape[:-1]
  # The single condition acts as that condition given to every example.
  per_example = {name: tf.broadcast_to(value, batch_shape + tuple(value.shape))
                 for name, value in kwargs.items()}
  if per_example:
    np.testing.assert_allclose(bijector.forward(fresh(z), **per_example).numpy(), x.numpy(),
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        bijector.forward_log_det_jacobian(fresh(z), event_ndims=3, **per_example).numpy(),
        fldj.numpy(), rtol=0, atol=1e-10)


def test_eager_function_and_xla_agree(case):
  bijector = case.build()
  kwargs = case.bijector_kwargs((2,), np.float64, seed=5)
  z = normal((2,) + case.event_shape, seed=5)
  x = bijector.forward(fresh(z), **kwargs)

  def both_ways(z, x, kwargs):
    return (bijector.forward(z, **kwargs),
            bijector.forward_log_det_jacobian(z, event_ndims=3, **kwargs),
            bijector.inverse(x, **kwargs),
            bijector.inverse_log_det_jacobian(x, event_ndims=3, **kwargs))

  def unknown_batch_size(t):
    return tf.TensorSpec([None] + t.shape[1:].as_list(), t.dtype)

  # Traced with an unknown batch size, so that shapes (and conditions) broadcast dynamically.
  signature = tf.nest.map_structure(unknown_batch_size, [z, x, kwargs])
  eager = both_ways(fresh(z), fresh(x), kwargs)
  for jit in (False, True):
    compiled = tf.function(both_ways, jit_compile=jit, input_signature=signature)(
        fresh(z), fresh(x), kwargs)
    for a, b in zip(eager, compiled, strict=True):
      np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-10)


def test_float32_follows_input_dtype(case):
  bijector = case.build(dtype="float32")
  kwargs = case.bijector_kwargs((2,), np.float32, seed=6)
  z = normal((2,) + case.event_shape, seed=6, dtype=np.float32)
  x = bijector.forward(z, **kwargs)
  ldj = bijector.forward_log_det_jacobian(z, event_ndims=3, **kwargs)
  assert x.dtype == tf.float32 and ldj.dtype == tf.float32
  np.testing.assert_allclose(bijector.inverse(fresh(x), **kwargs).numpy(), z.numpy(), atol=1e-4)


def test_rejects_wrong_rank_and_dtype(case):
  bijector = case.build()
  kwargs = case.bijector_kwargs((), np.float64, seed=7)
  if case.image_event:
    with pytest.raises(ValueError, match="rank"):
      bijector.forward(tf.zeros(case.event_shape[1:], tf.float64), **kwargs)
  with pytest.raises(TypeError, match="floating-point"):
    bijector.forward(tf.zeros((2,) + case.event_shape, tf.int32), **kwargs)
  with pytest.raises(TypeError, match="floating-point"):
    bijector.inverse(tf.zeros((2,) + tuple(bijector.forward_event_shape(case.event_shape)),
                              tf.int32), **kwargs)


def test_validate_args_rejects_non_finite_values(case):
  bijector = case.build(validate_args=True)
  kwargs = case.bijector_kwargs((2,), np.float64, seed=8)
  z = normal((2,) + case.event_shape, seed=7).numpy()
  z[1, 0, 0, 0] = np.nan
  with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or Inf"):
    bijector.forward(tf.constant(z), **kwargs)
  x = case.sample_data((2,) + tuple(bijector.forward_event_shape(case.event_shape)),
                       seed=8).numpy()
  x[0, -1, -1, -1] = np.inf
  with pytest.raises(tf.errors.InvalidArgumentError, match="NaN or Inf"):
    bijector.inverse_log_det_jacobian(tf.constant(x), event_ndims=3, **kwargs)
