"""`tfp_realnvp._backend`: the package refuses a Keras backend other than TensorFlow."""

import subprocess
import sys


def test_non_tensorflow_keras_backend_is_an_import_error():
  code = "import tfp_realnvp"
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"KERAS_BACKEND": "jax", "PATH": "/usr/bin:/bin"}, timeout=120,
                          check=False)
  assert result.returncode != 0
  assert "BackendError" in result.stderr  # tfp_realnvp.errors.BackendError, an ImportError.
  assert "KERAS_BACKEND=tensorflow" in result.stderr
