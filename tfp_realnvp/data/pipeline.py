"""From a source specification to batches: `get_source`, `load_images` and their shortcuts."""

from __future__ import annotations

import os
import pathlib
from typing import Any

import tensorflow as tf

from tfp_realnvp import _validation
from tfp_realnvp import dequantization
from tfp_realnvp import errors
from tfp_realnvp.data import sources
from tfp_realnvp.data import splits as splits_lib

__all__ = ["get_source", "image_shape", "load_images", "num_examples", "run_name"]


def get_source(source: str | os.PathLike | sources.ImageSource | object,
               data_dir: str | os.PathLike | None = None,
               download: bool = False) -> sources.ImageSource:
  """Returns the checked `ImageSource` of a source specification.

  The registered kinds (`tfp_realnvp.data.SOURCES`) are asked in turn, through
  `ImageSource.accepts`, and the first that accepts `source` opens it: first the kinds added
  by plugins or `register_source`, in the order they were registered, then the built-in ones,
  `"digits"`, the TensorFlow Datasets names, `.npz` files and folders, in this order. Exact
  names win over paths: to read a folder called `digits` or `mnist`, pass `"./digits"` or a
  `pathlib.Path`.

  Args:
    source: an `ImageSource` (returned as is), `"digits"`, a TensorFlow Datasets name, a path
      (string or `os.PathLike`) to an `.npz` file or a folder of images, or anything that a
      registered kind accepts.
    data_dir: TensorFlow Datasets data directory (default: TFDS's, `$TFDS_DATA_DIR` or
      `~/tensorflow_datasets`). Ignored for the other sources.
    download: allow TensorFlow Datasets to download and prepare a missing data set.

  Returns:
    An `ImageSource`.

  Raises:
    InvalidTypeError: `source` is none of the above and not a string or a path.
    InvalidValueError: an unknown source (the message lists the accepted ones) or a file of an
      unsupported type.
    DataError: a bad file or folder (one line naming it and the problem).
    FileNotFoundError: for a path (or a string ending in a known suffix) that does not exist.
  """
  if isinstance(source, sources.ImageSource):
    return source
  kinds = sources._kinds()
  for kind in kinds:
    if kind.accepts(source):
      return kind.open(source, data_dir=data_dir, download=download)
  if not isinstance(source, (str, os.PathLike)):
    raise errors.InvalidTypeError(
        f"source must be a string or a path, got {type(source).__name__}; "
        f"{sources._accepted_sources()}.")
  path = pathlib.Path(source).expanduser()
  suffixes = [suffix for kind in kinds for suffix in kind.suffixes]
  if path.is_file():
    raise errors.InvalidValueError(
        f"{path}: unsupported file type {path.suffix!r}; only "
        f"{'/'.join(suffixes)} files of images can be read ({sources._accepted_sources()}).")
  if isinstance(source, os.PathLike) or path.suffix.lower() in suffixes:
    raise FileNotFoundError(f"{path}: no such file or folder.")
  raise errors.InvalidValueError(
      f"Unknown image source {source!r}: it is not a file, a folder or a known "
      f"name; {sources._accepted_sources()}.")


def run_name(source: str | os.PathLike | sources.ImageSource | object) -> str:
  """A folder name for runs trained on `source` (anything `get_source` accepts).

  The name of `"digits"` or of a TFDS data set with "/" replaced by "_" (e.g.
  `"downsampled_imagenet_32x32"`), the file name of an `.npz` without its suffix, or the name
  of a folder.
  """
  return get_source(source).run_name


def image_shape(source: str | os.PathLike | sources.ImageSource | object,
                data_dir: str | os.PathLike | None = None) -> tuple[int, int, int]:
  """Returns the `(H, W, C)` of the images of a source, without loading them.

  Args:
    source: as for `get_source`.
    data_dir: TFDS data directory (TFDS names have fixed shapes, known without the data).

  Raises:
    InvalidValueError: for an unknown source; `DataError` for an unusable file.
  """
  return get_source(source, data_dir=data_dir).shape


def num_examples(source: str | os.PathLike | sources.ImageSource | object,
                 split: str = "train", data_dir: str | os.PathLike | None = None) -> int:
  """Returns the number of images of a split (or slice) of a source, without loading them.

  Args:
    source: as for `get_source`.
    split: as for `load_images`, e.g. `"test"` or `"train[90%:]"`.
    data_dir: TFDS data directory.

  Raises:
    InvalidValueError: for an unknown source or split.
    FileNotFoundError: for a TFDS data set that is not prepared in `data_dir`.
  """
  return get_source(source, data_dir=data_dir).num_examples(split)


