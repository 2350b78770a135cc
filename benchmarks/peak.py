#!/usr/bin/env python
"""Peak benchmark: how far each operation of tfp_realnvp and of normflows is from the CPU's peak.

For each configuration of `speed.py` (`_configs.py`; `--flow realnvp|glow`, batch 64, one
thread by default), and each of its operations (`train_step`, `log_prob` of the batch,
`sample` of 64 images), this script

1. counts the floating-point operations of one call, for both libraries:

   * ours: the model is built as `speed.py`'s worker builds it (`speed.build_ours`), each
     operation is called once (which traces it), and the FLOPs are counted in the graphs that
     TensorFlow traced for exactly those calls: the `tf.function` that Keras's
     `train_on_batch` runs (found in the closure of `model.train_function`) and the
     `tf.function`s of `FlowModel.log_prob` and `FlowModel.sample` (the model's
     `_graph_functions`). The count walks nested function bodies: `While` bodies times their
     trip count, the larger branch of an `If`/`Case`, the functions of
     `(Stateful)PartitionedCall` ops (looked up in the graphs' function libraries,
     `graph._functions`). A `While`'s trip count is its `maximum_iterations` where that is a
     constant of the graph (as in a Glow with `scan=True`, whose steps run in a
     `tf.while_loop`: its counts equal the unrolled `scan=False` Glow's, forward and gradient
     loops alike); a `While` without one is counted once and listed in
     `unknown_trip_counts`, and if there is one in a Glow that has the `scan` option, the
     counts are those of the same Glow built with `scan=False` (same weights, same FLOPs;
     `flow_options` in the results says so; the timed worker keeps its default);
   * normflows: `torch.utils.flop_counter.FlopCounterMode` around one call of each operation
     of `normflows_worker.build`'s model (after a first call, which initialises its ActNorms).

   Only matrix-multiply-like work is counted: on our side Conv2D (and `_FusedConv2D`),
   Conv2DBackpropInput, Conv2DBackpropFilter (each `2 * N * Hout * Wout * Cout * Kh * Kw * Cin`,
   from static shapes), the depthwise convolutions, MatMul, BatchMatMul(V2/V3) and Einsum
   (`2 * M * N * K`); on normflows' side what `FlopCounterMode` counts (convolutions and their
   backward, mm, addmm, bmm, baddbmm). Elementwise work (batch norm, activations, the
   couplings' arithmetic, Adam) and matrix factorisations (Glow's 1x1 inverse) are excluded;
   the profile below says how much of the time they take;
2. measures the core's peak with TensorFlow on the same thread count (`--threads`): float32
   and bfloat16 square matrix multiplies (`--matmul-sizes`, best of `--peak-reps` calls of a
   `tf.function`, each forced with `.numpy()`), and, as a second, more relevant "attainable"
   reference, a 3x3 "same" Conv2D at a shape typical of the configuration:
   `[64, H/2, W/2, F]` -> `F` filters (the resolution of the first scale's channel couplings and
   the width `F` of the coupling networks; Real NVP's ResNets run this convolution; Glow's
   networks run 1x1 `F` -> `F` convolutions at that shape, also measured, and 3x3 ones with
   few input channels). The same matrix multiplies and convolutions are measured with torch
   in the normflows environment, for reference. The peaks are measured at the start and at the
   end of the run and the larger figure is used (a busy machine only lowers them);
3. times each operation on both libraries with `speed.py`'s workers and its interleaved rounds
   (`speed.interleave`), then, with `--profile CALLS` (3 by default), profiles CALLS more calls
   per operation with each library's profiler (`speed.py --profile`'s) and reports the share
   of op time spent outside convolutions and matrix multiplies: TensorFlow op types containing
   "Conv", "MatMul" or "Einsum" (oneDNN's fused convolutions, `_MklNativeFusedConv2D`, include
   the bias add or activation fused into them), PyTorch ops containing "conv", "matmul" or
   "linear", and mm, addmm, bmm, baddbmm, by self CPU time; read from the 15 most expensive
   op types, so the share outside is an upper bound. The profilers slow the calls down
   (PyTorch's the more, per op), so the share and the GFLOP/s inside the kernels below are
   approximations;
4. reports per operation and library: GFLOP per call, the median time, the achieved GFLOP/s
   (at the median), its fraction of TensorFlow's matrix-multiply peak and of its convolution
   reference, both in the precision of `--precision` (in bfloat16, of the bfloat16 peak; the
   results also hold the fraction of the better of TensorFlow's and torch's matmul peaks), and
   the GFLOP/s inside the convolution and matrix-multiply kernels (FLOPs over their profiled
   time). Output: `results.json` (machine, date, command, peaks, counts with their op types,
   timings, profiles) and a Markdown table.

Example (from the repository root):

```bash
python benchmarks/peak.py --torch-python .bench-venv/bin/python --configs mnist,cifar \
    --output benchmarks/runs/peak
python benchmarks/peak.py --torch-python .bench-venv/bin/python --flow glow \
    --configs mnist,cifar --output benchmarks/runs/peak-glow
```

Timings are never tests: the figures go to `benchmarks/RESULTS.md`.
"""

