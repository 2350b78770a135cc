"""The bijector conformance checks, their cases and case builders (tests/bijectors).

A `Case` builds one bijector in float64 (or float32) with its networks randomised away from
the identity; every function of `CHECKS` takes a case and checks one part of TFP's bijector
contract: log-determinants against the autodiff Jacobian, round trips with the cache bypassed,
event shapes over several batch shapes, equal numbers in eager / tf.function / XLA, the input's
dtype, clear errors on bad input, and `validate_args`. tests/bijectors/test_conformance.py runs
them over every bijector that `tfp_realnvp.bijectors` exports; a test of a new extension (e.g.
a coupling transform) runs them over cases of its own.

Conditional cases (a coupling or a flow conditioned on vectors or on class labels) take their
condition by TFP's keyword convention, `bijector.forward(z, conditional_input=c)`: every check
runs for a fixed condition, with one condition per example (a single one, broadcast, where the
check is about shapes), and the round trips also check that another condition gives another map.
"""

import dataclasses
from typing import Callable

import numpy as np
import pytest
import tensorflow as tf

import tfp_realnvp
from tfp_realnvp import bijectors as rb
from tfp_realnvp.bijectors.glow import StepLayers

from helpers import assert_close_relative, autodiff_log_abs_det, fresh, normal, randomize
from helpers import resnet_conditioner, uniform

K = 3  # Size of the condition vectors, and number of classes, of the conditional cases.

# Known exceptions to single checks, by bijector class, with the reason.
ANY_EVENT_RANK = {
    "Logit": "elementwise: it takes events of any rank, so a wrong rank is no error",
}


def no_condition(batch_shape, dtype, seed):
  del batch_shape, dtype, seed
  return {}


def vector_condition(batch_shape, dtype, seed):
  return {"conditional_input": normal(tuple(batch_shape) + (K,), seed=seed + 100, dtype=dtype)}


@dataclasses.dataclass
class Case:
  name: str
  bijector: type  # The class of the bijector that `build` returns.
  build: Callable  # (dtype, validate_args) -> bijector
  event_shape: tuple  # shape of the events `forward` takes (the latent side)
  sample_data: Callable = normal  # (shape, seed) -> valid input of `inverse`
  # (batch_shape, numpy dtype, seed) -> keyword arguments of every call of the bijector built
  # last in that dtype: a condition per example of that batch shape, for a conditional case.
  bijector_kwargs: Callable = no_condition

  def __repr__(self):
    return self.name


def _shape_name(event_shape):
  return "x".join(map(str, event_shape))


def _conditioner(mask, parity, event_shape, dtype, conditional_size=None, params_per_unit=None):
  """A randomised `CouplingResNet` for a coupling of `mask` and `parity` on `event_shape`."""
  mask_class = rb.CheckerboardMask if mask == "checkerboard" else rb.ChannelMask
  input_shape, channels = mask_class(parity).conditioner_shape(event_shape)
  return resnet_conditioner(input_shape, channels, dtype, seed=parity,
                            conditional_size=conditional_size, params_per_unit=params_per_unit)


SPLINE_BINS = 5
SPLINE_BOUND = 2.0  # Small enough that some of the normal test inputs fall outside [-B, B].
# The options of every transform's constructor (each takes those it accepts, see
# `make_transform`): small splines, whose bound some test inputs fall outside.
TRANSFORM_OPTIONS = {"num_bins": SPLINE_BINS, "bound": SPLINE_BOUND}


def coupling_case(transform, mask, parity, event_shape, conditional_size=None):
  """A `Coupling` of a registered `transform` (a name) or a `CouplingTransform` instance.

  Its conditioner is the package's `CouplingResNet` built for the transform's
  `params_per_unit` (the `(shift, log_scale)` pair for `None`), randomised, so that any
  transform gets the checks without a case of its own.
  """
  def build(dtype="float64", validate_args=False):
    instance = rb.make_transform(transform, **TRANSFORM_OPTIONS)
    conditioner = _conditioner(mask, parity, event_shape, dtype, conditional_size,
                               params_per_unit=instance.params_per_unit)
    return rb.Coupling(conditioner, instance, mask=mask, parity=parity,
                       event_shape=event_shape, validate_args=validate_args)
  label = transform if isinstance(transform, str) else type(transform).__name__
  prefix = "conditional-" if conditional_size else ""
  return Case(f"{prefix}coupling-{label}-{mask}-{parity}-{_shape_name(event_shape)}", rb.Coupling,
              build, event_shape,
              bijector_kwargs=vector_condition if conditional_size else no_condition)


