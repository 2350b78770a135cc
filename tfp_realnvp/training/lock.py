"""`FolderLock`: one run at a time in an output folder, without blocking a resume after a crash."""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import socket
import types
from typing import Any

from tfp_realnvp import errors

try:
  import fcntl
except ImportError:  # Windows: no advisory locks; runs are not guarded there.
  fcntl = None  # type: ignore[assignment]

__all__ = ["FolderLock"]


class FolderLock:
  """Holds the lock file `.lock` of a run's folder while the run writes to it.

  The lock is an advisory `flock` on the file, which the operating system releases when the
  process ends, however it ends: a second run into a folder in use refuses at once, naming the
  process that holds it, while a lock file left by a process that crashed or was killed does
  not block the run that resumes after it. The file records the holder (process id, host,
  start time) for that message and is deleted when the lock is released.

  Args:
    folder: the run's output folder (created if missing).

  Raises:
    BusyFolderError: on entering, when another live process holds the lock.
  """

  NAME = ".lock"

  def __init__(self, folder: str | os.PathLike[str]) -> None:
    self.path = pathlib.Path(os.fspath(folder)) / self.NAME
    self._fd: int | None = None

  def __enter__(self) -> FolderLock:
    if fcntl is None:
      return self
    self.path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = _describe(_read(fd))
      os.close(fd)
      raise errors.BusyFolderError(
          f"{self.path.parent} is in use by another run ({holder}); wait for it to finish or "
          "stop it, or choose another output folder.") from None
    owner = {"pid": os.getpid(), "host": socket.gethostname(),
             "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps(owner).encode())
    self._fd = fd
    return self

  def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
               traceback: types.TracebackType | None) -> None:
    if self._fd is None:
      return
    self.path.unlink(missing_ok=True)  # Still held: no other run has it open.
    os.close(self._fd)  # Releases the lock.
    self._fd = None


def _read(fd: int) -> dict[str, Any]:
  """The holder recorded in the lock file, or `{}` if it cannot be read."""
  try:
    return json.loads(os.pread(fd, 4096, 0) or b"{}")
  except (OSError, ValueError):
    return {}


def _describe(holder: dict[str, Any]) -> str:
  if "pid" not in holder:
    return "a process that has not written its id yet"
  return (f"process {holder['pid']} on {holder.get('host', 'an unknown host')}, started "
          f"{holder.get('started', 'at an unknown time')}")
