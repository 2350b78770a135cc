"""The kinds of image sources: the `ImageSource` contract, the in-memory base, their registry."""

from __future__ import annotations

import os
import pathlib
import warnings
from typing import Any, Callable, ClassVar, TypeVar

import numpy as np
import tensorflow as tf

from tfp_realnvp import _registry
from tfp_realnvp import _validation
from tfp_realnvp import errors
from tfp_realnvp.data import splits as splits_lib

__all__ = ["DIGITS", "DigitsSource", "ImageSource", "InMemorySource", "SOURCES",
           "register_source"]

# The name of the embedded default source.
DIGITS = "digits"

# The digits are split once and for all with a fixed permutation.
_DIGITS_SEED = 0
_DIGITS_NUM_TEST = 297
_DIGITS_NUM_TRAIN = 1797 - _DIGITS_NUM_TEST

# The registered names of the built-in kinds, in the order `get_source` asks them after every
# other kind: exact names before paths.
_BUILT_IN = ("digits", "tfds", "npz", "folder")


class ImageSource:
  """A source of 8-bit images with named splits; each kind of source is a subclass.

  A source is checked once, when it is built, so that a bad file fails before any training;
  then `dataset(split)` returns the unbatched uint8 images of a split, which
  `tfp_realnvp.data.load_images` shuffles, batches and dequantizes.

  #### Implementing a kind of source

  1. Subclass `InMemorySource` when a split fits in memory as a NumPy array: implement
     `split_size(base)` (cheap, reads no image) and `read_split(base, with_labels)`; the base
     class provides `num_examples`, `dataset` and the slices (`"train[:90%]"`). Otherwise
     subclass `ImageSource` and implement `num_examples(split)` and `dataset(split, ...)`
     yourself, slices included (`parse_split` reads a split and rejects one the source lacks).
  2. In the constructor, check everything that can be checked without reading the images, and
     call `super().__init__(name, shape, splits, has_labels)`.
  3. Say which specifications it reads: exact `names`, file `suffixes` (e.g. `(".npz",)`) or
     `reads_folders`, which the default `accepts(spec)` uses, or override `accepts`; override
     `open(spec, data_dir, download)` when the constructor does not take `spec` alone; set
     `description` for the messages that list the accepted sources.
  4. Register it with `@tfp_realnvp.data.register_source("kind")` (or an entry point of the
     group `tfp_realnvp.data_sources`): `get_source`, `load_images` and `tfp-realnvp --data`
     then accept its specifications.

  Errors, each with a one-line message naming the source: `errors.DataError` for unusable data
  (a damaged, empty or inconsistent file, pixels that are not 8-bit, images of different
  shapes, labels that do not match the images); `errors.InvalidValueError` for a bad argument
  (a split the source lacks, an empty slice, `with_labels=True` without labels);
  `errors.InvalidTypeError` for an argument of the wrong type; `FileNotFoundError` for a
  missing file.

  Args:
    name: the string that names the source in messages (a data set name or a path).
    shape: `(H, W, C)` of its images.
    splits: the names of its splits, e.g. `("train", "test")` or `("train",)`.
    has_labels: whether its images have integer class labels (`with_labels=True` is usable).

  Raises:
    InvalidValueError: `shape` is not three positive integers.
  """

  names: ClassVar[tuple[str, ...]] = ()
  suffixes: ClassVar[tuple[str, ...]] = ()
  reads_folders: ClassVar[bool] = False
  description: ClassVar[str | None] = None

  def __init__(self, name: str, shape: tuple[int, int, int], splits: tuple[str, ...],
               has_labels: bool) -> None:
    self.name = str(name)
    self.shape: tuple[int, int, int] = _validation.image_shape(shape, owner=self.name)
    self.splits = tuple(splits)
    self.has_labels = bool(has_labels)

  @classmethod
  def accepts(cls, spec: object) -> bool:
    """Whether this kind reads `spec`: one of `names`, or an existing file or folder it reads.

    `get_source` asks the registered kinds in turn and opens `spec` with the first that
    accepts it. Must not raise, whatever `spec` is.
    """
    if isinstance(spec, str) and spec in cls.names:
      return True
    if not (cls.suffixes or cls.reads_folders) or not isinstance(spec, (str, os.PathLike)):
      return False
    path = pathlib.Path(spec).expanduser()
    if cls.reads_folders and path.is_dir():
      return True
    return path.suffix.lower() in cls.suffixes and path.is_file()

  @classmethod
  def open(cls, spec: Any, data_dir: str | os.PathLike | None = None,
           download: bool = False) -> ImageSource:
    """Builds the source of `spec`, which `accepts(spec)` is true of (default: `cls(spec)`).

    Args:
      spec: what the user passed to `get_source` or `load_images`.
      data_dir: a data directory (TensorFlow Datasets'), for kinds that use one.
      download: whether the kind may download missing data.
    """
    del data_dir, download  # Used by TFDS only.
    return cls(spec)  # type: ignore[call-arg]  # Subclasses take the spec alone by default.

  @classmethod
  def describe(cls) -> str:
    """A phrase describing the sources of this kind, for messages listing the accepted ones."""
    if cls.description:
      return cls.description
    if cls.names:
      return "the names " + ", ".join(repr(name) for name in cls.names)
    if cls.suffixes:
      return f"a path to an existing {'/'.join(cls.suffixes)} file"
    if cls.reads_folders:
      return "a path to an existing folder"
    return f"a source read by {cls.__name__}"

  @property
  def run_name(self) -> str:
    """A folder name for runs on this source: its name with "/" replaced by "_"."""
    return self.name.replace("/", "_")

  def __repr__(self) -> str:
    return f"{type(self).__name__}({self.name!r})"

  def num_examples(self, split: str = "train") -> int:
    """The number of images of `split` (e.g. `"test"` or `"train[90%:]"`), without loading them.

    Raises:
      InvalidValueError: for a split the source does not have.
    """
    raise NotImplementedError

  def dataset(self, split: str = "train", with_labels: bool = False, shuffle_files: bool = False,
              seed: int | None = None) -> tf.data.Dataset:
    """The unbatched images of `split` as a `tf.data.Dataset` of uint8 `[H, W, C]` tensors.

    Args:
      split: a split of `splits`, optionally sliced, e.g. `"train[:90%]"`.
      with_labels: if true, elements are `(image, label)` with an int32 scalar label.
      shuffle_files: shuffle the files of a sharded source (TFDS); others ignore it.
      seed: optional int seed of that file shuffling.

    Returns:
      A `tf.data.Dataset`, in file order for the in-memory sources.

    Raises:
      InvalidValueError: for a split the source does not have, or `with_labels` without labels.
    """
    raise NotImplementedError

  def training_splits(self, holdout_fraction: float = splits_lib.HOLDOUT_FRACTION,
                      validation: bool = True) -> tuple[str, str | None, str]:
    """The splits a training run uses: `(train, validation, test)`.

    The test split is `"test"` when the source has one, else the held-out slice of the last
    `holdout_fraction` of split `"train"`. With `validation`, the same fraction of `"train"` is
    held out again, for validation (choosing the best epoch on images that the test figure does
    not use); without it the validation split is `None` and training uses the rest. The slices
    of the in-memory sources are disjoint, cover the split and are drawn at random. With the
    default 10 %:

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
      InvalidValueError: for a bad `holdout_fraction` or a source without split `"train"`.
      DataError: a held-out slice of an in-memory source would hold no image.
    """
    if "train" not in self.splits:
      raise errors.InvalidValueError(
          f"{self.name}: has no split 'train' (its splits are {list(self.splits)}), "
          f"so it cannot be trained on; {self._no_train_hint()}.")
    has_test = "test" in self.splits
    count = int(validation) + int(not has_test)
    slices = splits_lib._holdout_splits(holdout_fraction, count) if count else ("train",)
    for split in slices if isinstance(self, InMemorySource) else ():
      if not self.num_examples(split):
        raise errors.DataError(
            f"{self.name}: too few images ({self.num_examples('train')}) to hold out "
            f"{holdout_fraction:g} of them {count} time(s): the slice {split!r} "
            "would be empty; add images or a test split.")
    test = "test" if has_test else slices[-1]
    return slices[0], slices[1] if validation else None, test

  def parse_split(self, split: str) -> tuple[str, str | None, str | None]:
    """`(base, start, stop)` of a split such as `"train[:90%]"`: `("train", None, "90%")`.

    Raises:
      InvalidTypeError: `split` is not a string.
      InvalidValueError: `split` cannot be read, or the source has no split `base`.
    """
    base, start, stop = splits_lib._parse_split(split, self.name)
    if base not in self.splits:
      raise errors.InvalidValueError(self._missing_split_message(base))
    return base, start, stop

  def _no_train_hint(self) -> str:
    return "use a source with training images"

  def _missing_split_message(self, base: str) -> str:
    """A one-line message for a split `base` that the source does not have."""
    hint = (f"; {splits_lib._holdout_hint()}." if base == "test" and "train" in self.splits
            else ".")
    return f"{self.name}: no split {base!r}; its splits are {list(self.splits)}{hint}"


