"""Tests of the TensorFlow Datasets sources (mocked: never downloads)."""

import time

import numpy as np
import pytest
import tensorflow as tf

from tfp_realnvp import data

from data_helpers import collect


@pytest.fixture(scope="module")
def tfds():
  return pytest.importorskip("tensorflow_datasets")


@pytest.mark.parametrize("name, shape", [("mnist", (28, 28, 1)), ("cifar10", (32, 32, 3))])
def test_tfds_mocked_with_labels(tfds, name, shape):
  with tfds.testing.mock_data(num_examples=6):
    ds = data.load_images(name, batch_size=4, with_labels=True, download=True, seed=0)
    batches = list(ds)
  assert [int(x.shape[0]) for x, _ in batches] == [4, 2]
  images, labels = batches[0]
  assert images.shape[1:] == shape and images.dtype == tf.float32
  assert labels.dtype == tf.int32
  assert np.all(images.numpy() >= 0) and np.all(images.numpy() < 1)
  assert data.image_shape(name) == shape


def test_tfds_celeb_a_is_cropped_and_resized_to_64(tfds):
  with tfds.testing.mock_data(num_examples=3):
    ds = data.load_images("celeb_a", batch_size=3, download=True, shuffle=False)
    images = next(iter(ds)).numpy()
  assert images.shape == (3, 64, 64, 3)
  assert images.min() >= 0 and images.max() < 1
  assert data.image_shape("celeb_a") == (64, 64, 3)
  with pytest.raises(ValueError, match="no class labels"):
    data.load_images("celeb_a", with_labels=True)


@pytest.mark.parametrize("name", ["mnist", "cifar10", "downsampled_imagenet/32x32"])
def test_tfds_not_prepared_fails_fast_with_instructions(tmp_path, name):
  start = time.monotonic()
  with pytest.raises(FileNotFoundError) as info:
    data.load_images(name, data_dir=tmp_path, download=False)
  assert time.monotonic() - start < 20
  message = str(info.value)
  assert "download_and_prepare" in message and "download=True" in message
  assert f"tfds.builder({name!r}, data_dir={str(tmp_path)!r})" in message
  with pytest.raises(FileNotFoundError, match="download_and_prepare"):
    data.num_examples(name, "train", data_dir=tmp_path)
  assert not any(tmp_path.iterdir())  # Nothing was written.


def test_tfds_slices_are_passed_to_tfds(tfds):
  with tfds.testing.mock_data(num_examples=4):
    images = collect(data.load_images("mnist", "train[:50%]", download=True, shuffle=False))[0]
  assert images.shape[1:] == (28, 28, 1)
  source = data.get_source("downsampled_imagenet/32x32")
  assert source._tfds_split("test[90%:]") == "validation[90%:]"  # pylint: disable=protected-access
  with pytest.raises(ValueError, match=r"'mnist' has splits \['test', 'train'\], not 'extra'"):
    data.load_images("mnist", "extra[:10%]")  # Rejected before TFDS is asked.
