"""Train a flow under a `tf.distribute` strategy with `model.fit`.

What it shows: build and compile a `FlowModel` inside `strategy.scope()`, then `fit` as usual.
The loss is scaled per replica as Keras's own losses are, and every batch normalisation uses
the statistics of the global batch, so the training is that of the global batch on one device.

On a machine without GPUs the script splits the CPU into 2 logical devices (before TensorFlow
initialises them) so that `MirroredStrategy` has two replicas; on a GPU host it uses every
GPU. For several machines use `tf.distribute.MultiWorkerMirroredStrategy()` with `TF_CONFIG`
set on every worker, and for TPUs `tf.distribute.TPUStrategy` (see the README).

Run (a couple of minutes on 2 CPU cores):

  python examples/distributed_training.py --output-dir runs/distributed

and `--tiny` for a smoke run. It prints the replicas, the global and per-replica batch sizes
and the bits/dim per epoch, and writes `metrics.json`.
"""

import argparse
import json
import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow as tf

if not tf.config.list_physical_devices("GPU"):
  cpu = tf.config.list_physical_devices("CPU")[0]
  tf.config.set_logical_device_configuration(
      cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])

import keras

import tfp_realnvp


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--output-dir", default="runs/distributed")
  parser.add_argument("--epochs", type=int, default=10)
  parser.add_argument("--global-batch-size", type=int, default=64)
  parser.add_argument("--tiny", action="store_true", help="a smoke run: 2 short epochs")
  args = parser.parse_args(argv)
  if args.tiny:
    args.epochs = 2
  return args


def main(argv=None):
  args = parse_args(argv)
  output_dir = pathlib.Path(args.output_dir)
  output_dir.mkdir(parents=True, exist_ok=True)
  devices = [d.name for d in tf.config.list_logical_devices("GPU")] or [
      d.name for d in tf.config.list_logical_devices("CPU")]
  strategy = tf.distribute.MirroredStrategy(devices)
  replicas = strategy.num_replicas_in_sync
  print(f"replicas: {replicas}; global batch {args.global_batch_size}, "
        f"per replica {args.global_batch_size // replicas}")
  with strategy.scope():
    keras.utils.set_random_seed(0)
    flow = tfp_realnvp.RealNVP((8, 8, 1), num_scales=2, num_filters=16, num_blocks=1,
                               batch_norm=True)
    model = tfp_realnvp.FlowModel(flow)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
  # Every global batch splits evenly over the replicas (drop_remainder: static shapes).
  train, test = (
      tfp_realnvp.data.load_images("digits", split=split, batch_size=args.global_batch_size,
                                   shuffle=split == "train", seed=seed, drop_remainder=True)
      for split, seed in (("train", 0), ("test", 1)))
  history = model.fit(train, epochs=args.epochs, validation_data=test, verbose=2,
                      steps_per_epoch=5 if args.tiny else None)
  curves = zip(history.history["bits_per_dim"], history.history["val_bits_per_dim"], strict=True)
  for epoch, (train_bpd, test_bpd) in enumerate(curves, start=1):
    print(f"epoch {epoch}: train bits/dim {train_bpd:.4f}, test bits/dim {test_bpd:.4f}")
  (output_dir / "metrics.json").write_text(json.dumps(
      {"replicas": replicas, "global_batch_size": args.global_batch_size,
       "history": {k: [float(v) for v in vs] for k, vs in history.history.items()}}, indent=1))


if __name__ == "__main__":
  main()
