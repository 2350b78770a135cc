"""Tests of the image pipelines of `tfp_realnvp.data` (no network, no download)."""

import pathlib
import time

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfp_realnvp import data

MNIST_NPZ = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist.npz"


def _collect(ds):
  """All batches of a finite dataset, concatenated: images, and labels if present."""
  images, labels = [], []
  for element in ds:
    if isinstance(element, tuple):
      images.append(element[0].numpy())
      labels.append(element[1].numpy())
    else:
      images.append(element.numpy())
  return np.concatenate(images), (np.concatenate(labels) if labels else None)


def _pixels(source, split="train", **kwargs):
  """The exact integer pixels of a source, in file order (no shuffling, no noise)."""
  images, _ = _collect(data.load_images(source, split, batch_size=512, shuffle=False,
                                        dequantize=False, **kwargs))
  return np.round(images * 256).astype(np.int64)


# ------------------------------------------------------------------------------------------------
# dequantize


def test_dequantize_stays_in_the_bin_of_each_pixel():
  pixels = np.tile(np.arange(256, dtype=np.uint8), 400)
  x = data.dequantize(pixels, seed=3).numpy()
  assert x.dtype == np.float32
  assert np.all(x >= 0.0) and np.all(x < 1.0)
  np.testing.assert_array_equal(np.floor(x * 256).astype(np.int64), pixels)
  # The noise covers the bin: its mean is about 1/2.
  assert abs(np.mean(x * 256 - pixels) - 0.5) < 0.02


def test_dequantize_seed_is_stateless_and_no_seed_is_random():
  pixels = tf.constant(np.arange(64, dtype=np.int32).reshape(8, 8))
  np.testing.assert_array_equal(data.dequantize(pixels, seed=7), data.dequantize(pixels, seed=7))
  np.testing.assert_array_equal(data.dequantize(pixels, seed=[7, 0]),
                                data.dequantize(pixels, seed=7))
  assert not np.array_equal(data.dequantize(pixels, seed=7), data.dequantize(pixels, seed=8))
  assert not np.array_equal(data.dequantize(pixels), data.dequantize(pixels))


def test_dequantize_rejects_float_pixels():
  with pytest.raises(TypeError, match="integer pixels"):
    data.dequantize(np.zeros([2, 2], np.float32))


# ------------------------------------------------------------------------------------------------
# The embedded default: scikit-learn digits.


def test_digits_batches_shape_dtype_range():
  ds = data.load_images("digits", batch_size=32, seed=0)
  assert ds.element_spec.shape.as_list() == [None, 8, 8, 1]
  assert ds.element_spec.dtype == tf.float32
  images = next(iter(ds)).numpy()
  assert images.shape == (32, 8, 8, 1)
  assert images.min() >= 0.0 and images.max() < 1.0
  assert data.image_shape("digits") == (8, 8, 1)


def test_digits_split_sizes_by_counting():
  train, _ = _collect(data.load_images("digits", "train", batch_size=100, seed=0))
  test, _ = _collect(data.load_images("digits", "test", batch_size=100, seed=0))
  assert len(train) == 1500 and len(test) == 297
  assert data.num_examples("digits", "train") == 1500
  assert data.num_examples("digits", "test") == 297
  with pytest.raises(ValueError, match="'train'.*'test'"):
    data.load_images("digits", "validation")


def test_seeded_noise_does_not_depend_on_the_global_seed():
  def test_images(global_seed):
    tf.random.set_seed(global_seed)
    return _collect(data.load_images("digits", "test", batch_size=100, seed=3,
                                     shuffle=False))[0]

  np.testing.assert_array_equal(test_images(1), test_images(2))


def test_repeated_data_get_new_noise_at_every_pass():
  ds = data.load_images("digits", "test", batch_size=297, seed=3, shuffle=False, repeat=True)
  batches = iter(ds)
  first, second = next(batches).numpy(), next(batches).numpy()  # The same 297 images.
  np.testing.assert_array_equal(np.floor(256 * first), np.floor(256 * second))
  assert np.abs(first - second).mean() > 0.1 / 256


