"""A complete, resumable training run of a preset's flow: `train`, and the pieces it is made of.

* `run`: `train` (what `tfp-realnvp train` and the image examples run), `RunResult`,
  `MIXED_PRECISIONS`;
* `evaluation`: `evaluate_test` (a run's test bits/dim), `TEST_NOISE_SEED`;
* `folder`: `RunFolder` (where a process of a run writes), `Backup` (the training state of an
  unfinished run, recovered from its second copy when damaged), `save_model`;
* `record`: `RunRecord` (`metrics.json`, the best epoch and the checks before a run resumes),
  `MONITOR`, `finite_or_none`;
* `callbacks`: `EpochCheckpoint`, `SampleGrid`, `StopOnDivergence`, `averaged_weights` (EMA);
* `lock`: `FolderLock` (one run at a time in a folder);
* `optimizer`: `make_optimizer`, `set_learning_rate`.

What a run writes, how it resumes and which epoch it keeps: the user guide's page "Training
runs" (`docs/guide/training-runs.md`).
"""

from tfp_realnvp.errors import RunError
from tfp_realnvp.training.callbacks import EpochCheckpoint
from tfp_realnvp.training.callbacks import SampleGrid
from tfp_realnvp.training.callbacks import StopOnDivergence
from tfp_realnvp.training.callbacks import averaged_weights
from tfp_realnvp.training.evaluation import TEST_NOISE_SEED
from tfp_realnvp.training.evaluation import evaluate_test
from tfp_realnvp.training.folder import Backup
from tfp_realnvp.training.folder import RunFolder
from tfp_realnvp.training.folder import save_model
from tfp_realnvp.training.lock import FolderLock
from tfp_realnvp.training.optimizer import make_optimizer
from tfp_realnvp.training.optimizer import set_learning_rate
from tfp_realnvp.training.record import MONITOR
from tfp_realnvp.training.record import RunRecord
from tfp_realnvp.training.record import finite_or_none
from tfp_realnvp.training.run import MIXED_PRECISIONS
from tfp_realnvp.training.run import RunResult
from tfp_realnvp.training.run import train

__all__ = ["MIXED_PRECISIONS", "MONITOR", "TEST_NOISE_SEED", "Backup", "EpochCheckpoint",
           "FolderLock", "RunError", "RunFolder", "RunRecord", "RunResult", "SampleGrid",
           "StopOnDivergence", "averaged_weights", "evaluate_test", "finite_or_none",
           "make_optimizer", "save_model", "set_learning_rate", "train"]
