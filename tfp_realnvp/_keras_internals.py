"""Every use of Keras 3 internals by this package, in one module.

Written against Keras 3.15. What Keras does not publish is used here only, so that a Keras
upgrade that moves it touches this file alone:

* `in_stateless_scope`: whether a `keras.StatelessScope` (which records variable assignments
  instead of applying them) is active;
* `training_context`: the call context through which nested layers read Keras's `training`
  flag, entered outside any layer call (in a gradient function run after the call returned);
* `adam_moments`: the moment variables that `keras.optimizers.Adam` keeps for a model variable;
* `weights_file_bytes`: the `.weights.h5` file of a model, written in memory.
"""

from __future__ import annotations

import io

import contextlib
from typing import Iterator

import keras
from keras.src.backend.common import global_state
from keras.src.backend.common import stateless_scope
from keras.src.layers import layer as layer_lib
from keras.src.saving import saving_lib
import tensorflow as tf

__all__ = ["adam_moments", "in_stateless_scope", "training_context", "weights_file_bytes"]

_CALL_CONTEXT = "current_call_ctx"


def in_stateless_scope() -> bool:
  """Whether a `keras.StatelessScope` is active."""
  return stateless_scope.in_stateless_scope()


@contextlib.contextmanager
def training_context(training: bool | None) -> Iterator[None]:
  """Layers called inside see `training` as the flag of an outer layer call.

  Args:
    training: `True`, `False` or `None` (each layer's default), as `Layer.__call__` takes it.
  """
  previous = global_state.get_global_attribute(_CALL_CONTEXT)
  context = layer_lib.CallContext(entry_layer=None)
  context.set_value("training", training)
  global_state.set_global_attribute(_CALL_CONTEXT, context)
  try:
    yield
  finally:
    global_state.set_global_attribute(_CALL_CONTEXT, previous)


def adam_moments(optimizer: keras.optimizers.Adam, variable: keras.Variable
                 ) -> tuple[tf.Variable, tf.Variable]:
  """The `tf.Variable`s `(m, v)` of a built `keras.optimizers.Adam` for `variable`.

  `variable` is one of the optimizer's trainable variables, as its `update_step` receives it.
  """
  index = optimizer._get_variable_index(variable)  # pylint: disable=protected-access
  return (optimizer._momentums[index].value,  # pylint: disable=protected-access
          optimizer._velocities[index].value)  # pylint: disable=protected-access


def weights_file_bytes(model: keras.Model) -> bytes:
  """The bytes of the file `model.save_weights(path)` writes (a `.weights.h5`), in memory.

  HDF5 writes its files itself: a write that fails (a full disk) leaves the library with a
  file it cannot close, and the process crashes when it exits. Written to memory first, the
  file reaches the disk through Python's own writes, whose failure is an ordinary `OSError`.
  """
  buffer = io.BytesIO()
  store = saving_lib.H5IOStore(buffer, mode="w")
  saving_lib._save_state(  # pylint: disable=protected-access
      model, weights_store=store, assets_store=None, inner_path="", visited_saveables=set())
  store.h5_file.close()
  return buffer.getvalue()
