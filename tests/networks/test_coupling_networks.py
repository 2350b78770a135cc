"""`COUPLING_NETWORKS`: every registered coupling network keeps the registry's contract.

A registered class is built as `cls(output_channels, num_filters=F, conditional_size=K,
params_per_unit=P, dtype=..., name=...)`, called as `layer(h, conditional_input=c)`, returns
`(shift, log_scale)` or raw parameters `[N, h, w, c_out, P]`, and starts with a zero last layer.
"""

import keras
import numpy as np
import pytest

import tfp_realnvp
from tfp_realnvp import networks

from helpers import normal, randomize

INPUT = (5, 4, 3, 2)  # [N, h, w, c_in]


def test_the_package_registers_its_networks():
  assert networks.COUPLING_NETWORKS["glow"] is networks.GlowCouplingNetwork
  assert networks.COUPLING_NETWORKS["resnet"] is networks.CouplingResNet
  with pytest.raises(ValueError, match="Unknown coupling network 'unet'; the registered ones "
                                       "are 'glow', 'resnet'"):
    networks.COUPLING_NETWORKS.lookup("unet")
  with pytest.raises(ValueError, match="Unknown coupling network 'unet'"):
    tfp_realnvp.Glow((8, 8, 1), num_steps=1, coupling_network="unet")


def build(name, **kwargs):
  network = networks.COUPLING_NETWORKS[name](3, num_filters=4, dtype="float64", name=name,
                                             **kwargs)
  network.build((None,) + INPUT[1:])
  return network


@pytest.mark.parametrize("name", list(networks.COUPLING_NETWORKS))
def test_a_new_network_returns_the_pair_or_raw_parameters_from_a_zero_last_layer(name):
  x = normal(INPUT, seed=1)
  shift, log_scale = build(name, conditional_size=None, params_per_unit=None)(x)
  assert shift.shape == log_scale.shape == INPUT[:-1] + (3,)
  np.testing.assert_array_equal(shift.numpy(), 0.0)
  # A constant log-scale: zero for the ResNet, Glow's log(sigmoid(2)).
  assert np.ptp(log_scale.numpy()) == 0.0
  raw = build(name, params_per_unit=7)(x)
  assert raw.shape == INPUT[:-1] + (3, 7) and raw.dtype == "float64"
  np.testing.assert_array_equal(raw.numpy(), 0.0)  # Raw zeros: the identity of a transform.


@pytest.mark.parametrize("name", list(networks.COUPLING_NETWORKS))
def test_a_conditional_network_depends_on_its_condition_and_saves_its_config(name):
  network = randomize(build(name, conditional_size=2, params_per_unit=7), seed=2)
  x = normal(INPUT, seed=3)
  first = network(x, conditional_input=normal((5, 2), seed=4)).numpy()
  second = network(x, conditional_input=normal((5, 2), seed=5)).numpy()
  assert first.shape == INPUT[:-1] + (3, 7)
  assert np.max(np.abs(first - second)) > 1e-3
  with pytest.raises(ValueError, match="conditional_input"):
    network(x)
  clone = keras.layers.deserialize(keras.layers.serialize(network))
  assert type(clone) is type(network)  # pylint: disable=unidiomatic-typecheck
  assert clone.get_config() == network.get_config()
  assert (clone.conditional_size, clone.params_per_unit) == (2, 7)
