"""Image pipelines for training flows: 8-bit images in, dequantized float32 batches out.

`load_images` turns a source of 8-bit images into a batched, prefetched `tf.data.Dataset` of
float32 images `[batch, H, W, C]` (channels last) with values in `[0, 1)`. The sources are:

* `"digits"`: the embedded default, scikit-learn's bundled handwritten digits (1797 images of
  8x8 pixels), usable without any network or download.
* a path to an `.npz` file of uint8 images.
* a path to a folder of PNG / JPEG / BMP files (optionally one sub-folder per class).
* a TensorFlow Datasets name: `"mnist"`, `"fashion_mnist"`, `"cifar10"`, `"celeb_a"`,
  `"downsampled_imagenet/32x32"`, `"downsampled_imagenet/64x64"`. These are read from a prepared
  TFDS `data_dir` and are never downloaded unless `download=True` is passed.

#### Dequantization and bits per dimension

The pixels are integers `k` in `0..255`, so they have a probability mass function, not a
density; a continuous flow fitted to them directly can put arbitrarily high density on the 256
values and its likelihood means nothing. Following Real NVP (and Theis et al., 2016), every pixel
is dequantized with uniform noise,

```none
x = (k + u) / 256,   u ~ U[0, 1)   (independently per pixel and per draw),
```

so that `x` lives in `[0, 1)^D`. For any density `p` of `x`, Jensen's inequality gives

```none
-log P(k) <= E_u[-log p((k + u) / 256)] + D log 256,
```

i.e. the negative log-likelihood of the continuous `x` plus `D ln 256` (the log-volume of one
`1/256`-wide bin per dimension) is an upper bound on the negative log-likelihood of the discrete
8-bit data. That bound, in bits per dimension, is the number reported in the papers:

```none
bpd = (NLL_x + D ln 256) / (D ln 2),   NLL_x = -log p(x) in nats, D = H * W * C.
```

With `dequantize=False` the pipeline returns `k / 256` instead (no noise), which is useful for
deterministic evaluation and debugging.
"""

import os
import pathlib
import zipfile

import numpy as np
import tensorflow as tf

from tfp_realnvp import _validation

__all__ = ["dequantize", "image_shape", "load_images", "num_examples"]

# The embedded default: scikit-learn's digits, split once and for all with a fixed permutation.
DIGITS = "digits"
_DIGITS_SEED = 0
_DIGITS_NUM_TEST = 297

# TensorFlow Datasets names that this module knows how to turn into 8-bit images, with the
# shape of the images that `load_images` returns for them.
_TFDS_SHAPES = {
    "mnist": (28, 28, 1),
    "fashion_mnist": (28, 28, 1),
    "cifar10": (32, 32, 3),
    "celeb_a": (64, 64, 3),
    "downsampled_imagenet/32x32": (32, 32, 3),
    "downsampled_imagenet/64x64": (64, 64, 3),
}
# Data sets without class labels in TFDS.
_TFDS_UNLABELLED = ("celeb_a", "downsampled_imagenet/32x32", "downsampled_imagenet/64x64")

# CelebA preprocessing of Real NVP (after Larsen et al., 2016): central 148x148 crop of the
# 218x178 aligned faces, resized to 64x64.
_CELEB_A_CROP = 148
_CELEB_A_SIZE = 64

_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
# Pillow modes converted to 8-bit grayscale ("L"), RGB or RGBA before use.
_PIL_CONVERSIONS = {"1": "L", "P": "RGB", "PA": "RGBA", "LA": "RGBA", "CMYK": "RGB",
                    "YCbCr": "RGB"}
_NPZ_IMAGE_KEYS = ("x_train", "x_test", "x", "images")
_NPZ_LABEL_KEYS = {"x_train": "y_train", "x_test": "y_test", "x": "y", "images": "labels"}

# Largest noise used by `dequantize`: `k + u` must stay below `k + 1` after float32 rounding for
# every k in 0..255 (the spacing of float32 numbers in [128, 256) is 2**-16).
_MAX_NOISE = 1.0 - 2.0**-15


def _accepted_sources():
  names = ", ".join(repr(name) for name in _TFDS_SHAPES)
  return (f"accepted sources are the embedded default 'digits', a path to an existing .npz file "
          f"or folder of PNG/JPEG/BMP images, or one of the TensorFlow Datasets names {names}")


