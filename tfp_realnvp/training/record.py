"""The run record: what `metrics.json` and every backup say about a run, and the resume checks."""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, SupportsFloat

from tfp_realnvp import _files
from tfp_realnvp.errors import RunError

__all__ = ["MONITOR", "RunRecord", "finite_or_none"]

# The validation metric whose lowest value picks the best epoch.
MONITOR = "val_bits_per_dim"
# Settings of a run that an interrupted run must share with the command that resumes it (`ema`
# and `warmup_steps` change the optimizer's variables, which the backup holds; a variational
# dequantizer adds its own).
_ARCHITECTURE = ("data", "event_shape", "preset", "flow_kind", "flow", "mixed_precision", "ema",
                 "warmup_steps", "dequantization")


def finite_or_none(value: SupportsFloat) -> float | None:
  """`float(value)`, or `None` if it is not finite (JSON has no NaN)."""
  value = float(value)
  return value if math.isfinite(value) else None


@dataclasses.dataclass
class RunRecord:
  """What `metrics.json` says about a run: its configuration, epochs, best epoch and results.

  Attributes:
    config: the resolved configuration of the run (JSON values); a run resumes another only
      with the same data, flow, precision, `ema`, `warmup_steps` and dequantization
      (`check_resumable`).
    attempt: 1 for a new run, one more for every resume.
    history: one dict per finished epoch: `epoch` (1-based), the epoch's logs, `seconds` and
      the `attempt` that ran it.
    best: `None`, or the best epoch so far: `{"epoch", MONITOR, "sha256"}` (of its weights).
    results: what the finished run adds to `metrics.json` (test bits/dim, file names, ...).
    state: the JSON dict that the run's callbacks keep (see `train`): saved with every
      backup, and restored in place by `resume_from`.
    diverged: `None`, or where training met a non-finite loss (`epoch`, `step`, `loss`), for
      a run stopped by `StopOnDivergence`.
  """

  config: dict[str, Any]
  attempt: int = 1
  history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
  best: dict[str, Any] | None = None
  results: dict[str, Any] = dataclasses.field(default_factory=dict)
  state: dict[str, Any] = dataclasses.field(default_factory=dict)
  diverged: dict[str, Any] | None = None

  @property
  def epochs_done(self) -> int:
    """The last finished epoch (0 before the first)."""
    return self.history[-1]["epoch"] if self.history else 0

  def check_resumable(self, metadata: dict[str, Any],
                      backup_folder: str | os.PathLike[str]) -> None:
    """Raises unless the interrupted run whose backup metadata is `metadata` is this run's.

    Raises:
      RunError: if the interrupted run was for other data, another preset, kind of flow or
        architecture.
    """
    previous = metadata.get("config", {})
    changed = [key for key in _ARCHITECTURE
               if key in previous and previous[key] != self.config[key]]
    if changed:
      # The interrupted run's values of the one-value settings (not the architecture's dict):
      # a setting whose default changed since that run is then given back explicitly.
      values = ", ".join(f"{key}={previous[key]!r}" for key in changed
                         if not isinstance(previous[key], dict))
      had = f" (it had {values})" if values else ""
      raise RunError(
          f"{backup_folder} holds an interrupted run with a different {', '.join(changed)}{had}; "
          f"run its command again to resume it, or delete {backup_folder} (or pick another "
          "output folder) to start a new run.")

  def resume_from(self, metadata: dict[str, Any], backup_folder: str | os.PathLike[str]) -> None:
    """Continues the interrupted run whose backup metadata is `metadata`.

    Raises:
      RunError: if the interrupted run was another (`check_resumable`).
    """
    self.check_resumable(metadata, backup_folder)
    self.attempt = int(metadata.get("attempt", 0)) + 1
    self.history = [r for r in metadata.get("history", []) if r["epoch"] <= metadata["epoch"]]
    self.best = metadata.get("best")
    self.state.clear()  # In place: callbacks hold this dict.
    self.state.update(metadata.get("state", {}))

  def add_epoch(self, epoch: int, logs: dict[str, Any] | None, seconds: float) -> bool:
    """Records finished epoch `epoch` (1-based); returns whether it is the best so far."""
    record: dict[str, Any] = {"epoch": epoch}
    record.update({key: finite_or_none(value) for key, value in (logs or {}).items()
                   if isinstance(value, (int, float)) or hasattr(value, "__float__")})
    record["seconds"] = round(seconds, 3)
    record["attempt"] = self.attempt
    self.history = [r for r in self.history if r["epoch"] < epoch] + [record]
    value = record.get(MONITOR)
    return value is not None and (self.best is None or value < self.best[MONITOR])

  def metadata(self) -> dict[str, Any]:
    """The part of the record kept with each backup (everything a resumed run needs)."""
    return {"epoch": self.epochs_done, "attempt": self.attempt, "config": self.config,
            "history": self.history, "best": self.best, "state": self.state}

  def as_json(self) -> dict[str, Any]:
    """The content of `metrics.json`: `status` and the record.

    `status` is `"running"` (or interrupted), `"diverged"` (stopped at a non-finite loss,
    `diverged` says where) or `"finished"`.
    """
    status = "finished" if self.results else "diverged" if self.diverged else "running"
    best = self.best or {}
    return {"status": status, "attempt": self.attempt, "config": self.config,
            "history": self.history, "best_epoch": best.get("epoch"),
            f"best_{MONITOR}": best.get(MONITOR), "state": self.state,
            **({"diverged": self.diverged} if self.diverged else {}), **self.results}

  def write(self, path: str | os.PathLike[str]) -> None:
    """Writes `as_json()` to `path` atomically."""
    _files.write_json(path, self.as_json())
