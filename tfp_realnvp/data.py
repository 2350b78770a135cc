"""Image pipelines for training flows: 8-bit images in, dequantized float32 batches out.

`load_images` turns a source of 8-bit images into a batched, prefetched `tf.data.Dataset` of
float32 images `[batch, H, W, C]` (channels last) with values in `[0, 1)`. Each kind of source is
one subclass of `ImageSource`, and `get_source` picks it:

* `"digits"` (`DigitsSource`): the embedded default, scikit-learn's bundled handwritten digits
  (1797 images of 8x8 pixels), usable without any network or download.
* a path to an `.npz` file of uint8 images (`NpzSource`).
* a path to a folder of PNG / JPEG / BMP files, optionally one sub-folder per class
  (`FolderSource`).
* a TensorFlow Datasets name (`TfdsSource`): `"mnist"`, `"fashion_mnist"`, `"cifar10"`,
  `"celeb_a"`, `"downsampled_imagenet/32x32"`, `"downsampled_imagenet/64x64"`. These are read
  from a prepared TFDS `data_dir` and are never downloaded unless `download=True` is passed.

A source knows, from the moment it is built, its display `name`, its image `shape`
`(H, W, C)`, the `splits` it really has, `num_examples(split)`, whether it `has_labels`, and a
`run_name` (a folder name for training runs). Bad files are rejected when the source is built,
before any training, with a one-line `ValueError` naming the file and the problem: an `.npz`
that is not an `.npz`, a file, folder or split without images, splits whose images differ in
shape, pixels that are not 8-bit integers, arrays of the wrong rank. An `.npz` is checked from
the headers of its arrays, without loading them (except an integer array of a dtype other
than uint8, which is read once to check that its values lie in `0..255`).

#### Splits and held-out slices

The splits are `"train"` and `"test"` when the source has both (TFDS sets may have more, e.g.
`"validation"`). A folder without `train/` / `test/` sub-folders, or an `.npz` holding only
`x` / `images` or only `x_train`, has the single split `"train"`. An `.npz` holding only
`x_test` has the single split `"test"`: it can be evaluated on but not trained on.

Every source accepts TFDS-style slices of a split: `"train[:90%]"`, `"train[90%:]"`,
`"test[:100]"` (percentages or absolute indices; negative values count from the end). TFDS
data sets slice as TFDS does. The sources held in memory (digits, `.npz`, folders) slice over a
fixed pseudo-random permutation of the split (NumPy's `default_rng(0)`, the same for every
source of a given size), so that a file sorted by class still gives a representative hold-out;
a percentage boundary `p%` of a split of `n` images is index `round(p * n / 100)` of that
permutation (rounded as TFDS does), so `"train[:p%]"` and `"train[p%:]"` are disjoint and
together hold the whole split. The images of a slice keep their order in the file or folder; a
slice without images is an error when it is read.

`ImageSource.training_splits()` returns the splits a training run uses, `(train, validation,
test)`, each slice holding out `HOLDOUT_FRACTION` (10 %) of the training images: with a test
split, `("train[:90%]", "train[90%:]", "test")`; without one, `("train[:80%]",
"train[80%:90%]", "train[90%:]")`. The validation images (which pick a run's best epoch) are
never the test images, so the test figure of a run is not chosen on its own data.

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
import re
import zipfile

import numpy as np
import tensorflow as tf

from tfp_realnvp import errors
from tfp_realnvp import _validation

__all__ = ["DIGITS", "HOLDOUT_FRACTION", "DigitsSource", "FolderSource", "ImageSource",
           "NpzSource", "TfdsSource", "dequantize", "get_source", "image_shape", "load_images",
           "num_examples", "run_name"]

# The name of the embedded default source.
DIGITS = "digits"
# The fraction of the training images that `ImageSource.training_splits` holds out for
# validation, and again for testing when a source has no test split.
HOLDOUT_FRACTION = 0.1

# The digits are split once and for all with a fixed permutation.
_DIGITS_SEED = 0
_DIGITS_NUM_TEST = 297
_DIGITS_NUM_TRAIN = 1797 - _DIGITS_NUM_TEST

# Seed of the permutation over which the in-memory sources take slices such as "train[90%:]".
_SLICE_SEED = 0

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
# Splits of the TFDS data sets, when they are not ("train", "test"). Downsampled ImageNet has no
# test split: its split "test" is TFDS's "validation".
_TFDS_SPLITS = {
    "celeb_a": ("train", "test", "validation"),
    "downsampled_imagenet/32x32": ("train", "test", "validation"),
    "downsampled_imagenet/64x64": ("train", "test", "validation"),
}
# Data sets without class labels in TFDS.
_TFDS_UNLABELLED = ("celeb_a", "downsampled_imagenet/32x32", "downsampled_imagenet/64x64")

# CelebA preprocessing of Real NVP (after Larsen et al., 2016): central 148x148 crop of the
# 218x178 aligned faces, resized to 64x64.
_CELEB_A_CROP = 148
_CELEB_A_SIZE = 64

_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
# Pillow modes converted to 8-bit grayscale ("L"), RGB or RGBA before use, and the channels of
# the modes used.
_PIL_CONVERSIONS = {"1": "L", "P": "RGB", "PA": "RGBA", "LA": "RGBA", "CMYK": "RGB",
                    "YCbCr": "RGB"}
_PIL_CHANNELS = {"L": 1, "RGB": 3, "RGBA": 4}
_NPZ_LABEL_KEYS = {"x_train": "y_train", "x_test": "y_test", "x": "y", "images": "labels"}

# Largest noise used by `dequantize`: `k + u` must stay below `k + 1` after float32 rounding for
# every k in 0..255 (the spacing of float32 numbers in [128, 256) is 2**-16).
_MAX_NOISE = 1.0 - 2.0**-15


# ------------------------------------------------------------------------------------------------
# Dequantization.


def dequantize(pixels, seed=None):
  """Dequantizes 8-bit pixels: `k -> (k + u) / 256` with `u ~ U[0, 1)`, as float32.

  Adding uniform noise inside each of the 256 bins turns the discrete pixels into a continuous
  `x` in `[0, 1)`, whose density a flow can model. The negative log-density of `x` plus
  `D ln 256` (`D` = number of pixel values per image) is an upper bound on the negative
  log-likelihood of the 8-bit data, which is how bits/dim are reported:
  `bpd = (NLL_x + D ln 256) / (D ln 2)`. Each `x` stays inside the bin of its pixel:
  `floor(256 * x) == k` exactly (the noise is capped just below 1 so that float32 rounding
  cannot reach the next bin).

  Pixels outside `0..255` are rejected: with a `ValueError` when their values are known when
  `dequantize` is called (NumPy arrays, Python lists, eager or constant tensors), else by a
  `tf.debugging` assertion that fails when the graph runs. uint8 pixels are never checked
  (they cannot be out of range), so the uint8 pipeline of `load_images` pays nothing.

  Args:
    pixels: integer tensor or array (uint8, int32, ...) of pixel values in `0..255`, any shape.
    seed: optional seed. An int or a shape `[2]` integer tensor makes the noise stateless and
      deterministic (`tf.random.stateless_uniform`); `None` draws fresh noise on every call.

  Returns:
    A float32 tensor of the shape of `pixels`, with values in `[0, 1)`.

  Raises:
    TypeError: if `pixels` is not of an integer dtype.
    ValueError: if values of `pixels` known statically lie outside `0..255`.
    tf.errors.InvalidArgumentError: when run, if values only known at run time lie outside
      `0..255`.
  """
  pixels = tf.convert_to_tensor(pixels)
  if not pixels.dtype.is_integer:
    raise errors.InvalidTypeError(
        f"dequantize expects integer pixels in 0..255 (e.g. uint8), got dtype {pixels.dtype.name}."
        " Float images that are already in [0, 1) should not be dequantized again.")
  k = tf.cast(pixels, tf.float32)
  if pixels.dtype != tf.uint8:
    value = tf.get_static_value(pixels)
    if value is not None:
      value = np.asarray(value)
      if value.size and (value.min() < 0 or value.max() > 255):
        raise errors.InvalidValueError(f"dequantize expects pixel values in 0..255, got values in "
                                       f"{value.min()}..{value.max()} (dtype {pixels.dtype.name}).")
    else:
      message = f"dequantize expects pixel values in 0..255 (dtype {pixels.dtype.name})"
      checks = [tf.debugging.assert_greater_equal(pixels, tf.zeros([], pixels.dtype),
                                                  message=message),
                tf.debugging.assert_less_equal(pixels, tf.constant(255, pixels.dtype),
                                               message=message)]
      with tf.control_dependencies(checks):
        k = tf.identity(k)
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
# Splits and slices.


_BOUND = r"\s*(-?\d+(?:\.\d+)?%?)?\s*"
_SPLIT_PATTERN = re.compile(rf"^(\w+)(?:\[{_BOUND}:{_BOUND}\])?$")


def _holdout_splits(holdout_fraction, count):
  """Slices of split "train" that hold out `holdout_fraction` of it `count` times.

  Returns:
    `count + 1` slices, the first the rest: for 0.1 and 2, `("train[:80%]", "train[80%:90%]",
    "train[90%:]")`.
  """
  if (isinstance(holdout_fraction, bool) or not isinstance(holdout_fraction, (int, float))
      or not 0 < holdout_fraction * count < 1):
    raise errors.InvalidValueError(f"holdout_fraction must be a number between 0 and {1 / count:g} "
                                   f"(exclusive), got {holdout_fraction!r}.")
  bounds = [""] + [f"{round(100.0 * (1.0 - k * holdout_fraction), 6):g}%"
                   for k in range(count, 0, -1)] + [""]
  return tuple(f"train[{start}:{stop}]" for start, stop in zip(bounds[:-1], bounds[1:],
                                                                strict=True))


def _holdout_hint():
  *_, test = _holdout_splits(HOLDOUT_FRACTION, 1)
  return f"or train on the rest of 'train' and evaluate on the held-out slice {test!r}"


def _parse_split(split, owner):
  """`(base, start, stop)` of a split such as `"train"` or `"train[:90%]"` (bounds as text)."""
  if not isinstance(split, str):
    raise errors.InvalidValueError(
        f"split must be a string such as 'train' or 'test', got {split!r}.")
  match = _SPLIT_PATTERN.match(split.strip())
  if not match:
    raise errors.InvalidValueError(
        f"{owner}: cannot read split {split!r}; use a split name such as 'train' or "
        "'test', optionally sliced as in TFDS, e.g. 'train[:90%]' or 'train[90%:]'.")
  return match.group(1), match.group(2), match.group(3)


def _boundary(bound, size, split):
  """The index in `0..size` of one bound of a slice: `"90%"`, `"100"`, `"-10%"` or `None`."""
  if bound is None:
    return None
  if bound.endswith("%"):
    percent = float(bound[:-1])
    if abs(percent) > 100:
      raise errors.InvalidValueError(
          f"split {split!r}: percentages must lie in -100%..100%, got {bound}.")
    index = round(abs(percent) * size / 100.0)  # To the nearest, ties to even, as TFDS.
    negative = percent < 0
  else:
    if "." in bound:
      raise errors.InvalidValueError(
          f"split {split!r}: slice indices must be integers or percentages, got "
          f"{bound}.")
    index = abs(int(bound))
    negative = bound.startswith("-")
  if negative:
    index = size - index
  return min(max(index, 0), size)


def _slice_range(start, stop, size, split):
  """`(begin, end)` indices of a slice of a split of `size` images (`end >= begin`)."""
  begin = _boundary(start, size, split)
  end = _boundary(stop, size, split)
  begin = 0 if begin is None else begin
  end = size if end is None else end
  return begin, max(begin, end)


def _slice_indices(start, stop, size, split):
  """Sorted indices of a slice of a split, taken over a fixed permutation of the split."""
  begin, end = _slice_range(start, stop, size, split)
  order = np.random.default_rng(_SLICE_SEED).permutation(size)
  return np.sort(order[begin:end])


# ------------------------------------------------------------------------------------------------
# Sources.


class ImageSource:
  """A source of 8-bit images, with its splits; subclasses are the kinds of sources.

  An `ImageSource` is checked once, when it is built; then `dataset(split)` returns the unbatched
  uint8 images of a split (which `load_images` batches, shuffles and dequantizes).

  Adding a kind of source is one subclass: it sets `names` (exact names it answers to, e.g.
  `("digits",)`), `suffixes` (file suffixes it reads, e.g. `(".npz",)`) or `reads_folders`
  (and optionally a `description` for the messages that list the accepted sources), is built
  by `_create(source, data_dir, download)` (default: `cls(source)`), and implements
  `num_examples` and `dataset` (or, for images held in memory, `_split_size` and `_arrays` of
  `_InMemorySource`). `get_source` then finds it. Exact names win over paths.

  Attributes:
    name: the string that names the source in messages (a data set name or a path).
    shape: `(H, W, C)` of its images.
    splits: tuple of the names of its splits, e.g. `("train", "test")` or `("train",)`.
    has_labels: whether its images have integer class labels (`with_labels=True` is usable).
    run_name: a folder name for runs trained on it (see `run_name`).
  """

  names = ()
  suffixes = ()
  reads_folders = False
  description = None  # How `describe` lists the kind in messages, if not from the above.
  _kinds = ()  # The subclasses that `get_source` may build, in the order they are defined.

  def __init_subclass__(cls, **kwargs):
    super().__init_subclass__(**kwargs)
    if cls.names or cls.suffixes or cls.reads_folders:
      ImageSource._kinds += (cls,)

  def __init__(self, name, shape, splits, has_labels):
    self.name = str(name)
    self.shape = _validation.image_shape(shape, owner=self.name)
    self.splits = tuple(splits)
    self.has_labels = bool(has_labels)

  @classmethod
  def _create(cls, source, data_dir, download):
    """Builds the source for `source` (a name of `names` or a path); used by `get_source`."""
    del data_dir, download  # Used by TFDS only.
    return cls(source)

  @classmethod
  def describe(cls):
    """A phrase describing the sources of this kind, for messages listing the accepted ones."""
    if cls.description:
      return cls.description
    if cls.names:
      return "the names " + ", ".join(repr(name) for name in cls.names)
    if cls.suffixes:
      return f"a path to an existing {'/'.join(cls.suffixes)} file"
    return "a path to an existing folder"

  @property
  def run_name(self):
    """A folder name for runs on this source: its name with "/" replaced by "_"."""
    return self.name.replace("/", "_")

  def __repr__(self):
    return f"{type(self).__name__}({self.name!r})"

  def num_examples(self, split="train"):
    """The number of images of `split` (e.g. `"test"` or `"train[90%:]"`), without loading them.

    Raises:
      ValueError: for a split the source does not have.
    """
    raise NotImplementedError

  def dataset(self, split="train", with_labels=False, shuffle_files=False, seed=None):
    """The unbatched images of `split` as a `tf.data.Dataset` of uint8 `[H, W, C]` tensors.

    Args:
      split: a split of `splits`, optionally sliced, e.g. `"train[:90%]"`.
      with_labels: if true, elements are `(image, label)` with an int32 scalar label.
      shuffle_files: shuffle the files of a sharded source (TFDS); others ignore it.
      seed: optional int seed of that file shuffling.

    Returns:
      A `tf.data.Dataset`, in file order for the in-memory sources.

    Raises:
      ValueError: for a split the source does not have, or `with_labels` without labels.
    """
    raise NotImplementedError

  def training_splits(self, holdout_fraction=HOLDOUT_FRACTION, validation=True):
    """The splits a training run uses: `(train, validation, test)`.

    The test split is `"test"` when the source has one, else the held-out slice of the last
    `holdout_fraction` of split `"train"`. With `validation`, the same fraction of `"train"` is
    held out again, for validation (choosing the best epoch on images that the test figure does
    not use); without it the validation split is `None` and training uses the rest. The slices
    of the in-memory sources are disjoint, cover the split and are drawn at random (see the
    module docstring). With the default 10 %:

    | splits of the source | validation | returns |
    | --- | --- | --- |
    | train, test | yes | `("train[:90%]", "train[90%:]", "test")` |
    | train, test | no | `("train", None, "test")` |
    | train | yes | `("train[:80%]", "train[80%:90%]", "train[90%:]")` |
    | train | no | `("train[:90%]", None, "train[90%:]")` |

    Args:
      holdout_fraction: the fraction of split `"train"` in each held-out slice.
      validation: whether to hold out a validation slice.

    Returns:
      A tuple `(train, validation or None, test)` of split names.

    Raises:
      ValueError: for a bad `holdout_fraction`, a source without split `"train"`, or a slice
        that would hold no image.
    """
    if "train" not in self.splits:
      raise errors.InvalidValueError(
          f"{self.name}: has no split 'train' (its splits are {list(self.splits)}), "
          f"so it cannot be trained on; {self._no_train_hint()}.")
    has_test = "test" in self.splits
    count = int(validation) + int(not has_test)
    slices = _holdout_splits(holdout_fraction, count) if count else ("train",)
    for split in slices if isinstance(self, _InMemorySource) else ():
      if not self.num_examples(split):
        raise errors.InvalidValueError(
            f"{self.name}: too few images ({self.num_examples('train')}) to hold out "
            f"{holdout_fraction:g} of them {count} time(s): the slice {split!r} "
            "would be empty; add images or a test split.")
    test = "test" if has_test else slices[-1]
    return slices[0], slices[1] if validation else None, test

  def _no_train_hint(self):
    return "use a source with training images"

  def _missing_split_message(self, base):
    """A one-line message for a split `base` that the source does not have."""
    return (f"{self.name}: no split {base!r}; its splits are {list(self.splits)}"
            + (f"; {_holdout_hint()}." if base == "test" and "train" in self.splits else "."))

  def _split(self, split):
    """`(base, start, stop)` of `split`, or a `ValueError` if the source has no such split."""
    base, start, stop = _parse_split(split, self.name)
    if base not in self.splits:
      raise errors.InvalidValueError(self._missing_split_message(base))
    return base, start, stop


class _InMemorySource(ImageSource):
  """A source whose splits are read into memory as NumPy uint8 arrays.

  Subclasses implement `_split_size(base)` (cheap) and `_arrays(base, with_labels)`; slices are
  taken here, over a fixed permutation of the split (see the module docstring).
  """

  def _split_size(self, base):
    raise NotImplementedError

  def _arrays(self, base, with_labels):
    """`(images, labels)` of a split: uint8 `(N, H, W, C)` and int32 `(N,)` (or `None`)."""
    raise NotImplementedError

  def num_examples(self, split="train"):
    base, start, stop = self._split(split)
    begin, end = _slice_range(start, stop, self._split_size(base), split)
    return end - begin

  def dataset(self, split="train", with_labels=False, shuffle_files=False, seed=None):
    del shuffle_files, seed  # The images are in memory: `load_images` shuffles them.
    base, start, stop = self._split(split)
    images, labels = self._arrays(base, with_labels)
    if start is not None or stop is not None:
      index = _slice_indices(start, stop, len(images), split)
      if not len(index):  # pylint: disable=g-explicit-length-test
        raise errors.InvalidValueError(
            f"{self.name}: the slice {split!r} of the {len(images)} images of split "
            f"{base!r} holds no images.")
      images = images[index]
      labels = None if labels is None else labels[index]
    if with_labels:
      return tf.data.Dataset.from_tensor_slices((images, labels))
    return tf.data.Dataset.from_tensor_slices(images)


def _check_pixels(array, where):
  """Returns `array` as uint8 `(N, H, W, C)`, or raises a `ValueError` naming the problem."""
  _check_pixel_dtype(array.dtype, where)
  if array.dtype != np.uint8:
    _check_pixel_range(array, where)
    array = array.astype(np.uint8)
  if array.ndim == 3:
    array = array[..., np.newaxis]
  if array.ndim != 4:
    raise errors.InvalidValueError(
        f"{where}: images must have shape (N, H, W) or (N, H, W, C), got shape "
        f"{array.shape}.")
  return array


def _check_pixel_dtype(dtype, where):
  if not np.issubdtype(dtype, np.integer):
    raise errors.InvalidValueError(
        f"{where}: images must be 8-bit integers (uint8, values 0..255), got dtype {dtype}. "
        "Convert them first, e.g. np.round(x * 255).astype(np.uint8) for floats in [0, 1].")


def _check_pixel_range(array, where):
  if array.size:
    low, high = int(array.min()), int(array.max())
    if low < 0 or high > 255:
      raise errors.InvalidValueError(f"{where}: pixel values must be in 0..255, found values in "
                                     f"{low}..{high} (dtype {array.dtype}).")


def _check_labels(labels, num_images, where):
  labels = np.asarray(labels)
  if labels.ndim != 1 or len(labels) != num_images:
    raise errors.InvalidValueError(
        f"{where}: labels must have shape ({num_images},) to match the images, got "
        f"shape {labels.shape}.")
  if not np.issubdtype(labels.dtype, np.integer):
    raise errors.InvalidValueError(f"{where}: labels must be integers, got dtype {labels.dtype}.")
  return labels.astype(np.int32)


class DigitsSource(_InMemorySource):
  """The embedded default `"digits"`: scikit-learn's handwritten digits, 8x8x1.

  Pixels are `round(v * 255 / 16)` of scikit-learn's values `0..16`; a fixed permutation puts
  1500 images in split `"train"` and 297 in `"test"`; labels are the digits. No network needed.
  """

  names = (DIGITS,)
  description = "the embedded default 'digits'"

  def __init__(self, name=DIGITS):
    del name  # Accepted so that `get_source` can build every kind of source alike.
    super().__init__(DIGITS, (8, 8, 1), ("train", "test"), has_labels=True)

  def _missing_split_message(self, base):
    return (f"The 'digits' source has splits 'train' ({_DIGITS_NUM_TRAIN} images) and 'test' "
            f"({_DIGITS_NUM_TEST} images), got split {base!r}.")

  def _split_size(self, base):
    return _DIGITS_NUM_TRAIN if base == "train" else _DIGITS_NUM_TEST

  def _arrays(self, base, with_labels):
    from sklearn import datasets  # pylint: disable=g-import-not-at-top

    digits = datasets.load_digits()
    # Values 0..16 -> 0..255.
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., np.newaxis]
    labels = digits.target.astype(np.int32)
    order = np.random.default_rng(_DIGITS_SEED).permutation(len(images))
    index = order[:-_DIGITS_NUM_TEST] if base == "train" else order[-_DIGITS_NUM_TEST:]
    return images[index], (labels[index] if with_labels else None)


def _npz_member_headers(path):
  """`{key: (shape, dtype)}` of every array of an `.npz` file, read without loading them."""
  headers = {}
  try:
    with zipfile.ZipFile(path) as archive:
      for member in archive.namelist():
        if not member.endswith(".npy"):
          continue
        with archive.open(member) as f:
          version = np.lib.format.read_magic(f)
          if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
          else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        headers[member[:-4]] = (tuple(int(d) for d in shape), dtype)
  except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError) as error:
    raise errors.InvalidValueError(
        f"{path}: not a readable .npz file of NumPy arrays ({type(error).__name__}: "
        f"{error}); write it with numpy.savez or numpy.savez_compressed.") from None
  return headers


class NpzSource(_InMemorySource):
  """A NumPy `.npz` file of 8-bit images `(N, H, W)` or `(N, H, W, C)`.

  The images are `x_train` and / or `x_test` (splits `"train"` and `"test"`), or else a single
  array `x` or `images` (split `"train"`). A file with only `x_test` has only split `"test"`
  (for evaluation). Labels, if any, are `y_train` / `y_test` / `y` / `labels`. Integer arrays of
  another dtype than uint8 are accepted when all values lie in `0..255`.

  Every image array is checked when the source is built, from its header: an integer dtype,
  rank 3 or 4, at least one image, the same image shape in every split (and, for dtypes other
  than uint8, values in `0..255`).
  """

  suffixes = (".npz",)

  def __init__(self, path):
    path = pathlib.Path(path).expanduser()
    headers = _npz_member_headers(path)
    if "x_train" in headers or "x_test" in headers:
      self._keys = {split: f"x_{split}" for split in ("train", "test")
                    if f"x_{split}" in headers}
    else:
      key = next((key for key in ("x", "images") if key in headers), None)
      if key is None:
        raise errors.InvalidValueError(
            f"{path}: found arrays {sorted(headers)} but no images; store the images "
            "under 'x_train' / 'x_test', or under a single key 'x' or 'images'.")
      self._keys = {"train": key}
    self._path = path
    self._sizes = {}
    shapes = {}
    for split, key in self._keys.items():
      where = f"{path}[{key!r}]"
      shape, dtype = headers[key]
      _check_pixel_dtype(dtype, where)
      if len(shape) not in (3, 4):
        raise errors.InvalidValueError(
            f"{where}: images must have shape (N, H, W) or (N, H, W, C), got shape "
            f"{shape}.")
      if shape[0] == 0:
        raise errors.InvalidValueError(f"{where}: holds no images (shape {shape}).")
      shapes[key] = _validation.image_shape(shape[1:] + (1,) * (4 - len(shape)), owner=where)
      if dtype != np.uint8:
        with np.load(path, allow_pickle=False) as npz:
          _check_pixel_range(npz[key], where)
      self._sizes[split] = shape[0]
    if len(set(shapes.values())) > 1:
      described = " but ".join(f"{key!r} has images of shape {shape}"
                               for key, shape in shapes.items())
      raise errors.InvalidValueError(
          f"{path}: {described}; all splits must hold images of one shape "
          "(H, W, C).")
    has_labels = all(_NPZ_LABEL_KEYS[key] in headers for key in self._keys.values())
    super().__init__(os.fspath(path), next(iter(shapes.values())), tuple(self._keys), has_labels)

  @property
  def run_name(self):
    """The file name without `.npz`."""
    return self._path.stem

  def _missing_split_message(self, base):
    if "x_train" in self._keys.values() or "x_test" in self._keys.values():
      available = list(self.splits)
      hint = (f"store them as 'x_{base}' in the .npz"
              + (f", {_holdout_hint()}" if base == "test" and "train" in self.splits else ""))
      return (f"{self._path}: no split {base!r} (no array 'x_{base}'); its splits are "
              f"{available}; {hint}.")
    return (f"{self._path}: holds a single image array {self._keys['train']!r}, which is split "
            f"'train'; there is no split {base!r} (store x_train / x_test to have both, "
            f"{_holdout_hint()}).")

  def _no_train_hint(self):
    return ("store the training images as 'x_train' in the .npz (or rename 'x_test' to 'x' to "
            "use them as the single split 'train')")

  def _split_size(self, base):
    return self._sizes[base]

  def _arrays(self, base, with_labels):
    key = self._keys[base]
    with np.load(self._path, allow_pickle=False) as npz:
      keys = set(npz.files)
      images = _check_pixels(npz[key], f"{self._path}[{key!r}]")
      labels = None
      if with_labels:
        label_key = _NPZ_LABEL_KEYS[key]
        if label_key not in keys:
          raise errors.InvalidValueError(
              f"{self._path}: with_labels=True but there is no label array "
              f"{label_key!r} for the images {key!r} (arrays: {sorted(keys)}).")
        labels = _check_labels(npz[label_key], len(images), f"{self._path}[{label_key!r}]")
    return images, labels


def _image_files(folder):
  return sorted(p for p in folder.iterdir()
                if p.is_file() and p.suffix.lower() in _IMAGE_EXTENSIONS)


def _class_folders(folder):
  """The sub-folders of `folder` that hold images (hidden ones ignored), sorted by name."""
  return [p for p in sorted(folder.iterdir())
          if p.is_dir() and not p.name.startswith(".") and _image_files(p)]


def _image_header_shape(path):
  """The `(H, W, C)` of an image file as `_read_image` will return it, from its header."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  try:
    with Image.open(path) as image:
      mode = _PIL_CONVERSIONS.get(image.mode, image.mode)
      width, height = image.size
  except (OSError, ValueError) as error:
    raise errors.InvalidValueError(
        f"{path}: cannot read the image ({type(error).__name__}: {error}).") from None
  if mode not in _PIL_CHANNELS:
    raise errors.InvalidValueError(
        f"{path}: unsupported image mode {mode!r}; only 8-bit grayscale, RGB, RGBA "
        "or palette images can be used.")
  return (height, width, _PIL_CHANNELS[mode])


