"""Conditional Real NVP: one condition reaches every coupling through TFP's keyword convention.

The conformance suite (tests/bijectors/test_conformance.py) checks conditional flows and
couplings as every bijector: log-determinants, round trips, shapes (a single condition
broadcast over any batch shape), eager / tf.function / XLA; tests/bijectors/test_conditional.py
how the condition reaches the conditioners. The tests here check what is particular to a
conditional flow: the condition changes the map, the density and the cache entry, and gives
clear errors; then a toy problem trains a class-conditional model on the embedded digits "0"
and "1" and checks that each label's density is that class's, and that a `.keras` file and a
SavedModel reproduce it.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import tfp_realnvp
from tfp_realnvp import data

from helpers import fresh, normal, randomize, reload_calls, reload_in_fresh_process

tfd = tfp.distributions

K = 3  # Size of the condition vectors.


def conditional_flow(event_shape=(8, 8, 1), num_scales=2, batch_norm=True, seed=0, **kwargs):
  kwargs.setdefault("conditional_size", K)
  flow = tfp_realnvp.RealNVP(event_shape, num_scales=num_scales, num_filters=4, num_blocks=1,
                             batch_norm=batch_norm, dtype="float64", **kwargs)
  return randomize(flow, seed=seed)


def test_the_condition_changes_the_map_the_density_and_the_cache_entry():
  flow = conditional_flow()
  bijector = flow.bijector
  dist = tfd.TransformedDistribution(
      tfd.Sample(tfd.Normal(tf.constant(0., tf.float64), 1.), [8, 8, 1]), bijector)
  c1, c2 = normal([4, K], seed=6), normal([4, K], seed=7)
  x = normal((4, 8, 8, 1), seed=8)
  log_p1 = dist.log_prob(x, bijector_kwargs={"conditional_input": c1}).numpy()
  log_p2 = dist.log_prob(x, bijector_kwargs={"conditional_input": c2}).numpy()
  assert np.all(np.abs(log_p1 - log_p2) > 1e-3), (log_p1, log_p2)
  # TFP's cache keys results by the input and the keyword arguments: the latent cached for
  # (x, c1) is never returned for (x, c2).
  z = normal((4, 8, 8, 1), seed=9)
  x1 = bijector.forward(z, conditional_input=c1)
  assert bijector.inverse(x1, conditional_input=c1) is z
  z2 = bijector.inverse(x1, conditional_input=c2)
  assert np.max(np.abs(z2.numpy() - z.numpy())) > 1e-3
  np.testing.assert_allclose(z2.numpy(),
                             bijector.inverse(fresh(x1), conditional_input=c2).numpy(), atol=1e-12)


def test_model_conditions_broadcast_and_vectors_work_end_to_end():
  flow = conditional_flow(batch_norm=False, seed=3)
  model = tfp_realnvp.FlowModel(flow, preprocessing=None)
  assert model.condition_spec == tf.TensorSpec([K], tf.float64, name="condition")
  c = normal([K], seed=16)
  samples = model.sample(3, condition=c, seed=1)
  np.testing.assert_allclose(
      model.sample(3, condition=tf.tile(c[None], [3, 1]), seed=1).numpy(), samples.numpy())
  np.testing.assert_allclose(model.log_prob(samples, c).numpy(),
                             model.log_prob(samples, tf.tile(c[None], [3, 1])).numpy())
  np.testing.assert_allclose(model((samples, c)).numpy(), model.log_prob(samples, c).numpy())
  other = model.log_prob(samples, normal([K], seed=17)).numpy()
  assert np.all(np.abs(other - model.log_prob(samples, c).numpy()) > 1e-3)


def test_get_config_round_trip():
  for kwargs in ({"conditional_size": K}, {"num_classes": 4}):
    flow = tfp_realnvp.RealNVP((8, 8, 1), num_scales=2, num_filters=4, num_blocks=1, **kwargs)
    config = flow.get_config()
    restored = tfp_realnvp.RealNVP.from_config(config)
    assert restored.get_config() == config
    size = kwargs.get("conditional_size", kwargs.get("num_classes"))
    assert {net.conditional_size for net in restored.conditioners} == {size}
    assert len(restored.trainable_variables) == len(flow.trainable_variables)


def test_missing_or_unexpected_conditions_are_clear_errors():
  vectors, labels = conditional_flow(), conditional_flow(conditional_size=None, num_classes=2)
  unconditional = tfp_realnvp.RealNVP((8, 8, 1), num_scales=2, num_filters=4, num_blocks=1,
                                      dtype="float64")
  z = normal((2, 8, 8, 1))
  with pytest.raises(ValueError, match="conditional_size=3 and needs a"):
    vectors.bijector.forward(z)
  with pytest.raises(ValueError, match="without conditional_size"):
    unconditional.bijector.forward(z, conditional_input=normal([2, K]))
  with pytest.raises(ValueError, match=r"shape \[N, 3\]"):
    vectors.bijector.forward(z, conditional_input=normal([2, 2]))
  with pytest.raises(ValueError, match="needs a condition: float vectors"):
    vectors(z)
  with pytest.raises(ValueError, match="needs a condition: integer class labels in 0..1"):
    labels.bijector_kwargs(None)
  with pytest.raises(ValueError, match="is unconditional"):
    unconditional.bijector_kwargs(1)
  with pytest.raises(ValueError, match="build the flow with num_classes instead"):
    vectors.bijector_kwargs(np.array([0, 1]))
  with pytest.raises(ValueError, match="build the flow with conditional_size instead"):
    labels.bijector_kwargs(np.array([0.0, 1.0]))
  with pytest.raises(ValueError, match="must lie in 0..1, got values from 0 to 2"):
    labels.bijector_kwargs(np.array([0, 2]))
  checked = tfp_realnvp.RealNVP((8, 8, 1), num_scales=1, num_filters=4, num_blocks=1,
                                num_classes=2, validate_args=True)
  with pytest.raises(tf.errors.InvalidArgumentError, match="must lie in 0..1"):
    tf.function(lambda y: checked.bijector_kwargs(y)["conditional_input"])(tf.constant([3]))
  with pytest.raises(ValueError, match="conditional_size must then be None or 2"):
    tfp_realnvp.RealNVP((8, 8, 1), num_classes=2, conditional_size=3)
  with pytest.raises(ValueError, match="num_classes must be None or a positive integer"):
    tfp_realnvp.RealNVP((8, 8, 1), num_classes=0)

  model = tfp_realnvp.FlowModel(labels)
  x = tf.fill([2, 8, 8, 1], tf.constant(0.5, tf.float64))
  with pytest.raises(ValueError, match="needs a condition"):
    model.log_prob(x)
  with pytest.raises(ValueError, match="needs a condition"):
    model.sample(2)
  with pytest.raises(ValueError, match=r"call it on a pair \(x, condition\)"):
    model(x)
  with pytest.raises(ValueError, match="is unconditional"):
    tfp_realnvp.FlowModel(unconditional).log_prob(x, 1)


# ------------------------------------------------------------------------------------------------
# A toy problem: the embedded 8x8 digits "0" and "1", one class each.


def zeros_and_ones(split, batch_size, seed, shuffle=True):
  """`(images, labels)` batches of the embedded digits with label 0 or 1."""
  digits = data.load_images("digits", split=split, batch_size=512, seed=seed, shuffle=shuffle,
                            with_labels=True)
  return digits.unbatch().filter(lambda x, y: y < 2).batch(batch_size)


def as_arrays(dataset):
  images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in dataset], strict=True)
  return np.concatenate(images), np.concatenate(labels)


STEPS = 200


@pytest.fixture(scope="module")
def trained():
  """A small class-conditional flow trained on "0" and "1" pairs, shared by the tests below."""
  keras.utils.set_random_seed(0)
  flow = tfp_realnvp.RealNVP((8, 8, 1), num_scales=2, num_filters=16, num_blocks=1,
                             num_classes=2)
  model = tfp_realnvp.FlowModel(flow)
  model.compile(optimizer=keras.optimizers.Adam(2e-3))
  history = model.fit(zeros_and_ones("train", 64, seed=1).repeat(), epochs=STEPS // 10,
                      steps_per_epoch=10, verbose=0)
  x, y = as_arrays(zeros_and_ones("train", 512, seed=2))
  numpy_history = model.fit(x, y, batch_size=64, epochs=1, verbose=0)  # (x, condition) arrays
  return model, history, numpy_history


@pytest.fixture(scope="module")
def held_out():
  return as_arrays(zeros_and_ones("test", 512, seed=3, shuffle=False))


def test_fit_on_image_label_pairs_reports_and_lowers_the_loss(trained):
  _, history, numpy_history = trained
  losses = history.history["loss"]
  assert len(losses) == STEPS // 10 and all(np.isfinite(losses))
  assert min(np.abs(losses)) > 1.0, losses  # The real loss, not Keras's 0.0 placeholder.
  assert losses[-1] < losses[0] - 50, losses
  assert np.isfinite(numpy_history.history["loss"][0])
  assert abs(numpy_history.history["loss"][0]) > 1.0


def test_a_label_explains_its_own_images_best(trained, held_out):
  model, _, _ = trained
  x, y = held_out
  assert set(np.unique(y)) == {0, 1} and len(y) > 50
  own = model.log_prob(x, y).numpy()
  other = model.log_prob(x, 1 - y).numpy()
  assert np.mean(own > other) >= 0.9, np.mean(own > other)


def test_samples_of_a_label_come_from_that_labels_density(trained, held_out):
  model, _, _ = trained
  x, y = held_out
  class_means = [x[y == k].mean(axis=0) for k in (0, 1)]
  for k in (0, 1):
    samples = model.sample(64, condition=k, temperature=0.7, seed=5 + k).numpy()
    assert samples.shape == (64, 8, 8, 1)
    own = model.log_prob(samples, k).numpy()
    other = model.log_prob(samples, 1 - k).numpy()
    assert np.mean(own > other) >= 0.8, (k, np.mean(own > other))
    # They look like their class: nearer to its mean image than to the other class's.
    distances = [np.mean((samples - m) ** 2, axis=(1, 2, 3)) for m in class_means]
    assert np.mean(distances[k] < distances[1 - k]) >= 0.75, k
  # One label for all samples, or one per sample.
  labels = np.array([0, 1, 1, 0])
  per_sample = model.sample(4, condition=labels, seed=9).numpy()
  np.testing.assert_allclose(per_sample[1], model.sample(4, condition=1, seed=9).numpy()[1],
                             atol=1e-6)


def test_evaluate_and_predict_take_pairs_and_sample_weights(trained, held_out):
  model, _, _ = trained
  x, y = held_out
  log_prob = model.log_prob(x, y).numpy()
  weights = (np.arange(len(y)) % 2).astype(np.float32)
  result = model.evaluate(x, y, sample_weight=weights, batch_size=len(y), return_dict=True,
                          verbose=0)
  # The weighted mean of the NLL (the examples of weight 0 do not count), plus the penalty.
  expected = np.average(-log_prob, weights=weights) + float(model.regularization_penalty())
  bits = np.average(model.bits_per_dim(x, y).numpy(), weights=weights)
  assert abs(result["loss"] - expected) < 1e-4 * abs(expected)
  assert abs(result["bits_per_dim"] - bits) < 1e-4 * bits
  np.testing.assert_allclose(model.predict((x, y), batch_size=len(y), verbose=0), log_prob,
                             rtol=1e-4, atol=1e-3)


def test_keras_file_round_trip(trained, held_out, tmp_path):
  model, _, _ = trained
  x, y = held_out
  model.save(tmp_path / "conditional.keras")
  restored = keras.models.load_model(tmp_path / "conditional.keras")
  assert restored.flow.num_classes == 2 and restored.condition_spec == model.condition_spec
  np.testing.assert_allclose(restored.log_prob(x, y).numpy(), model.log_prob(x, y).numpy(),
                             rtol=1e-6)
  np.testing.assert_allclose(restored.sample(3, condition=1, seed=2).numpy(),
                             model.sample(3, condition=1, seed=2).numpy(), atol=1e-6)


@pytest.mark.slow  # Export and a fresh serving process: 30-57 s.
def test_export_takes_the_condition_and_reloads_without_this_package(trained, held_out,
                                                                     tmp_path):
  model, _, _ = trained
  x, y = held_out
  x, y = x[:8], y[:8]
  path = tfp_realnvp.export_saved_model(model, tmp_path / "conditional")
  calls = reload_calls(x, y, sample_condition=np.array([1], np.int32))  # One label for all.
  calls["other"] = ("log_prob", {"x": x, "condition": 1 - y})
  calls["sample_each"] = ("sample", {"count": np.int32(3), "seed": np.int32(7),
                                     "temperature": np.float32(0.8),
                                     "condition": np.array([0, 1, 1], np.int32)})
  served = reload_in_fresh_process(path, calls)
  assert served["modules"] == []
  assert served["specs"]["log_prob"] == {"x": [[None, 8, 8, 1], "float32"],
                                         "condition": [[None], "int32"]}
  # Relative to the sum's terms, not to the sum: a log-density near 0 is a difference of
  # terms of tens of nats, computed in float32 by two differently optimised graphs.
  log_prob = model.log_prob(x, y).numpy()
  scale = np.abs(log_prob).max()
  for name in ("log_prob", "default"):
    np.testing.assert_allclose(served[name], log_prob, rtol=1e-5, atol=1e-5 * scale)
  np.testing.assert_allclose(served["other"], model.log_prob(x, 1 - y).numpy(), rtol=1e-5,
                             atol=1e-5 * scale)
  np.testing.assert_allclose(served["bits_per_dim"], model.bits_per_dim(x, y).numpy(),
                             rtol=1e-5)
  np.testing.assert_allclose(served["z"], model.distribution.bijector.inverse(
      x, **model.bijector_kwargs(y)).numpy(), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(served["round_trip"], x, atol=1e-4)
  np.testing.assert_array_equal(served["sample"], served["sample_again"])
  np.testing.assert_allclose(
      served["sample"], model.sample(3, condition=1, temperature=0.8, seed=7).numpy(),
      atol=1e-6)
  np.testing.assert_allclose(
      served["sample_each"],
      model.sample(3, condition=np.array([0, 1, 1]), temperature=0.8, seed=7).numpy(),
      atol=1e-6)