class InMemorySource(ImageSource):
  """A source whose splits are read into memory as NumPy arrays; it slices them itself.

  Subclasses implement `split_size(base)` and `read_split(base, with_labels)`. Slices such as
  `"train[90%:]"` are taken over a fixed pseudo-random permutation of the split (the same for
  every split of a given size), so that a file sorted by class still gives a representative
  hold-out; the images of a slice keep their order in the split.
  """

  def split_size(self, base: str) -> int:
    """The number of images of split `base` (one of `splits`), without reading them."""
    raise NotImplementedError

  def read_split(self, base: str, with_labels: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """`(images, labels)` of split `base`: uint8 `(N, H, W, C)` and int32 `(N,)` (or `None`).

    `N` is `split_size(base)`; the labels are `None` unless `with_labels` is true. Raises
    `DataError` for images that cannot be read, `InvalidValueError` for missing labels.
    """
    raise NotImplementedError

  def num_examples(self, split: str = "train") -> int:
    base, start, stop = self.parse_split(split)
    begin, end = splits_lib._slice_range(start, stop, self.split_size(base), split)
    return end - begin

  def dataset(self, split: str = "train", with_labels: bool = False, shuffle_files: bool = False,
              seed: int | None = None) -> tf.data.Dataset:
    del shuffle_files, seed  # The images are in memory: `load_images` shuffles them.
    base, start, stop = self.parse_split(split)
    images, labels = self._checked_arrays(base, with_labels)
    if start is not None or stop is not None:
      index = splits_lib._slice_indices(start, stop, len(images), split)
      if not len(index):  # pylint: disable=g-explicit-length-test
        raise errors.InvalidValueError(
            f"{self.name}: the slice {split!r} of the {len(images)} images of split "
            f"{base!r} holds no images.")
      images = images[index]
      labels = None if labels is None else labels[index]
    if with_labels:
      return tf.data.Dataset.from_tensor_slices((images, labels))
    return tf.data.Dataset.from_tensor_slices(images)

  def _checked_arrays(self, base: str,
                      with_labels: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """`read_split(base, with_labels)`, checked against the contract."""
    images, labels = self.read_split(base, with_labels)
    expected = (self.split_size(base),) + self.shape
    if (not isinstance(images, np.ndarray) or images.dtype != np.uint8
        or images.shape != expected):
      raise errors.DataError(
          f"{self.name}: split {base!r} must be uint8 images of shape {expected}, got "
          f"{type(images).__name__} {getattr(images, 'dtype', '')} of shape "
          f"{getattr(images, 'shape', None)}.")
    if with_labels:
      if labels is None:
        raise errors.InvalidValueError(
            f"{self.name}: has no class labels; use with_labels=False.")
      if not isinstance(labels, np.ndarray) or labels.dtype != np.int32 or (
          labels.shape != expected[:1]):
        raise errors.DataError(
            f"{self.name}: the labels of split {base!r} must be int32 of shape {expected[:1]}, "
            f"got {type(labels).__name__} of shape {getattr(labels, 'shape', None)}.")
    return images, labels


# ------------------------------------------------------------------------------------------------
# The registry of kinds.


SOURCES: _registry.Registry[type[ImageSource]] = _registry.Registry(
    "data source", "tfp_realnvp.data_sources")

_Kind = TypeVar("_Kind", bound=type[ImageSource])


def register_source(name: str) -> Callable[[_Kind], _Kind]:
  """A class decorator that registers a kind of source in `SOURCES` under `name`.

  `get_source` then asks the kind, through `accepts(spec)`, about every specification, before
  the built-in kinds (digits, TensorFlow Datasets, `.npz`, folders). See `ImageSource` for
  what a kind implements.

  ```python
  @tfp_realnvp.data.register_source("stripes")
  class Stripes(tfp_realnvp.data.InMemorySource):
    names = ("stripes",)
    ...
  ```

  Raises:
    InvalidValueError: `name` is empty or registered to another class.
    InvalidTypeError: the decorated object is not a subclass of `ImageSource`.
  """

  def register(kind: _Kind) -> _Kind:
    if not (isinstance(kind, type) and issubclass(kind, ImageSource)):
      raise errors.InvalidTypeError(
          f"register_source({name!r}) decorates subclasses of tfp_realnvp.data.ImageSource, "
          f"got {kind!r}.")
    SOURCES.register(name, kind)
    return kind

  return register


def _kinds() -> list[type[ImageSource]]:
  """The registered kinds in the order `get_source` asks them: the built-in ones last."""
  names = [name for name in SOURCES if name not in _BUILT_IN]
  names += [name for name in _BUILT_IN if name in SOURCES]
  kinds = []
  for name in names:
    kind = SOURCES[name]
    if isinstance(kind, type) and issubclass(kind, ImageSource):
      kinds.append(kind)
    else:
      warnings.warn(f"tfp_realnvp: skipped the data source {name!r}: {kind!r} is not a "
                    "subclass of tfp_realnvp.data.ImageSource.", stacklevel=3)
  return kinds


def _accepted_sources() -> str:
  """The end of a message for an unknown source: the sources every kind accepts."""
  kinds = [kind.describe() for kind in _kinds()]
  return f"accepted sources are {', '.join(kinds[:-1])}, or {kinds[-1]}"


# ------------------------------------------------------------------------------------------------
# The embedded default.


@register_source("digits")
class DigitsSource(InMemorySource):
  """The embedded default `"digits"`: scikit-learn's handwritten digits, 8x8x1.

  Pixels are `round(v * 255 / 16)` of scikit-learn's values `0..16`; a fixed permutation puts
  1500 images in split `"train"` and 297 in `"test"`; labels are the digits. No network needed.

  Args:
    name: `"digits"` (accepted so that `open` builds every kind alike).
  """

  names = (DIGITS,)
  description = "the embedded default 'digits'"

  def __init__(self, name: str = DIGITS) -> None:
    del name
    super().__init__(DIGITS, (8, 8, 1), ("train", "test"), has_labels=True)

  def _missing_split_message(self, base: str) -> str:
    return (f"The 'digits' source has splits 'train' ({_DIGITS_NUM_TRAIN} images) and 'test' "
            f"({_DIGITS_NUM_TEST} images), got split {base!r}.")

  def split_size(self, base: str) -> int:
    return _DIGITS_NUM_TRAIN if base == "train" else _DIGITS_NUM_TEST

  def read_split(self, base: str, with_labels: bool) -> tuple[np.ndarray, np.ndarray | None]:
    from sklearn import datasets  # pylint: disable=g-import-not-at-top

    digits = datasets.load_digits()
    # Values 0..16 -> 0..255.
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., np.newaxis]
    labels = digits.target.astype(np.int32)
    order = np.random.default_rng(_DIGITS_SEED).permutation(len(images))
    index = order[:-_DIGITS_NUM_TEST] if base == "train" else order[-_DIGITS_NUM_TEST:]
    return images[index], (labels[index] if with_labels else None)
