"""`Scan` and `StackedParameters`: the steps of a level as one loop, equal to the unrolled steps."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_realnvp import _keras_internals
from tfp_realnvp import bijectors as rb
from tfp_realnvp import errors
from tfp_realnvp import networks

from helpers import normal

SHAPE = (4, 4, 4)
STEPS = 3


def _actnorm():
  layer = rb.ActNormParameters(dtype="float64")
  layer.build((None,) + SHAPE)
  return layer


def _step_layer():
  """A step of batch-normalised ResNet couplings: state that training updates every step."""
  network = networks.CouplingResNet(2, num_filters=4, num_blocks=1, dtype="float64")
  network.build((None, 4, 4, 2))
  return network


def test_stacked_variables_hold_every_copy_along_a_leading_axis():
  keras.utils.set_random_seed(3)
  copies = [_step_layer() for _ in range(STEPS)]
  keras.utils.set_random_seed(3)
  stacked = rb.StackedParameters(_step_layer, STEPS)
  assert len(stacked.stacked) == len(copies[0].weights)
  assert stacked.trainable_weights and stacked.non_trainable_weights
  for index, variable in enumerate(stacked.stacked):
    assert tuple(variable.shape) == (STEPS,) + tuple(copies[0].weights[index].shape)
    assert variable.trainable == copies[0].weights[index].trainable
    for k, copy in enumerate(copies):  # Slice k is the k-th copy, initialised as it was.
      np.testing.assert_array_equal(variable.numpy()[k], copy.weights[index].numpy())
  # The template is not the layer's: only the stacked variables are trained and saved.
  assert {id(v) for v in stacked.weights} == {id(v) for v in stacked.stacked}


def test_a_scan_is_the_chain_of_its_steps_with_the_same_weights():
  stacked = rb.StackedParameters(_actnorm, STEPS)
  rng = np.random.default_rng(0)
  for variable in stacked.stacked:
    variable.assign(np.ones(variable.shape, bool) if variable.dtype == "bool"
                    else 0.3 * rng.standard_normal(variable.shape))
  scan = rb.Scan(rb.ActNorm(stacked.template), stacked)
  layers = [_actnorm() for _ in range(STEPS)]
  for k, layer in enumerate(layers):
    for own, shared in zip(layer.weights, stacked.stacked, strict=True):
      own.assign(shared.numpy()[k])
  chain = tfp.bijectors.Chain([rb.ActNorm(layer) for layer in layers])  # Step 0 inverts first.
  x = normal((5,) + SHAPE, seed=1)
  for method in ("inverse", "forward"):
    np.testing.assert_allclose(getattr(scan, method)(tf.identity(x)),
                               getattr(chain, method)(tf.identity(x)), rtol=1e-12, atol=1e-12)
    log_det = f"{method}_log_det_jacobian"
    np.testing.assert_allclose(getattr(scan, log_det)(tf.identity(x), 3),
                               getattr(chain, log_det)(tf.identity(x), 3), rtol=1e-12)
  with tf.GradientTape(persistent=True) as tape:
    losses = [tf.reduce_sum(tf.sin(b.inverse(tf.identity(x))))
              + tf.reduce_sum(b.inverse_log_det_jacobian(tf.identity(x), 3))
              for b in (scan, chain)]
  for index, variable in enumerate(stacked.stacked[:2]):  # log_scale, shift.
    mine = tf.convert_to_tensor(tape.gradient(losses[0], variable)).numpy()
    for k, layer in enumerate(layers):
      np.testing.assert_allclose(mine[k], tape.gradient(losses[1], layer.weights[index]),
                                 rtol=1e-10, atol=1e-12)


def test_each_step_initialises_its_own_actnorm_from_its_own_input():
  stacked = rb.StackedParameters(_actnorm, STEPS)
  scan = rb.Scan(rb.ActNorm(stacked.template), stacked)
  x = 2.0 + 3.0 * normal((64,) + SHAPE, seed=2)
  with _keras_internals.training_context(True):
    z = tf.function(lambda x: scan.inverse(x))(x)
  log_scale, shift, initialized = (v.numpy() for v in stacked.stacked)
  assert initialized.all()
  # The first step normalises the data; the later ones see unit-variance inputs already.
  np.testing.assert_allclose(np.mean(z, axis=(0, 1, 2)), 0.0, atol=1e-8)
  np.testing.assert_allclose(np.std(z, axis=(0, 1, 2)), 1.0, atol=1e-4)
  assert np.all(np.abs(shift[0] + 2.0) < 0.5) and np.all(np.abs(shift[1:]) < 1e-8)
  assert np.all(log_scale[0] < -0.5) and np.all(np.abs(log_scale[1:]) < 1e-4)
  # Initialised once: a second batch leaves the parameters as they are.
  with _keras_internals.training_context(True):
    scan.inverse(10.0 * normal((8,) + SHAPE, seed=3))
  np.testing.assert_array_equal(stacked.stacked[0].numpy(), log_scale)


def test_a_scanned_actnorm_computes_its_moments_only_in_the_initialising_branch():
  # The moments belong to a tf.cond's branch: once initialised, a training step skips them.
  stacked = rb.StackedParameters(_actnorm, STEPS)
  scan = rb.Scan(rb.ActNorm(stacked.template), stacked)
  with _keras_internals.training_context(True):
    traced = tf.function(scan.inverse).get_concrete_function(
        tf.TensorSpec((None,) + SHAPE, "float64"))
  functions = {f.signature.name: {node.op for node in f.node_def}
               for f in traced.graph.as_graph_def().library.function}
  with_moments = [name for name, ops in functions.items() if "SquaredDifference" in ops]
  assert with_moments and not any("while_body" in name for name in with_moments), functions
  assert any("If" in ops or "StatelessIf" in ops
             for name, ops in functions.items() if "while_body" in name)


def test_each_step_updates_its_own_moving_averages():
  stacked = rb.StackedParameters(_step_layer, STEPS)
  coupling = rb.Coupling(stacked.template, "affine", mask="channel", parity=0,
                         event_shape=SHAPE)
  scan = rb.Scan(coupling, stacked)
  moving = [v for v in stacked.stacked if "moving_mean" in v.path]
  before = [v.numpy().copy() for v in moving]
  with _keras_internals.training_context(True):
    scan.inverse(normal((16,) + SHAPE, seed=4))
  for old, variable in zip(before, moving, strict=True):
    changed = np.abs(variable.numpy() - old).reshape(STEPS, -1).max(axis=1)
    assert np.all(changed > 0), changed  # Every step's slice, not only one.
  # Outside training, the moving averages stay as they are.
  frozen = [v.numpy().copy() for v in moving]
  scan.inverse(normal((16,) + SHAPE, seed=5))
  for old, variable in zip(frozen, moving, strict=True):
    np.testing.assert_array_equal(variable.numpy(), old)


def _traced_gradient(num_steps):
  """The traced gradient of a scan of batch-normalised couplings (its log-det and output)."""
  stacked = rb.StackedParameters(_step_layer, num_steps)
  scan = rb.Scan(rb.Coupling(stacked.template, "affine", mask="channel", parity=0,
                             event_shape=SHAPE), stacked)

  def loss(x):
    with tf.GradientTape() as tape:
      value = tf.reduce_sum(scan.inverse_log_det_jacobian(x, 3)) + tf.reduce_sum(
          scan.inverse(x))
    return tape.gradient(value, stacked.trainable_weights)

  return tf.function(loss).get_concrete_function(tf.TensorSpec((None,) + SHAPE, "float64"))


def test_the_traced_graph_does_not_grow_with_the_number_of_steps():
  def op_count(num_steps):
    return len(_traced_gradient(num_steps).graph.get_operations())

  assert op_count(4 * STEPS) == op_count(STEPS)


def test_the_gradient_of_a_step_is_its_slice_not_a_dense_sum_per_step():
  # A gather of slice k in the loop would have a gradient densified to [K, ...] and added up
  # at every step (UnsortedSegmentSum): K times the work of the slices.
  graph_def = _traced_gradient(STEPS).graph.as_graph_def()
  op_types = {node.op for node in graph_def.node} | {
      node.op for function in graph_def.library.function for node in function.node_def}
  assert "While" in op_types or "StatelessWhile" in op_types
  assert not op_types & {"ResourceGather", "GatherV2", "UnsortedSegmentSum"}, op_types


def test_the_loop_reads_one_list_per_dtype_not_one_per_variable():
  # Each list is a loop variable of the forward loop and an accumulator of the gradient's.
  function = _traced_gradient(STEPS)
  stacked_dtypes = {v.dtype for v in function.graph.variables}
  operations = function.graph.get_operations()
  loops = [op for op in operations  # The forward loops (not their gradients').
           if op.type in ("While", "StatelessWhile") and "gradient" not in op.name]
  lists = [op for op in operations if op.type == "TensorListFromTensor"]
  assert len(function.graph.variables) > 10 and len(stacked_dtypes) == 1 and loops
  assert len(lists) == len(loops) * len(stacked_dtypes)


def test_bad_arguments_are_named():
  stacked = rb.StackedParameters(_actnorm, 2)
  with pytest.raises(errors.InvalidTypeError, match="StackedParameters"):
    rb.Scan(rb.ActNorm(stacked.template), _actnorm())
  with pytest.raises(errors.InvalidTypeError, match="tfp.bijectors.Bijector"):
    rb.Scan(stacked.template, stacked)
  with pytest.raises(errors.InvalidValueError, match="num_steps must be a positive integer"):
    rb.StackedParameters(_actnorm, 0)
