"""`training.train` in-process: the splits of a source with a training split only, the flow's
precision and memory mode, and the `callbacks` and `state` that extend a run."""

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfp_realnvp import data
from tfp_realnvp import errors
from tfp_realnvp import training

from helpers import Interrupted, stop_before_finish


@pytest.mark.parametrize("kind, mixed_precision, remat", [("folder", None, None),
                                                           ("npz", "bfloat16", "reversible")])
def test_a_source_with_a_training_split_only_trains_on_a_held_out_slice(
    tmp_path, capsys, kind, mixed_precision, remat):
  """Also (one run serving several checks): mixed precision is the flow's own policy, the
  banner names it, and the process's global policy is left as it was; the remat mode reaches
  the model and the run record."""
  # 60 random 8x8 images: a plain folder (no train/ or test/ sub-folders), or an .npz holding x.
  pixels = np.random.default_rng(0).integers(0, 256, (60, 8, 8, 1), dtype=np.uint8)
  if kind == "folder":
    source = tmp_path / "my_images"
    source.mkdir()
    for index, image in enumerate(pixels):
      Image.fromarray(image[..., 0]).save(source / f"{index:03d}.png")
  else:
    source = tmp_path / "my_images.npz"
    np.savez(source, x=pixels)
  result = training.train(source, tmp_path / "run", preset="digits", epochs=1, batch_size=16,
                          num_scales=1, num_filters=4, num_blocks=1, sample_count=4, verbose=1,
                          mixed_precision=mixed_precision, remat=remat)
  precision = f"mixed_{mixed_precision}" if mixed_precision else "float32"
  assert f"{precision} networks" in capsys.readouterr().out
  assert keras.mixed_precision.global_policy().name == "float32"
  model = keras.models.load_model(tmp_path / "run" / "model.keras", compile=False)
  assert model.flow.dtype_policy.name == precision
  assert model.remat == remat
  assert model.log_prob(np.full((2, 8, 8, 1), 0.5, np.float32)).dtype == tf.float32
  metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
  assert metrics["config"]["train_split"] == "train[:80%]"
  assert metrics["config"]["remat"] == (remat or "none")
  assert metrics["config"]["validation_split"] == "train[80%:90%]"
  assert metrics["test_split"] == metrics["config"]["test_split"] == "train[90%:]"
  assert metrics["test_examples"] == 6 and np.isfinite(result.test_bits_per_dim)
  # The folder is named after the data, as for any other source.
  assert data.run_name(source) == "my_images"


class _CountSteps(keras.callbacks.Callback):
  """Counts training steps in the run's `state`, and the processes that trained."""

  def __init__(self, state):
    super().__init__()
    self.state = state

  def on_train_begin(self, logs=None):
    del logs
    self.state["trainings"] = self.state.get("trainings", 0) + 1

  def on_train_batch_end(self, batch, logs=None):
    del batch, logs
    self.state["steps"] = self.state.get("steps", 0) + 1


def test_callbacks_keep_their_state_across_a_resume_without_validation(tmp_path, monkeypatch):
  run = dict(data="digits", output_dir=tmp_path / "run", preset="digits", steps_per_epoch=2,
             sample_count=4, verbose=0, validation_freq=0, num_scales=1, num_filters=4,
             num_blocks=1)
  with monkeypatch.context() as patch:  # Killed after its 2 epochs, before its evaluation.
    stop_before_finish(patch)
    with pytest.raises(Interrupted):
      training.train(epochs=2, callbacks=[_CountSteps(first := {})], state=first, **run)
  assert first == {"trainings": 1, "steps": 4}
  state = {"stale": True}
  result = training.train(epochs=3, callbacks=[_CountSteps(state)], state=state, **run)
  assert state == {"trainings": 2, "steps": 6}  # Restored in place, then updated.
  metrics = result.metrics
  assert metrics["state"] == state and result.resumed_at == 2
  assert [r["attempt"] for r in metrics["history"]] == [1, 1, 2]
  assert not [key for r in metrics["history"] for key in r if key.startswith("val_")]
  assert metrics["best_epoch"] is None and math.isfinite(result.test_bits_per_dim)
  assert metrics["config"]["validation_freq"] == 0
  with pytest.raises(ValueError, match="validation_freq must be a non-negative integer"):
    training.train(**dict(run, validation_freq=-1))


@pytest.mark.parametrize("argument, message", [
    ({"validation_freq": -1}, "validation_freq must be a non-negative integer, got -1"),
    ({"validation_freq": 1.5}, "validation_freq must be a non-negative integer"),
    ({"steps_per_epoch": 0}, "steps_per_epoch must be None or a positive integer, got 0"),
    ({"sample_count": 0}, "sample_count must be a positive integer, got 0"),
    ({"mixed_precision": "float8"}, "mixed_precision must be 'auto', None, 'bfloat16' or"),
])
def test_arguments_out_of_range_are_refused_before_any_work(tmp_path, argument, message):
  with pytest.raises(errors.InvalidValueError, match=message):
    training.train("digits", tmp_path / "run", **argument)
  assert not (tmp_path / "run").exists()