def test_digits_pixels_and_labels():
  from sklearn import datasets  # pylint: disable=g-import-not-at-top

  digits = datasets.load_digits()
  ds = data.load_images("digits", "test", batch_size=64, shuffle=False, with_labels=True,
                        dequantize=False)
  assert ds.element_spec[1].dtype == tf.int32
  images, labels = _collect(ds)
  k = np.round(images * 256).astype(np.int64)
  assert k.min() == 0 and k.max() == 255
  # Every test image is a digit of scikit-learn, with its label, pixels round(v * 255 / 16).
  expected = np.round(digits.images * 255 / 16).astype(np.int64)
  pairs = zip(expected, digits.target, strict=True)
  flat = {tuple(image.ravel()): label for image, label in pairs}
  for image, label in zip(k, labels, strict=True):
    assert flat[tuple(image.ravel())] == label
  # The two splits together hold every digit.
  train_labels = _collect(data.load_images("digits", batch_size=500, with_labels=True))[1]
  np.testing.assert_array_equal(np.bincount(np.concatenate([train_labels, labels])),
                                np.bincount(digits.target))


def test_digits_noise_within_one_bin_of_the_pixels():
  k = _pixels("digits")
  x, _ = _collect(data.load_images("digits", batch_size=256, shuffle=False, seed=5))
  np.testing.assert_array_equal(np.floor(x * 256).astype(np.int64), k)
  assert not np.array_equal(x * 256, k)  # There is noise.


def test_digits_seed_is_reproducible():
  def first_batches(seed):
    ds = data.load_images("digits", batch_size=50, seed=seed, with_labels=True)
    return [(x.numpy(), y.numpy()) for x, y in ds.take(3)]

  a, b, c = first_batches(11), first_batches(11), first_batches(12)
  for (xa, ya), (xb, yb) in zip(a, b, strict=True):
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ya, yb)
  assert not np.array_equal(a[0][0], c[0][0])


def test_second_pass_reshuffles_but_an_unshuffled_seeded_pipeline_is_a_fixed_set():
  ds = data.load_images("digits", batch_size=1500, shuffle=False, seed=1)
  np.testing.assert_array_equal(next(iter(ds)).numpy(), next(iter(ds)).numpy())
  shuffled = data.load_images("digits", batch_size=1500, seed=1)
  first, second = next(iter(shuffled)).numpy(), next(iter(shuffled)).numpy()
  assert not np.array_equal(np.sort(first, axis=0), np.sort(second, axis=0))  # New noise too.
  unseeded = data.load_images("digits", batch_size=1500, shuffle=False)
  first, second = next(iter(unseeded)).numpy(), next(iter(unseeded)).numpy()
  np.testing.assert_array_equal(np.floor(first * 256), np.floor(second * 256))
  assert not np.array_equal(first, second)


def test_repeat_and_drop_remainder():
  ds = data.load_images("digits", "test", batch_size=100, drop_remainder=True, repeat=True)
  assert ds.element_spec.shape.as_list() == [100, 8, 8, 1]
  assert ds.cardinality().numpy() == tf.data.INFINITE_CARDINALITY
  assert sum(1 for _ in ds.take(7)) == 7  # More batches than one pass (2) holds.
  finite = data.load_images("digits", "test", batch_size=100, drop_remainder=True)
  assert sum(1 for _ in finite) == 2


def test_dequantize_false_returns_k_over_256():
  x, _ = _collect(data.load_images("digits", batch_size=512, shuffle=False, dequantize=False))
  np.testing.assert_array_equal(x * 256, np.round(x * 256))


@pytest.mark.parametrize("kwargs, message", [
    (dict(batch_size=0), "batch_size"),
    (dict(shuffle_buffer=0), "shuffle_buffer"),
])
def test_bad_arguments(kwargs, message):
  with pytest.raises(ValueError, match=message):
    data.load_images("digits", **kwargs)


# ------------------------------------------------------------------------------------------------
# .npz files


def _random_uint8(shape, seed=0):
  return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def test_npz_train_test_with_labels(tmp_path):
  path = tmp_path / "small.npz"
  x_train, x_test = _random_uint8((10, 6, 4)), _random_uint8((3, 6, 4), seed=1)
  np.savez(path, x_train=x_train, y_train=np.arange(10), x_test=x_test,
           y_test=np.array([7, 8, 9], np.uint8))
  assert data.image_shape(path) == (6, 4, 1)
  assert data.num_examples(path, "test") == 3
  ds = data.load_images(str(path), "test", batch_size=2, shuffle=False, with_labels=True,
                        dequantize=False)
  assert ds.element_spec[0].shape.as_list() == [None, 6, 4, 1]
  images, labels = _collect(ds)
  np.testing.assert_array_equal(np.round(images * 256).astype(np.uint8), x_test[..., None])
  np.testing.assert_array_equal(labels, [7, 8, 9])
  assert labels.dtype == np.int32
  x, _ = _collect(data.load_images(path, batch_size=4, shuffle=False, seed=0))
  np.testing.assert_array_equal(np.floor(x * 256), x_train[..., None])


