"""Trains a small flow under a tf.distribute strategy; run as a subprocess by the tests.

Usage:
  python distributed_training.py mirrored OUT.json [glow|vardeq|realnvp [REMAT]]
      configures 2 logical CPU devices, trains one SGD step of the same model and global batch
      on one device and under MirroredStrategy, and writes both losses and gradients (the
      update divided by the learning rate). With `glow`, a new Glow, whose ActNorm layers
      initialise from that step's batch, and whether they all did. With `vardeq`, a Real NVP
      with a variational dequantizer on a batch of 256 quantized images: the two steps draw
      different noise, so their numbers agree only up to its Monte Carlo error. With REMAT,
      the model's `remat` mode (e.g. `reversible`).
  python distributed_training.py multiworker OUT.npz
      one worker of a MultiWorkerMirroredStrategy cluster (TF_CONFIG set by the caller):
      trains a few steps of `fit` and writes the final weights.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf

MODE, OUT = sys.argv[1], sys.argv[2]
FLOW = sys.argv[3] if len(sys.argv) > 3 else "realnvp"
REMAT = sys.argv[4] if len(sys.argv) > 4 else None
if MODE == "mirrored":
  cpu = tf.config.list_physical_devices("CPU")[0]
  tf.config.set_logical_device_configuration(
      cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])

import keras  # pylint: disable=g-import-not-at-top,wrong-import-position

import tfp_realnvp  # pylint: disable=wrong-import-position

# tests/, for the shared test helpers.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from helpers import randomize  # pylint: disable=wrong-import-position

LEARNING_RATE = 0.1
IMAGES = np.random.default_rng(0).uniform(0.0, 1.0, (64, 8, 8, 1)).astype(np.float32)
if FLOW == "vardeq":  # Quantized images k / 256, more of them (the noise varies the loss).
  IMAGES = np.floor(np.random.default_rng(0).uniform(0.0, 256.0, (256, 8, 8, 1))) / 256
  IMAGES = IMAGES.astype(np.float32)


def build(strategy):
  with strategy.scope():
    keras.utils.set_random_seed(0)
    if FLOW == "glow":  # New, so that the step initialises its ActNorm layers.
      flow = tfp_realnvp.Glow((8, 8, 1), num_levels=2, num_steps=2, num_filters=8)
    else:
      flow = tfp_realnvp.RealNVP((8, 8, 1), num_scales=2, num_filters=8, num_blocks=1,
                                 batch_norm=True)
      randomize(flow, seed=1)
    dequantizer = None
    if FLOW == "vardeq":
      dequantizer = tfp_realnvp.VariationalDequantizer((8, 8, 1), num_couplings=2, num_filters=8)
      randomize(dequantizer, seed=2, stddev=0.1)
    model = tfp_realnvp.FlowModel(flow, dequantizer=dequantizer, remat=REMAT)
    model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE))
  return model


def initialized(model):
  """Whether every ActNorm layer of the model (or step of a scanned level) is initialised."""
  return all(bool(np.all(v.numpy())) for v in model.variables if v.path.endswith("initialized"))


def one_step(model):
  """Loss reported by `fit` and the gradient recovered from the SGD update."""
  before = [v.numpy().copy() for v in model.trainable_variables]
  history = model.fit(IMAGES, batch_size=len(IMAGES), epochs=1, shuffle=False, verbose=0)
  gradients = [(b - v.numpy()) / LEARNING_RATE
               for b, v in zip(before, model.trainable_variables, strict=True)]
  return history.history["loss"][0], gradients


if MODE == "mirrored":
  single = build(tf.distribute.get_strategy())
  single_loss, single_grads = one_step(single)
  strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  mirrored = build(strategy)
  mirrored_loss, mirrored_grads = one_step(mirrored)
  norm = np.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in single_grads))
  errors = [float(np.linalg.norm(a - b)) for a, b in zip(mirrored_grads, single_grads, strict=True)]
  dot = sum(np.sum(a.astype(np.float64) * b) for a, b in zip(mirrored_grads, single_grads,
                                                             strict=True))
  mirrored_norm = np.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in mirrored_grads))
  with open(OUT, "w") as f:
    json.dump({"replicas": strategy.num_replicas_in_sync, "single_loss": single_loss,
               "mirrored_loss": mirrored_loss, "gradient_norm": float(norm),
               "gradient_errors": errors, "mirrored_gradient_norm": float(mirrored_norm),
               "gradient_cosine": float(dot / (norm * mirrored_norm)),
               "gradient_norms": [float(np.linalg.norm(g)) for g in single_grads],
               "initialized": [initialized(single), initialized(mirrored)]}, f)
elif MODE == "multiworker":
  strategy = tf.distribute.MultiWorkerMirroredStrategy()
  model = build(strategy)
  # Each worker reads the whole (small) data set; the global batch is the workers' batches.
  options = tf.data.Options()
  options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
  dataset = tf.data.Dataset.from_tensor_slices(IMAGES).batch(16).with_options(options)
  history = model.fit(dataset, epochs=2, verbose=0)
  np.savez(OUT, losses=np.array(history.history["loss"]),
           **{f"w{i}": v.numpy() for i, v in enumerate(model.variables)})
else:
  raise SystemExit(f"unknown mode {MODE!r}")
