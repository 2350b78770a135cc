"""Builders, inputs, numerical checks and the fresh-process reload shared by the tests."""

import json
import pathlib
import subprocess
import sys
import tempfile

import numpy as np
import tensorflow as tf

from tfp_realnvp import bijectors
from tfp_realnvp import networks


def normal(shape, seed=0, dtype=np.float64):
  """A constant tensor of standard normal values, the same for the same `seed`."""
  return tf.constant(np.random.default_rng(seed).standard_normal(shape).astype(dtype))


def uniform(shape, seed=0, dtype=np.float64):
  """A constant tensor uniform in `[0.01, 0.99]` (valid logit inputs), the same for a `seed`."""
  return tf.constant(np.random.default_rng(seed).uniform(0.01, 0.99, shape).astype(dtype))


def randomize(layer, seed=0, stddev=0.2):
  """Moves every variable of a Keras layer away from its initial value (deterministically).

  Trainable variables receive Gaussian noise; batch-norm moving variances are scaled by a
  factor in [0.5, 1.5] and moving means shifted, so that a new flow is no longer the identity;
  ActNorm layers become initialised. The fixed permutations and signs of the LU-parameterised
  1x1 convolutions are left alone.
  """
  rng = np.random.default_rng(seed)
  sublayers = list(layer._flatten_layers())  # pylint: disable=protected-access
  fixed = {id(v) for sub in sublayers if isinstance(sub, bijectors.InvertibleConv1x1Parameters)
           for v in sub.non_trainable_variables}
  for sub in sublayers:  # The stacked copies of the convolutions' fixed variables too.
    if isinstance(sub, bijectors.StackedParameters):
      inner_layers = sub.template._flatten_layers()  # pylint: disable=protected-access
      template_fixed = {id(v) for inner in inner_layers
                        if isinstance(inner, bijectors.InvertibleConv1x1Parameters)
                        for v in inner.non_trainable_variables}
      fixed |= {id(stacked) for template, stacked in zip(sub.template.weights, sub.stacked,
                                                         strict=True)
                if id(template) in template_fixed}
  for variable in layer.variables:
    if id(variable) in fixed:
      continue
    value = variable.numpy()
    if "variance" in variable.path:
      value = value * rng.uniform(0.5, 1.5, size=value.shape)
    else:
      value = value + stddev * rng.standard_normal(value.shape)
    variable.assign(value.astype(value.dtype))
  return layer


def poison_a_coupling(flow):
  """Sets the output bias of `flow`'s first coupling network to NaN (a diverged weight): half
  the pixels of every sample become NaN. Returns `flow`."""
  bias = [v for v in flow.conditioners[0].weights if "bias" in v.path][-1]
  bias.assign(np.full(bias.shape, np.nan, "float32"))
  return flow


def resnet_conditioner(input_shape, output_channels, dtype="float64", seed=0, name=None,
                       conditional_size=None, params_per_unit=None):
  """A tiny randomised `CouplingResNet`, built for `input_shape` `(h, w, c)`.

  With `conditional_size=K`, a conditional network that takes `conditional_input` `[N, K]`;
  with `params_per_unit=P`, one returning raw parameters `[N, h, w, output_channels, P]`.
  """
  net = networks.CouplingResNet(output_channels, num_filters=4, num_blocks=1,
                                conditional_size=conditional_size,
                                params_per_unit=params_per_unit, dtype=dtype, name=name)
  net.build((None,) + tuple(input_shape))
  return randomize(net, seed)


def fresh(x):
  """A new tensor equal to `x`, so that TFP's bijector cache cannot answer for it."""
  return tf.identity(tf.convert_to_tensor(x))


def autodiff_log_abs_det(fn, x):
  """`log |det J|` of `fn` at one event `x` (no batch dimension), from the autodiff Jacobian."""
  x = tf.convert_to_tensor(x)
  with tf.GradientTape() as tape:
    tape.watch(x)
    y = fn(x)
  jacobian = tape.jacobian(y, x, experimental_use_pfor=True)
  size = int(np.prod(x.shape))
  matrix = tf.reshape(jacobian, [int(np.prod(y.shape)), size]).numpy()
  sign, log_abs_det = np.linalg.slogdet(matrix)
  assert sign != 0, "the Jacobian is singular"
  return log_abs_det


def assert_close_relative(actual, expected, rtol):
  actual, expected = np.asarray(actual), np.asarray(expected)
  scale = np.maximum(1.0, np.abs(expected))
  error = np.max(np.abs(actual - expected) / scale)
  assert error <= rtol, f"relative error {error:.3g} > {rtol:g}: {actual} vs {expected}"


class Output:
  """An input of a `reload_in_fresh_process` call: the output of an earlier call, by name."""

  def __init__(self, call):
    self.call = call


