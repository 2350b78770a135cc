"""`benchmarks/peak.py`'s FLOP counter on small traced graphs whose FLOPs are known by hand:
a Conv2D and a Dense layer with their gradients, loops, branches, nested functions, Einsum."""

import pathlib
import sys

import keras
import pytest
import tensorflow as tf

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "benchmarks"))
import peak  # pylint: disable=g-import-not-at-top,wrong-import-position

# A batch of 2 images 6x8 with 3 channels; a 3x3 "same" Conv2D to 5 channels, then a Dense
# layer from the 6 * 8 * 5 = 240 flattened features to 7 units.
N, H, W, C_IN, C_OUT, UNITS = 2, 6, 8, 3, 5, 7
CONV = 2 * N * H * W * C_OUT * 3 * 3 * C_IN  # 2 * N * Hout * Wout * Cout * Kh * Kw * Cin
DENSE = 2 * N * (H * W * C_OUT) * UNITS  # 2 * M * K * N


def _count(function, *args):
  """`peak.count_graph_flops` of the graph that `function` (a `tf.function`) traces."""
  return peak.count_graph_flops(function.get_concrete_function(*args).graph)


def test_a_conv_and_a_dense_layer_with_their_gradients():
  conv = keras.layers.Conv2D(C_OUT, 3, padding="same")
  dense = keras.layers.Dense(UNITS)
  x = tf.random.normal([N, H, W, C_IN])
  dense(tf.reshape(conv(x), [N, -1]))  # Builds the layers.

  @tf.function
  def forward(x):
    return dense(tf.reshape(conv(x), [N, -1]))

  @tf.function
  def step(x):
    with tf.GradientTape() as tape:
      tape.watch(x)
      loss = tf.reduce_sum(forward(x) ** 2)
    # Gradients of every weight and of the input: each backward op costs the forward one.
    return tape.gradient(loss, conv.trainable_variables + dense.trainable_variables + [x])

  assert _count(forward, x)["flops"] == CONV + DENSE
  counted = _count(step, x)
  # forward() is a nested tf.function: a (Stateful)PartitionedCall in step's graph, and its
  # gradient another one.
  assert counted["by_type"] == {"Conv2D": CONV, "Conv2DBackpropFilter": CONV,
                                "Conv2DBackpropInput": CONV, "MatMul": 3 * DENSE}
  assert counted["flops"] == 3 * CONV + 3 * DENSE
  assert not counted["unknown_shapes"] and not counted["unresolved"]


def test_loops_count_their_body_times_the_trip_count_and_branches_the_larger_one():
  a = tf.random.normal([4, 16])
  b = tf.random.normal([16, 3])
  product = 2 * 4 * 16 * 3

  @tf.function
  def loop(a, b, flag):
    total = tf.while_loop(lambda i, s: i < 100, lambda i, s: (i + 1, s + a @ b),
                          (0, tf.zeros([4, 3])), maximum_iterations=5)[1]
    # One branch two products, the other none: the larger one counts.
    total += tf.cond(flag, lambda: a @ b + a @ b, lambda: tf.zeros([4, 3]))
    return total

  counted = _count(loop, a, b, tf.constant(True))
  assert counted["flops"] == 5 * product + 2 * product
  assert counted["by_type"] == {"MatMul": 7 * product}
  assert counted["unknown_trip_counts"] == []

  @tf.function
  def unbounded(a, b, n):
    return tf.while_loop(lambda i, s: i < n, lambda i, s: (i + 1, s + a @ b),
                         (0, tf.zeros([4, 3])))[1]

  counted = _count(unbounded, a, b, tf.constant(5))
  assert counted["flops"] == product  # The body once, and the loop listed.
  assert len(counted["unknown_trip_counts"]) == 1


def test_batch_matmul_einsum_and_unknown_shapes():
  a = tf.random.normal([3, 4, 5])
  b = tf.random.normal([3, 6, 5])

  @tf.function
  def products(a, b):
    return tf.matmul(a, b, transpose_b=True), tf.einsum("bik,bjk->bij", a, b)

  counted = _count(products, a, b)
  assert counted["by_type"]["BatchMatMulV2"] == 2 * 3 * 4 * 6 * 5
  assert counted["by_type"]["Einsum"] == 2 * 3 * 4 * 6 * 5

  counted = _count(products, tf.TensorSpec([None, 4, 5]), tf.TensorSpec([None, 6, 5]))
  assert counted["flops"] == 0
  assert counted["unknown_shapes"] == ["BatchMatMulV2", "Einsum"]


@pytest.mark.parametrize("name, is_matmul", [
    ("_MklNativeFusedConv2D", True), ("Conv2DBackpropFilter", True), ("BatchMatMulV2", True),
    ("aten::mkldnn_convolution", True), ("aten::convolution_backward", True),
    ("aten::mm", True), ("aten::addmm", True), ("ConcatV2", False),
    ("_MklNativeFusedBatchNormEx", False), ("aten::sum", False), ("aten::mean", False),
])
def test_profiled_time_in_convolutions_and_matmuls(name, is_matmul):
  table = {"top": [{"op": name, "ms_per_call": 2.0}, {"op": "Mul", "ms_per_call": 1.0}]}
  assert peak.matmul_time(table) == (2.0 if is_matmul else 0.0)