def dequantize(pixels, seed=None):
  """Dequantizes 8-bit pixels: `k -> (k + u) / 256` with `u ~ U[0, 1)`, as float32.

  Adding uniform noise inside each of the 256 bins turns the discrete pixels into a continuous
  `x` in `[0, 1)`, whose density a flow can model. The negative log-density of `x` plus
  `D ln 256` (`D` = number of pixel values per image) is an upper bound on the negative
  log-likelihood of the 8-bit data, which is how bits/dim are reported:
  `bpd = (NLL_x + D ln 256) / (D ln 2)`. Each `x` stays inside the bin of its pixel:
  `floor(256 * x) == k` exactly (the noise is capped just below 1 so that float32 rounding
  cannot reach the next bin).

  Args:
    pixels: integer tensor or array (uint8, int32, ...) of pixel values in `0..255`, any shape.
    seed: optional seed. An int or a shape `[2]` integer tensor makes the noise stateless and
      deterministic (`tf.random.stateless_uniform`); `None` draws fresh noise on every call.

  Returns:
    A float32 tensor of the shape of `pixels`, with values in `[0, 1)`.

  Raises:
    TypeError: if `pixels` is not of an integer dtype.
  """
  pixels = tf.convert_to_tensor(pixels)
  if not pixels.dtype.is_integer:
    raise TypeError(
        f"dequantize expects integer pixels in 0..255 (e.g. uint8), got dtype {pixels.dtype.name}."
        " Float images that are already in [0, 1) should not be dequantized again.")
  k = tf.cast(pixels, tf.float32)
  if seed is None:
    u = tf.random.uniform(tf.shape(k), dtype=tf.float32)
  else:
    if isinstance(seed, (int, np.integer)):
      seed = [int(seed), 0]
    u = tf.random.stateless_uniform(tf.shape(k), seed=seed, dtype=tf.float32)
  u = tf.minimum(u, _MAX_NOISE)
  return (k + u) / 256.0


_dequantize = dequantize  # `load_images` has an argument of the same name.


# ------------------------------------------------------------------------------------------------
# Sources held in memory as numpy uint8 arrays.


def _digits(split):
  """The scikit-learn digits as uint8 `(N, 8, 8, 1)` images and int32 labels."""
  from sklearn import datasets  # pylint: disable=g-import-not-at-top

  digits = datasets.load_digits()
  # Values 0..16 -> 0..255.
  images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., np.newaxis]
  labels = digits.target.astype(np.int32)
  order = np.random.default_rng(_DIGITS_SEED).permutation(len(images))
  if split == "train":
    index = order[:-_DIGITS_NUM_TEST]
  elif split == "test":
    index = order[-_DIGITS_NUM_TEST:]
  else:
    raise ValueError(f"The 'digits' source has splits 'train' (1500 images) and 'test' (297 "
                     f"images), got split {split!r}.")
  return images[index], labels[index]


def _check_pixels(array, where):
  """Returns `array` as uint8 `(N, H, W, C)`, or raises a `ValueError` naming the problem."""
  if array.dtype != np.uint8:
    if not np.issubdtype(array.dtype, np.integer):
      raise ValueError(
          f"{where}: images must be 8-bit integers (uint8, values 0..255), got dtype "
          f"{array.dtype}. Convert them first, e.g. np.round(x * 255).astype(np.uint8) for "
          "floats in [0, 1].")
    if array.size:
      low, high = int(array.min()), int(array.max())
      if low < 0 or high > 255:
        raise ValueError(f"{where}: pixel values must be in 0..255, found values in "
                         f"{low}..{high} (dtype {array.dtype}).")
    array = array.astype(np.uint8)
  if array.ndim == 3:
    array = array[..., np.newaxis]
  if array.ndim != 4:
    raise ValueError(f"{where}: images must have shape (N, H, W) or (N, H, W, C), got shape "
                     f"{array.shape}.")
  return array


def _check_labels(labels, num_images, where):
  labels = np.asarray(labels)
  if labels.ndim != 1 or len(labels) != num_images:
    raise ValueError(f"{where}: labels must have shape ({num_images},) to match the images, got "
                     f"shape {labels.shape}.")
  if not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f"{where}: labels must be integers, got dtype {labels.dtype}.")
  return labels.astype(np.int32)