_RELOAD_SCRIPT = """
import json, sys
import numpy as np
import tensorflow as tf
export_dir, workdir = sys.argv[1:]
served = tf.saved_model.load(export_dir)
with open(workdir + "/calls.json") as f:
  calls = json.load(f)
arrays = np.load(workdir + "/inputs.npz")
outputs = {}
for name, (signature, inputs) in calls.items():
  kwargs = {key: outputs[value["output"]] if isinstance(value, dict)
            else tf.constant(arrays[value]) for key, value in inputs.items()}
  (outputs[name],) = served.signatures[signature](**kwargs).values()
np.savez(workdir + "/outputs.npz", **{name: value.numpy() for name, value in outputs.items()})
print(json.dumps({
    "specs": {name: {key: [spec.shape.as_list(), spec.dtype.name]
                     for key, spec in function.structured_input_signature[1].items()}
              for name, function in served.signatures.items()},
    "modules": sorted(m for m in sys.modules
                      if m.startswith("tfp_realnvp") or m.startswith("tensorflow_probability")),
}))
"""


def reload_in_fresh_process(export_dir, calls):
  """Loads a SavedModel in a new Python process that imports TensorFlow alone and calls it.

  Args:
    export_dir: the SavedModel folder.
    calls: `{name: (signature, inputs)}`, made in order; `inputs` maps each input of the
      signature to an array (sent with its numpy dtype: `np.int32(3)` for an int32 scalar) or
      to `Output(name)`, the output of an earlier call (as a tensor of the fresh process).

  Returns:
    A dict: for every call `name`, the one output of its signature as a numpy array; under
    `"specs"`, `{signature: {input: [shape, dtype name]}}` of every signature of the SavedModel;
    under `"modules"`, the modules of this package or of TFP the process imported (none, if
    the SavedModel is really self-contained).
  """
  with tempfile.TemporaryDirectory() as workdir:
    workdir = pathlib.Path(workdir)
    arrays, spec = {}, {}
    for name, (signature, inputs) in calls.items():
      spec[name] = [signature, {}]
      for key, value in inputs.items():
        if isinstance(value, Output):
          spec[name][1][key] = {"output": value.call}
        else:
          arrays[f"{name}.{key}"] = np.asarray(value)
          spec[name][1][key] = f"{name}.{key}"
    (workdir / "calls.json").write_text(json.dumps(spec))
    np.savez(workdir / "inputs.npz", **arrays)
    result = subprocess.run([sys.executable, "-c", _RELOAD_SCRIPT, str(export_dir), str(workdir)],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    with np.load(workdir / "outputs.npz") as outputs:
      served.update({name: outputs[name] for name in calls})
  return served


def reload_calls(x, condition=None, sample_condition=None):
  """`reload_in_fresh_process` calls of every signature of an exported `FlowModel`.

  Args:
    x: data, a batch of images.
    condition: for a conditional model, the conditions of `x`, one per image.
    sample_condition: for a conditional model, the condition of the samples: one per image
      (3) or a single one for all.

  Returns:
    The calls `log_prob`, `default` (`serving_default`), `bits_per_dim`, `z` (`inverse`),
    `round_trip` (`forward` of that `z`), and `sample` and `sample_again`: both 3 images, seed 7,
    temperature 0.8.
  """
  given = {} if condition is None else {"condition": condition}
  sample = ("sample", {"count": np.int32(3), "seed": np.int32(7), "temperature": np.float32(0.8),
                       **({} if sample_condition is None else {"condition": sample_condition})})
  return {
      "log_prob": ("log_prob", {"x": x, **given}),
      "default": ("serving_default", {"x": x, **given}),
      "bits_per_dim": ("bits_per_dim", {"x": x, **given}),
      "z": ("inverse", {"x": x, **given}),
      "round_trip": ("forward", {"z": Output("z"), **given}),
      "sample": sample,
      "sample_again": sample,
  }


class Interrupted(Exception):
  """Raised by `stop_before_finish` in place of a training run's final evaluation."""


def stop_before_finish(monkeypatch):
  """Makes `tfp_realnvp.training.train` raise `Interrupted` after its last epoch's backup.

  What it leaves behind is the folder of a run killed during its final evaluation: the backup
  of every finished epoch, and no model or test figures.
  """
  from tfp_realnvp.training import run  # pylint: disable=g-import-not-at-top

  def interrupt(*args, **kwargs):
    del args, kwargs
    raise Interrupted()

  monkeypatch.setattr(run, "_finish", interrupt)


def describe_process(result):
  """The exit status and the ends of the output of a `subprocess.CompletedProcess`."""
  return (f"exit {result.returncode}\nstdout:\n{result.stdout[-3000:]}\n"
          f"stderr:\n{result.stderr[-3000:]}")
