"""Tests of split names, TFDS-style slices and the held-out splits of a run."""

import numpy as np
import pytest

from tfp_realnvp import data

from data_helpers import collect, indexed_npz, pixels, random_uint8, save_image, slice_images


def test_percent_slices_are_disjoint_complete_deterministic_and_representative(tmp_path):
  source = data.get_source(indexed_npz(tmp_path / "sorted.npz"))
  train, train_labels = slice_images(source, "train[:90%]")
  held_out, held_out_labels = slice_images(source, "train[90%:]")
  assert len(train) == source.num_examples("train[:90%]") == 225
  assert len(held_out) == source.num_examples("train[90%:]") == 25
  assert not set(train) & set(held_out)
  np.testing.assert_array_equal(np.sort(np.concatenate([train, held_out])), np.arange(250))
  # A fixed permutation: the same slice again, in file order, and not simply the last 10 %.
  np.testing.assert_array_equal(slice_images(source, "train[90%:]")[0], held_out)
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
  source = data.get_source(indexed_npz(tmp_path / "sorted.npz"))
  assert source.num_examples(split) == count
  if count:
    assert len(slice_images(source, split)[0]) == count
  else:
    with pytest.raises(ValueError, match=r"slice 'train\[50%:40%\]' of the 250 images.*no images"):
      data.load_images(source, split)


def test_slices_of_digits_and_of_a_plain_folder(tmp_path):
  digits = data.get_source("digits")
  assert digits.num_examples("test[:50%]") + digits.num_examples("test[50%:]") == 297
  for i in range(10):
    save_image(tmp_path / f"{i}.png", np.full((2, 2), i, np.uint8))
  first = pixels(tmp_path, "train[:70%]")[:, 0, 0, 0]
  second = pixels(tmp_path, "train[70%:]")[:, 0, 0, 0]
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
  single = data.get_source(indexed_npz(tmp_path / "sorted.npz"))
  assert single.training_splits() == ("train[:80%]", "train[80%:90%]", "train[90%:]")
  assert single.training_splits(validation=False) == ("train[:90%]", None, "train[90%:]")
  assert single.training_splits(holdout_fraction=0.25) == (
      "train[:50%]", "train[50%:75%]", "train[75%:]")
  assert single.training_splits(0.125, validation=False) == ("train[:87.5%]", None,
                                                               "train[87.5%:]")
  train, validation, test = single.training_splits(0.2)
  assert [single.num_examples(s) for s in (train, validation, test)] == [150, 50, 50]
  # Disjoint slices that cover the split.
  images = [pixels(single, s)[:, 0, 0, 0] for s in (train, validation, test)]
  assert sorted(np.concatenate(images).tolist()) == sorted(pixels(single, "train")[:, 0, 0, 0])
  for bad in (0, 1, 0.5, 1.5, -0.1, "0.1", True):
    with pytest.raises(ValueError, match="holdout_fraction"):
      single.training_splits(bad)


def test_a_plain_folder_trains_on_held_out_slices(tmp_path):
  for i in range(10):
    save_image(tmp_path / f"{i}.png", random_uint8((3, 3), seed=i))
  source = data.get_source(tmp_path)
  assert source.splits == ("train",)
  train, validation, test = source.training_splits()
  x, _ = collect(data.load_images(source, train, batch_size=8, seed=0))
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
    np.savez(source, **{key: random_uint8((3, 4, 4))})
  else:
    source = tmp_path / "folder"
    folder = source / "train" if layout == "folder_train" else source
    save_image(folder / "a.png", random_uint8((4, 4)))
  with pytest.raises(ValueError, match=message) as info:
    data.num_examples(source, "test")
  assert "\n" not in str(info.value)


def test_a_split_must_be_a_string():
  with pytest.raises(TypeError, match="split must be a string"):
    data.load_images("digits", 0)
  with pytest.raises(TypeError, match="split must be a string"):
    data.get_source("digits").num_examples(["train"])
