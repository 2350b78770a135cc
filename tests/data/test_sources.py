"""Tests of the in-memory `ImageSource` base, the embedded digits and the registry of kinds."""

import numpy as np
import pytest
import tensorflow as tf

from tfp_realnvp import data
from tfp_realnvp import errors

from data_helpers import collect, pixels


def test_digits_batches_shape_dtype_range():
  ds = data.load_images("digits", batch_size=32, seed=0)
  assert ds.element_spec.shape.as_list() == [None, 8, 8, 1]
  assert ds.element_spec.dtype == tf.float32
  images = next(iter(ds)).numpy()
  assert images.shape == (32, 8, 8, 1)
  assert images.min() >= 0.0 and images.max() < 1.0
  assert data.image_shape("digits") == (8, 8, 1)


def test_digits_split_sizes_by_counting():
  train, _ = collect(data.load_images("digits", "train", batch_size=100, seed=0))
  test, _ = collect(data.load_images("digits", "test", batch_size=100, seed=0))
  assert len(train) == 1500 and len(test) == 297
  assert data.num_examples("digits", "train") == 1500
  assert data.num_examples("digits", "test") == 297
  with pytest.raises(ValueError, match="'train'.*'test'"):
    data.load_images("digits", "validation")


def test_digits_pixels_and_labels():
  from sklearn import datasets  # pylint: disable=g-import-not-at-top

  digits = datasets.load_digits()
  ds = data.load_images("digits", "test", batch_size=64, shuffle=False, with_labels=True,
                        dequantize=False)
  assert ds.element_spec[1].dtype == tf.int32
  images, labels = collect(ds)
  k = np.round(images * 256).astype(np.int64)
  assert k.min() == 0 and k.max() == 255
  # Every test image is a digit of scikit-learn, with its label, pixels round(v * 255 / 16).
  expected = np.round(digits.images * 255 / 16).astype(np.int64)
  pairs = zip(expected, digits.target, strict=True)
  flat = {tuple(image.ravel()): label for image, label in pairs}
  for image, label in zip(k, labels, strict=True):
    assert flat[tuple(image.ravel())] == label
  # The two splits together hold every digit.
  train_labels = collect(data.load_images("digits", batch_size=500, with_labels=True))[1]
  np.testing.assert_array_equal(np.bincount(np.concatenate([train_labels, labels])),
                                np.bincount(digits.target))


def test_digits_noise_within_one_bin_of_the_pixels():
  k = pixels("digits")
  x, _ = collect(data.load_images("digits", batch_size=256, shuffle=False, seed=5))
  np.testing.assert_array_equal(np.floor(x * 256).astype(np.int64), k)
  assert not np.array_equal(x * 256, k)  # There is noise.


# ------------------------------------------------------------------------------------------------
# The registry of kinds: a new kind of source is one class.


@pytest.fixture
def sources_registry(monkeypatch):
  """`data.SOURCES`, whose registrations in a test are undone after it."""
  len(data.SOURCES)  # Loads the plugins first, so that they stay registered after the test.
  monkeypatch.setattr(data.SOURCES, "_entries", dict(data.SOURCES._entries))
  return data.SOURCES


CHECKERBOARD = np.array([[0, 255], [255, 0]], np.uint8)[..., None]


def register_checkerboards(labels=True, images=None):
  """Registers an in-memory kind `"checkerboards"`: 10 train and 4 test images of 2x2x1.

  Image i of a split is the checkerboard with pixels `i` in place of 0, its label `i % 2`.
  `images` replaces what `read_split` returns (to break the contract).
  """

  @data.register_source("checkerboards")
  class Checkerboards(data.InMemorySource):
    names = ("checkerboards",)

    def __init__(self, name):
      super().__init__(name, (2, 2, 1), ("train", "test"), has_labels=labels)

    def split_size(self, base):
      return {"train": 10, "test": 4}[base]

    def read_split(self, base, with_labels):
      size = self.split_size(base)
      pixels = np.maximum(CHECKERBOARD[None], np.arange(size, dtype=np.uint8)[:, None, None, None])
      index = np.arange(size, dtype=np.int32) % 2
      return (pixels if images is None else images), (index if with_labels and labels else None)

  return Checkerboards


