"""The `tfp-realnvp` command line (also `python -m tfp_realnvp`).

```none
tfp-realnvp train [--data digits] [--preset NAME] [--epochs N] [--batch-size N]
                  [--learning-rate LR] [--steps-per-epoch N] [--output-dir DIR] [--seed S]
                  [--strategy {default,mirrored,multiworker,tpu}]
                  [--mixed-precision {none,bfloat16,float16}] [--jit {auto,on,off}]
                  [--num-scales N] [--num-filters N] [--num-blocks N] [--sample-count N]
                  [--data-dir DIR] [--download]
tfp-realnvp evaluate MODEL [--data digits] [--split test] [--batch-size N] [--seed S]
tfp-realnvp sample MODEL [--count 64] [--temperature 1.0] [--seed S] [--output samples.png]
tfp-realnvp interpolate MODEL [--data digits] [--indices I J K L] [--steps 8]
                        [--output interpolation.png]
tfp-realnvp export MODEL OUTPUT [--overwrite]
```

`train` with no arguments trains the `"digits"` preset on the embedded 8x8 scikit-learn
digits (20 epochs, 2 to 5 minutes on two busy CPU cores, test bits/dim about 4.74) and
writes, under `runs/<data>/`:

* `samples/epoch_XXX.png`: a grid of samples after each epoch (fixed base-distribution seed,
  so the grids show how one set of latents evolves);
* `metrics.json`: the configuration, the per-epoch history (`loss`, `bits_per_dim`,
  `val_loss`, `val_bits_per_dim`, seconds, and the `attempt` that ran the epoch), and the final
  `test_bits_per_dim`;
* `bits_per_dim.png`: training and validation bits/dim per epoch;
* `model.keras`: the trained `FlowModel` (`keras.models.load_model` after `import tfp_realnvp`);
* `logs/`: TensorBoard logs; `backup/`: the `keras.callbacks.BackupAndRestore` state while
  training runs.

Resuming: if `train` is interrupted (crash, kill, preemption), running the same command again
restores the weights, optimizer and epoch counter from `backup/` and continues after the last
finished epoch; the history of the finished epochs is kept in `metrics.json`. The backup is
deleted once the model, metrics and plots of a finished run are written.

Validation and test data: the data set's test split (there is no separate validation split for
the embedded digits). The validation curve uses fresh dequantization noise every epoch; the
final `test_bits_per_dim` is computed on the full test split dequantized once with the fixed
seed `TEST_NOISE_SEED`, so that two models are compared on the same noise. Like the paper's
numbers it is the bits/dim of the dequantized data, an upper bound on those of the 8-bit data.

`--num-scales`, `--num-filters` and `--num-blocks` override the preset's architecture, e.g.
for quick smoke tests (`--num-scales 1 --num-filters 4 --num-blocks 1`).

Errors a user can fix (bad arguments, missing files, unknown data sets or presets, a model and
data set of different image shapes) end with one line `tfp-realnvp: error: ...` on stderr and
exit status 1 (2 for argument syntax errors found by argparse); `--traceback` shows the full
Python traceback instead.
"""

import argparse
import json
import math
import os
import pathlib
import shutil
import sys
import tempfile
import time

__all__ = ["TEST_NOISE_SEED", "build_parser", "main"]

PROG = "tfp-realnvp"
# Seed of the dequantization noise of the test split when computing test bits/dim.
TEST_NOISE_SEED = 0
STRATEGIES = ("default", "mirrored", "multiworker", "tpu")
MIXED_PRECISIONS = ("none", "bfloat16", "float16")
JIT_MODES = {"auto": "auto", "on": True, "off": False}
_METRICS_FILE = "metrics.json"
_MODEL_FILE = "model.keras"
_PLOT_FILE = "bits_per_dim.png"


class _UsageError(ValueError):
  """An error in the command's arguments or files, reported as one line."""


# ------------------------------------------------------------------------------------------------
# Argument parsing.


