"""The errors tfp_realnvp raises for what its caller can fix, all subclasses of `Error`.

Each also subclasses the built-in exception that Python code expects for its kind of problem
(`ValueError`, `TypeError`, `ImportError`), so `except ValueError` keeps working, while
`except tfp_realnvp.errors.Error` catches exactly the package's own reports. The command line
prints these as one line; any other exception is a bug and shows its traceback.
"""

__all__ = ["BackendError", "BusyFolderError", "DataError", "DivergenceError", "Error",
           "InvalidTypeError", "InvalidValueError", "NonFiniteSamplesError", "OutOfSpaceError",
           "RunError"]


class Error(Exception):
  """Base class of every error that tfp_realnvp raises about its caller's input."""

  # Exception's own constructor (one message): TensorFlow's autograph then re-raises an error
  # raised while tracing as its own type, not as a StagingError.
  __init__ = Exception.__init__


class InvalidValueError(Error, ValueError):
  """An argument or input whose value is out of range, of the wrong shape, or inconsistent."""


class InvalidTypeError(Error, TypeError):
  """An argument or input of the wrong type or dtype."""


class DataError(InvalidValueError):
  """A data source that cannot be used: missing, damaged, empty or inconsistent."""


class RunError(InvalidValueError):
  """A training run that cannot start or resume, for a reason the message gives."""


class BackendError(Error, ImportError):
  """Keras is not running on its TensorFlow backend, which tfp_realnvp needs."""


class BusyFolderError(RunError):
  """A run's output folder is in use by another process that is still running."""


class DivergenceError(Error, FloatingPointError):
  """Training stopped at a non-finite loss; the run's last finished epoch is kept."""


class NonFiniteSamplesError(Error, FloatingPointError):
  """Samples with NaN or infinite values: the flow overflowed mapping the latent to data."""


class OutOfSpaceError(Error, OSError):
  """A file could not be written for lack of disk space (or quota); nothing is half-written."""