def transform_cases(transform):
  """The `Coupling` cases of one transform: both masks and parities, odd sizes, a condition."""
  return [
      coupling_case(transform, "checkerboard", 0, (4, 4, 2)),
      coupling_case(transform, "checkerboard", 1, (5, 3, 2)),
      coupling_case(transform, "channel", 0, (4, 4, 3)),
      coupling_case(transform, "channel", 1, (4, 4, 3)),
      coupling_case(transform, "channel", 0, (4, 4, 3), conditional_size=K),
  ]


def affine_coupling_case(mask, parity, event_shape, additive=False, conditional_size=None):
  """An `AffineCoupling` (NICE's additive one if `additive`) with a randomised network."""
  def build(dtype="float64", validate_args=False):
    conditioner = _conditioner(mask, parity, event_shape, dtype, conditional_size)
    return rb.AffineCoupling(conditioner, mask=mask, parity=parity, additive=additive,
                             event_shape=event_shape, validate_args=validate_args)
  kind = "additive" if additive else "affine"
  prefix = "conditional-" if conditional_size else ""
  return Case(f"{prefix}{kind}-{mask}-{parity}-{_shape_name(event_shape)}", rb.AffineCoupling,
              build, event_shape,
              bijector_kwargs=vector_condition if conditional_size else no_condition)


def spline_coupling_case(mask, parity, event_shape, conditional_size=None):
  """A `SplineCoupling` of `SPLINE_BINS` bins on `[-SPLINE_BOUND, SPLINE_BOUND]`."""
  def build(dtype="float64", validate_args=False):
    conditioner = _conditioner(mask, parity, event_shape, dtype, conditional_size,
                               params_per_unit=rb.spline_params_per_unit(SPLINE_BINS))
    return rb.SplineCoupling(conditioner, mask=mask, parity=parity, num_bins=SPLINE_BINS,
                             bound=SPLINE_BOUND, event_shape=event_shape,
                             validate_args=validate_args)
  prefix = "conditional-" if conditional_size else ""
  return Case(f"{prefix}spline-{mask}-{parity}-{_shape_name(event_shape)}", rb.SplineCoupling,
              build, event_shape,
              bijector_kwargs=vector_condition if conditional_size else no_condition)


def squeeze_case(event_shape):
  def build(dtype="float64", validate_args=False):
    del dtype
    return rb.Squeeze(event_shape, validate_args=validate_args)
  return Case(f"squeeze-{_shape_name(event_shape)}", rb.Squeeze, build, event_shape)