def _int_at_least(minimum):
  """An argparse type: an integer >= `minimum`."""
  def parse(text):
    try:
      value = int(text)
    except ValueError:
      value = None
    if value is None or value < minimum:
      raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
    return value
  return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def _float_at_least(minimum, strict):
  def parse(text):
    try:
      value = float(text)
    except ValueError:
      raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < minimum or (strict and value == minimum):
      relation = ">" if strict else ">="
      raise argparse.ArgumentTypeError(f"expected a finite number {relation} {minimum:g}, got "
                                       f"{text!r}")
    return value
  return parse


def _add_data_arguments(parser, data_help):
  parser.add_argument("--data", default="digits", help=data_help)
  parser.add_argument("--data-dir", default=None,
                      help="TensorFlow Datasets data directory (default: TFDS's own)")
  parser.add_argument("--download", action="store_true",
                      help="allow TensorFlow Datasets to download and prepare the data set")


def build_parser():
  """The `argparse` parser of the command line."""
  from tfp_realnvp import presets  # pylint: disable=g-import-not-at-top
  import tfp_realnvp  # pylint: disable=g-import-not-at-top

  data_help = ("image source: 'digits' (embedded 8x8 digits, the default), a TensorFlow Datasets"
               " name (mnist, fashion_mnist, cifar10, celeb_a, downsampled_imagenet/32x32, "
               "downsampled_imagenet/64x64), an .npz file or a folder of images")
  parser = argparse.ArgumentParser(
      prog=PROG, description="Train, evaluate and sample Real NVP normalizing flows.")
  parser.add_argument("--version", action="version", version=f"%(prog)s {tfp_realnvp.__version__}")
  parser.add_argument("--traceback", action="store_true",
                      help="show the full Python traceback of errors")
  commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

  train = commands.add_parser(
      "train", help="train a flow by maximum likelihood",
      description="Train a Real NVP flow. With no arguments: the embedded 8x8 digits, 2 to 5 "
                  "minutes on two CPU cores. Running the same command again after an "
                  "interruption resumes after the last finished epoch.")
  _add_data_arguments(train, data_help)
  train.add_argument("--preset", choices=list(presets.PRESETS), default=None,
                     help="architecture and training settings (default: chosen from the data "
                          "set's image size)")
  train.add_argument("--epochs", type=_positive_int, default=None,
                     help="number of epochs (default: the preset's)")
  train.add_argument("--batch-size", type=_positive_int, default=None,
                     help="global batch size (default: the preset's, 64)")
  train.add_argument("--learning-rate", type=_float_at_least(0.0, strict=True), default=None,
                     help="Adam learning rate (default: the preset's, 1e-3)")
  train.add_argument("--steps-per-epoch", type=_positive_int, default=None,
                     help="cap on the training steps per epoch (default: one pass over the data)")
  train.add_argument("--strategy", choices=STRATEGIES, default="default",
                     help="tf.distribute strategy: the default one, MirroredStrategy (all local "
                          "GPUs), MultiWorkerMirroredStrategy (reads TF_CONFIG) or TPUStrategy")
  train.add_argument("--mixed-precision", choices=MIXED_PRECISIONS, default="none",
                     help="Keras mixed-precision policy of the networks (densities stay float32)")
  train.add_argument("--jit", choices=list(JIT_MODES), default="auto",
                     help="XLA compilation: auto (GPU hosts without tf.distribute only), on, off")
  train.add_argument("--output-dir", default=None, help="output folder (default: runs/<data>)")
  train.add_argument("--seed", type=_non_negative_int, default=0,
                     help="seed of the initial weights, data order and noise (default: 0)")
  train.add_argument("--num-scales", type=_positive_int, default=None,
                     help="override the preset's number of scales")
  train.add_argument("--num-filters", type=_positive_int, default=None,
                     help="override the preset's feature maps of the coupling networks")
  train.add_argument("--num-blocks", type=_positive_int, default=None,
                     help="override the preset's residual blocks per coupling network")
  train.add_argument("--sample-count", type=_positive_int, default=64,
                     help="images in each epoch's sample grid (default: 64)")
  train.set_defaults(run=_train)

  evaluate = commands.add_parser(
      "evaluate", help="bits/dim of a saved model on a data set",
      description="Print the bits/dim of a saved .keras model on a split of a data set, "
                  f"dequantized with a fixed seed (default {TEST_NOISE_SEED}).")
  evaluate.add_argument("model", metavar="MODEL", help="a .keras file written by train")
  _add_data_arguments(evaluate, data_help)
  evaluate.add_argument("--split", default="test", help="split to evaluate (default: test)")
  evaluate.add_argument("--batch-size", type=_positive_int, default=64, help="default: 64")
  evaluate.add_argument("--seed", type=_non_negative_int, default=TEST_NOISE_SEED,
                        help=f"seed of the dequantization noise (default: {TEST_NOISE_SEED})")
  evaluate.set_defaults(run=_evaluate)

  sample = commands.add_parser("sample", help="draw samples from a saved model into a PNG grid")
  sample.add_argument("model", metavar="MODEL", help="a .keras file written by train")
  sample.add_argument("--count", type=_positive_int, default=64,
                      help="number of samples (default: 64)")
  sample.add_argument("--temperature", type=_float_at_least(0.0, strict=False), default=1.0,
                      help="standard deviation of the base distribution (default: 1.0)")
  sample.add_argument("--seed", type=_non_negative_int, default=None,
                      help="seed of the samples (default: random)")
  sample.add_argument("--ncols", type=_positive_int, default=None,
                      help="columns of the grid (default: about the square root of --count)")
  sample.add_argument("--output", default="samples.png", help="PNG file (default: samples.png)")
  sample.set_defaults(run=_sample)

  interpolate = commands.add_parser(
      "interpolate", help="interpolate between 4 test images in the latent space",
      description="Map 4 test images to latents z1..z4 and draw, for p (rows) and q (columns) "
                  "in [0, pi/2], the images of z = cos(p) (z1 cos(q) + z2 sin(q)) + sin(p) "
                  "(z3 cos(q) + z4 sin(q)). The corners are the 4 images.")
  interpolate.add_argument("model", metavar="MODEL", help="a .keras file written by train")
  _add_data_arguments(interpolate, data_help)
  interpolate.add_argument("--indices", type=_non_negative_int, nargs=4, default=[0, 1, 2, 3],
                           metavar=("I1", "I2", "I3", "I4"),
                           help="positions of the 4 images in the test split (default: 0 1 2 3)")
  interpolate.add_argument("--steps", type=_int_at_least(2), default=8,
                           help="rows and columns of the grid (default: 8)")
  interpolate.add_argument("--output", default="interpolation.png",
                           help="PNG file (default: interpolation.png)")
  interpolate.set_defaults(run=_interpolate)

  export = commands.add_parser(
      "export", help="export a saved model as a TensorFlow SavedModel",
      description="Write a SavedModel with the signatures log_prob (serving_default), "
                  "bits_per_dim, sample(count, seed, temperature), forward and inverse; it is "
                  "served by TensorFlow alone (no TFP, no tfp_realnvp).")
  export.add_argument("model", metavar="MODEL", help="a .keras file written by train")
  export.add_argument("output", metavar="OUTPUT", help="SavedModel folder to write")
  export.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT")
  export.set_defaults(run=_export)
  return parser