def load_images(source: str | os.PathLike | sources.ImageSource | object, split: str = "train",
                batch_size: int = 64, shuffle: bool = True, with_labels: bool = False,
                data_dir: str | os.PathLike | None = None, download: bool = False,
                seed: int | None = None, dequantize: bool = True, repeat: bool = False,
                drop_remainder: bool = False, shuffle_buffer: int = 10000) -> tf.data.Dataset:
  """Returns a batched, shuffled (if asked), prefetched `tf.data.Dataset` of images in [0, 1).

  The 8-bit pixels stay uint8 through shuffling and batching; each batch is then turned into
  float32 in a parallel `map`: `(k + u) / 256` with uniform noise `u` when `dequantize` is true
  (`tfp_realnvp.data.dequantize`), else `k / 256`. Then the dataset is prefetched.

  ```python
  ds = tfp_realnvp.data.load_images("digits", "train[:90%]", batch_size=64, seed=0)
  images = next(iter(ds))  # float32 [64, 8, 8, 1] in [0, 1)
  ```

  Args:
    source: anything `get_source` accepts: `"digits"` (scikit-learn's 8x8 digits, no network
      needed), a path to an `.npz` file or a folder of images, a TensorFlow Datasets name
      (prepared in `data_dir` unless `download`), a registered kind's specification, or an
      `ImageSource` (`data_dir` and `download` are then ignored).
    split: a split of the source, e.g. `"train"` or `"test"`, optionally sliced as in TFDS:
      `"train[:90%]"`, `"train[90%:]"` (`ImageSource.training_splits` gives a run's splits).
    batch_size: number of images per batch.
    shuffle: whether to shuffle the examples (with a buffer of `shuffle_buffer` examples,
      reshuffled at each iteration over the dataset; TFDS files are shuffled too).
    with_labels: if true, elements are `(images, labels)` with int32 labels `[batch]`.
    data_dir: TensorFlow Datasets data directory (default: TFDS's, `$TFDS_DATA_DIR` or
      `~/tensorflow_datasets`). Ignored for the other sources.
    download: allow TensorFlow Datasets to download and prepare a missing data set.
    seed: optional int; makes shuffling and dequantization noise reproducible: two pipelines
      built with the same seed yield the same batches. The noise depends on `seed` alone; the
      shuffled order also on TensorFlow's global seed (`tf.data` mixes it in), so set that
      the same too (`keras.utils.set_random_seed`, as the training command does) for the same
      order. Successive iterations over a shuffled pipeline still differ; an unshuffled one
      yields the same images at every pass (as a fixed test set should).
    dequantize: add uniform noise (`(k + u) / 256`) if true; return `k / 256` if false.
    repeat: repeat the data indefinitely (shuffling differently at each pass).
    drop_remainder: drop the last batch if it is smaller than `batch_size`.
    shuffle_buffer: size of the shuffle buffer, in examples.

  Returns:
    A `tf.data.Dataset` of float32 `[batch, H, W, C]` tensors with values in `[0, 1)`, or of
    `(images, labels)` pairs when `with_labels` is true.

  Raises:
    InvalidTypeError: `source` or `split` of the wrong type.
    InvalidValueError: an unknown source (the message lists the accepted ones), an unknown
      split (the message says what to add), an empty slice, or a bad argument.
    DataError: a damaged, empty or inconsistent file or folder (naming the file and the
      problem, e.g. the first image of a different size).
    FileNotFoundError: for a TFDS data set that is not prepared in `data_dir` when `download`
      is false (the message says how to prepare it), or a missing `.npz` path.
  """
  batch_size = _validation.positive_int(batch_size, "batch_size")
  shuffle_buffer = _validation.positive_int(shuffle_buffer, "shuffle_buffer")
  splits_lib._check_split_type(split)

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

  def to_float(element: Any, noise_seed: tf.Tensor) -> Any:
    pixels = element[0] if with_labels else element
    if use_noise:
      images = dequantization.dequantize(pixels, seed=noise_seed)
    else:
      images = tf.cast(pixels, tf.float32) / 256.0
    return (images, element[1]) if with_labels else images

  ds = tf.data.Dataset.zip((ds, noise_seeds))
  ds = ds.map(to_float, num_parallel_calls=tf.data.AUTOTUNE)
  return ds.prefetch(tf.data.AUTOTUNE)
