"""TensorFlow Datasets image sets, read from a prepared `data_dir`, downloaded only if asked."""

from __future__ import annotations

import os
from typing import Any

import tensorflow as tf

from tfp_realnvp import errors
from tfp_realnvp.data import sources

__all__ = ["TfdsSource"]

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


def _not_prepared_message(name: str, builder: Any, data_dir: str | os.PathLike | None) -> str:
  data_dir_arg = "" if data_dir is None else f", data_dir={os.fspath(data_dir)!r}"
  return (
      f"The TensorFlow Datasets data set {name!r} is not prepared in {builder.data_dir_root} "
      f"(looked for {builder.data_dir}), and load_images never downloads unless told to. "
      "Prepare it once, on a machine with network access, with\n"
      f"  python -c \"import tensorflow_datasets as tfds; tfds.builder({name!r}{data_dir_arg})"
      ".download_and_prepare()\"\n"
      "(then copy the data_dir here if needed), or pass download=True to load_images "
      "(--download on the tfp-realnvp command line).")


def _celeb_a_preprocess(image: tf.Tensor) -> tf.Tensor:
  """Central 148x148 crop of a CelebA face, resized to 64x64, kept as uint8 pixels."""
  height, width = tf.shape(image)[0], tf.shape(image)[1]
  top = (height - _CELEB_A_CROP) // 2
  left = (width - _CELEB_A_CROP) // 2
  image = tf.image.crop_to_bounding_box(image, top, left, _CELEB_A_CROP, _CELEB_A_CROP)
  image = tf.image.resize(image, [_CELEB_A_SIZE, _CELEB_A_SIZE], method="bilinear",
                          antialias=True)
  return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


@sources.register_source("tfds")
class TfdsSource(sources.ImageSource):
  """A TensorFlow Datasets data set, read from a prepared `data_dir`.

  `"mnist"`, `"fashion_mnist"`, `"cifar10"`, `"celeb_a"` (central 148x148 crop resized to
  64x64, as in Real NVP; no labels; splits train / test / validation),
  `"downsampled_imagenet/32x32"` and `"downsampled_imagenet/64x64"` (no labels; their split
  `"test"` is TFDS's `"validation"`). Shapes, splits and labels are known without the data; the
  data set must be prepared in `data_dir` (checked when it is first read or counted) unless
  `download` is true. Slices are TFDS's (`"train[:90%]"`).

  Args:
    name: one of the names above.
    data_dir: TensorFlow Datasets data directory (default: TFDS's, `$TFDS_DATA_DIR` or
      `~/tensorflow_datasets`).
    download: allow TensorFlow Datasets to download and prepare a missing data set.

  Raises:
    InvalidValueError: an unknown name.
    FileNotFoundError: when read or counted, a data set not prepared in `data_dir` (without
      `download`); the message says how to prepare it.
  """

  names = tuple(_TFDS_SHAPES)
  description = ("one of the TensorFlow Datasets names "
                 + ", ".join(repr(name) for name in _TFDS_SHAPES))

  def __init__(self, name: str, data_dir: str | os.PathLike | None = None,
               download: bool = False) -> None:
    if name not in _TFDS_SHAPES:
      raise errors.InvalidValueError(
          f"Unknown TensorFlow Datasets name {name!r}; {sources._accepted_sources()}.")
    self.data_dir = data_dir
    self.download = bool(download)
    super().__init__(name, _TFDS_SHAPES[name], _TFDS_SPLITS.get(name, ("train", "test")),
                     has_labels=name not in _TFDS_UNLABELLED)

  @classmethod
  def open(cls, spec: Any, data_dir: str | os.PathLike | None = None,
           download: bool = False) -> TfdsSource:
    return cls(spec, data_dir=data_dir, download=download)

  def _missing_split_message(self, base: str) -> str:
    return f"The TFDS data set {self.name!r} has splits {sorted(self.splits)}, not {base!r}."

  def _builder(self) -> Any:
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

  def _tfds_split(self, split: str) -> str:
    """The TFDS split string of `split`, e.g. `"validation[:10%]"` for downsampled ImageNet."""
    base, _, _ = self.parse_split(split)
    split = split.strip()
    if self.name.startswith("downsampled_imagenet") and base == "test":
      return "validation" + split[len(base):]
    return split

  def num_examples(self, split: str = "train") -> int:
    tfds_split = self._tfds_split(split)
    builder = self._builder()
    try:
      return int(builder.info.splits[tfds_split].num_examples)
    except KeyError:
      raise errors.InvalidValueError(
          f"The TFDS data set {self.name!r} prepared in {builder.data_dir} has "
          f"splits {sorted(builder.info.splits)}, not {split!r}.") from None

  def dataset(self, split: str = "train", with_labels: bool = False, shuffle_files: bool = False,
              seed: int | None = None) -> tf.data.Dataset:
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

    def to_pixels(example: dict[str, tf.Tensor]) -> tf.Tensor | tuple[tf.Tensor, tf.Tensor]:
      image = example["image"]
      if name == "celeb_a":
        image = _celeb_a_preprocess(image)
      image = tf.ensure_shape(image, shape)
      if with_labels:
        return image, tf.cast(example["label"], tf.int32)
      return image

    return ds.map(to_pixels, num_parallel_calls=tf.data.AUTOTUNE)
