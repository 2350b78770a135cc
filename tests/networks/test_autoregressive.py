"""`AutoregressiveNetwork`: the Keras 3 drop-in for TFP's `tfb.AutoregressiveNetwork`, its
output, autoregressive property, arguments and errors."""

import numpy as np
import pytest
import tensorflow as tf

from tfp_realnvp import networks

from helpers import normal, randomize


@pytest.mark.parametrize("params", [1, 3])
def test_output_is_event_by_params_and_autoregressive(params):
  net = networks.AutoregressiveNetwork(params, event_shape=4, hidden_units=[16, 16],
                                       activation="tanh", input_order="right-to-left",
                                       dtype="float64")
  randomize(net, seed=1)
  x = normal((6, 4), seed=2)
  with tf.GradientTape() as tape:
    tape.watch(x)
    out = net(x)
  assert out.shape == (6, 4, params)
  jacobian = tape.batch_jacobian(out, x).numpy()  # [6, 4 (output), params, 4 (input)]
  depends = np.any(jacobian != 0, axis=(0, 2))
  degrees = net.input_degrees
  np.testing.assert_array_equal(depends, degrees[None, :] < degrees[:, None])
  assert net(x[0]).shape == (4, params) and net(tf.zeros((2, 3, 4), tf.float64)).shape == (
      2, 3, 4, params)


def test_event_shape_inferred_and_masked_kernels_start_at_zero():
  net = networks.AutoregressiveNetwork(2, hidden_units=[8], kernel_regularizer="l2")
  assert net.event_shape is None
  net(tf.zeros((1, 3)))
  assert net.event_shape == (3,) and net.get_config()["event_shape"] == [3]
  for kernel, mask in zip([net._hidden_kernels[0], net.output_kernel], net.masks, strict=True):
    assert np.all(kernel.numpy()[~mask] == 0) and np.all(kernel.numpy()[mask] != 0)
  assert len(net.losses) == 2  # One L2 term per masked kernel.


@pytest.mark.parametrize("layers, count", [("all_layers", 9), ("first_layer", 7)])
def test_conditional_input_layers(layers, count):
  net = networks.AutoregressiveNetwork(2, event_shape=[3], conditional=True,
                                       conditional_event_shape=[2], hidden_units=[8, 8],
                                       conditional_input_layers=layers)
  out = net(tf.ones((5, 3)), conditional_input=tf.ones((2,)))
  assert out.shape == (5, 3, 2) and len(net.trainable_variables) == count
  no_bias = networks.AutoregressiveNetwork(2, event_shape=3, use_bias=False, hidden_units=[4])
  no_bias(tf.ones((1, 3)))
  assert len(no_bias.weights) == 2


@pytest.mark.parametrize("kwargs, match", [
    ({"params": 0}, "params"),
    ({"event_shape": [2, 3]}, "rank-1"),
    ({"conditional": True}, "conditional_event_shape"),
    ({"conditional_event_shape": 2}, "conditional is False"),
    ({"conditional": True, "conditional_event_shape": 2, "conditional_input_layers": "all"},
     "conditional_input_layers"),
    ({"hidden_units": 8}, "hidden_units"),
], ids=lambda v: str(v) if isinstance(v, dict) else "")
def test_bad_arguments(kwargs, match):
  kwargs = {"params": 2, "event_shape": 3, **kwargs}
  with pytest.raises(ValueError, match=match):
    networks.AutoregressiveNetwork(**kwargs)


def test_bad_call_inputs():
  conditional = networks.AutoregressiveNetwork(2, event_shape=3, conditional=True,
                                               conditional_event_shape=2)
  with pytest.raises(ValueError, match=r"conditional_event_shape=\[2\].*conditional_input"):
    conditional(tf.ones((1, 3)))
  with pytest.raises(ValueError, match="conditional size"):
    conditional(tf.ones((1, 3)), conditional_input=tf.ones((1, 3)))
  unconditional = networks.AutoregressiveNetwork(2, event_shape=3)
  with pytest.raises(ValueError, match="without conditional=True"):
    unconditional(tf.ones((1, 3)), conditional_input=tf.ones((1, 2)))
  with pytest.raises(ValueError, match=r"last dimension of x \(4"):
    unconditional(tf.ones((1, 4)))
  checked = networks.AutoregressiveNetwork(2, event_shape=3, validate_args=True)
  with pytest.raises(tf.errors.InvalidArgumentError, match="x has a NaN"):
    checked(tf.constant([[0., np.nan, 0.]]))
