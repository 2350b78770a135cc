"""Tests of the `.npz` and folder sources: reading, labels, and bad files caught when built."""

import pathlib
import zipfile

import numpy as np
import pytest

from tfp_realnvp import data
from tfp_realnvp import errors

from data_helpers import collect, pixels, random_uint8, save_image

MNIST_NPZ = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist.npz"


def test_npz_train_test_with_labels(tmp_path):
  path = tmp_path / "small.npz"
  x_train, x_test = random_uint8((10, 6, 4)), random_uint8((3, 6, 4), seed=1)
  np.savez(path, x_train=x_train, y_train=np.arange(10), x_test=x_test,
           y_test=np.array([7, 8, 9], np.uint8))
  assert data.image_shape(path) == (6, 4, 1)
  assert data.num_examples(path, "test") == 3
  ds = data.load_images(str(path), "test", batch_size=2, shuffle=False, with_labels=True,
                        dequantize=False)
  assert ds.element_spec[0].shape.as_list() == [None, 6, 4, 1]
  images, labels = collect(ds)
  np.testing.assert_array_equal(np.round(images * 256).astype(np.uint8), x_test[..., None])
  np.testing.assert_array_equal(labels, [7, 8, 9])
  assert labels.dtype == np.int32
  x, _ = collect(data.load_images(path, batch_size=4, shuffle=False, seed=0))
  np.testing.assert_array_equal(np.floor(x * 256), x_train[..., None])


def test_npz_single_array_without_labels(tmp_path):
  path = tmp_path / "images.npz"
  images = random_uint8((5, 4, 4, 3))
  np.savez_compressed(path, images=images)
  np.testing.assert_array_equal(pixels(path), images)
  assert data.image_shape(path) == (4, 4, 3)
  with pytest.raises(ValueError, match="single image array 'images'.*no split 'test'"):
    data.load_images(path, "test")
  with pytest.raises(ValueError, match="no label array 'labels'"):
    data.load_images(path, with_labels=True)
  np.savez(tmp_path / "xy.npz", x=images, y=np.arange(5))
  _, labels = collect(data.load_images(tmp_path / "xy.npz", shuffle=False, with_labels=True))
  np.testing.assert_array_equal(labels, np.arange(5))


def test_npz_integer_dtype_in_range_is_accepted(tmp_path):
  path = tmp_path / "int.npz"
  images = random_uint8((4, 2, 2)).astype(np.int64)
  np.savez(path, x=images)
  np.testing.assert_array_equal(pixels(path)[..., 0], images)


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
  x_test = random_uint8((3, 4, 4))
  np.savez(path, x_test=x_test)
  source = data.get_source(path)
  assert source.splits == ("test",)
  np.testing.assert_array_equal(pixels(path, "test")[..., 0], x_test)
  with pytest.raises(ValueError, match="no split 'train'.*x_train"):
    data.load_images(path, "train")
  with pytest.raises(ValueError, match="no split 'train'.*'x_train'"):
    source.training_splits()


def test_folder_with_class_subfolders(tmp_path):
  rgb = {name: random_uint8((5, 7, 3), seed=i) for i, name in enumerate(["a", "b", "c"])}
  save_image(tmp_path / "zebra" / "1.png", rgb["a"])
  save_image(tmp_path / "ant" / "2.png", rgb["b"])
  save_image(tmp_path / "ant" / "1.bmp", rgb["c"])
  (tmp_path / "bee").mkdir()  # A folder without images is not a class.
  save_image(tmp_path / ".hidden" / "x.png", rgb["c"])  # Hidden folders are ignored.
  assert data.image_shape(tmp_path) == (5, 7, 3)
  assert data.num_examples(tmp_path, "train") == 3
  ds = data.load_images(tmp_path, batch_size=2, shuffle=False, with_labels=True,
                        dequantize=False)
  assert ds.element_spec[0].shape.as_list() == [None, 5, 7, 3]
  images, labels = collect(ds)
  # Sorted classes ant -> 0, zebra -> 1; sorted files inside each.
  np.testing.assert_array_equal(labels, [0, 0, 1])
  np.testing.assert_array_equal(np.round(images * 256).astype(np.uint8),
                                np.stack([rgb["c"], rgb["b"], rgb["a"]]))
  x, _ = collect(data.load_images(tmp_path, batch_size=3, seed=0))
  assert x.shape == (3, 5, 7, 3) and x.min() >= 0 and x.max() < 1