# ------------------------------------------------------------------------------------------------
# Shared helpers.


def _write_json(path, value):
  """Writes JSON atomically, so that a killed process never leaves a half-written file."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  temporary = path.with_name(path.name + ".tmp")
  temporary.write_text(json.dumps(value, indent=2, allow_nan=False) + "\n")
  os.replace(temporary, path)


def _finite_or_none(value):
  value = float(value)
  return value if math.isfinite(value) else None


def _load_flow_model(path):
  """Loads a `FlowModel` saved as `.keras`, or raises an error naming the problem."""
  import keras  # pylint: disable=g-import-not-at-top
  from tfp_realnvp import model as model_lib  # pylint: disable=g-import-not-at-top

  path = pathlib.Path(path)
  if not path.exists():
    raise FileNotFoundError(f"{path}: no such model file.")
  if path.is_dir() or path.suffix != ".keras":
    raise _UsageError(f"{path}: expected a .keras model file written by `{PROG} train`.")
  try:
    model = keras.models.load_model(path, compile=False)
  except Exception as error:  # pylint: disable=broad-except
    raise _UsageError(
        f"{path}: cannot load the model ({type(error).__name__}: {error})") from error
  if not isinstance(model, model_lib.FlowModel):
    raise _UsageError(f"{path}: holds a {type(model).__name__}, not a tfp_realnvp FlowModel.")
  return model


def _check_data_shape(model, model_path, source, data_dir):
  """Raises unless the images of `source` have the model's event shape."""
  from tfp_realnvp import data as data_lib  # pylint: disable=g-import-not-at-top

  shape = tuple(data_lib.image_shape(source, data_dir=data_dir))
  if shape != tuple(model.event_shape):
    raise _UsageError(
        f"shape mismatch: the model {model_path} is for images of shape "
        f"{tuple(model.event_shape)} (height, width, channels), but the data {source!r} has "
        f"images of shape {shape}.")
  return shape