def _read_image(path):
  """One image file as a uint8 `(H, W, C)` array."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  with Image.open(path) as image:
    if image.mode in _PIL_CONVERSIONS:
      image = image.convert(_PIL_CONVERSIONS[image.mode])
    if image.mode not in _PIL_CHANNELS:
      raise errors.InvalidValueError(
          f"{path}: unsupported image mode {image.mode!r}; only 8-bit grayscale, "
          "RGB, RGBA or palette images can be used.")
    array = np.asarray(image, dtype=np.uint8)
  if array.ndim == 2:
    array = array[..., np.newaxis]
  return array


class FolderSource(_InMemorySource):
  """A folder of PNG / JPEG / BMP images of one size, decoded into memory when read.

  If the folder has sub-folders named `train` and / or `test`, these are the splits; otherwise
  the folder is the single split `"train"`. Inside a split, images may sit directly in it or in
  class sub-folders; the labels `0..K-1` index the sorted names of the class folders of all
  splits together (so a class missing from one split does not shift the others), and
  `has_labels` requires every image to be in a class folder. Grayscale images give one channel,
  RGB three, RGBA four; palette images are converted to RGB.

  The files are listed when the source is built, and the first image of every split is checked
  (mode and size, from its header); the other images are checked when they are read.
  """

  reads_folders = True
  description = "a path to an existing folder of PNG/JPEG/BMP images"

  def __init__(self, path):
    root = pathlib.Path(path).expanduser()
    if not root.is_dir():
      raise FileNotFoundError(f"{root}: no such folder.")
    present = [name for name in ("train", "test") if (root / name).is_dir()]
    self._root = root
    self._split_folders = {name: root / name for name in present} or {"train": root}
    classes = sorted({p.name for folder in self._split_folders.values()
                      for p in _class_folders(folder)})
    self._listing = {}
    shapes = {}
    for split, folder in self._split_folders.items():
      files = _image_files(folder)
      labels = [None] * len(files)
      for class_folder in _class_folders(folder):
        members = _image_files(class_folder)
        files += members
        labels += [classes.index(class_folder.name)] * len(members)
      if not files:
        raise errors.InvalidValueError(
            f"{folder}: no image files ({', '.join(_IMAGE_EXTENSIONS)}) in it or in "
            "its sub-folders.")
      self._listing[split] = (files, labels)
      shapes[files[0]] = _image_header_shape(files[0])
    if len(set(shapes.values())) > 1:
      (first, shape), (other, other_shape) = list(shapes.items())[:2]
      raise errors.InvalidValueError(
          f"{other}: image of size (H, W, C) = {other_shape} differs from {shape} of "
          f"{first}; all images of a folder must have the same size and channels.")
    has_labels = all(None not in labels for _, labels in self._listing.values())
    super().__init__(os.fspath(root), next(iter(shapes.values())), tuple(self._listing),
                     has_labels)

  @property
  def run_name(self):
    """The name of the folder."""
    return self._root.resolve().name or "data"

  def _missing_split_message(self, base):
    if self._split_folders.get("train") == self._root:
      return (f"{self._root}: a folder of images without 'train' / 'test' sub-folders is the "
              f"single split 'train'; got split {base!r}. Put the images in train/ and test/ "
              f"sub-folders, {_holdout_hint()}.")
    hint = (f"add a {base}/ folder of images"
            + (f", {_holdout_hint()}" if base == "test" and "train" in self.splits else ""))
    return (f"{self._root}: has split folders {list(self.splits)} but no folder {base!r}; "
            f"{hint}.")

  def _no_train_hint(self):
    return "add a train/ folder of images"

  def _split_size(self, base):
    return len(self._listing[base][0])

  def _arrays(self, base, with_labels):
    files, labels = self._listing[base]
    if with_labels and None in labels:
      loose = files[labels.index(None)]
      raise errors.InvalidValueError(
          f"{self._root}: with_labels=True needs every image inside a class "
          f"sub-folder, but {loose} is not in one.")
    first = _read_image(files[0])
    images = np.empty((len(files),) + first.shape, np.uint8)
    images[0] = first
    for i, path in enumerate(files[1:], start=1):
      array = _read_image(path)
      if array.shape != first.shape:
        raise errors.InvalidValueError(
            f"{path}: image of size (H, W, C) = {array.shape} differs from {first.shape} of "
            f"{files[0]}; all images of a folder must have the same size and channels.")
      images[i] = array
    return images, (np.asarray(labels, np.int32) if with_labels else None)


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


def _celeb_a_preprocess(image):
  """Central 148x148 crop of a CelebA face, resized to 64x64, kept as uint8 pixels."""
  height, width = tf.shape(image)[0], tf.shape(image)[1]
  top = (height - _CELEB_A_CROP) // 2
  left = (width - _CELEB_A_CROP) // 2
  image = tf.image.crop_to_bounding_box(image, top, left, _CELEB_A_CROP, _CELEB_A_CROP)
  image = tf.image.resize(image, [_CELEB_A_SIZE, _CELEB_A_SIZE], method="bilinear",
                          antialias=True)
  return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


class TfdsSource(ImageSource):
  """A TensorFlow Datasets data set, read from a prepared `data_dir`.

  `"mnist"`, `"fashion_mnist"`, `"cifar10"`, `"celeb_a"` (central 148x148 crop resized to
  64x64, as in Real NVP; no labels; splits train / test / validation),
  `"downsampled_imagenet/32x32"` and `"downsampled_imagenet/64x64"` (no labels; their split
  `"test"` is TFDS's `"validation"`). Shapes, splits and labels are known without the data; the
  data set must be prepared in `data_dir` (checked when it is first read or counted) unless
  `download` is true. Slices are TFDS's (`"train[:90%]"`).
  """

  names = tuple(_TFDS_SHAPES)
  description = ("one of the TensorFlow Datasets names "
                 + ", ".join(repr(name) for name in _TFDS_SHAPES))

  def __init__(self, name, data_dir=None, download=False):
    if name not in _TFDS_SHAPES:
      raise errors.InvalidValueError(
          f"Unknown TensorFlow Datasets name {name!r}; {_accepted_sources()}.")
    self.data_dir = data_dir
    self.download = bool(download)
    super().__init__(name, _TFDS_SHAPES[name], _TFDS_SPLITS.get(name, ("train", "test")),
                     has_labels=name not in _TFDS_UNLABELLED)

  @classmethod
  def _create(cls, source, data_dir, download):
    return cls(source, data_dir=data_dir, download=download)

  def _missing_split_message(self, base):
    return f"The TFDS data set {self.name!r} has splits {sorted(self.splits)}, not {base!r}."

  def _builder(self):
    """A TFDS builder whose data are prepared (or raises `FileNotFoundError`)."""
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    # Building a DatasetBuilder only reads local files (TFDS 4.9 has GCS access disabled by
    # default); `is_prepared` checks for dataset_info.json in <data_dir>/<name>/<version>.
    data_dir = None if self.data_dir is None else os.fspath(self.data_dir)
    builder = tfds.builder(self.name, data_dir=data_dir)
    if not builder.is_prepared():
      if not self.download:
        raise FileNotFoundError(_not_prepared_message(self.name, builder, self.data_dir))
      builder.download_and_prepare()
    return builder

  def _tfds_split(self, split):
    """The TFDS split string of `split`, e.g. `"validation[:10%]"` for downsampled ImageNet."""
    base, _, _ = self._split(split)
    split = split.strip()
    if self.name.startswith("downsampled_imagenet") and base == "test":
      return "validation" + split[len(base):]
    return split

  def num_examples(self, split="train"):
    tfds_split = self._tfds_split(split)
    builder = self._builder()
    try:
      return int(builder.info.splits[tfds_split].num_examples)
    except KeyError:
      raise errors.InvalidValueError(
          f"The TFDS data set {self.name!r} prepared in {builder.data_dir} has "
          f"splits {sorted(builder.info.splits)}, not {split!r}.") from None

  def dataset(self, split="train", with_labels=False, shuffle_files=False, seed=None):
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

    if with_labels and not self.has_labels:
      raise errors.InvalidValueError(f"The TFDS data set {self.name!r} has no class labels; use "
                                     "with_labels=False.")
    tfds_split = self._tfds_split(split)
    builder = self._builder()
    read_config = tfds.ReadConfig(shuffle_seed=seed)
    ds = builder.as_dataset(split=tfds_split, shuffle_files=shuffle_files,
                            read_config=read_config)
    name, shape = self.name, self.shape

    def to_pixels(example):
      image = example["image"]
      if name == "celeb_a":
        image = _celeb_a_preprocess(image)
      image = tf.ensure_shape(image, shape)
      if with_labels:
        return image, tf.cast(example["label"], tf.int32)
      return image

    return ds.map(to_pixels, num_parallel_calls=tf.data.AUTOTUNE)


# ------------------------------------------------------------------------------------------------
# Source resolution and public functions.


def _accepted_sources():
  kinds = [kind.describe() for kind in ImageSource._kinds]  # pylint: disable=protected-access
  return f"accepted sources are {', '.join(kinds[:-1])}, or {kinds[-1]}"


def get_source(source, data_dir=None, download=False):
  """Returns the `ImageSource` for `source`, checked (see the module docstring).

  Exact names win over paths: to read a folder called `digits` or `mnist`, pass `"./digits"`
  or a `pathlib.Path`.

  Args:
    source: an `ImageSource` (returned as is), `"digits"`, a TensorFlow Datasets name, or a
      path (string or `os.PathLike`) to an `.npz` file or a folder of images.
    data_dir: TensorFlow Datasets data directory (default: TFDS's, `$TFDS_DATA_DIR` or
      `~/tensorflow_datasets`). Ignored for the other sources.
    download: allow TensorFlow Datasets to download and prepare a missing data set.

  Returns:
    An `ImageSource`.

  Raises:
    TypeError: if `source` is not a string, a path or an `ImageSource`.
    ValueError: for an unknown source (the message lists the accepted ones) or a bad file or
      folder (one line naming it and the problem).
    FileNotFoundError: for a path (or a string ending in `.npz`) that does not exist.
  """
  if isinstance(source, ImageSource):
    return source
  kinds = ImageSource._kinds  # pylint: disable=protected-access
  if isinstance(source, str):
    for kind in kinds:
      if source in kind.names:
        return kind._create(source, data_dir, download)  # pylint: disable=protected-access
  if not isinstance(source, (str, os.PathLike)):
    raise errors.InvalidTypeError(
        f"source must be a string or a path, got {type(source).__name__}; "
        f"{_accepted_sources()}.")
  path = pathlib.Path(source).expanduser()
  if path.is_dir():
    for kind in kinds:
      if kind.reads_folders:
        return kind._create(path, data_dir, download)  # pylint: disable=protected-access
  suffixes = [suffix for kind in kinds for suffix in kind.suffixes]
  if path.is_file():
    for kind in kinds:
      if path.suffix.lower() in kind.suffixes:
        return kind._create(path, data_dir, download)  # pylint: disable=protected-access
    raise errors.InvalidValueError(
        f"{path}: unsupported file type {path.suffix!r}; only "
        f"{'/'.join(suffixes)} files of images can be read ({_accepted_sources()}).")
  if isinstance(source, os.PathLike) or path.suffix.lower() in suffixes:
    raise FileNotFoundError(f"{path}: no such file or folder.")
  raise errors.InvalidValueError(
      f"Unknown image source {source!r}: it is not a file, a folder or a known "
      f"name; {_accepted_sources()}.")


def run_name(source):
  """A folder name for runs trained on `source` (anything `get_source` accepts).

  The name of `"digits"` or of a TFDS data set with "/" replaced by "_" (e.g.
  `"downsampled_imagenet_32x32"`), the file name of an `.npz` without its suffix, or the name
  of a folder.
  """
  return get_source(source).run_name


def image_shape(source, data_dir=None):
  """Returns the `(H, W, C)` of the images of a source, without loading them.

  Args:
    source: as for `get_source`.
    data_dir: TFDS data directory (TFDS names have fixed shapes, known without the data).

  Returns:
    A tuple of three ints.

  Raises:
    ValueError: for an unknown source or an unusable file.
  """
  return get_source(source, data_dir=data_dir).shape


def num_examples(source, split="train", data_dir=None):
  """Returns the number of images of a split (or slice) of a source, without loading them.

  Args:
    source: as for `get_source`.
    split: as for `load_images`, e.g. `"test"` or `"train[90%:]"`.
    data_dir: TFDS data directory.

  Returns:
    An int.

  Raises:
    ValueError: for an unknown source or split.
    FileNotFoundError: for a TFDS data set that is not prepared in `data_dir`.
  """
  return get_source(source, data_dir=data_dir).num_examples(split)


def load_images(source, split="train", batch_size=64, shuffle=True, with_labels=False,
                data_dir=None, download=False, seed=None, dequantize=True, repeat=False,
                drop_remainder=False, shuffle_buffer=10000):
  """Returns a batched, shuffled (if asked), prefetched tf.data.Dataset of images in [0, 1).

  The 8-bit pixels stay uint8 through shuffling and batching; each batch is then turned into
  float32 in a parallel `map`: `(k + u) / 256` with uniform noise `u` when `dequantize` is true
  (see the module docstring for why, and for bits/dim), else `k / 256`. Then the dataset is
  prefetched.

  The sources (see `DigitsSource`, `NpzSource`, `FolderSource` and `TfdsSource` for details):

  * `"digits"`: scikit-learn's handwritten digits, 8x8x1, splits `"train"` (1500 images) and
    `"test"` (297). No network needed.
  * a path to an `.npz` file: uint8 images `(N, H, W)` or `(N, H, W, C)` under `x_train` /
    `x_test`, or a single array `x` or `images` (split `"train"` only). Labels, if asked, come
    from `y_train` / `y_test` / `y` / `labels` respectively.
  * a path to a folder of PNG / JPEG / BMP images of one size, with optional `train` / `test`
    sub-folders and class sub-folders (whose sorted names give the labels).
  * a TensorFlow Datasets name: `"mnist"`, `"fashion_mnist"`, `"cifar10"`, `"celeb_a"`,
    `"downsampled_imagenet/32x32"`, `"downsampled_imagenet/64x64"`, which must already be
    prepared in `data_dir` unless `download=True`.
  * an `ImageSource` (e.g. from `get_source`); `data_dir` and `download` are then ignored.

  Exact names win over paths: to read a folder called `digits` or `mnist`, pass `"./digits"` or
  a `pathlib.Path`.

  Args:
    source: one of the sources above (a string, a path or an `ImageSource`).
    split: a split of the source, `"train"` or `"test"` (TFDS names also accept their own split
      names, e.g. `"validation"`), optionally sliced: `"train[:90%]"`, `"train[90%:]"` (see the
      module docstring; `ImageSource.training_splits` gives the splits to use).
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
    ValueError: for an unknown source (the message lists the accepted ones), an unknown split
      (the message says what to add), bad arguments, a file with non-8-bit images or without the
      expected arrays, or images of different sizes in a folder (naming the first file that
      differs).
    FileNotFoundError: for a TFDS data set that is not prepared in `data_dir` when `download`
      is false (the message says how to prepare it), or a missing `.npz` path.
  """
  batch_size = _validation.positive_int(batch_size, "batch_size")
  shuffle_buffer = _validation.positive_int(shuffle_buffer, "shuffle_buffer")
  if not isinstance(split, str):
    raise errors.InvalidValueError(
        f"split must be a string such as 'train' or 'test', got {split!r}.")

  image_source = get_source(source, data_dir=data_dir, download=download)
  ds = image_source.dataset(split, with_labels=with_labels, shuffle_files=shuffle, seed=seed)

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