def test_npz_single_array_without_labels(tmp_path):
  path = tmp_path / "images.npz"
  images = _random_uint8((5, 4, 4, 3))
  np.savez_compressed(path, images=images)
  np.testing.assert_array_equal(_pixels(path), images)
  assert data.image_shape(path) == (4, 4, 3)
  with pytest.raises(ValueError, match="single image array 'images'.*no split 'test'"):
    data.load_images(path, "test")
  with pytest.raises(ValueError, match="no label array 'labels'"):
    data.load_images(path, with_labels=True)
  np.savez(tmp_path / "xy.npz", x=images, y=np.arange(5))
  _, labels = _collect(data.load_images(tmp_path / "xy.npz", shuffle=False, with_labels=True))
  np.testing.assert_array_equal(labels, np.arange(5))


def test_npz_integer_dtype_in_range_is_accepted(tmp_path):
  path = tmp_path / "int.npz"
  images = _random_uint8((4, 2, 2)).astype(np.int64)
  np.savez(path, x=images)
  np.testing.assert_array_equal(_pixels(path)[..., 0], images)


@pytest.mark.parametrize("arrays, error, message", [
    (dict(x_train=np.zeros((2, 4, 4), np.float32)), ValueError, "uint8.*float32"),
    (dict(x=np.full((2, 4, 4), 300, np.int32)), ValueError, r"0\.\.255.*0\.\.300"),
    (dict(pictures=np.zeros((2, 4, 4), np.uint8)), ValueError, "'pictures'.*x_train"),
    (dict(x=np.zeros((2, 4), np.uint8)), ValueError, r"\(N, H, W\)"),
    (dict(x_train=np.zeros((2, 4, 4), np.uint8)), ValueError, "no split 'test'"),
    (dict(x=np.zeros((2, 4, 4), np.uint8), y=np.zeros(3, np.int64)), ValueError, r"\(2,\)"),
])
def test_npz_bad_files_give_clear_errors(tmp_path, arrays, error, message):
  path = tmp_path / "bad.npz"
  np.savez(path, **arrays)
  split = "test" if message == "no split 'test'" else "train"
  with pytest.raises(error, match=message):
    data.load_images(path, split, with_labels="y" in arrays)


def test_missing_or_unsupported_files(tmp_path):
  with pytest.raises(FileNotFoundError, match="no such file"):
    data.load_images(str(tmp_path / "absent.npz"))
  (tmp_path / "notes.txt").write_text("hello")
  with pytest.raises(ValueError, match="unsupported file type '.txt'"):
    data.load_images(tmp_path / "notes.txt")


# ------------------------------------------------------------------------------------------------
# Folders of image files


def _save(path, array):
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(array).save(path)


def test_folder_with_class_subfolders(tmp_path):
  rgb = {name: _random_uint8((5, 7, 3), seed=i) for i, name in enumerate(["a", "b", "c"])}
  _save(tmp_path / "zebra" / "1.png", rgb["a"])
  _save(tmp_path / "ant" / "2.png", rgb["b"])
  _save(tmp_path / "ant" / "1.bmp", rgb["c"])
  (tmp_path / "bee").mkdir()  # A folder without images is not a class.
  _save(tmp_path / ".hidden" / "x.png", rgb["c"])  # Hidden folders are ignored.
  assert data.image_shape(tmp_path) == (5, 7, 3)
  assert data.num_examples(tmp_path, "train") == 3
  ds = data.load_images(tmp_path, batch_size=2, shuffle=False, with_labels=True,
                        dequantize=False)
  assert ds.element_spec[0].shape.as_list() == [None, 5, 7, 3]
  images, labels = _collect(ds)
  # Sorted classes ant -> 0, zebra -> 1; sorted files inside each.
  np.testing.assert_array_equal(labels, [0, 0, 1])
  np.testing.assert_array_equal(np.round(images * 256).astype(np.uint8),
                                np.stack([rgb["c"], rgb["b"], rgb["a"]]))
  x, _ = _collect(data.load_images(tmp_path, batch_size=3, seed=0))
  assert x.shape == (3, 5, 7, 3) and x.min() >= 0 and x.max() < 1


