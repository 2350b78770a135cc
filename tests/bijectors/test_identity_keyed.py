"""The package's bijectors are hashed by identity, so TFP's cache does not walk the flow."""

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

import tfp_realnvp
from tfp_realnvp import bijectors as rb


def nested_bijectors(bijector):
  """Every bijector in `bijector`'s parameters, recursively, `bijector` first."""
  found, pending = [], [bijector]
  while pending:
    current = pending.pop()
    if any(current is seen for seen in found):
      continue
    found.append(current)
    for value in tf.nest.flatten(current.parameters or {}):
      if isinstance(value, tfp.bijectors.Bijector):
        pending.append(value)
  return found


def test_hashing_a_deep_flow_hashes_no_nested_bijector(monkeypatch):
  flow = tfp_realnvp.Glow((8, 8, 1), num_levels=2, num_steps=2, num_filters=4, scan=False)
  nested = nested_bijectors(flow.bijector)
  # The package's bijectors that hold others (TFP's own `Invert` of a squeeze is in the tree).
  composite = [bijector for bijector in nested if len(nested_bijectors(bijector)) > 1
               and type(bijector).__module__.startswith("tfp_realnvp")]
  assert len(nested) >= 20 and len(composite) >= 3  # Levels and factor-outs.
  calls = []
  parameter_hash = tfp.bijectors.Bijector.__hash__
  monkeypatch.setattr(tfp.bijectors.Bijector, "__hash__",
                      lambda self: calls.append(self) or parameter_hash(self))
  for bijector in composite:
    hash(bijector)
  assert calls == []


def test_equal_only_to_itself():
  assert rb.Squeeze() == rb.Squeeze()  # No layers: TFP's equality, by parameters.
  first, second = (tfp_realnvp.RealNVP((4, 4, 1), num_scales=1, num_filters=4, num_blocks=1)
                   for _ in range(2))
  assert first.bijector == first.bijector
  assert first.bijector != second.bijector
  assert first.bijector.bijectors[0] != second.bijector.bijectors[0]
  assert len({first.bijector, first.bijector, second.bijector}) == 2
  # Two bijectors of the same layers: equal by TFP's parameters, distinct here.
  coupling = first.bijector.bijectors[0]
  twin = type(coupling)(**coupling.parameters)
  assert twin.parameters == coupling.parameters and twin != coupling


def test_the_cache_still_returns_the_input_of_a_round_trip():
  flow = tfp_realnvp.RealNVP((4, 4, 1), num_scales=1, num_filters=4, num_blocks=1)
  x = tf.constant(np.random.default_rng(0).normal(size=(2, 4, 4, 1)), tf.float32)
  assert flow.bijector.forward(flow.bijector.inverse(x)) is x
