"""Makes sure Keras 3 runs on its TensorFlow backend before anything else is imported.

The bijectors of this package are TensorFlow Probability objects whose networks are Keras 3
layers; both must run on TensorFlow tensors, so the JAX, PyTorch and NumPy backends of Keras
cannot work here. The check runs on `import tfp_realnvp` so that the mistake is reported once,
clearly, instead of as a deep error on the first call.
"""

from __future__ import annotations

import os

from tfp_realnvp import errors

_FIX = (
    "tfp_realnvp needs Keras 3 on its TensorFlow backend. Set the environment variable "
    "KERAS_BACKEND=tensorflow (or the \"backend\" entry of ~/.keras/keras.json) before "
    "Python starts, then import tfp_realnvp again."
)


def ensure_tensorflow_backend() -> None:
  """Raises `ImportError` unless Keras uses (or will use) the TensorFlow backend."""
  requested = os.environ.get("KERAS_BACKEND")
  if requested is not None and requested != "tensorflow":
    raise errors.BackendError(f"KERAS_BACKEND is {requested!r}. {_FIX}")
  import keras  # pylint: disable=g-import-not-at-top

  active = keras.backend.backend()
  if active != "tensorflow":
    raise errors.BackendError(f"Keras is running on the {active!r} backend. {_FIX}")