import argparse
import inspect
import json
import os
import pathlib
import re
import subprocess
import sys

import _configs
import _runlog
import _worker
import speed

_HERE = pathlib.Path(__file__).resolve().parent
_REPO_ROOT = _HERE.parent

OPS = speed.OPS
DTYPES = ("float32", "bfloat16")
LIBRARIES = ("tfp_realnvp", "normflows")
# Op types (TensorFlow) and op names (PyTorch) whose profiled time is convolution or matrix
# multiply work.
_MATMUL_TIME = re.compile(r"conv|matmul|einsum|(^|::|_)(mm|addmm|bmm|baddbmm)$|linear",
                          re.IGNORECASE)


def parse_args(argv=None):
  """Parses the command line."""
  parser = argparse.ArgumentParser(
      description=__doc__.split("\n\n", maxsplit=1)[0],
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  speed.add_comparison_arguments(parser)
  parser.add_argument("--threads", type=int, default=1,
                      help="Threads of both libraries (as speed.py's --threads) and of the peak "
                           "measurements; 0 keeps each library's default.")
  parser.add_argument("--precision", choices=speed.PRECISIONS, default="float32",
                      help="As speed.py's --precision; the fractions are of this precision's "
                           "peak.")
  parser.add_argument("--profile", type=int, default=3, metavar="CALLS",
                      help="Profiled calls per operation and library, for the share of time "
                           "outside convolutions and matrix multiplies; 0 skips it.")
  parser.add_argument("--matmul-sizes", default="512,1024,2048",
                      help="Comma-separated sizes n of the n x n matrix multiplies of the peak.")
  parser.add_argument("--peak-reps", type=int, default=5,
                      help="Timed calls per peak measurement (the best one counts).")
  parser.add_argument("--output", default=str(_HERE / "runs" / "peak"),
                      help="Folder for results.json.")
  # A part of the run, in its own process (started by the driver).
  parser.add_argument("--part", default=None,
                      choices=("count-ours", "count-theirs", "peak-tf", "peak-torch"),
                      help=argparse.SUPPRESS)
  parser.add_argument("--config", default="mnist", help=argparse.SUPPRESS)
  parser.add_argument("--conv-shapes", default="[]", help=argparse.SUPPRESS)
  # What speed.py's workers are given (its defaults: FusedAdam, no remat, seed 0).
  parser.set_defaults(optimizer="fused", remat=None, seed=0, memory_steps=1)
  return parser.parse_args(argv)


# --- FLOPs of TensorFlow graphs ---------------------------------------------------------------

_CONV = ("Conv2D", "_FusedConv2D", "Conv2DBackpropInput", "Conv2DBackpropInputV2",
         "Conv2DBackpropFilter", "Conv2DBackpropFilterV2")
_DEPTHWISE = ("DepthwiseConv2dNative", "DepthwiseConv2dNativeBackpropInput",
              "DepthwiseConv2dNativeBackpropFilter")
_MATMUL = ("MatMul", "_FusedMatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3")
_WHILE = ("While", "StatelessWhile")
_IF = ("If", "StatelessIf")
_CASE = ("Case", "StatelessCase")
_CALL = ("PartitionedCall", "StatefulPartitionedCall")


def _product(dims):
  """The product of `dims`, or `None` if one of them is unknown."""
  result = 1
  for dim in dims:
    if dim is None:
      return None
    result *= dim
  return result


def _dims(tensor):
  """The static shape of `tensor` as a list (entries `None` where unknown), or `None`."""
  shape = tensor.shape
  return None if shape.rank is None else shape.as_list()


def _einsum_flops(op):
  """`2 * (output elements) * (contracted sizes)` of a two-operand Einsum; `None` if unknown."""
  if len(op.inputs) != 2:
    return 0  # One operand: a transpose or a reduction, not a product.
  inputs, output = op.get_attr("equation").decode().replace(" ", "").split("->")
  sizes = {}
  for labels, tensor in zip(inputs.split(","), op.inputs, strict=True):
    dims = _dims(tensor)
    if dims is None:
      return None
    labels = labels.replace("...", "")
    for label, dim in zip(labels, dims[len(dims) - len(labels):], strict=True):
      sizes[label] = dim
  contracted = _product(sizes[label] for label in sizes if label not in output)
  out = _dims(op.outputs[0])
  if contracted is None or out is None or _product(out) is None:
    return None
  return 2 * _product(out) * contracted


def op_flops(op):
  """FLOPs of one execution of a matrix-multiply-like TensorFlow op, from static shapes.

  Convolutions: `2 * (elements of the output side) * Kh * Kw * Cin` (per depthwise channel:
  `2 * ... * Kh * Kw`), the output side being the output of the forward op and the
  `out_backprop` input of the two backward ops, so each backward op costs what the forward
  one does. Matrix multiplies: `2 * (output elements) * K`.

  Returns:
    The FLOPs, 0 for an op that is not counted, or `None` if a shape it needs is unknown.
  """
  kind = op.type
  if kind in _CONV or kind in _DEPTHWISE:
    backward_filter = "BackpropFilter" in kind
    out_side = op.inputs[2] if "Backprop" in kind else op.outputs[0]
    kernel = _dims(op.outputs[0] if backward_filter else op.inputs[1])
    out = _dims(out_side)
    if kernel is None or out is None:
      return None
    per_output = kernel[0], kernel[1], (1 if kind in _DEPTHWISE else kernel[2])
    count = _product(out + list(per_output))
    return None if count is None else 2 * count
  if kind in _MATMUL:
    a, out = _dims(op.inputs[0]), _dims(op.outputs[0])
    if a is None or out is None:
      return None
    transposed = op.get_attr("transpose_a" if "Batch" not in kind else "adj_x")
    count = _product(out + [a[-2] if transposed else a[-1]])
    return None if count is None else 2 * count
  if kind == "Einsum":
    return _einsum_flops(op)
  return 0


class GraphFlops:
  """Counts the matrix-multiply-like FLOPs of traced TensorFlow graphs (`count`).

  Nested functions are found by name in the function library of the graph that calls them or
  of one of its outer graphs (`graph._functions`); each body is counted once and memoised.
  Attributes after `count`: `by_type` (FLOPs per op type), `unknown_shapes` (names of counted
  op types whose static shapes were incomplete, skipped), `unknown_trip_counts` (`While` ops
  whose trip count is not a constant: their body counted once), `unresolved` (function names
  not found).
  """

  def __init__(self):
    self.by_type = {}
    self.unknown_shapes = []
    self.unknown_trip_counts = []
    self.unresolved = []
    self._memo = {}

  def count(self, graph):
    """FLOPs of one execution of `graph` (a `FuncGraph`), nested functions included."""
    return sum(self._op(op, graph) for op in graph.get_operations())

  def _function_graph(self, name, graph):
    """The graph of the function `name`, looked up from `graph` outwards; `None` if absent."""
    while graph is not None:
      function = getattr(graph, "_functions", {}).get(name)
      if function is not None:
        body = getattr(function, "graph", None)
        if body is None:  # A function known only by its FunctionDef.
          # pylint: disable=g-import-not-at-top
          from tensorflow.python.framework import function_def_to_graph
          # pylint: enable=g-import-not-at-top
          body = function_def_to_graph.function_def_to_graph(function.definition)
        return body
      graph = getattr(graph, "outer_graph", None)
    return None

  def _function(self, name, graph):
    """`(FLOPs, by_type)` of one call of the function `name` (memoised)."""
    if name not in self._memo:
      body = self._function_graph(name, graph)
      if body is None:
        self.unresolved.append(name)
        self._memo[name] = (0, {})
      else:
        outer, self.by_type = self.by_type, {}
        flops = self.count(body)
        self._memo[name], self.by_type = (flops, self.by_type), outer
    return self._memo[name]

  def _call(self, name, graph, times=1):
    """Adds `times` calls of the function `name` to `by_type`; returns their FLOPs."""
    flops, by_type = self._function(name, graph)
    for kind, value in by_type.items():
      self.by_type[kind] = self.by_type.get(kind, 0) + times * value
    return times * flops

  def _op(self, op, graph):
    """FLOPs of `op`, including the functions it runs."""
    kind = op.type
    if kind in _WHILE:
      # pylint: disable=g-import-not-at-top
      from tensorflow.python.framework import tensor_util
      # pylint: enable=g-import-not-at-top
      # while_v2's loop variables start with the loop counter and `maximum_iterations`.
      trips = tensor_util.constant_value(op.inputs[1]) if len(op.inputs) > 1 else None
      if trips is None or trips.ndim or int(trips) < 0:
        self.unknown_trip_counts.append(op.name)
        trips = 1
      return self._call(op.get_attr("body").name, graph, int(trips))
    if kind in _IF or kind in _CASE:
      names = ([op.get_attr("then_branch").name, op.get_attr("else_branch").name]
               if kind in _IF else [branch.name for branch in op.get_attr("branches")])
      largest = max(names, key=lambda name: self._function(name, graph)[0])
      return self._call(largest, graph)
    if kind in _CALL:
      return self._call(op.get_attr("f").name, graph)
    if self._function_graph(kind, graph) is not None:  # A function called by its name.
      return self._call(kind, graph)
    flops = op_flops(op)
    if flops is None:
      self.unknown_shapes.append(kind)
      return 0
    if flops:
      self.by_type[kind] = self.by_type.get(kind, 0) + flops
    return flops

  def summary(self, flops):
    """The JSON-ready record of a count of `flops`."""
    return {"flops": int(flops), "by_type": {k: int(v) for k, v in sorted(self.by_type.items())},
            "unknown_shapes": sorted(set(self.unknown_shapes)),
            "unknown_trip_counts": self.unknown_trip_counts, "unresolved": self.unresolved}


def count_graph_flops(graph):
  """`GraphFlops().summary(...)` of one graph: FLOPs, by op type, and what could not be known."""
  counter = GraphFlops()
  return counter.summary(counter.count(graph))


def traced_functions(function, _seen=None):
  """The `tf.function`s in the closure of the Python function `function`, recursively.

  Keras's `model.train_function` is a plain function whose closure holds the `tf.function` it
  runs (`one_step_on_data`, possibly behind a wrapper); this finds it without naming Keras's
  internals.
  """
  # pylint: disable=g-import-not-at-top
  import tensorflow as tf
  # pylint: enable=g-import-not-at-top
  seen = set() if _seen is None else _seen
  if id(function) in seen:
    return []
  seen.add(id(function))
  if isinstance(function, tf.types.experimental.PolymorphicFunction):
    return [function]
  found = []
  for cell in getattr(function, "__closure__", None) or ():
    try:
      value = cell.cell_contents
    except ValueError:  # An empty cell.
      continue
    if isinstance(value, tf.types.experimental.PolymorphicFunction) or inspect.isfunction(value):
      found += traced_functions(value, seen)
  wrapped = getattr(function, "__wrapped__", None)
  if wrapped is not None:
    found += traced_functions(wrapped, seen)
  return found


def count_functions(functions):
  """Counts the concrete functions traced by `functions` (`tf.function`s).

  Each timed call runs one of them; if several were traced (a retrace), the largest count is
  kept and `concrete_functions` says how many there were.
  """
  counts = []
  for function in functions:
    # pylint: disable-next=protected-access
    for concrete in function._list_all_concrete_functions():
      counts.append(count_graph_flops(concrete.graph))
  if not counts:
    raise RuntimeError("no traced graph found: call the operations before counting.")
  return dict(max(counts, key=lambda record: record["flops"]), concrete_functions=len(counts))


def count_ours(args):
  """FLOPs of one call of each of our operations for `args.config` (runs in our venv)."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  # pylint: disable=g-import-not-at-top
  import tensorflow as tf
  import tfp_realnvp
  # pylint: enable=g-import-not-at-top
  _set_tf_threads(tf, args.threads)
  config = _configs.resolve(args, args.config)
  counts = _count_model(args, config)
  if (any(count["unknown_trip_counts"] for count in counts.values())
      and config["flow"] == "glow"
      and "scan" in inspect.signature(tfp_realnvp.Glow).parameters):
    # Same weights and FLOPs, without the loops whose trip counts are unknown.
    return {"flow_options": {"scan": False}, "ops": _count_model(args, config, scan=False),
            "scanned_counts": counts}
  return {"flow_options": {}, "ops": counts}


def _count_model(args, config, **flow_options):
  """Builds our model (`speed.build_ours`), calls each operation once, counts the traces."""
  model, _, ops = speed.build_ours(args, config, **flow_options)
  for op in OPS:  # The training step first: Glow's ActNorms initialise there.
    ops[op]()
  # pylint: disable-next=protected-access
  graph_functions = model._graph_functions
  functions = {"train_step": traced_functions(model.train_function),
               "log_prob": [graph_functions["log_prob"]], "sample": [graph_functions["sample"]]}
  return {op: count_functions(functions[op]) for op in OPS}


def count_theirs(args):
  """FLOPs of one call of each normflows operation (runs in the normflows venv)."""
  # pylint: disable=g-import-not-at-top
  import torch
  from torch.utils.flop_counter import FlopCounterMode
  import normflows_worker
  # pylint: enable=g-import-not-at-top
  if args.threads:
    torch.set_num_threads(args.threads)
  config = _configs.resolve(args, args.config)
  _, _, _, _, ops = normflows_worker.build(config, args.precision, args.batch_size, args.seed)
  for op in OPS:  # ActNorms initialise on the first forward pass.
    ops[op]()
  result = {}
  for op in OPS:
    with FlopCounterMode(display=False) as counter:
      ops[op]()
    by_type = counter.get_flop_counts().get("Global", {})
    result[op] = {"flops": int(counter.get_total_flops()),
                  "by_type": {str(k): int(v) for k, v in sorted(by_type.items(), key=str)}}
  return {"ops": result}


# --- The core's peak --------------------------------------------------------------------------

def _set_tf_threads(tf, threads):
  """Sets TensorFlow's intra- and inter-op threads (0 keeps its defaults)."""
  if threads:
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def _best_gflops(call, flops, reps):
  """GFLOP/s of the fastest of `reps` calls of `call` (after one untimed call)."""
  call()
  return flops / min(_worker.call_times(call, reps)) / 1e9


def conv_flops(shape, kernel):
  """FLOPs of a "same" `kernel x kernel` convolution of NHWC `shape` to as many channels."""
  n, h, w, c = shape
  return 2 * n * h * w * c * kernel * kernel * c


def conv_reference_shape(args, config):
  """`[B, H/2, W/2, F]`: the typical convolution input of `config` (see the module docstring)."""
  resolved = _configs.resolve(args, config)
  h, w, _ = resolved["image_shape"]
  return [args.batch_size, h // 2, w // 2, resolved["num_filters"]]


def peak_tf(args):
  """TensorFlow's best GFLOP/s: square matmuls and the reference convolutions, both dtypes."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  # pylint: disable=g-import-not-at-top
  import tensorflow as tf
  # pylint: enable=g-import-not-at-top
  _set_tf_threads(tf, args.threads)
  # A 1x1 corner of the result leaves the process (`.numpy()` of the whole product would add
  # a copy of it to the time).
  matmul = tf.function(lambda a, b: tf.matmul(a, b)[:1, :1])
  conv = tf.function(lambda x, k: tf.nn.conv2d(x, k, 1, "SAME")[:1, :1, :1, :1])

  def normal(shape, dtype):
    return tf.cast(tf.random.stateless_normal(shape, seed=[0, 1]), dtype)

  result = {"library": "tensorflow", "version": tf.__version__,
            "threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "matmul": {}, "conv": {}}
  for dtype in DTYPES:
    by_size = {}
    for n in _sizes(args):
      a, b = normal([n, n], dtype), normal([n, n], dtype)
      by_size[n] = _best_gflops(lambda a=a, b=b: matmul(a, b).numpy(), 2 * n ** 3,
                                args.peak_reps)
    result["matmul"][dtype] = {"best_gflops": max(by_size.values()), "by_size": by_size}
    result["conv"][dtype] = {}
    for shape in json.loads(args.conv_shapes):
      for kernel in (3, 1):
        x, k = normal(shape, dtype), normal([kernel, kernel, shape[3], shape[3]], dtype)
        result["conv"][dtype][_conv_key(shape, kernel)] = _best_gflops(
            lambda x=x, k=k: conv(x, k).numpy(), conv_flops(shape, kernel), args.peak_reps)
  return result


def peak_torch(args):
  """torch's best GFLOP/s on the same matmuls and convolutions (normflows venv)."""
  # pylint: disable=g-import-not-at-top
  import torch
  # pylint: enable=g-import-not-at-top
  if args.threads:
    torch.set_num_threads(args.threads)
  generator = torch.Generator().manual_seed(0)
  result = {"library": "torch", "version": torch.__version__,
            "threads": torch.get_num_threads(), "matmul": {}, "conv": {}}
  with torch.no_grad():
    for dtype in DTYPES:
      torch_dtype = getattr(torch, dtype)

      def normal(*shape, torch_dtype=torch_dtype):
        return torch.randn(*shape, generator=generator).to(torch_dtype)

      by_size = {}
      for n in _sizes(args):
        a, b = normal(n, n), normal(n, n)
        by_size[n] = _best_gflops(lambda a=a, b=b: torch.mm(a, b), 2 * n ** 3, args.peak_reps)
      result["matmul"][dtype] = {"best_gflops": max(by_size.values()), "by_size": by_size}
      result["conv"][dtype] = {}
      for shape in json.loads(args.conv_shapes):
        n, h, w, c = shape
        for kernel in (3, 1):
          x, k = normal(n, c, h, w), normal(c, c, kernel, kernel)
          result["conv"][dtype][_conv_key(shape, kernel)] = _best_gflops(
              lambda x=x, k=k, p=kernel // 2: torch.nn.functional.conv2d(x, k, padding=p),
              conv_flops(shape, kernel), args.peak_reps)
  return result


def _sizes(args):
  """The matmul sizes of `--matmul-sizes`."""
  return [int(n) for n in args.matmul_sizes.split(",") if n.strip()]


def _conv_key(shape, kernel):
  """The results' key of a reference convolution, e.g. `conv3x3 [64, 14, 14, 32]`."""
  return f"conv{kernel}x{kernel} {list(shape)}"


def best_peaks(measurements):
  """The best of several peak measurements of one library (`peak_tf` or `peak_torch` results).

  Returns:
    `{"matmul": {dtype: GFLOP/s}, "conv": {dtype: {key: GFLOP/s}}}`.
  """
  matmul = {dtype: max(m["matmul"][dtype]["best_gflops"] for m in measurements)
            for dtype in DTYPES}
  conv = {dtype: {key: max(m["conv"][dtype][key] for m in measurements)
                  for key in measurements[0]["conv"][dtype]} for dtype in DTYPES}
  return {"matmul": matmul, "conv": conv}


# --- Driver -----------------------------------------------------------------------------------

def run_part(args, part, config=None, conv_shapes=None):
  """Runs one `--part` of the run in its own process and returns its JSON result."""
  python = args.torch_python if part in ("count-theirs", "peak-torch") else sys.executable
  command = [python, str(_HERE / "peak.py"), "--part", part, "--threads", str(args.threads),
             "--batch-size", str(args.batch_size), "--precision", args.precision,
             "--matmul-sizes", args.matmul_sizes, "--peak-reps", str(args.peak_reps),
             "--conv-shapes", json.dumps(conv_shapes or [])] + _configs.override_flags(args)
  if config is not None:
    command += ["--config", config]
  out = subprocess.run(command, capture_output=True, text=True, cwd=_REPO_ROOT,
                       env=speed.worker_env(args), check=False)
  if out.returncode:
    sys.exit(f"error: {' '.join(command)} failed ({out.returncode}):\n{out.stderr[-3000:]}")
  return json.loads(out.stdout.strip().splitlines()[-1])


def measure_peaks(args, conv_shapes):
  """The peaks of both libraries' kernels (TensorFlow's and torch's)."""
  print("measuring the peaks ...", flush=True)
  return {"tensorflow": run_part(args, "peak-tf", conv_shapes=conv_shapes),
          "torch": run_part(args, "peak-torch", conv_shapes=conv_shapes)}


def matmul_time(table):
  """Milliseconds per call in convolutions and matrix multiplies of a profile's top op types."""
  return sum(row["ms_per_call"] for row in table["top"] if _MATMUL_TIME.search(row["op"]))


def op_row(flops, times, profile, matmul_peak, conv_reference, best_matmul_peak):
  """One library's figures for one operation.

  Args:
    flops: FLOPs of one call.
    times: seconds of the timed calls.
    profile: the worker's profile of the operation (`_worker.op_table`), or `None`.
    matmul_peak: GFLOP/s of the matrix-multiply peak in the run's precision.
    conv_reference: GFLOP/s of the reference convolution in the run's precision.
    best_matmul_peak: the larger of TensorFlow's and torch's matrix-multiply peaks.

  Returns:
    A JSON-ready dict: `speed.summarize`'s times, `gflop`, `gflops` (at the median), the
    fractions of the three references, and from the profile the time in convolutions and matrix
    multiplies, its share of the op time, and the GFLOP/s inside those kernels.
  """
  row = dict(speed.summarize(times), gflop=flops / 1e9)
  row["gflops"] = flops / (row["median_ms"] / 1e3) / 1e9
  row["fraction_of_matmul_peak"] = row["gflops"] / matmul_peak
  row["fraction_of_conv_reference"] = row["gflops"] / conv_reference
  row["fraction_of_best_matmul_peak"] = row["gflops"] / best_matmul_peak
  if profile:
    in_matmul = matmul_time(profile)
    row["profile"] = {"wall_ms_per_call": profile["wall_ms_per_call"],
                      "op_ms_per_call": profile["op_ms_per_call"],
                      "matmul_ms_per_call": in_matmul,
                      "share_outside_matmul": 1.0 - in_matmul / profile["op_ms_per_call"],
                      "gflops_in_matmul_ops": (flops / (in_matmul / 1e3) / 1e9
                                               if in_matmul else None)}
  return row


def add_figures(run):
  """Fills every configuration's `ops` from its counts and times with the best peaks so far."""
  peaks = {library: best_peaks(run["peaks"][library]) for library in ("tensorflow", "torch")}
  run["best_peaks"] = peaks
  for result in run["results"].values():
    matmul_peak = peaks["tensorflow"]["matmul"][run["precision"]]
    best_matmul_peak = max(library["matmul"][run["precision"]] for library in peaks.values())
    conv_reference = peaks["tensorflow"]["conv"][run["precision"]][result["conv_reference"]]
    result["ops"] = {op: {library: op_row(result["flops"][library]["ops"][op]["flops"],
                                          result["seconds"][library][op],
                                          result["profile"].get(library, {}).get(op),
                                          matmul_peak, conv_reference, best_matmul_peak)
                          for library in LIBRARIES} for op in OPS}


def print_table(run):
  """Prints the peaks and the Markdown table of the figures."""
  precision = run["precision"]
  for library, peaks in run["best_peaks"].items():
    matmul = ", ".join(f"{dtype} {peaks['matmul'][dtype]:.1f}" for dtype in DTYPES)
    print(f"{library} matmul peak (GFLOP/s, threads {run['threads']}): {matmul}")
    for key in peaks["conv"][precision]:
      print(f"  {key} {precision}: {peaks['conv'][precision][key]:.1f} GFLOP/s")
  print(f"\nFractions of TensorFlow's {precision} matmul peak and of its {precision} conv3x3 "
        "reference; FLOPs are convolutions and matrix multiplies only.\n")
  print("| flow, config | operation | library | GFLOP per call | median ms | GFLOP/s | "
        "of matmul peak | of conv3x3 | GFLOP/s in conv/matmul ops | time outside conv/matmul |")
  print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
  for config, result in run["results"].items():
    label = f"{result['config']['flow']} {config}"
    for op, rows in result["ops"].items():
      for library, row in rows.items():
        profile = row.get("profile")
        inside = "-" if not profile or profile["gflops_in_matmul_ops"] is None else (
            f"{profile['gflops_in_matmul_ops']:.1f}")
        outside = "-" if not profile else f"{100 * profile['share_outside_matmul']:.0f}%"
        print(f"| {label} | {op} | {library} | {row['gflop']:.2f} | {row['median_ms']:.1f} | "
              f"{row['gflops']:.1f} | {100 * row['fraction_of_matmul_peak']:.1f}% | "
              f"{100 * row['fraction_of_conv_reference']:.1f}% | {inside} | {outside} |")


def run_driver(args):
  """Counts, measures the peaks, times every configuration and writes `results.json`."""
  speed.require_torch_python(args)
  if args.rounds * args.reps < 2:
    sys.exit("error: --rounds x --reps must be at least 2 to give medians and quartiles.")
  configs = [c.strip() for c in args.configs.split(",") if c.strip()]
  try:
    conv_shapes = {config: conv_reference_shape(args, config) for config in configs}
  except ValueError as e:
    sys.exit(f"error: {e}")
  output = pathlib.Path(args.output)
  output.mkdir(parents=True, exist_ok=True)
  print(_runlog.cpu_summary(), flush=True)
  run = {"benchmark": "peak", "date_utc": _runlog.utc_now(),
         "command": " ".join([sys.executable] + sys.argv),
         "machine": _runlog.machine_info(), "flow": args.flow, "precision": args.precision,
         "threads": args.threads or "library defaults", "rounds": args.rounds, "reps": args.reps,
         "profile_calls": args.profile, "batch_size": args.batch_size, "samples": speed.SAMPLES,
         "peaks": {}, "results": {}}
  shapes = list(conv_shapes.values())
  start = measure_peaks(args, shapes)
  run["peaks"] = {library: [start[library]] for library in start}
  for config in configs:
    print(f"[{config}] counting FLOPs ...", flush=True)
    flops = {"tfp_realnvp": run_part(args, "count-ours", config),
             "normflows": run_part(args, "count-theirs", config)}
    timed = speed.time_libraries(args, config)
    run["results"][config] = {
        "config": dict(_configs.resolve(args, config), batch_size=args.batch_size,
                       samples=speed.SAMPLES),
        "conv_reference": _conv_key(conv_shapes[config], 3), "flops": flops,
        "seconds": timed["times"], "loadavg_1min": timed["loads"], "workers": timed["infos"],
        "profile": timed["profiles"]}
    add_figures(run)
    _runlog.write_json(output / "results.json", run)
  end = measure_peaks(args, shapes)
  for library in end:
    run["peaks"][library].append(end[library])
  add_figures(run)
  _runlog.write_json(output / "results.json", run)
  print_table(run)
  print(f"results: {output / 'results.json'}")


def main(argv=None):
  args = parse_args(argv)
  parts = {"count-ours": count_ours, "count-theirs": count_theirs, "peak-tf": peak_tf,
           "peak-torch": peak_torch}
  if args.part:
    _worker.emit(parts[args.part](args))
  else:
    run_driver(args)


if __name__ == "__main__":
  main()
