"""Every use of TensorFlow internals by this package, in one module.

Written against TensorFlow 2.21. What TensorFlow does not publish is used here only, so that a
TensorFlow upgrade that moves it touches this file alone:

* `in_xla_context`: whether the graph being traced (or one it is nested in) is compiled with
  XLA (`tf.function(jit_compile=True)`, Keras's `jit_compile=True`, a TPU replica).
"""

from __future__ import annotations

import tensorflow as tf
from tensorflow.python.ops import control_flow_util

__all__ = ["in_xla_context"]


def in_xla_context() -> bool:
  """Whether the operations being created now will be compiled by XLA (False when eager)."""
  if tf.executing_eagerly():
    return False
  return bool(control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph()))
