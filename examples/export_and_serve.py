"""Export a trained flow as a SavedModel and serve it with TensorFlow alone.

What it shows:

* training a small `FlowModel` on the embedded 8x8 digits;
* `tfp_realnvp.export_saved_model`, which writes the signatures `log_prob` (also
  `serving_default`), `bits_per_dim`, `sample(count, seed, temperature)`, `forward` and
  `inverse`;
* serving: a fresh Python process that imports only TensorFlow (no TFP, no tfp_realnvp) loads
  the SavedModel, scores test images and draws samples, and the scores agree with the model's.

Run (about a minute on 2 CPU cores):

  python examples/export_and_serve.py --output-dir runs/export_and_serve

and `--tiny` for a smoke run. It prints the test bits/dim of the trained model, the largest
difference between the served and the original log-likelihoods, and writes `served.json`.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# pylint: disable=g-import-not-at-top,wrong-import-position
import keras
import numpy as np

import tfp_realnvp

# What a serving process runs: TensorFlow only.
SERVE = """
import json, sys
import numpy as np
import tensorflow as tf
served = tf.saved_model.load(sys.argv[1])
images = tf.constant(np.load(sys.argv[2]))
log_prob = served.signatures["serving_default"](x=images)["log_prob"]
samples = served.signatures["sample"](count=tf.constant(4), seed=tf.constant(0),
                                      temperature=tf.constant(0.8))["images"]
print(json.dumps({"log_prob": log_prob.numpy().tolist(),
                  "sample_shape": list(samples.shape),
                  "imports_tfp": any(m.startswith(("tensorflow_probability", "tfp_realnvp"))
                                     for m in sys.modules)}))
"""


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--output-dir", default="runs/export_and_serve")
  parser.add_argument("--epochs", type=int, default=10)
  parser.add_argument("--tiny", action="store_true", help="a smoke run: 1 short epoch")
  args = parser.parse_args(argv)
  if args.tiny:
    args.epochs = 1
  return args


def main(argv=None):
  args = parse_args(argv)
  output_dir = pathlib.Path(args.output_dir)
  output_dir.mkdir(parents=True, exist_ok=True)
  keras.utils.set_random_seed(0)
  flow = tfp_realnvp.RealNVP((8, 8, 1), num_scales=2, num_filters=16, num_blocks=1,
                             batch_norm=True)
  model = tfp_realnvp.FlowModel(flow)
  model.compile(optimizer=keras.optimizers.Adam(1e-3))
  train = tfp_realnvp.data.load_images("digits", batch_size=64, seed=0)
  model.fit(train, epochs=args.epochs, steps_per_epoch=5 if args.tiny else None, verbose=2)
  test = next(iter(tfp_realnvp.data.load_images("digits", split="test", batch_size=297,
                                                 shuffle=False, seed=1)))
  bits = float(np.mean(model.bits_per_dim(test).numpy()))
  print(f"test bits/dim of the trained model: {bits:.4f}")

  exported = tfp_realnvp.export_saved_model(model, output_dir / "saved_model", overwrite=True)
  np.save(output_dir / "test_images.npy", test.numpy())
  result = subprocess.run(
      [sys.executable, "-c", SERVE, str(exported), str(output_dir / "test_images.npy")],
      capture_output=True, text=True, check=True)
  served = json.loads(result.stdout.strip().splitlines()[-1])
  difference = float(np.max(np.abs(np.array(served["log_prob"]) - model.log_prob(test).numpy())))
  print(f"served by TensorFlow alone (TFP imported: {served['imports_tfp']}); "
        f"largest log_prob difference: {difference:.3g}; sample shape {served['sample_shape']}")
  (output_dir / "served.json").write_text(json.dumps(
      {"test_bits_per_dim": bits, "max_log_prob_difference": difference, **served}, indent=1))


if __name__ == "__main__":
  main()
