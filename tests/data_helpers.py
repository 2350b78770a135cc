"""Images, files and readers shared by the tests of `tfp_realnvp.data` (tests/data)."""

import numpy as np
from PIL import Image

from tfp_realnvp import data


def collect(ds):
  """All batches of a finite dataset, concatenated: images, and labels if present."""
  images, labels = [], []
  for element in ds:
    if isinstance(element, tuple):
      images.append(element[0].numpy())
      labels.append(element[1].numpy())
    else:
      images.append(element.numpy())
  return np.concatenate(images), (np.concatenate(labels) if labels else None)


def pixels(source, split="train", **kwargs):
  """The exact integer pixels of a source, in file order (no shuffling, no noise)."""
  images, _ = collect(data.load_images(source, split, batch_size=512, shuffle=False,
                                       dequantize=False, **kwargs))
  return np.round(images * 256).astype(np.int64)


def random_uint8(shape, seed=0):
  return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def save_image(path, array):
  """Writes a uint8 array as an image file (format from the suffix), creating the folders."""
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(array).save(path)


def indexed_npz(path, num=250, **extra):
  """An `.npz` whose image i is filled with the value i, sorted by class.

  Image i has all pixels `i` (so that an image says which one it is) and label `i >= num / 2`:
  the file is sorted by class, as files often are.
  """
  images = np.repeat(np.arange(num, dtype=np.uint8)[:, None, None], 2, axis=1).repeat(3, axis=2)
  labels = (np.arange(num) >= num // 2).astype(np.int64)
  np.savez(path, x=images, y=labels, **extra)
  return path


def slice_images(source, split):
  """The indices (pixel values) of the images of a split of an `indexed_npz`, and labels."""
  images, labels = collect(data.load_images(source, split, batch_size=512, shuffle=False,
                                            dequantize=False, with_labels=True))
  return np.round(images[:, 0, 0, 0] * 256).astype(np.int64), labels