def test_the_built_in_kinds_are_registered():
  assert dict(data.SOURCES) == {"digits": data.DigitsSource, "tfds": data.TfdsSource,
                                "npz": data.NpzSource, "folder": data.FolderSource}
  assert data.SOURCES.kind == "data source" and data.SOURCES.group == "tfp_realnvp.data_sources"


def test_a_registered_in_memory_source_loads_slices_and_lists_itself(sources_registry):
  with pytest.raises(ValueError, match="Unknown image source 'checkerboards'"):
    data.get_source("checkerboards")
  kind = register_checkerboards()
  assert sources_registry["checkerboards"] is kind
  source = data.get_source("checkerboards")
  assert type(source) is kind and source.shape == (2, 2, 1) and source.run_name == "checkerboards"
  images, labels = collect(data.load_images("checkerboards", "test", shuffle=False,
                                            with_labels=True, dequantize=False))
  np.testing.assert_array_equal(np.round(images[:, 0, 0, 0] * 256), [0, 1, 2, 3])
  np.testing.assert_array_equal(labels, [0, 1, 0, 1])
  assert source.training_splits() == ("train[:90%]", "train[90%:]", "test")
  held_out = pixels(source, "train[90%:]")[:, 0, 0, 0]
  rest = pixels(source, "train[:90%]")[:, 0, 0, 0]
  assert len(held_out) == 1 and sorted(np.concatenate([held_out, rest])) == list(range(10))
  assert data.num_examples("checkerboards", "train[:50%]") == 5
  with pytest.raises(ValueError, match="no split 'validation'"):
    data.load_images("checkerboards", "validation")
  with pytest.raises(ValueError, match=r"slice 'train\[5:5\]' of the 10 images.*no images"):
    data.load_images(source, "train[5:5]")
  with pytest.raises(ValueError, match="'checkerboards'") as info:
    data.load_images("svhn")  # The accepted sources list it, first.
  assert str(info.value).index("'checkerboards'") < str(info.value).index("'digits'")


def test_the_in_memory_contract_is_checked(sources_registry):
  register_checkerboards(labels=False)
  with pytest.raises(errors.InvalidValueError, match="checkerboards: has no class labels"):
    data.load_images("checkerboards", with_labels=True)
  sources_registry._entries.pop("checkerboards")
  register_checkerboards(images=np.zeros((10, 2, 2, 1), np.float32))
  with pytest.raises(errors.DataError,
                     match=r"split 'train' must be uint8 images of shape \(10, 2, 2, 1\)"):
    data.load_images("checkerboards")


def test_a_registered_kind_is_asked_before_the_built_in_ones(sources_registry):
  with pytest.raises(TypeError, match="source must be a string or a path"):
    data.get_source(np.zeros((3, 2, 2, 1), np.uint8))

  @data.register_source("arrays")
  class ArraySource(data.InMemorySource):  # pylint: disable=unused-variable
    """Images passed as a uint8 array `(N, H, W, C)`: a specification no built-in kind reads."""

    description = "a uint8 array of images (N, H, W, C)"

    def __init__(self, images):
      self._images = images
      super().__init__("array", images.shape[1:], ("train",), has_labels=False)

    @classmethod
    def accepts(cls, spec):
      return isinstance(spec, np.ndarray) and spec.dtype == np.uint8 and spec.ndim == 4

    def split_size(self, base):
      return len(self._images)

    def read_split(self, base, with_labels):
      return self._images, None

  images = np.arange(12, dtype=np.uint8).reshape(3, 2, 2, 1)
  np.testing.assert_array_equal(pixels(images), images)

  @data.register_source("my_digits")
  class MyDigits(data.DigitsSource):
    pass

  assert type(data.get_source("digits")) is MyDigits  # Asked before the built-in digits.


def test_register_source_rejects_other_objects_and_taken_names(sources_registry):
  with pytest.raises(TypeError, match="subclasses of tfp_realnvp.data.ImageSource"):
    data.register_source("thing")(object)
  with pytest.raises(ValueError, match="'npz' is taken"):
    data.register_source("npz")(type("Other", (data.InMemorySource,), {}))
  assert "thing" not in sources_registry


def test_a_plugin_that_is_not_a_source_kind_is_skipped_with_a_warning(sources_registry):
  sources_registry._entries["broken"] = object  # As a bad entry point would register it.
  with pytest.warns(UserWarning, match="skipped the data source 'broken'"):
    assert type(data.get_source("digits")) is data.DigitsSource