def test_folder_of_grayscale_images_and_split_folders(tmp_path):
  gray = [_random_uint8((6, 6), seed=i) for i in range(3)]
  _save(tmp_path / "train" / "a.png", gray[0])
  _save(tmp_path / "train" / "b.png", gray[1])
  _save(tmp_path / "test" / "c.png", gray[2])
  np.testing.assert_array_equal(_pixels(tmp_path, "train")[..., 0], np.stack(gray[:2]))
  np.testing.assert_array_equal(_pixels(tmp_path, "test")[..., 0], gray[2][None])
  assert data.image_shape(tmp_path) == (6, 6, 1)
  with pytest.raises(ValueError, match="with_labels=True needs every image inside a class"):
    data.load_images(tmp_path, with_labels=True)
  with pytest.raises(ValueError, match="no folder 'validation'"):
    data.load_images(tmp_path, "validation")


def test_folder_size_mismatch_names_the_file(tmp_path):
  _save(tmp_path / "a.png", _random_uint8((8, 8)))
  _save(tmp_path / "b.png", _random_uint8((8, 8)))
  _save(tmp_path / "c.png", _random_uint8((8, 9)))
  _save(tmp_path / "d.png", _random_uint8((9, 9)))
  with pytest.raises(ValueError, match=r"c\.png.*\(8, 9, 1\) differs from \(8, 8, 1\)"):
    data.load_images(tmp_path)


def test_empty_folder(tmp_path):
  with pytest.raises(ValueError, match="no image files"):
    data.load_images(tmp_path)


# ------------------------------------------------------------------------------------------------
# TensorFlow Datasets (mocked: never downloads)


@pytest.fixture(scope="module")
def tfds():
  return pytest.importorskip("tensorflow_datasets")


# `mock_data` fakes the examples and makes `download_and_prepare` a no-op, but the mocked data
# dir is empty, so the data set reads as "not prepared": `download=True` lets the pipeline go on.
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


def test_unknown_source_lists_the_accepted_ones():
  with pytest.raises(ValueError, match="Unknown image source 'svhn'") as info:
    data.load_images("svhn")
  for accepted in ("'digits'", ".npz", "folder", "'mnist'", "'celeb_a'",
                   "'downsampled_imagenet/64x64'"):
    assert accepted in str(info.value)
  with pytest.raises(TypeError, match="source must be a string or a path"):
    data.load_images(42)


# ------------------------------------------------------------------------------------------------
# The project's copy of MNIST (optional)


@pytest.mark.skipif(not MNIST_NPZ.exists(), reason=f"{MNIST_NPZ} is absent (project data only)")
def test_project_mnist_npz():
  assert data.image_shape(MNIST_NPZ) == (28, 28, 1)
  assert data.num_examples(MNIST_NPZ, "test") == 10000
  ds = data.load_images(MNIST_NPZ, batch_size=5, shuffle=False, with_labels=True)
  images, labels = next(iter(ds))
  assert images.shape == (5, 28, 28, 1)
  assert images.numpy().min() >= 0 and images.numpy().max() < 1
  np.testing.assert_array_equal(labels.numpy(), [5, 0, 4, 1, 9])


# ------------------------------------------------------------------------------------------------
# Sources: one class per kind, resolved once


