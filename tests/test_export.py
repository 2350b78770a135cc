"""SavedModel export: signatures, reload without this package or TFP, atomic writes."""

import os
import pathlib
import stat
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfp_realnvp
from tfp_realnvp import data

from helpers import randomize, reload_calls, reload_in_fresh_process



@pytest.fixture(scope="module")
def model():
  keras.utils.set_random_seed(0)
  flow = tfp_realnvp.RealNVP((8, 8, 1), num_scales=2, num_filters=8, num_blocks=1,
                             batch_norm=True)
  randomize(flow, seed=2, stddev=0.1)
  return tfp_realnvp.FlowModel(flow)


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
  return tfp_realnvp.export_saved_model(model, tmp_path_factory.mktemp("export") / "flow")


def test_reloads_without_this_package_or_tfp(model, exported):
  x = next(iter(data.load_images("digits", batch_size=6, seed=1))).numpy()
  served = reload_in_fresh_process(exported, reload_calls(x))
  assert served["modules"] == []
  expected = model.log_prob(x).numpy()
  np.testing.assert_allclose(served["log_prob"], expected, rtol=1e-5)
  np.testing.assert_allclose(served["default"], expected, rtol=1e-5)
  np.testing.assert_allclose(served["bits_per_dim"], model.bits_per_dim(x).numpy(), rtol=1e-5)
  np.testing.assert_allclose(served["z"], model.distribution.bijector.inverse(x).numpy(),
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(served["round_trip"], x, atol=1e-4)
  # The same seed gives the same images, and the images of model.sample with that seed.
  np.testing.assert_array_equal(served["sample"], served["sample_again"])
  np.testing.assert_allclose(served["sample"], model.sample(3, temperature=0.8, seed=7).numpy(),
                             atol=1e-6)


def test_saved_model_cli_lists_the_signatures(exported):
  cli = pathlib.Path(sys.executable).parent / "saved_model_cli"
  result = subprocess.run([str(cli), "show", "--dir", str(exported), "--all"],
                          capture_output=True, text=True, timeout=300, check=True)
  for name in ("log_prob", "bits_per_dim", "sample", "forward", "inverse", "serving_default"):
    assert f"signature_def['{name}']" in result.stdout
  assert "count" in result.stdout and "temperature" in result.stdout and "seed" in result.stdout


def test_export_is_atomic(model, tmp_path, monkeypatch):
  target = tmp_path / "flow"

  def broken_save(obj, export_dir, signatures=None):
    del obj, signatures
    (pathlib.Path(export_dir) / "saved_model.pb").write_bytes(b"half written")
    raise OSError("disk full")

  monkeypatch.setattr(tf.saved_model, "save", broken_save)
  with pytest.raises(OSError, match="disk full"):
    tfp_realnvp.export_saved_model(model, target)
  assert list(tmp_path.iterdir()) == []


def test_existing_path_needs_overwrite(model, exported):
  with pytest.raises(FileExistsError, match="overwrite"):
    tfp_realnvp.export_saved_model(model, exported)


@pytest.fixture
def umask_022():
  previous = os.umask(0o022)
  yield
  os.umask(previous)


def test_export_gets_the_permissions_of_mkdir(model, tmp_path, umask_022):
  del umask_022
  target = tfp_realnvp.export_saved_model(model, tmp_path / "flow")
  reference = tmp_path / "reference"
  reference.mkdir()
  assert stat.S_IMODE(target.stat().st_mode) == stat.S_IMODE(reference.stat().st_mode) == 0o755
  assert stat.S_IMODE((target / "saved_model.pb").stat().st_mode) == 0o644


def test_a_file_at_the_path_is_refused_or_replaced_without_leftovers(model, tmp_path):
  target = tmp_path / "flow"
  target.write_text("not a SavedModel")
  with pytest.raises(FileExistsError,
                     match=r"a file\); pass overwrite=True \(--overwrite on the command line\)"):
    tfp_realnvp.export_saved_model(model, target)
  assert target.read_text() == "not a SavedModel"
  assert tfp_realnvp.export_saved_model(model, target, overwrite=True) == target
  assert (target / "saved_model.pb").is_file()
  assert list(tmp_path.iterdir()) == [target]
  x = next(iter(data.load_images("digits", batch_size=2, seed=2)))
  np.testing.assert_allclose(
      tf.saved_model.load(str(target)).signatures["log_prob"](x=x)["log_prob"].numpy(),
      model.log_prob(x).numpy(), rtol=1e-5)
