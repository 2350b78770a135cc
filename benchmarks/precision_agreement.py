#!/usr/bin/env python
"""How far a trained model's densities move between float32 and bfloat16 networks.

Each `.keras` file given (e.g. the `model.keras` of `mnist_quality.py` runs, trained in
either precision) is loaded, then rebuilt with its flow's (and dequantizer's) dtype policy set
to `float32` and to `mixed_bfloat16` (bfloat16 networks; float32 variables, log-determinants
and densities), and given the file's weights; the rebuild in the file's own precision must
reproduce the loaded model's figures, or the script stops. Both evaluate the same `--images`
MNIST test images in inference mode, as a run's test figure does: a model with a variational
dequantizer its bound, the dequantizer's noise seeded `[--seed, batch index]`; any other model
the images dequantized with uniform noise drawn once (`--seed`). Reported per model: the test
bits/dim in each precision, and the difference per image (bfloat16 - float32): its mean, its
mean absolute value and its largest absolute value, in bits/dim.

Example (from the repository root):

```bash
python benchmarks/precision_agreement.py benchmarks/runs/prec_float32_s0/model.keras \\
    benchmarks/runs/prec_bfloat16_s0/model.keras --output benchmarks/runs/agreement
```
"""

import argparse
import os
import pathlib

import _runlog
import mnist_quality

_HERE = pathlib.Path(__file__).resolve().parent
POLICIES = ("float32", "mixed_bfloat16")


def parse_args(argv=None):
  """Parses the command line."""
  parser = argparse.ArgumentParser(
      description=__doc__.split("\n\n", maxsplit=1)[0],
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  parser.add_argument("models", nargs="+", help="Trained `.keras` files.")
  parser.add_argument("--data", default=str(mnist_quality.DEFAULT_DATA),
                      help="MNIST .npz with uint8 x_test (10000, 28, 28[, 1]).")
  parser.add_argument("--images", type=int, default=10000, help="Test images evaluated.")
  parser.add_argument("--batch-size", type=int, default=500)
  parser.add_argument("--seed", type=int, default=0, help="Seed of the dequantization noise.")
  parser.add_argument("--output", default=str(_HERE / "runs" / "agreement"),
                      help="Folder for results.jsonl.")
  return parser.parse_args(argv)


def _with_policy(config, policy, found):
  """A copy of a serialized Keras object with every dtype policy replaced by `policy`; the
  names of the policies replaced are added to the set `found`."""
  if isinstance(config, list):
    return [_with_policy(item, policy, found) for item in config]
  if not isinstance(config, dict):
    return config
  if config.get("class_name") in ("DTypePolicy", "FloatDTypePolicy"):
    found.add(config["config"]["name"])
    return dict(config, config=dict(config["config"], name=policy))
  return {key: _with_policy(value, policy, found) for key, value in config.items()}


def _layers_with_policy(serialized, policy, found):
  """A serialized `FlowModel` whose flow and dequantizer take `policy`; the model keeps its own
  (float32: the loss and the metrics), as `training.train` builds it. The layers' policies
  before the change are added to `found`."""
  config = serialized["config"]
  return dict(serialized, config={
      key: value if key == "dtype" else _with_policy(value, policy, found)
      for key, value in config.items()})


def bits_per_dim(model, pixels, batch_size, seed):
  """Per-image test bits/dim of uint8 `pixels` `[N, H, W, C]` (see the module docstring)."""
  # pylint: disable=g-import-not-at-top
  import numpy as np
  import tensorflow as tf
  # pylint: enable=g-import-not-at-top
  if model.dequantizer is None:
    noise = np.random.default_rng(seed).uniform(size=pixels.shape)
    images = ((pixels + noise) / 256).astype(np.float32)
    batches = [model.bits_per_dim(images[i:i + batch_size])
               for i in range(0, len(images), batch_size)]
  else:
    batches = [model.bits_per_dim(pixels[i:i + batch_size],
                                  seed=tf.constant([seed, i // batch_size]))
               for i in range(0, len(pixels), batch_size)]
  return np.concatenate([b.numpy() for b in batches]).astype(np.float64)


def measure(path, pixels, args):
  """Both precisions' bits/dim of the model in `path`, and their differences.

  Raises:
    RuntimeError: the rebuild in the file's own precision does not reproduce the loaded model.
  """
  # pylint: disable=g-import-not-at-top
  import keras
  import numpy as np
  import tfp_realnvp  # noqa: F401  (registers the package's serializable classes)
  # pylint: enable=g-import-not-at-top
  trained = keras.models.load_model(path, compile=False)
  serialized = keras.saving.serialize_keras_object(trained)
  found = set()
  rebuilt = {policy: _layers_with_policy(serialized, policy, found) for policy in POLICIES}
  if len(found) != 1:
    raise RuntimeError(f"{path}: cannot tell its precision from its layers' policies "
                       f"{sorted(found)}.")
  own_policy, = found
  reference = bits_per_dim(trained, pixels[:args.batch_size], args.batch_size, args.seed)
  weights = trained.get_weights()
  figures = {}
  for policy in POLICIES:
    model = keras.saving.deserialize_keras_object(rebuilt[policy])
    model.log_prob(pixels[:2].astype("float32") / 256)  # Builds the layers.
    model.set_weights(weights)
    figures[policy] = bits_per_dim(model, pixels, args.batch_size, args.seed)
    if policy == own_policy:
      gap = float(np.max(np.abs(figures[policy][:args.batch_size] - reference)))
      if gap > 1e-4:
        raise RuntimeError(f"{path}: rebuilt in {policy}, its own precision, the model is "
                           f"{gap:.2e} bits/dim from the loaded one; the rebuild is wrong.")
  difference = figures["mixed_bfloat16"] - figures["float32"]
  return {"model": str(path), "trained_in": own_policy, "images": len(pixels),
          "noise_seed": args.seed,
          "bits_per_dim": {policy: float(np.mean(v)) for policy, v in figures.items()},
          "difference_mean": float(np.mean(difference)),
          "difference_mean_abs": float(np.mean(np.abs(difference))),
          "difference_max_abs": float(np.max(np.abs(difference))),
          "cpu": _runlog.cpu_description(), "measured_at": _runlog.utc_now()}


def main(argv=None):
  args = parse_args(argv)
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  import numpy as np  # pylint: disable=g-import-not-at-top
  with np.load(args.data) as data:
    pixels = data["x_test"][:args.images]
  pixels = pixels.reshape(pixels.shape[:3] + (-1,))
  os.makedirs(args.output, exist_ok=True)
  print("| model (trained in) | float32 (bits/dim) | bfloat16 networks | mean difference | "
        "mean abs. | largest abs. |")
  print("| --- | --- | --- | --- | --- | --- |")
  for path in args.models:
    row = measure(path, pixels, args)
    _runlog.append_jsonl(pathlib.Path(args.output) / "results.jsonl", row)
    bpd = row["bits_per_dim"]
    print(f"| {path} ({row['trained_in']}) | {bpd['float32']:.4f} | {bpd['mixed_bfloat16']:.4f} | "
          f"{row['difference_mean']:+.4f} | {row['difference_mean_abs']:.4f} | "
          f"{row['difference_max_abs']:.4f} |", flush=True)


if __name__ == "__main__":
  main()