def _npz_image_key(keys, split, path):
  """The key of the image array of `split` in an `.npz` file with the given keys."""
  if "x_train" in keys or "x_test" in keys:
    key = f"x_{split}"
    if key not in keys:
      available = [k[2:] for k in ("x_train", "x_test") if k in keys]
      raise ValueError(f"{path}: no split {split!r} (no array {key!r}); its splits are "
                       f"{available}.")
    return key
  for key in ("x", "images"):
    if key in keys:
      if split != "train":
        raise ValueError(
            f"{path}: holds a single image array {key!r}, which is split 'train'; there is no "
            f"split {split!r} (store x_train / x_test to have both).")
      return key
  raise ValueError(f"{path}: found arrays {sorted(keys)} but no images; store the images under "
                   f"'x_train' / 'x_test', or under a single key 'x' or 'images'.")


def _npz(path, split, with_labels):
  with np.load(path, allow_pickle=False) as npz:
    keys = set(npz.files)
    key = _npz_image_key(keys, split, path)
    images = _check_pixels(npz[key], f"{path}[{key!r}]")
    labels = None
    if with_labels:
      label_key = _NPZ_LABEL_KEYS[key]
      if label_key not in keys:
        raise ValueError(f"{path}: with_labels=True but there is no label array {label_key!r} "
                         f"for the images {key!r} (arrays: {sorted(keys)}).")
      labels = _check_labels(npz[label_key], len(images), f"{path}[{label_key!r}]")
  return images, labels


def _npz_header(path, split):
  """`(shape, dtype)` of the image array of `split` in an `.npz`, read without loading it."""
  with zipfile.ZipFile(path) as archive:
    names = {name[:-4]: name for name in archive.namelist() if name.endswith(".npy")}
    key = _npz_image_key(set(names), split, path)
    with archive.open(names[key]) as f:
      version = np.lib.format.read_magic(f)
      if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
      else:
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
  return shape, dtype


def _image_files(folder):
  return sorted(p for p in folder.iterdir()
                if p.is_file() and p.suffix.lower() in _IMAGE_EXTENSIONS)


def _folder_split_dir(root, split):
  """The folder holding `split`: `root/<split>` when `root` has train/test folders, else root."""
  has_splits = any((root / name).is_dir() for name in ("train", "test"))
  if has_splits:
    folder = root / split
    if not folder.is_dir():
      present = [name for name in ("train", "test") if (root / name).is_dir()]
      raise ValueError(f"{root}: has split folders {present} but no folder {split!r}.")
    return folder
  if split != "train":
    raise ValueError(f"{root}: a folder of images without 'train' / 'test' sub-folders is the "
                     f"single split 'train'; got split {split!r}.")
  return root


def _folder_listing(root, split):
  """`(files, labels)` of a folder of images, in a fixed (sorted) order.

  The label of an image in a class sub-folder is the index of that folder among the sorted
  sub-folders that hold images (hidden folders, e.g. `.ipynb_checkpoints`, are ignored); images
  directly in the folder have the label `None`.
  """
  folder = _folder_split_dir(root, split)
  files = _image_files(folder)
  labels = [None] * len(files)
  subfolders = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
  class_files = [members for members in map(_image_files, subfolders) if members]
  for index, members in enumerate(class_files):
    files += members
    labels += [index] * len(members)
  if not files:
    raise ValueError(f"{folder}: no image files ({', '.join(_IMAGE_EXTENSIONS)}) in it or in its "
                     "sub-folders.")
  return files, labels


