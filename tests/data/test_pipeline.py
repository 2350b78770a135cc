"""Tests of `get_source`, `load_images` and their shortcuts."""

import numpy as np
import pytest
import tensorflow as tf

from tfp_realnvp import data

from data_helpers import collect, indexed_npz, random_uint8, save_image


def test_seeded_noise_does_not_depend_on_the_global_seed():
  def test_images(global_seed):
    tf.random.set_seed(global_seed)
    return collect(data.load_images("digits", "test", batch_size=100, seed=3,
                                     shuffle=False))[0]

  np.testing.assert_array_equal(test_images(1), test_images(2))


def test_repeated_data_get_new_noise_at_every_pass():
  ds = data.load_images("digits", "test", batch_size=297, seed=3, shuffle=False, repeat=True)
  batches = iter(ds)
  first, second = next(batches).numpy(), next(batches).numpy()  # The same 297 images.
  np.testing.assert_array_equal(np.floor(256 * first), np.floor(256 * second))
  assert np.abs(first - second).mean() > 0.1 / 256


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
  x, _ = collect(data.load_images("digits", batch_size=512, shuffle=False, dequantize=False))
  np.testing.assert_array_equal(x * 256, np.round(x * 256))


@pytest.mark.parametrize("kwargs, message", [
    (dict(batch_size=0), "batch_size"),
    (dict(shuffle_buffer=0), "shuffle_buffer"),
])
def test_bad_arguments(kwargs, message):
  with pytest.raises(ValueError, match=message):
    data.load_images("digits", **kwargs)


def test_get_source_builds_one_class_per_kind(tmp_path):
  digits = data.get_source("digits")
  assert isinstance(digits, data.DigitsSource) and isinstance(digits, data.ImageSource)
  assert (digits.name, digits.shape, digits.splits, digits.has_labels) == (
      "digits", (8, 8, 1), ("train", "test"), True)
  assert digits.num_examples("train") == 1500 and digits.num_examples("test") == 297
  assert data.get_source(digits) is digits

  npz = data.get_source(indexed_npz(tmp_path / "sorted.npz"))
  assert isinstance(npz, data.NpzSource)
  assert (npz.shape, npz.splits, npz.has_labels) == ((2, 3, 1), ("train",), True)
  assert npz.num_examples() == 250 and npz.name == str(tmp_path / "sorted.npz")

  save_image(tmp_path / "pics" / "train" / "a" / "1.png", random_uint8((4, 5, 3)))
  save_image(tmp_path / "pics" / "train" / "b" / "1.png", random_uint8((4, 5, 3)))
  save_image(tmp_path / "pics" / "test" / "2.png", random_uint8((4, 5, 3)))
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
  np.testing.assert_array_equal(collect(ds)[0], collect(data.load_images(
      "digits", "test", batch_size=300, shuffle=False, dequantize=False))[0])
  assert data.image_shape(source) == (8, 8, 1) and data.num_examples(source, "test") == 297


def test_unknown_source_lists_the_accepted_ones():
  with pytest.raises(ValueError, match="Unknown image source 'svhn'") as info:
    data.load_images("svhn")
  for accepted in ("'digits'", ".npz", "folder", "'mnist'", "'celeb_a'",
                   "'downsampled_imagenet/64x64'"):
    assert accepted in str(info.value)
  with pytest.raises(TypeError, match="source must be a string or a path"):
    data.load_images(42)


def test_missing_or_unsupported_files(tmp_path):
  with pytest.raises(FileNotFoundError, match="no such file"):
    data.load_images(str(tmp_path / "absent.npz"))
  (tmp_path / "notes.txt").write_text("hello")
  with pytest.raises(ValueError, match="unsupported file type '.txt'"):
    data.load_images(tmp_path / "notes.txt")


def test_run_name(tmp_path):
  assert data.run_name("digits") == "digits"
  assert data.run_name("downsampled_imagenet/32x32") == "downsampled_imagenet_32x32"
  assert data.run_name(indexed_npz(tmp_path / "my.faces.npz")) == "my.faces"
  save_image(tmp_path / "cats.v2" / "1.png", random_uint8((2, 2)))
  assert data.run_name(tmp_path / "cats.v2") == "cats.v2"
  assert data.run_name(str(tmp_path / "cats.v2")) == "cats.v2"
  assert data.run_name(data.get_source("mnist")) == "mnist"