def factor_out_case(event_shape):
  def build(dtype="float64", validate_args=False):
    kept = tuple(event_shape[:2]) + (event_shape[2] - event_shape[2] // 2,)
    input_shape, channels = rb.ChannelMask(0).conditioner_shape(kept)
    inner = rb.AffineCoupling(resnet_conditioner(input_shape, channels, dtype), mask="channel",
                              event_shape=kept, validate_args=validate_args)
    return rb.FactorOut(inner, validate_args=validate_args)
  return Case(f"factor-out-{_shape_name(event_shape)}", rb.FactorOut, build, event_shape)


def batch_norm_case(event_shape):
  def build(dtype="float64", validate_args=False):
    statistics = rb.BatchNormStatistics(dtype=dtype)
    statistics.build((None,) + event_shape)
    return rb.BatchNorm(randomize(statistics, seed=3), validate_args=validate_args)
  return Case(f"batch-norm-{_shape_name(event_shape)}", rb.BatchNorm, build, event_shape)


def actnorm_case(event_shape):
  def build(dtype="float64", validate_args=False):
    layer = rb.ActNormParameters(dtype=dtype)
    layer.build((None,) + event_shape)
    randomize(layer, seed=4)
    assert layer.initialized.numpy()  # Randomised, so it must never initialise again.
    return rb.ActNorm(layer, validate_args=validate_args)
  return Case(f"actnorm-{_shape_name(event_shape)}", rb.ActNorm, build, event_shape)


def conv1x1_case(event_shape, lu=True):
  def build(dtype="float64", validate_args=False):
    layer = rb.InvertibleConv1x1Parameters(lu=lu, seed=5, dtype=dtype)
    layer.build((None,) + event_shape)
    randomize(layer, seed=5)  # The learned factors; the permutation and signs stay.
    return rb.InvertibleConv1x1(layer, validate_args=validate_args)
  kind = "lu" if lu else "full"
  return Case(f"conv1x1-{kind}-{_shape_name(event_shape)}", rb.InvertibleConv1x1, build,
              event_shape)


def logit_case(event_shape):
  def build(dtype="float64", validate_args=False):
    del dtype
    return rb.Logit(alpha=0.05, validate_args=validate_args)
  return Case(f"logit-{_shape_name(event_shape)}", rb.Logit, build, event_shape,
              sample_data=uniform)


def split_prior_case(event_shape, conditional_size=None):
  def build(dtype="float64", validate_args=False):
    input_shape, channels = rb.ChannelMask(0).conditioner_shape(event_shape)
    network = tfp_realnvp.networks.SplitPriorNetwork(channels, conditional_size=conditional_size,
                                                     dtype=dtype)
    network.build((None,) + input_shape)
    return rb.SplitPrior(randomize(network, seed=6), event_shape=event_shape,
                         validate_args=validate_args)
  prefix = "conditional-" if conditional_size else ""
  return Case(f"{prefix}split-prior-{_shape_name(event_shape)}", rb.SplitPrior, build,
              event_shape, bijector_kwargs=vector_condition if conditional_size else no_condition)


def conditional_chain_case(event_shape):
  """`ConditionalChain([coupling_1, batch_norm, coupling_0])`: conditional couplings around a
  batch norm, which must not be handed the condition (its docstring's example)."""
  def build(dtype="float64", validate_args=False):
    couplings = [
        rb.AffineCoupling(_conditioner("checkerboard", parity, event_shape, dtype, K),
                          mask="checkerboard", parity=parity, event_shape=event_shape,
                          validate_args=validate_args)
        for parity in (1, 0)]
    statistics = rb.BatchNormStatistics(dtype=dtype)
    statistics.build((None,) + event_shape)
    batch_norm = rb.BatchNorm(randomize(statistics, seed=7), validate_args=validate_args)
    return rb.ConditionalChain([couplings[0], batch_norm, couplings[1]],
                               validate_args=validate_args)
  return Case(f"conditional-chain-{_shape_name(event_shape)}", rb.ConditionalChain, build,
              event_shape, bijector_kwargs=vector_condition)


def flow_case(kind, details, make_flow, event_shape, seed, condition=None, stddev=0.2):
  """A randomised `FlowLayer` `make_flow(dtype, validate_args, conditional_size, num_classes)`.

  `condition` is `"vectors"` (`conditional_size=K`), `"labels"` (`num_classes=K`) or `None`;
  `stddev` the noise of `randomize`. The bijector of a flow is a `ConditionalChain`.
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
  return Case(f"{prefix}{kind}-{_shape_name(event_shape)}-{details}", rb.ConditionalChain,
              build, event_shape, bijector_kwargs=bijector_kwargs)


def real_nvp_case(event_shape, num_scales, batch_norm=False, condition=None, coupling="affine"):
  """A randomised `RealNVP`; `condition` `"vectors"` (`conditional_size=K`) or `"labels"`."""
  def make_flow(dtype, validate_args, **condition_args):
    return tfp_realnvp.RealNVP(
        event_shape, num_scales=num_scales, num_filters=4, num_blocks=1, batch_norm=batch_norm,
        validate_args=validate_args, dtype=dtype, coupling=coupling, num_bins=SPLINE_BINS,
        spline_bound=SPLINE_BOUND, **condition_args)
  label = coupling if isinstance(coupling, str) else type(coupling).__name__
  suffix = ("-batchnorm" if batch_norm else "") + ("" if coupling == "affine" else f"-{label}")
  return flow_case("realnvp", f"{num_scales}scales{suffix}", make_flow, event_shape,
                   seed=num_scales, condition=condition)


def glow_case(event_shape, num_levels, num_steps, coupling_network="glow", condition=None,
              coupling="affine", scan=True):
  """A randomised `Glow` with 4 filters per coupling network.

  Randomised less than Real NVP: a sigmoid scale can shrink (so sampling can expand) without
  bound, and larger random weights overflow a few steps down the flow.
  """
  def make_flow(dtype, validate_args, **condition_args):
    return tfp_realnvp.Glow(
        event_shape, num_levels=num_levels, num_steps=num_steps, num_filters=4,
        coupling_network=coupling_network, validate_args=validate_args, dtype=dtype,
        coupling=coupling, num_bins=SPLINE_BINS, spline_bound=SPLINE_BOUND, scan=scan,
        **condition_args)
  label = coupling if isinstance(coupling, str) else type(coupling).__name__
  suffix = ("" if coupling == "affine" else f"-{label}") + ("" if scan else "-unrolled")
  return flow_case(f"glow-{coupling_network}", f"{num_levels}levels-{num_steps}steps{suffix}",
                   make_flow, event_shape, seed=num_levels + 10, condition=condition,
                   stddev=0.05)


def scan_case(event_shape, num_steps, conditional_size=None):
  """A `Scan` of Glow's step (actnorm, 1x1 convolution, channel coupling), randomised."""
  def build(dtype="float64", validate_args=False):
    input_shape, output_channels = rb.ChannelMask(1).conditioner_shape(event_shape)

    def make_layer():
      actnorm = rb.ActNormParameters(dtype=dtype)
      actnorm.build((None,) + event_shape)
      conv = rb.InvertibleConv1x1Parameters(seed=int(np.random.randint(2 ** 31 - 1)),
                                            dtype=dtype)
      conv.build((None,) + event_shape)
      network = resnet_conditioner(input_shape, output_channels, dtype=dtype,
                                   conditional_size=conditional_size)
      return StepLayers(actnorm, conv, network)

    np.random.seed(7)
    stacked = randomize(rb.StackedParameters(make_layer, num_steps, dtype=dtype), seed=7,
                        stddev=0.1)
    template = stacked.template
    step = rb.ConditionalChain(
        [rb.ActNorm(template.actnorm), rb.InvertibleConv1x1(template.conv),
         rb.Coupling(template.network, "affine", mask="channel", parity=1,
                     event_shape=event_shape)], validate_args=validate_args)
    return rb.Scan(step, stacked, validate_args=validate_args)

  prefix = "conditional-" if conditional_size else ""
  return Case(f"{prefix}scan-{num_steps}steps-{_shape_name(event_shape)}", rb.Scan, build,
              event_shape,
              bijector_kwargs=vector_condition if conditional_size else no_condition)


# The checks: each takes a `Case`.


def check_log_det_matches_autodiff_jacobian(case):
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


def check_round_trips_without_cache(case):
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


def check_shapes(case):
  """The class, the event-shape methods, and the shapes of every call over batch shapes."""
  bijector = case.build()
  assert type(bijector) is case.bijector  # pylint: disable=unidiomatic-typecheck
  event = tf.TensorShape(case.event_shape)
  data_event = bijector.forward_event_shape(event)
  assert bijector.inverse_event_shape(data_event) == event
  assert list(bijector.forward_event_shape_tensor(case.event_shape).numpy()) == data_event
  assert list(bijector.inverse_event_shape_tensor(data_event).numpy()) == list(event)

  kwargs = case.bijector_kwargs((), np.float64, seed=4)  # A single condition for all examples.
  for batch_shape in [(), (2,), (2, 3)]:
    z = normal(batch_shape + case.event_shape, seed=4)
    x = bijector.forward(z, **kwargs)
    assert x.shape == batch_shape + data_event, batch_shape
    fldj = bijector.forward_log_det_jacobian(z, event_ndims=3, **kwargs)
    assert fldj.shape == batch_shape
    z_back = bijector.inverse(fresh(x), **kwargs)
    assert z_back.shape == z.shape
    assert bijector.inverse_log_det_jacobian(fresh(x), event_ndims=3,
                                             **kwargs).shape == batch_shape
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


def check_eager_function_and_xla_agree(case):
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


def check_float32_follows_input_dtype(case):
  bijector = case.build(dtype="float32")
  kwargs = case.bijector_kwargs((2,), np.float32, seed=6)
  z = normal((2,) + case.event_shape, seed=6, dtype=np.float32)
  x = bijector.forward(z, **kwargs)
  ldj = bijector.forward_log_det_jacobian(z, event_ndims=3, **kwargs)
  assert x.dtype == tf.float32 and ldj.dtype == tf.float32
  np.testing.assert_allclose(bijector.inverse(fresh(x), **kwargs).numpy(), z.numpy(), atol=1e-4)


def check_rejects_wrong_rank_and_dtype(case):
  bijector = case.build()
  kwargs = case.bijector_kwargs((), np.float64, seed=7)
  if case.bijector.__name__ not in ANY_EVENT_RANK:
    with pytest.raises(ValueError, match="rank"):
      bijector.forward(tf.zeros(case.event_shape[1:], tf.float64), **kwargs)
  with pytest.raises(TypeError, match="floating-point"):
    bijector.forward(tf.zeros((2,) + case.event_shape, tf.int32), **kwargs)
  with pytest.raises(TypeError, match="floating-point"):
    bijector.inverse(tf.zeros((2,) + tuple(bijector.forward_event_shape(case.event_shape)),
                              tf.int32), **kwargs)


def check_validate_args_rejects_non_finite_values(case):
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


CHECKS = [check_log_det_matches_autodiff_jacobian, check_round_trips_without_cache, check_shapes,
          check_eager_function_and_xla_agree, check_float32_follows_input_dtype,
          check_rejects_wrong_rank_and_dtype, check_validate_args_rejects_non_finite_values]
"""Every check, in the order a failing bijector is best diagnosed."""


def check_all(case):
  """Runs every check of `CHECKS` on `case` (for a test of one extension's cases)."""
  for check in CHECKS:
    check(case)