def _read_image(path):
  """One image file as a uint8 `(H, W, C)` array."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  with Image.open(path) as image:
    if image.mode in _PIL_CONVERSIONS:
      image = image.convert(_PIL_CONVERSIONS[image.mode])
    if image.mode not in ("L", "RGB", "RGBA"):
      raise ValueError(f"{path}: unsupported image mode {image.mode!r}; only 8-bit grayscale, "
                       "RGB, RGBA or palette images can be used.")
    array = np.asarray(image, dtype=np.uint8)
  if array.ndim == 2:
    array = array[..., np.newaxis]
  return array


def _folder(root, split, with_labels):
  files, labels = _folder_listing(root, split)
  if with_labels and any(label is None for label in labels):
    loose = files[labels.index(None)]
    raise ValueError(
        f"{root}: with_labels=True needs every image inside a class sub-folder, but {loose} is "
        "not in one.")
  first = _read_image(files[0])
  images = np.empty((len(files),) + first.shape, np.uint8)
  images[0] = first
  for i, path in enumerate(files[1:], start=1):
    array = _read_image(path)
    if array.shape != first.shape:
      raise ValueError(
          f"{path}: image of size (H, W, C) = {array.shape} differs from {first.shape} of "
          f"{files[0]}; all images of a folder must have the same size and channels.")
    images[i] = array
  return images, (np.asarray(labels, np.int32) if with_labels else None)


# ------------------------------------------------------------------------------------------------
# TensorFlow Datasets.


def _not_prepared_message(name, builder, data_dir):
  data_dir_arg = "" if data_dir is None else f", data_dir={os.fspath(data_dir)!r}"
  return (
      f"The TensorFlow Datasets data set {name!r} is not prepared in {builder.data_dir_root} "
      f"(looked for {builder.data_dir}), and load_images never downloads unless told to. "
      "Prepare it once, on a machine with network access, with\n"
      f"  python -c \"import tensorflow_datasets as tfds; tfds.builder({name!r}{data_dir_arg})"
      ".download_and_prepare()\"\n"
      "(then copy the data_dir here if needed), or pass download=True to load_images "
      "(--download on the tfp-realnvp command line).")


def _tfds_builder(name, data_dir, download):
  """A TFDS builder for `name` whose data are prepared (or raises `FileNotFoundError`)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  # Building a DatasetBuilder only reads local files (TFDS 4.9 has GCS access disabled by
  # default); `is_prepared` checks for dataset_info.json in <data_dir>/<name>/<version>.
  builder = tfds.builder(name, data_dir=None if data_dir is None else os.fspath(data_dir))
  if not builder.is_prepared():
    if not download:
      raise FileNotFoundError(_not_prepared_message(name, builder, data_dir))
    builder.download_and_prepare()
  return builder


def _tfds_split(name, split):
  if name.startswith("downsampled_imagenet") and split == "test":
    return "validation"  # Downsampled ImageNet has no test split; its validation set is used.
  return split


