"""The test figure of a run: bits/dim of a whole split, on noise drawn with a fixed seed."""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from tfp_realnvp import data as data_lib
from tfp_realnvp import errors
from tfp_realnvp import model as model_lib
from tfp_realnvp.training.record import finite_or_none

__all__ = ["TEST_NOISE_SEED", "dequantization_note", "evaluate_test"]

# Seed of the dequantization noise of the test split when computing test bits/dim.
TEST_NOISE_SEED = 0


def evaluate_test(model: model_lib.FlowModel, source: data_lib.ImageSource, split: str,
                  batch_size: int = 64, drop_remainder: bool = False,
                  seed: int = TEST_NOISE_SEED, num_samples: int = 1) -> tuple[float | None, int]:
  """Bits/dim of `model` on a whole split of `source`, dequantized with the fixed `seed`.

  For a model with a dequantizer, the mean over the images of `model.bits_per_dim(images,
  num_samples=num_samples, seed=[seed, batch index])`: the variational bound (or, for
  `num_samples > 1`, the importance-weighted bound) in bits per dimension of the 8-bit data.

  Args:
    model: a `FlowModel`.
    source: a `tfp_realnvp.data.ImageSource`.
    split: the split to evaluate, e.g. the last split of `source.training_splits()`.
    batch_size: images per evaluation batch.
    drop_remainder: drop a last, smaller batch (static shapes on TPUs).
    seed: seed of the noise (uniform noise of the pipeline, or the dequantizer's).
    num_samples: importance samples per image (a model with a dequantizer only).

  Returns:
    `(bits_per_dim or None if not finite, number of images)`.

  Raises:
    InvalidValueError: `num_samples > 1` for a model without a dequantizer.
  """
  uniform = model.dequantizer is None
  if uniform and num_samples != 1:
    raise errors.InvalidValueError(
        "Importance samples need a model with a variational dequantizer; this "
        "one was trained on uniformly dequantized data.")
  test_ds = data_lib.load_images(source, split, batch_size=batch_size, shuffle=False,
                                 seed=seed, drop_remainder=drop_remainder, dequantize=uniform)
  if uniform:
    results = model.evaluate(test_ds, return_dict=True, verbose=0)
    return finite_or_none(results["bits_per_dim"]), source.num_examples(split)
  bits = [model.bits_per_dim(images, num_samples=num_samples, seed=tf.constant([seed, index]))
          for index, images in enumerate(test_ds)]
  return finite_or_none(float(tf.reduce_mean(tf.concat(bits, axis=0)))), source.num_examples(split)


def dequantization_note(config: dict[str, Any]) -> str:
  """What the test bits/dim of a run are, for `metrics.json`."""
  if config["dequantization"] == "uniform":
    return (f"uniform noise (k + u) / 256 drawn once with the fixed seed {TEST_NOISE_SEED}; "
            "bits/dim of the dequantized data, an upper bound on those of the 8-bit data")
  return (f"variational: noise u ~ q(u | k) of the learned dequantizer, drawn once with the "
          f"fixed seed {TEST_NOISE_SEED}; the variational bound -E_q[log p((k + u) / 256) - "
          "log q(u | k)] in bits/dim, an upper bound on those of the 8-bit data")