def _run_name(source):
  """A folder name for a data source: the name itself, or the file / folder name."""
  from tfp_realnvp import data as data_lib  # pylint: disable=g-import-not-at-top

  text = os.fspath(source)
  if text == data_lib.DIGITS or text in data_lib._TFDS_SHAPES:  # pylint: disable=protected-access
    return text.replace("/", "_")
  path = pathlib.Path(text)
  return (path.stem if path.suffix else path.name) or "data"


# ------------------------------------------------------------------------------------------------
# train


def _make_strategy(name):
  """The `tf.distribute` strategy for `--strategy`; create it before any other TF op."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  if name == "default":
    return tf.distribute.get_strategy()
  if name == "mirrored":
    return tf.distribute.MirroredStrategy()
  if name == "multiworker":
    return tf.distribute.MultiWorkerMirroredStrategy()
  resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
  tf.config.experimental_connect_to_cluster(resolver)
  tf.tpu.experimental.initialize_tpu_system(resolver)
  return tf.distribute.TPUStrategy(resolver)


def _worker(strategy):
  """`(is_chief, task_id)` of this process in a multi-worker cluster (`(True, 0)` otherwise)."""
  resolver = getattr(strategy, "cluster_resolver", None)
  task_type = getattr(resolver, "task_type", None)
  if resolver is None or task_type is None:
    return True, 0
  task_id = int(resolver.task_id or 0)
  if task_type == "chief":
    return True, task_id
  if task_type == "worker" and task_id == 0:
    return "chief" not in resolver.cluster_spec().as_dict(), task_id
  return False, task_id


def _read_backup_epoch(backup_dir):
  """Epochs finished according to a `BackupAndRestore` folder, or `None` if there is none."""
  metadata = pathlib.Path(backup_dir) / "training_metadata.json"
  if not metadata.exists():
    return None
  try:
    return int(json.loads(metadata.read_text())["epoch"])
  except (ValueError, KeyError, TypeError, OSError):
    return 0  # Unreadable (killed while writing): Keras falls back to its previous copy.


def _make_callbacks(keras, state, metrics_path, samples_dir, sample_count, sample_seed):
  """The callbacks that record each epoch and draw its sample grid."""
  from tfp_realnvp import plotting  # pylint: disable=g-import-not-at-top

  class EpochRecorder(keras.callbacks.Callback):
    """Writes each finished epoch into metrics.json, before the backup of the same epoch."""

    def on_epoch_begin(self, epoch, logs=None):
      del epoch, logs
      self._start = time.time()

    def on_epoch_end(self, epoch, logs=None):
      record = {"epoch": epoch + 1}
      record.update({key: _finite_or_none(value) for key, value in (logs or {}).items()
                     if isinstance(value, (int, float)) or hasattr(value, "__float__")})
      record["seconds"] = round(time.time() - self._start, 3)
      record["attempt"] = state["attempt"]
      state["history"] = [r for r in state["history"] if r["epoch"] < epoch + 1] + [record]
      _write_json(metrics_path, state)

  class SampleGrid(keras.callbacks.Callback):
    """Saves `samples/epoch_XXX.png` after each epoch, from the same base-distribution seed."""

    def on_epoch_end(self, epoch, logs=None):
      del logs
      images = self.model.sample(sample_count, seed=sample_seed)
      plotting.save_image_grid(images.numpy(), samples_dir / f"epoch_{epoch + 1:03d}.png")

  return [EpochRecorder(), SampleGrid()]


def _train(args):
  """`tfp-realnvp train`."""
  strategy = _make_strategy(args.strategy)  # First: MultiWorkerMirroredStrategy requires it.

  import keras  # pylint: disable=g-import-not-at-top
  from tfp_realnvp import data as data_lib  # pylint: disable=g-import-not-at-top
  from tfp_realnvp import model as model_lib  # pylint: disable=g-import-not-at-top
  from tfp_realnvp import plotting  # pylint: disable=g-import-not-at-top
  from tfp_realnvp import presets  # pylint: disable=g-import-not-at-top

  # Check the data and the architecture before anything slow happens.
  shape = tuple(data_lib.image_shape(args.data, data_dir=args.data_dir))
  preset = presets.get_preset(args.preset or presets.default_preset(args.data, shape))
  overrides = {"num_scales": args.num_scales, "num_filters": args.num_filters,
               "num_blocks": args.num_blocks}
  flow_kwargs = preset.flow_kwargs()
  flow_kwargs.update({key: value for key, value in overrides.items() if value is not None})
  presets.check_shape(preset, shape, num_scales=flow_kwargs["num_scales"])
  epochs = args.epochs or preset.epochs
  batch_size = args.batch_size or preset.batch_size
  learning_rate = args.learning_rate or preset.learning_rate
  tpu = args.strategy == "tpu"
  train_ds = data_lib.load_images(
      args.data, "train", batch_size=batch_size, shuffle=True, data_dir=args.data_dir,
      download=args.download, seed=args.seed, repeat=args.steps_per_epoch is not None,
      drop_remainder=tpu)
  num_test = data_lib.num_examples(args.data, "test", data_dir=args.data_dir)
  validation_ds = data_lib.load_images(
      args.data, "test", batch_size=batch_size, shuffle=False, data_dir=args.data_dir,
      seed=args.seed + 1, drop_remainder=tpu)

  is_chief, task_id = _worker(strategy)
  output_dir = pathlib.Path(args.output_dir or pathlib.Path("runs") / _run_name(args.data))
  if is_chief:
    files_dir, backup_dir, scratch = output_dir, output_dir / "backup", None
  else:  # Other workers of a cluster write their copies to a scratch folder.
    scratch = pathlib.Path(tempfile.mkdtemp(prefix=f"{PROG}-worker-{task_id}-"))
    files_dir, backup_dir = scratch, output_dir / f"backup-worker-{task_id}"
  metrics_path = files_dir / _METRICS_FILE
  samples_dir = files_dir / "samples"

  config = {"data": os.fspath(args.data), "preset": preset.name, "event_shape": list(shape),
            "flow": flow_kwargs, "mixed_precision": args.mixed_precision, "epochs": epochs,
            "batch_size": batch_size, "learning_rate": learning_rate,
            "steps_per_epoch": args.steps_per_epoch, "strategy": args.strategy,
            "num_replicas": strategy.num_replicas_in_sync, "jit": args.jit, "seed": args.seed}
  state = {"status": "running", "attempt": 1, "config": config, "history": []}
  resumed_epoch = _read_backup_epoch(backup_dir)
  if resumed_epoch is not None:
    previous = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    architecture = ("data", "event_shape", "flow", "mixed_precision")
    changed = [key for key in architecture
               if key in previous.get("config", {}) and previous["config"][key] != config[key]]
    if changed:
      raise _UsageError(
          f"{backup_dir} holds an interrupted run with a different {', '.join(changed)}; run "
          f"its command again to resume it, or delete {backup_dir} (or pick another "
          "--output-dir) to start a new run.")
    state["attempt"] = int(previous.get("attempt", 0)) + 1
    state["history"] = [r for r in previous.get("history", []) if r["epoch"] <= resumed_epoch]
    print(f"Resuming from {backup_dir}: {resumed_epoch} of {epochs} epochs finished.")
  else:
    for old in samples_dir.glob("epoch_*.png"):
      old.unlink()
  _write_json(metrics_path, state)

  if args.mixed_precision != "none":
    keras.mixed_precision.set_global_policy(f"mixed_{args.mixed_precision}")
  keras.utils.set_random_seed(args.seed)
  with strategy.scope():
    flow = presets.build_flow(preset, shape, **overrides)
    model = model_lib.FlowModel(flow)
    optimizer = keras.optimizers.Adam(learning_rate)
    if args.mixed_precision == "float16":
      optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(optimizer=optimizer, jit_compile=JIT_MODES[args.jit])

  callbacks = _make_callbacks(keras, state, metrics_path, samples_dir, args.sample_count,
                              sample_seed=args.seed + 2)
  callbacks.append(keras.callbacks.TensorBoard(os.fspath(files_dir / "logs")))
  # Last, so that metrics.json holds an epoch before its backup does. The backup is deleted
  # below, only once the results of the finished run are written.
  callbacks.append(keras.callbacks.BackupAndRestore(
      os.fspath(backup_dir), double_checkpoint=True, delete_checkpoint=False))
  print(f"Training preset {preset.name!r} ({_describe(flow_kwargs)}) on {args.data!r} "
        f"{shape[0]}x{shape[1]}x{shape[2]} for {epochs} epochs, batch size {batch_size}, "
        f"learning rate {learning_rate:g}, {strategy.num_replicas_in_sync} replica(s); "
        f"output in {output_dir}")
  start = time.time()
  model.fit(train_ds, epochs=epochs, steps_per_epoch=args.steps_per_epoch,
            validation_data=validation_ds, callbacks=callbacks, shuffle=False, verbose="auto")
  state["train_seconds_this_attempt"] = round(time.time() - start, 3)

  test_ds = data_lib.load_images(args.data, "test", batch_size=batch_size, shuffle=False,
                                 data_dir=args.data_dir, seed=TEST_NOISE_SEED)
  results = model.evaluate(test_ds, return_dict=True, verbose=0)
  test_bpd = _finite_or_none(results["bits_per_dim"])
  model_path = files_dir / _MODEL_FILE
  model.save(model_path)
  history = {"epoch": [r["epoch"] for r in state["history"]]}
  for key in ("bits_per_dim", "val_bits_per_dim"):
    history[key] = [r.get(key) for r in state["history"]]
  plot_path = files_dir / _PLOT_FILE
  if state["history"]:
    plotting.save_bits_per_dim_plot(history, plot_path,
                                    title=f"Real NVP '{preset.name}' on {args.data}")
  grids = sorted(samples_dir.glob("epoch_*.png"))
  state.update(
      status="finished", test_bits_per_dim=test_bpd, test_examples=num_test,
      test_split="test",
      test_dequantization=(f"uniform noise (k + u) / 256 drawn once with the fixed seed "
                           f"{TEST_NOISE_SEED}; bits/dim of the dequantized data, an upper "
                           "bound on those of the 8-bit data"),
      model=_MODEL_FILE, plot=_PLOT_FILE if state["history"] else None,
      samples=[os.fspath(g.relative_to(files_dir)) for g in grids])
  _write_json(metrics_path, state)
  shutil.rmtree(backup_dir, ignore_errors=True)
  if scratch is not None:
    shutil.rmtree(scratch, ignore_errors=True)
    return 0

  bpd_text = "nan" if test_bpd is None else f"{test_bpd:.4f}"
  print(f"Test bits/dim: {bpd_text} ({args.data!r} test split, {num_test} images, dequantized "
        f"with fixed seed {TEST_NOISE_SEED})")
  if grids:
    print(f"Samples: {grids[-1]} (one grid per epoch in {samples_dir})")
  if state["plot"]:
    print(f"Bits/dim plot: {plot_path}")
  print(f"Metrics: {metrics_path}")
  print(f"Model: {model_path}")
  if (files_dir / "logs").is_dir():
    print(f"TensorBoard: tensorboard --logdir {files_dir / 'logs'}")
  return 0


def _describe(flow_kwargs):
  batch_norm = "on" if flow_kwargs["batch_norm"] else "off"
  return (f"{flow_kwargs['num_scales']} scales, {flow_kwargs['num_filters']} filters, "
          f"{flow_kwargs['num_blocks']} blocks, batch norm {batch_norm}")


# ------------------------------------------------------------------------------------------------
# evaluate, sample, interpolate, export


def _evaluate(args):
  """`tfp-realnvp evaluate`."""
  from tfp_realnvp import data as data_lib  # pylint: disable=g-import-not-at-top

  model = _load_flow_model(args.model)
  _check_data_shape(model, args.model, args.data, args.data_dir)
  ds = data_lib.load_images(args.data, args.split, batch_size=args.batch_size, shuffle=False,
                            data_dir=args.data_dir, download=args.download, seed=args.seed)
  model.compile(jit_compile=False)
  results = model.evaluate(ds, return_dict=True, verbose=0)
  count = data_lib.num_examples(args.data, args.split, data_dir=args.data_dir)
  print(f"{args.split} bits/dim: {float(results['bits_per_dim']):.4f} ({args.data!r} split "
        f"{args.split!r}, {count} images, dequantized with seed {args.seed})")
  return 0


def _sample(args):
  """`tfp-realnvp sample`."""
  from tfp_realnvp import plotting  # pylint: disable=g-import-not-at-top

  model = _load_flow_model(args.model)
  images = model.sample(args.count, temperature=args.temperature, seed=args.seed)
  path = plotting.save_image_grid(images.numpy(), args.output, ncols=args.ncols)
  print(f"Wrote {args.count} samples (temperature {args.temperature:g}) to {path}")
  return 0


def _interpolate(args):
  """`tfp-realnvp interpolate`."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfp_realnvp import data as data_lib  # pylint: disable=g-import-not-at-top
  from tfp_realnvp import plotting  # pylint: disable=g-import-not-at-top

  steps = args.steps
  model = _load_flow_model(args.model)
  _check_data_shape(model, args.model, args.data, args.data_dir)
  ds = data_lib.load_images(args.data, "test", batch_size=256, shuffle=False,
                            data_dir=args.data_dir, download=args.download, dequantize=False)
  needed = max(args.indices) + 1
  batches, count = [], 0
  for batch in ds:
    batches.append(batch.numpy())
    count += len(batches[-1])
    if count >= needed:
      break
  if count < needed:
    raise _UsageError(f"--indices {max(args.indices)} is out of range: the test split of "
                      f"{args.data!r} has {count} images.")
  images = np.concatenate(batches)[list(args.indices)]
  z = model.distribution.bijector.inverse(tf.constant(images)).numpy().astype(np.float64)
  angles = np.linspace(0.0, math.pi / 2, steps)
  latents = []
  for p in angles:  # Rows.
    for q in angles:  # Columns.
      latents.append(math.cos(p) * (z[0] * math.cos(q) + z[1] * math.sin(q))
                     + math.sin(p) * (z[2] * math.cos(q) + z[3] * math.sin(q)))
  latents = tf.constant(np.stack(latents), dtype=tf.float32)
  grid = model.distribution.bijector.forward(latents)
  path = plotting.save_image_grid(grid.numpy(), args.output, ncols=steps)
  print(f"Wrote the {steps}x{steps} interpolation grid between test images "
        f"{' '.join(str(i) for i in args.indices)} of {args.data!r} to {path}")
  return 0


