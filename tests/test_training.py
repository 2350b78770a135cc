"""Tests of the pieces of a training run: presets.resolve, atomic files, the run record,
`FlowModel.interpolate`, and the image formats of `plotting`, all in-process and fast."""

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import tfp_realnvp
from tfp_realnvp import _files
from tfp_realnvp import data
from tfp_realnvp import plotting
from tfp_realnvp import presets
from tfp_realnvp import training


def test_resolve_applies_overrides_once_and_checks_the_shape():
  preset = presets.resolve(None, (8, 8, 1), source="digits", num_filters=4, epochs=3,
                           num_blocks=None)
  assert (preset.name, preset.num_scales, preset.num_filters, preset.num_blocks) == (
      "digits", 2, 4, 2)
  assert preset.epochs == 3 and preset.batch_size == 64
  assert presets.resolve(None, (64, 64, 3), source="celeb_a").name == "celeba"
  # A resolved preset builds exactly its own architecture.
  flow = presets.build_flow(preset, (8, 8, 1))
  assert (flow.num_scales, flow.num_filters, flow.num_blocks) == (2, 4, 2)
  with pytest.raises(ValueError, match="num_scales=5 cannot be used for images of shape"):
    presets.resolve("digits", (8, 8, 1), num_scales=5)
  with pytest.raises(ValueError, match="Unknown preset settings \\['width'\\]"):
    presets.resolve("digits", (8, 8, 1), width=3)
  with pytest.raises(ValueError, match="epochs must be None or a positive integer"):
    presets.resolve("digits", (8, 8, 1), epochs=0)


def test_atomic_path_keeps_the_old_file_when_writing_fails(tmp_path):
  path = tmp_path / "sub" / "metrics.json"
  _files.write_json(path, {"a": 1})
  with pytest.raises(RuntimeError):
    with _files.atomic_path(path) as temporary:
      temporary.write_text("{\"a\": ")
      raise RuntimeError("killed")
  assert _files.read_json(path) == {"a": 1}
  assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]  # No temporary left.
  path.write_text("{\"a\": ")
  with pytest.raises(_files.DamagedFileError, match="metrics.json is damaged"):
    _files.read_json(path)


def test_run_record_tracks_the_best_epoch():
  record = training.RunRecord(config={})
  assert record.add_epoch(1, {"val_bits_per_dim": 5.0, "loss": 1.0}, 1.0)
  record.best = {"epoch": 1, "val_bits_per_dim": 5.0}
  assert not record.add_epoch(2, {"val_bits_per_dim": 5.5}, 1.0)
  assert not record.add_epoch(3, {"val_bits_per_dim": float("nan")}, 1.0)
  assert record.history[2]["val_bits_per_dim"] is None
  metrics = record.as_json()
  assert metrics["best_epoch"] == 1 and metrics["status"] == "running"
  json.dumps(metrics, allow_nan=False)


def test_interpolate_corners_are_the_inputs():
  flow = presets.build_flow("digits", (8, 8, 1), num_filters=4, num_blocks=1)
  model = tfp_realnvp.FlowModel(flow)
  images = next(iter(data.load_images("digits", "test", batch_size=4, shuffle=False,
                                      seed=0))).numpy()
  grid = model.interpolate(images, 5).numpy()
  assert grid.shape == (25, 8, 8, 1)
  for index, corner in enumerate((0, 4, 20, 24)):  # z1, z2 top; z3, z4 bottom.
    np.testing.assert_allclose(grid[corner], images[index], atol=1e-4)
  assert np.all((grid >= 0) & (grid < 1))
  # The middle is none of the corners.
  assert min(np.abs(grid[12] - image).max() for image in images) > 1e-3
  with pytest.raises(ValueError, match="corners must be 4 images"):
    model.interpolate(images[:3], 5)


@pytest.mark.parametrize("suffix, expected", [(".png", "PNG"), (".jpg", "JPEG"),
                                              (".JPEG", "JPEG"), (".bmp", "BMP")])
def test_image_grid_format_follows_the_suffix(tmp_path, suffix, expected):
  path = plotting.save_image_grid(np.full((2, 8, 8, 1), 0.5), tmp_path / f"grid{suffix}")
  with Image.open(path) as picture:
    assert picture.format == expected
  assert plotting.is_image(path)
  path.write_bytes(path.read_bytes()[:40])
  assert not plotting.is_image(path)


def test_unknown_image_suffix_is_refused(tmp_path):
  with pytest.raises(ValueError, match="cannot write images of type '.xyz'"):
    plotting.save_image_grid(np.zeros((1, 8, 8)), tmp_path / "grid.xyz")
  assert not list(tmp_path.iterdir())


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
    patch.setattr(training, "_finish", _interrupt)
    with pytest.raises(_Interrupted):
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


class _Interrupted(Exception):
  pass


def _interrupt(*args, **kwargs):
  del args, kwargs
  raise _Interrupted()