def test_folder_of_grayscale_images_and_split_folders(tmp_path):
  gray = [random_uint8((6, 6), seed=i) for i in range(3)]
  save_image(tmp_path / "train" / "a.png", gray[0])
  save_image(tmp_path / "train" / "b.png", gray[1])
  save_image(tmp_path / "test" / "c.png", gray[2])
  np.testing.assert_array_equal(pixels(tmp_path, "train")[..., 0], np.stack(gray[:2]))
  np.testing.assert_array_equal(pixels(tmp_path, "test")[..., 0], gray[2][None])
  assert data.image_shape(tmp_path) == (6, 6, 1)
  with pytest.raises(ValueError, match="with_labels=True needs every image inside a class"):
    data.load_images(tmp_path, with_labels=True)
  with pytest.raises(ValueError, match="no folder 'validation'"):
    data.load_images(tmp_path, "validation")


def test_folder_size_mismatch_names_the_file(tmp_path):
  save_image(tmp_path / "a.png", random_uint8((8, 8)))
  save_image(tmp_path / "b.png", random_uint8((8, 8)))
  save_image(tmp_path / "c.png", random_uint8((8, 9)))
  save_image(tmp_path / "d.png", random_uint8((9, 9)))
  with pytest.raises(ValueError, match=r"c\.png.*\(8, 9, 1\) differs from \(8, 8, 1\)"):
    data.load_images(tmp_path)


def test_empty_folder(tmp_path):
  with pytest.raises(ValueError, match="no image files"):
    data.load_images(tmp_path)


def test_folder_labels_index_the_classes_of_all_splits(tmp_path):
  for split, classes in (("train", "abc"), ("test", "ac")):
    for name in classes:
      save_image(tmp_path / split / name / "1.png", random_uint8((3, 3)))
  source = data.get_source(tmp_path)
  assert source.has_labels
  _, labels = collect(data.load_images(source, "test", shuffle=False, with_labels=True))
  np.testing.assert_array_equal(labels, [0, 2])  # Class 'c' is 2 in both splits.


def _raises_one_line(source, message):
  """Asserts that `get_source(source)` raises a one-line `DataError` naming the file."""
  with pytest.raises(errors.DataError, match=message) as info:
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
  save_image(tmp_path / "a" / "train" / "1.png", random_uint8((4, 4)))
  (tmp_path / "a" / "test").mkdir()
  _raises_one_line(tmp_path / "a", "test: no image files")
  save_image(tmp_path / "b" / "train" / "1.png", random_uint8((4, 4)))
  save_image(tmp_path / "b" / "test" / "1.png", random_uint8((4, 5)))
  _raises_one_line(tmp_path / "b", r"\(4, 5, 1\) differs from \(4, 4, 1\)")
  (tmp_path / "c").mkdir()
  (tmp_path / "c" / "broken.png").write_bytes(b"not a png")
  _raises_one_line(tmp_path / "c", "broken.png: cannot read the image")
  save_image(tmp_path / "d" / "deep.png", np.zeros((4, 4), np.uint16))  # 16-bit grayscale.
  _raises_one_line(tmp_path / "d", "unsupported image mode 'I")


@pytest.mark.skipif(not MNIST_NPZ.exists(), reason=f"{MNIST_NPZ} is absent (project data only)")
def test_project_mnist_npz():
  assert data.image_shape(MNIST_NPZ) == (28, 28, 1)
  assert data.num_examples(MNIST_NPZ, "test") == 10000
  ds = data.load_images(MNIST_NPZ, batch_size=5, shuffle=False, with_labels=True)
  images, labels = next(iter(ds))
  assert images.shape == (5, 28, 28, 1)
  assert images.numpy().min() >= 0 and images.numpy().max() < 1
  np.testing.assert_array_equal(labels.numpy(), [5, 0, 4, 1, 9])


def test_an_image_damaged_after_the_listing_is_a_data_error(tmp_path):
  for name in ("a.png", "b.png"):
    save_image(tmp_path / name, random_uint8((4, 4)))
  source = data.get_source(tmp_path)  # Checks the header of the first image only.
  (tmp_path / "b.png").write_bytes(b"not a png")
  with pytest.raises(errors.DataError, match=r"b\.png: cannot read the image"):
    data.load_images(source)