def _export(args):
  """`tfp-realnvp export`."""
  from tfp_realnvp import export as export_lib  # pylint: disable=g-import-not-at-top

  path = export_lib.export_saved_model(_load_flow_model(args.model), args.output,
                                       overwrite=args.overwrite)
  print(f"Wrote the SavedModel {path} (signatures: "
        f"{', '.join(export_lib.SIGNATURES)}, serving_default = log_prob)")
  return 0


# ------------------------------------------------------------------------------------------------
# Entry point.


def _user_errors():
  """The exception types reported as a one-line error instead of a traceback."""
  errors = (ValueError, TypeError, OSError, ImportError)
  tensorflow = sys.modules.get("tensorflow")
  if tensorflow is not None:
    errors += (tensorflow.errors.OpError,)
  return errors


def _one_line(error):
  text = " ".join(str(error).split())
  return text or type(error).__name__


def main(argv=None):
  """Runs the command line; returns the exit status (0 on success)."""
  parser = build_parser()
  args = parser.parse_args(argv)
  try:
    return args.run(args)
  except KeyboardInterrupt:
    print(f"{PROG}: error: interrupted", file=sys.stderr)
    return 130
  except Exception as error:  # pylint: disable=broad-except
    if args.traceback or not isinstance(error, _user_errors()):
      raise
    print(f"{PROG}: error: {_one_line(error)}", file=sys.stderr)
    return 1