def _tfds(name, split, with_labels, data_dir, download, shuffle, seed):
  """A dataset of uint8 `[H, W, C]` images (and int32 labels) from TFDS, unbatched."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  if with_labels and name in _TFDS_UNLABELLED:
    raise ValueError(f"The TFDS data set {name!r} has no class labels; use with_labels=False.")
  builder = _tfds_builder(name, data_dir, download)
  split = _tfds_split(name, split)
  known_splits = list(builder.info.splits)
  if known_splits and split not in known_splits:
    raise ValueError(f"The TFDS data set {name!r} has splits {sorted(known_splits)}, not "
                     f"{split!r}.")
  read_config = tfds.ReadConfig(shuffle_seed=seed)
  ds = builder.as_dataset(split=split, shuffle_files=shuffle, read_config=read_config)
  shape = _TFDS_SHAPES[name]

  def to_pixels(example):
    image = example["image"]
    if name == "celeb_a":
      image = _celeb_a_preprocess(image)
    image = tf.ensure_shape(image, shape)
    if with_labels:
      return image, tf.cast(example["label"], tf.int32)
    return image

  return ds.map(to_pixels, num_parallel_calls=tf.data.AUTOTUNE)


def _celeb_a_preprocess(image):
  """Central 148x148 crop of a CelebA face, resized to 64x64, kept as uint8 pixels."""
  height, width = tf.shape(image)[0], tf.shape(image)[1]
  top = (height - _CELEB_A_CROP) // 2
  left = (width - _CELEB_A_CROP) // 2
  image = tf.image.crop_to_bounding_box(image, top, left, _CELEB_A_CROP, _CELEB_A_CROP)
  image = tf.image.resize(image, [_CELEB_A_SIZE, _CELEB_A_SIZE], method="bilinear",
                          antialias=True)
  return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


# ------------------------------------------------------------------------------------------------
# Source resolution and public functions.


def _resolve(source):
  """Classifies `source` as `("digits" | "tfds" | "npz" | "folder", value)`."""
  if isinstance(source, str) and source == DIGITS:
    return "digits", source
  if isinstance(source, str) and source in _TFDS_SHAPES:
    return "tfds", source
  if not isinstance(source, (str, os.PathLike)):
    raise TypeError(f"source must be a string or a path, got {type(source).__name__}; "
                    f"{_accepted_sources()}.")
  path = pathlib.Path(source).expanduser()
  if path.is_dir():
    return "folder", path
  if path.is_file():
    if path.suffix.lower() != ".npz":
      raise ValueError(f"{path}: unsupported file type {path.suffix!r}; only .npz files of "
                       f"images can be read ({_accepted_sources()}).")
    return "npz", path
  if isinstance(source, os.PathLike) or path.suffix.lower() == ".npz":
    raise FileNotFoundError(f"{path}: no such file or folder.")
  raise ValueError(f"Unknown image source {source!r}: it is not a file, a folder or a known "
                   f"name; {_accepted_sources()}.")


def image_shape(source, data_dir=None):
  """Returns the `(H, W, C)` of the images of a source, without building a pipeline.

  Args:
    source: as for `load_images`.
    data_dir: TFDS data directory (unused for other sources; TFDS names have fixed shapes).

  Returns:
    A tuple of three ints. For a folder, the shape of its first image (in sorted order); for an
    `.npz` file, read from the header of its training images (without loading them).

  Raises:
    ValueError: for an unknown source or an unusable file.
  """
  del data_dir  # The TFDS shapes are known in advance.
  kind, value = _resolve(source)
  if kind == "digits":
    return (8, 8, 1)
  if kind == "tfds":
    return _TFDS_SHAPES[value]
  if kind == "npz":
    with zipfile.ZipFile(value) as archive:
      keys = {name[:-4] for name in archive.namelist() if name.endswith(".npy")}
    split = "test" if ("x_test" in keys and "x_train" not in keys) else "train"
    shape, _ = _npz_header(value, split)
    if len(shape) not in (3, 4):
      raise ValueError(f"{value}: images must have shape (N, H, W) or (N, H, W, C), got shape "
                       f"{shape}.")
    return tuple(int(d) for d in shape[1:]) + ((1,) if len(shape) == 3 else ())
  split = "train" if (value / "train").is_dir() or not (value / "test").is_dir() else "test"
  files, _ = _folder_listing(value, split)
  return tuple(int(d) for d in _read_image(files[0]).shape)


def num_examples(source, split="train", data_dir=None):
  """Returns the number of images of a split of a source, without loading the images.

  Args:
    source: as for `load_images`.
    split: as for `load_images`.
    data_dir: TFDS data directory.

  Returns:
    An int.

  Raises:
    ValueError: for an unknown source or split.
    FileNotFoundError: for a TFDS data set that is not prepared in `data_dir`.
  """
  kind, value = _resolve(source)
  if kind == "digits":
    return len(_digits(split)[0])
  if kind == "npz":
    shape, _ = _npz_header(value, split)
    return int(shape[0])
  if kind == "folder":
    return len(_folder_listing(value, split)[0])
  builder = _tfds_builder(value, data_dir, download=False)
  tfds_split = _tfds_split(value, split)
  if tfds_split not in builder.info.splits:
    raise ValueError(f"The TFDS data set {value!r} has splits {sorted(builder.info.splits)}, "
                     f"not {split!r}.")
  return int(builder.info.splits[tfds_split].num_examples)


def load_images(source, split="train", batch_size=64, shuffle=True, with_labels=False,
                data_dir=None, download=False, seed=None, dequantize=True, repeat=False,
                drop_remainder=False, shuffle_buffer=10000):
  """Returns a batched, shuffled (if asked), prefetched tf.data.Dataset of images in [0, 1).

  The 8-bit pixels stay uint8 through shuffling and batching; each batch is then turned into
  float32 in a parallel `map`: `(k + u) / 256` with uniform noise `u` when `dequantize` is true
  (see the module docstring for why, and for bits/dim), else `k / 256`. Then the dataset is
  prefetched.

  Sources:

  * `"digits"`: scikit-learn's handwritten digits, 8x8x1, pixels `round(v * 255 / 16)`. A fixed
    permutation puts 1500 images in split `"train"` and 297 in `"test"`. No network needed.
  * a path to an `.npz` file: uint8 images `(N, H, W)` or `(N, H, W, C)` under `x_train` /
    `x_test` (chosen by `split`), or a single array `x` or `images` (split `"train"` only).
    Labels, if asked, come from `y_train` / `y_test` / `y` / `labels` respectively. Integer
    arrays of another dtype are accepted when all values lie in 0..255.
  * a path to a folder of PNG / JPEG / BMP images of one size. If the folder has sub-folders
    named `train` and/or `test`, these are the splits; otherwise the folder is split `"train"`.
    Inside a split, images may sit directly in it or in class sub-folders, whose sorted names
    give the labels `0..K-1` (`with_labels=True` requires every image to be in a class folder).
    Grayscale images give one channel, RGB three, RGBA four; palette images are converted to RGB.
    All images are decoded into memory.
  * a TensorFlow Datasets name: `"mnist"`, `"fashion_mnist"`, `"cifar10"`, `"celeb_a"` (central
    148x148 crop resized to 64x64, as in Real NVP; no labels), `"downsampled_imagenet/32x32"`,
    `"downsampled_imagenet/64x64"` (no labels; its split `"test"` is TFDS's `"validation"`).
    The data set must already be prepared in `data_dir` unless `download=True`.

  Exact names win over paths: to read a folder called `digits` or `mnist`, pass `"./digits"` or
  a `pathlib.Path`.

  Args:
    source: one of the sources above (a string or a path).
    split: `"train"` or `"test"` (TFDS names also accept their own split names, e.g.
      `"validation"` or `"train[:10%]"`).
    batch_size: number of images per batch.
    shuffle: whether to shuffle the examples (with a buffer of `shuffle_buffer` examples,
      reshuffled at each iteration over the dataset; TFDS files are shuffled too).
    with_labels: if true, elements are `(images, labels)` with int32 labels `[batch]`.
    data_dir: TensorFlow Datasets data directory (default: TFDS's, `$TFDS_DATA_DIR` or
      `~/tensorflow_datasets`). Ignored for the other sources.
    download: allow TensorFlow Datasets to download and prepare a missing data set.
    seed: optional int; makes shuffling and dequantization noise reproducible, whatever
      TensorFlow's global seed: two pipelines built with the same seed yield the same batches.
      Successive iterations over a shuffled pipeline still differ; an unshuffled one yields
      the same images at every pass (as a fixed test set should).
    dequantize: add uniform noise (`(k + u) / 256`) if true; return `k / 256` if false.
    repeat: repeat the data indefinitely (shuffling differently at each pass).
    drop_remainder: drop the last batch if it is smaller than `batch_size`.
    shuffle_buffer: size of the shuffle buffer, in examples.

  Returns:
    A `tf.data.Dataset` of float32 `[batch, H, W, C]` tensors with values in `[0, 1)`, or of
    `(images, labels)` pairs when `with_labels` is true.

  Raises:
    ValueError: for an unknown source (the message lists the accepted ones), an unknown split,
      bad arguments, a file with non-8-bit images or without the expected arrays, or images of
      different sizes in a folder (naming the first file that differs).
    FileNotFoundError: for a TFDS data set that is not prepared in `data_dir` when `download`
      is false (the message says how to prepare it), or a missing `.npz` path.
  """
  batch_size = _validation.positive_int(batch_size, "batch_size")
  shuffle_buffer = _validation.positive_int(shuffle_buffer, "shuffle_buffer")
  if not isinstance(split, str):
    raise ValueError(f"split must be a string such as 'train' or 'test', got {split!r}.")

  kind, value = _resolve(source)
  if kind == "tfds":
    ds = _tfds(value, split, with_labels, data_dir, download, shuffle, seed)
  else:
    if kind == "digits":
      images, labels = _digits(split)
    elif kind == "npz":
      images, labels = _npz(value, split, with_labels)
    else:
      images, labels = _folder(value, split, with_labels)
    if with_labels:
      ds = tf.data.Dataset.from_tensor_slices((images, labels))
    else:
      ds = tf.data.Dataset.from_tensor_slices(images)

  if shuffle:
    ds = ds.shuffle(int(shuffle_buffer), seed=seed, reshuffle_each_iteration=True)
  if repeat:
    ds = ds.repeat()
  ds = ds.batch(int(batch_size), drop_remainder=drop_remainder)

  # One stateless seed pair per batch. With a seed, `[seed, batch index]`: the same for two
  # pipelines built with the same seed whatever TensorFlow's global seed (a seeded random
  # stream would mix that in), new for every batch of a repeated dataset. Without one, fresh
  # random pairs on every pass.
  if seed is None:
    noise_seeds = tf.data.Dataset.random(rerandomize_each_iteration=True).batch(2)
  else:
    noise_seeds = tf.data.Dataset.counter().map(
        lambda index: tf.stack([tf.constant(int(seed), tf.int64), index]))
  use_noise = dequantize

  def to_float(element, noise_seed):
    if with_labels:
      pixels, batch_labels = element
    else:
      pixels = element
    if use_noise:
      images = _dequantize(pixels, seed=noise_seed)
    else:
      images = tf.cast(pixels, tf.float32) / 256.0
    return (images, batch_labels) if with_labels else images

  ds = tf.data.Dataset.zip((ds, noise_seeds))
  ds = ds.map(to_float, num_parallel_calls=tf.data.AUTOTUNE)
  return ds.prefetch(tf.data.AUTOTUNE)