def _indexed_npz(path, num=250, **extra):
  """An `.npz` whose image i is filled with the value i % 256 + its class, sorted by class.

  Image i has all pixels `i` (so that an image says which one it is) and label `i >= num / 2`:
  the file is sorted by class, as files often are.
  """
  images = np.repeat(np.arange(num, dtype=np.uint8)[:, None, None], 2, axis=1).repeat(3, axis=2)
  labels = (np.arange(num) >= num // 2).astype(np.int64)
  np.savez(path, x=images, y=labels, **extra)
  return path


def test_get_source_builds_one_class_per_kind(tmp_path):
  digits = data.get_source("digits")
  assert isinstance(digits, data.DigitsSource) and isinstance(digits, data.ImageSource)
  assert (digits.name, digits.shape, digits.splits, digits.has_labels) == (
      "digits", (8, 8, 1), ("train", "test"), True)
  assert digits.num_examples("train") == 1500 and digits.num_examples("test") == 297
  assert data.get_source(digits) is digits

  npz = data.get_source(_indexed_npz(tmp_path / "sorted.npz"))
  assert isinstance(npz, data.NpzSource)
  assert (npz.shape, npz.splits, npz.has_labels) == ((2, 3, 1), ("train",), True)
  assert npz.num_examples() == 250 and npz.name == str(tmp_path / "sorted.npz")

  _save(tmp_path / "pics" / "train" / "a" / "1.png", _random_uint8((4, 5, 3)))
  _save(tmp_path / "pics" / "train" / "b" / "1.png", _random_uint8((4, 5, 3)))
  _save(tmp_path / "pics" / "test" / "2.png", _random_uint8((4, 5, 3)))
  folder = data.get_source(tmp_path / "pics")
  assert isinstance(folder, data.FolderSource)
  assert (folder.shape, folder.splits, folder.has_labels) == ((4, 5, 3), ("train", "test"), False)
  assert folder.num_examples("train") == 2 and folder.num_examples("test") == 1

  # TFDS sources know their shape, splits and labels without the data (nothing is read).
  mnist = data.get_source("mnist", data_dir=tmp_path / "tfds")
  assert isinstance(mnist, data.TfdsSource)
  assert (mnist.shape, mnist.splits, mnist.has_labels) == ((28, 28, 1), ("train", "test"), True)
  celeb_a = data.get_source("celeb_a", data_dir=tmp_path / "tfds")
  assert (celeb_a.shape, celeb_a.has_labels) == ((64, 64, 3), False)
  assert "validation" in celeb_a.splits
  assert not (tmp_path / "tfds").exists()


def test_load_images_accepts_a_source():
  source = data.get_source("digits")
  ds = data.load_images(source, "test", batch_size=300, shuffle=False, dequantize=False)
  np.testing.assert_array_equal(_collect(ds)[0], _collect(data.load_images(
      "digits", "test", batch_size=300, shuffle=False, dequantize=False))[0])
  assert data.image_shape(source) == (8, 8, 1) and data.num_examples(source, "test") == 297


def test_npz_source_reads_headers_only(tmp_path, monkeypatch):
  path = tmp_path / "big.npz"
  np.savez_compressed(path, x_train=np.zeros((7, 3, 3, 2), np.uint8),
                      x_test=np.zeros((2, 3, 3, 2), np.uint8))

  def no_load(*args, **kwargs):
    raise AssertionError("np.load called: the arrays were loaded")

  monkeypatch.setattr(np, "load", no_load)
  source = data.get_source(path)
  assert source.shape == (3, 3, 2) and source.splits == ("train", "test")
  assert source.num_examples("train") == 7 and source.num_examples("test") == 2
  assert source.num_examples("train[50%:]") == 3


def test_npz_with_only_x_test_is_for_evaluation(tmp_path):
  path = tmp_path / "eval.npz"
  x_test = _random_uint8((3, 4, 4))
  np.savez(path, x_test=x_test)
  source = data.get_source(path)
  assert source.splits == ("test",)
  np.testing.assert_array_equal(_pixels(path, "test")[..., 0], x_test)
  with pytest.raises(ValueError, match="no split 'train'.*x_train"):
    data.load_images(path, "train")
  with pytest.raises(ValueError, match="no split 'train'.*'x_train'"):
    source.training_splits()


def test_folder_labels_index_the_classes_of_all_splits(tmp_path):
  for split, classes in (("train", "abc"), ("test", "ac")):
    for name in classes:
      _save(tmp_path / split / name / "1.png", _random_uint8((3, 3)))
  source = data.get_source(tmp_path)
  assert source.has_labels
  _, labels = _collect(data.load_images(source, "test", shuffle=False, with_labels=True))
  np.testing.assert_array_equal(labels, [0, 2])  # Class 'c' is 2 in both splits.


# ------------------------------------------------------------------------------------------------
# Slices and held-out splits


def _slice_images(source, split):
  """The indices (pixel values) of the images of a split of an `_indexed_npz`, and labels."""
  images, labels = _collect(data.load_images(source, split, batch_size=512, shuffle=False,
                                             dequantize=False, with_labels=True))
  return np.round(images[:, 0, 0, 0] * 256).astype(np.int64), labels


def test_percent_slices_are_disjoint_complete_deterministic_and_representative(tmp_path):
  source = data.get_source(_indexed_npz(tmp_path / "sorted.npz"))
  train, train_labels = _slice_images(source, "train[:90%]")
  held_out, held_out_labels = _slice_images(source, "train[90%:]")
  assert len(train) == source.num_examples("train[:90%]") == 225
  assert len(held_out) == source.num_examples("train[90%:]") == 25
  assert not set(train) & set(held_out)
  np.testing.assert_array_equal(np.sort(np.concatenate([train, held_out])), np.arange(250))
  # A fixed permutation: the same slice again, in file order, and not simply the last 10 %.
  np.testing.assert_array_equal(_slice_images(source, "train[90%:]")[0], held_out)
  np.testing.assert_array_equal(held_out, np.sort(held_out))
  assert set(held_out) != set(range(225, 250))
  # Labels follow their images, and the held-out slice of a class-sorted file has both classes.
  np.testing.assert_array_equal(held_out_labels, held_out >= 125)
  assert set(held_out_labels) == {0, 1} and set(train_labels) == {0, 1}


@pytest.mark.parametrize("split, count", [
    ("train[:10%]", 25), ("train[-10%:]", 25), ("train[:10]", 10), ("train[240:]", 10),
    ("train[10%:20%]", 25), ("train[:]", 250), ("train[:33.3%]", 83), ("train[50%:40%]", 0),
])
def test_slice_sizes(tmp_path, split, count):
  source = data.get_source(_indexed_npz(tmp_path / "sorted.npz"))
  assert source.num_examples(split) == count
  if count:
    assert len(_slice_images(source, split)[0]) == count
  else:
    with pytest.raises(ValueError, match=r"slice 'train\[50%:40%\]' of the 250 images.*no images"):
      data.load_images(source, split)


def test_slices_of_digits_and_of_a_plain_folder(tmp_path):
  digits = data.get_source("digits")
  assert digits.num_examples("test[:50%]") + digits.num_examples("test[50%:]") == 297
  for i in range(10):
    _save(tmp_path / f"{i}.png", np.full((2, 2), i, np.uint8))
  first = _pixels(tmp_path, "train[:70%]")[:, 0, 0, 0]
  second = _pixels(tmp_path, "train[70%:]")[:, 0, 0, 0]
  assert len(first) == 7 and len(second) == 3
  np.testing.assert_array_equal(np.sort(np.concatenate([first, second])), np.arange(10))


@pytest.mark.parametrize("split", ["train[", "train[:90]%", "train[1.5:]", "train[:150%]",
                                   "tr ain"])
def test_bad_slices(tmp_path, split):
  with pytest.raises(ValueError, match="split"):
    data.load_images("digits", split)


def test_training_splits(tmp_path):
  assert data.HOLDOUT_FRACTION == 0.1
  for name in ("digits", "cifar10"):
    source = data.get_source(name)
    assert source.training_splits() == ("train[:90%]", "train[90%:]", "test")
    assert source.training_splits(validation=False) == ("train", None, "test")
  single = data.get_source(_indexed_npz(tmp_path / "sorted.npz"))
  assert single.training_splits() == ("train[:80%]", "train[80%:90%]", "train[90%:]")
  assert single.training_splits(validation=False) == ("train[:90%]", None, "train[90%:]")
  assert single.training_splits(holdout_fraction=0.25) == (
      "train[:50%]", "train[50%:75%]", "train[75%:]")
  assert single.training_splits(0.125, validation=False) == ("train[:87.5%]", None,
                                                               "train[87.5%:]")
  train, validation, test = single.training_splits(0.2)
  assert [single.num_examples(s) for s in (train, validation, test)] == [150, 50, 50]
  # Disjoint slices that cover the split.
  images = [_pixels(single, s)[:, 0, 0, 0] for s in (train, validation, test)]
  assert sorted(np.concatenate(images).tolist()) == sorted(_pixels(single, "train")[:, 0, 0, 0])
  for bad in (0, 1, 0.5, 1.5, -0.1, "0.1", True):
    with pytest.raises(ValueError, match="holdout_fraction"):
      single.training_splits(bad)


def test_a_plain_folder_trains_on_held_out_slices(tmp_path):
  for i in range(10):
    _save(tmp_path / f"{i}.png", _random_uint8((3, 3), seed=i))
  source = data.get_source(tmp_path)
  assert source.splits == ("train",)
  train, validation, test = source.training_splits()
  x, _ = _collect(data.load_images(source, train, batch_size=8, seed=0))
  assert x.shape == (8, 3, 3, 1)
  assert data.num_examples(tmp_path, validation) == data.num_examples(tmp_path, test) == 1
  too_few = r"too few images \(10\) to hold out 0.05 of them 2 time\(s\).*'train\[95%:\]'"
  with pytest.raises(ValueError, match=too_few):
    source.training_splits(0.05)


@pytest.mark.parametrize("layout, message", [
    ("npz_x_train", (r"no split 'test' \(no array 'x_test'\).*store them as 'x_test' in the "
                     r".npz, or train on the rest of 'train' and evaluate on the held-out slice "
                     r"'train\[90%:\]'")),
    ("npz_x", r"single image array 'x'.*no split 'test'.*held-out slice 'train\[90%:\]'"),
    ("folder", (r"single split 'train'; got split 'test'\. Put the images in train/ and test/ "
                r"sub-folders, or train on the rest of 'train'")),
    ("folder_train", r"no folder 'test'; add a test/ folder of images, or train on"),
])
def test_a_missing_test_split_says_what_to_add(tmp_path, layout, message):
  if layout.startswith("npz"):
    key = layout[4:]
    source = tmp_path / "data.npz"
    np.savez(source, **{key: _random_uint8((3, 4, 4))})
  else:
    source = tmp_path / "folder"
    _save(source / ("train" if layout == "folder_train" else "") / "a.png", _random_uint8((4, 4)))
  with pytest.raises(ValueError, match=message) as info:
    data.num_examples(source, "test")
  assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------------------------
# Bad data caught when the source is built, with one line


def _raises_one_line(source, message):
  """Asserts that `get_source(source)` raises a one-line ValueError naming the file."""
  with pytest.raises(ValueError, match=message) as info:
    data.get_source(source)
  text = str(info.value)
  assert "\n" not in text
  assert pathlib.Path(source).name in text
  return text


def test_npz_of_random_bytes(tmp_path):
  path = tmp_path / "noise.npz"
  path.write_bytes(np.random.default_rng(0).bytes(1000))
  _raises_one_line(path, "not a readable .npz file")
  # A zip archive whose member is not a .npy array.
  import zipfile  # pylint: disable=g-import-not-at-top
  with zipfile.ZipFile(tmp_path / "fake.npz", "w") as archive:
    archive.writestr("x.npy", b"not an array")
  _raises_one_line(tmp_path / "fake.npz", "not a readable .npz file")


@pytest.mark.parametrize("arrays, message", [
    (dict(x=np.zeros((0, 4, 4), np.uint8)), r"'x'\]: holds no images"),
    (dict(x_train=np.zeros((3, 4, 4), np.uint8), x_test=np.zeros((0, 4, 4), np.uint8)),
     r"'x_test'\]: holds no images"),
    (dict(x_train=np.zeros((3, 28, 28), np.uint8), x_test=np.zeros((2, 32, 32, 3), np.uint8)),
     (r"'x_train' has images of shape \(28, 28, 1\) but 'x_test' has images of shape "
      r"\(32, 32, 3\)")),
    (dict(x_train=np.zeros((3, 4, 4), np.uint8), x_test=np.zeros((2, 4, 4, 1), np.uint8)), None),
    (dict(x=np.full((2, 4, 4), -1, np.int16)), r"0\.\.255, found values in -1\.\.-1"),
    (dict(x=np.full((2, 4, 4), 256, np.uint16)), r"0\.\.255, found values in 256\.\.256"),
    (dict(x=np.zeros((2, 4, 4), np.float64)), "8-bit integers.*float64"),
    (dict(x=np.zeros((2, 4, 4), bool)), "8-bit integers.*bool"),
    (dict(x=np.zeros((2, 4, 4, 1, 1), np.uint8)),
     r"\(N, H, W\) or \(N, H, W, C\).*\(2, 4, 4, 1, 1\)"),
    (dict(x=np.zeros((4,), np.uint8)), r"\(N, H, W\) or \(N, H, W, C\)"),
    (dict(x=np.zeros((2, 0, 4), np.uint8)), "positive"),
    (dict(), r"found arrays \[\] but no images"),
])
def test_bad_npz_is_rejected_when_the_source_is_built(tmp_path, arrays, message):
  path = tmp_path / "bad.npz"
  np.savez(path, **arrays)
  if message is None:  # (N, H, W) and (N, H, W, 1) are the same images: accepted.
    assert data.get_source(path).shape == (4, 4, 1)
  else:
    _raises_one_line(path, message)


def test_bad_folders_are_rejected_when_the_source_is_built(tmp_path):
  _save(tmp_path / "a" / "train" / "1.png", _random_uint8((4, 4)))
  (tmp_path / "a" / "test").mkdir()
  _raises_one_line(tmp_path / "a", "test: no image files")
  _save(tmp_path / "b" / "train" / "1.png", _random_uint8((4, 4)))
  _save(tmp_path / "b" / "test" / "1.png", _random_uint8((4, 5)))
  _raises_one_line(tmp_path / "b", r"\(4, 5, 1\) differs from \(4, 4, 1\)")
  (tmp_path / "c").mkdir()
  (tmp_path / "c" / "broken.png").write_bytes(b"not a png")
  _raises_one_line(tmp_path / "c", "broken.png: cannot read the image")
  _save(tmp_path / "d" / "deep.png", np.zeros((4, 4), np.uint16))  # 16-bit grayscale.
  _raises_one_line(tmp_path / "d", "unsupported image mode 'I")


# ------------------------------------------------------------------------------------------------
# dequantize range checks and run names


@pytest.mark.parametrize("pixels", [
    [300, -4], np.array([0, 256], np.int64), tf.constant([-1, 5]), np.array([-3], np.int8),
])
def test_dequantize_rejects_static_out_of_range_values(pixels):
  with pytest.raises(ValueError, match=r"0\.\.255"):
    data.dequantize(pixels)


def test_dequantize_checks_the_range_at_run_time_in_a_traced_function():
  @tf.function(input_signature=[tf.TensorSpec([None], tf.int32)])
  def traced(pixels):
    return data.dequantize(pixels, seed=1)

  x = traced(tf.constant([0, 255])).numpy()
  np.testing.assert_array_equal(np.floor(x * 256), [0, 255])
  with pytest.raises(tf.errors.InvalidArgumentError, match=r"0\.\.255"):
    traced(tf.constant([0, 300]))

  @tf.function
  def constant():
    return data.dequantize(tf.constant([300]))

  with pytest.raises(ValueError, match=r"0\.\.255"):
    constant()


def test_dequantize_adds_no_check_for_uint8():
  graph = tf.function(data.dequantize).get_concrete_function(
      tf.TensorSpec([None], tf.uint8)).graph
  op_types = {op.type for op in graph.get_operations()}
  assert not op_types & {"Assert", "GreaterEqual", "LessEqual"}
  graph = tf.function(data.dequantize).get_concrete_function(
      tf.TensorSpec([None], tf.int32)).graph
  assert "Assert" in {op.type for op in graph.get_operations()}


def test_run_name(tmp_path):
  assert data.run_name("digits") == "digits"
  assert data.run_name("downsampled_imagenet/32x32") == "downsampled_imagenet_32x32"
  assert data.run_name(_indexed_npz(tmp_path / "my.faces.npz")) == "my.faces"
  _save(tmp_path / "cats.v2" / "1.png", _random_uint8((2, 2)))
  assert data.run_name(tmp_path / "cats.v2") == "cats.v2"
  assert data.run_name(str(tmp_path / "cats.v2")) == "cats.v2"
  assert data.run_name(data.get_source("mnist")) == "mnist"


def test_tfds_slices_are_passed_to_tfds(tfds):
  with tfds.testing.mock_data(num_examples=4):
    images = _collect(data.load_images("mnist", "train[:50%]", download=True, shuffle=False))[0]
  assert images.shape[1:] == (28, 28, 1)
  source = data.get_source("downsampled_imagenet/32x32")
  assert source._tfds_split("test[90%:]") == "validation[90%:]"  # pylint: disable=protected-access
  with pytest.raises(ValueError, match=r"'mnist' has splits \['test', 'train'\], not 'extra'"):
    data.load_images("mnist", "extra[:10%]")  # Rejected before TFDS is asked.


def test_a_new_kind_of_source_is_one_class(monkeypatch):
  monkeypatch.setattr(data.ImageSource, "_kinds", data.ImageSource._kinds)  # Restored after.

  class Checkerboards(data._InMemorySource):  # pylint: disable=protected-access,unused-variable
    names = ("checkerboards",)

    def __init__(self, name):
      super().__init__(name, (2, 2, 1), ("train",), has_labels=False)

    def _split_size(self, base):
      return 10

    def _arrays(self, base, with_labels):
      return np.tile(np.array([[0, 255], [255, 0]], np.uint8)[None, ..., None], [10, 1, 1, 1]), None

  source = data.get_source("checkerboards")
  assert type(source).__name__ == "Checkerboards"
  assert source.training_splits(validation=False) == ("train[:90%]", None, "train[90%:]")
  assert len(_pixels("checkerboards", "train[90%:]")) == 1
  with pytest.raises(ValueError, match="'checkerboards'"):
    data.load_images("svhn")  # The accepted sources list it.
