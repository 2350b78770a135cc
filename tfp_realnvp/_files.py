"""Atomic file writes and checked JSON reads: what a killed process leaves is never half-written.

Every file that `tfp_realnvp.training` and `tfp_realnvp.plotting` write goes through
`atomic_path`: the content is written to a hidden temporary file in the same folder, flushed to
disk, and moved over the destination with `os.replace`, which is atomic on POSIX and Windows. A
reader sees the old file or the new one, never a truncated mix.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pathlib
import secrets
import shutil
from typing import Any, Iterator

from tfp_realnvp import errors

__all__ = ["DamagedFileError", "atomic_path", "read_json", "write_bytes", "write_json"]

# The errors of a write that found no room: no space left, or the user's quota exceeded.
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
# Room kept free beside a file written by `write_bytes`, for the small files written with it.
_MARGIN = 1 << 20


class DamagedFileError(errors.DataError):
  """A file that exists but cannot be read (truncated, overwritten, of another format)."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[pathlib.Path]:
  """Yields a temporary path beside `path`; moves it onto `path` once the block succeeds.

  The temporary file keeps the suffixes of `path` (`.weights.h5`, `.keras`, `.png`), which some
  writers require. If the block raises, the temporary file is removed and `path` is untouched.
  Missing parent folders are created.
  """
  path = pathlib.Path(os.fspath(path))
  path.parent.mkdir(parents=True, exist_ok=True)
  # Created by the writer (with the usual permissions), hidden, unique to this call.
  temporary = path.with_name(f".{path.name.split('.')[0]}.tmp-{os.getpid()}-"
                             f"{secrets.token_hex(4)}{''.join(path.suffixes)}")
  try:
    yield temporary
    with open(temporary, "rb") as written:  # Flushed to disk before it becomes `path`.
      os.fsync(written.fileno())
    os.replace(temporary, path)
  except OSError as error:
    if error.errno not in _NO_SPACE or isinstance(error, errors.OutOfSpaceError):
      raise
    raise errors.OutOfSpaceError(
        f"No space left on the device of {path} while writing it ({error.strerror}); "
        "nothing was left half-written.") from error
  finally:
    temporary.unlink(missing_ok=True)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
  """Writes `data` to `path` atomically, after checking that the disk has room for it.

  Raises:
    OutOfSpaceError: the disk has less free space than `data` needs (with a margin of 1 MB),
      or the write found none; `path` is untouched.
  """
  path = pathlib.Path(os.fspath(path))
  path.parent.mkdir(parents=True, exist_ok=True)
  free = shutil.disk_usage(path.parent).free
  if free < len(data) + _MARGIN:
    raise errors.OutOfSpaceError(
        f"No space left on the device of {path}: it needs {_megabytes(len(data))} and "
        f"{_megabytes(free)} are free; nothing was written.")
  with atomic_path(path) as temporary:
    temporary.write_bytes(data)


def _megabytes(size: int) -> str:
  return f"{size / 1e6:.1f} MB"


def write_json(path: str | os.PathLike[str], value: Any) -> None:
  """Writes `value` as JSON (non-finite numbers rejected) to `path`, atomically."""
  text = json.dumps(value, indent=2, allow_nan=False) + "\n"
  with atomic_path(path) as temporary:
    temporary.write_text(text, encoding="utf-8")


def read_json(path: str | os.PathLike[str]) -> dict[str, Any]:
  """Reads a JSON object from `path`.

  Raises:
    FileNotFoundError: if `path` does not exist.
    DamagedFileError: if it exists but holds no JSON object (e.g. truncated by a crash).
  """
  path = pathlib.Path(os.fspath(path))
  try:
    value = json.loads(path.read_bytes())
  except FileNotFoundError:
    raise
  except (OSError, ValueError) as error:
    raise DamagedFileError(f"{path} is damaged ({type(error).__name__}: {error})") from None
  if not isinstance(value, dict):
    raise DamagedFileError(f"{path} is damaged (a JSON {type(value).__name__}, not an object)")
  return value
