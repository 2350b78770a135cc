"""Images from files: `.npz` files of arrays and folders of image files, with their checks."""

from __future__ import annotations

import os
import pathlib
import zipfile

import numpy as np

from tfp_realnvp import _validation
from tfp_realnvp import errors
from tfp_realnvp.data import sources
from tfp_realnvp.data import splits as splits_lib

__all__ = ["FolderSource", "NpzSource"]

_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
# Pillow modes converted to 8-bit grayscale ("L"), RGB or RGBA before use, and the channels of
# the modes used.
_PIL_CONVERSIONS = {"1": "L", "P": "RGB", "PA": "RGBA", "LA": "RGBA", "CMYK": "RGB",
                    "YCbCr": "RGB"}
_PIL_CHANNELS = {"L": 1, "RGB": 3, "RGBA": 4}
_NPZ_LABEL_KEYS = {"x_train": "y_train", "x_test": "y_test", "x": "y", "images": "labels"}


# ------------------------------------------------------------------------------------------------
# Pixel and label checks.


def _check_pixels(array: np.ndarray, where: str) -> np.ndarray:
  """Returns `array` as uint8 `(N, H, W, C)`, or raises a `DataError` naming the problem."""
  _check_pixel_dtype(array.dtype, where)
  if array.dtype != np.uint8:
    _check_pixel_range(array, where)
    array = array.astype(np.uint8)
  if array.ndim == 3:
    array = array[..., np.newaxis]
  if array.ndim != 4:
    raise errors.DataError(
        f"{where}: images must have shape (N, H, W) or (N, H, W, C), got shape "
        f"{array.shape}.")
  return array


def _check_pixel_dtype(dtype: np.dtype, where: str) -> None:
  if not np.issubdtype(dtype, np.integer):
    raise errors.DataError(
        f"{where}: images must be 8-bit integers (uint8, values 0..255), got dtype {dtype}. "
        "Convert them first, e.g. np.round(x * 255).astype(np.uint8) for floats in [0, 1].")


def _check_pixel_range(array: np.ndarray, where: str) -> None:
  if array.size:
    low, high = int(array.min()), int(array.max())
    if low < 0 or high > 255:
      raise errors.DataError(f"{where}: pixel values must be in 0..255, found values in "
                             f"{low}..{high} (dtype {array.dtype}).")


def _check_labels(labels: np.ndarray, num_images: int, where: str) -> np.ndarray:
  """Returns `labels` as int32 `(num_images,)`, or raises a `DataError`."""
  labels = np.asarray(labels)
  if labels.ndim != 1 or len(labels) != num_images:
    raise errors.DataError(
        f"{where}: labels must have shape ({num_images},) to match the images, got "
        f"shape {labels.shape}.")
  if not np.issubdtype(labels.dtype, np.integer):
    raise errors.DataError(f"{where}: labels must be integers, got dtype {labels.dtype}.")
  return labels.astype(np.int32)


# ------------------------------------------------------------------------------------------------
# .npz files.


def _npz_member_headers(path: pathlib.Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
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
    raise errors.DataError(
        f"{path}: not a readable .npz file of NumPy arrays ({type(error).__name__}: "
        f"{error}); write it with numpy.savez or numpy.savez_compressed.") from None
  return headers


@sources.register_source("npz")
class NpzSource(sources.InMemorySource):
  """A NumPy `.npz` file of 8-bit images `(N, H, W)` or `(N, H, W, C)`.

  The images are `x_train` and / or `x_test` (splits `"train"` and `"test"`), or else a single
  array `x` or `images` (split `"train"`). A file with only `x_test` has only split `"test"`
  (for evaluation). Labels, if any, are `y_train` / `y_test` / `y` / `labels`. Integer arrays of
  another dtype than uint8 are accepted when all values lie in `0..255`.

  Every image array is checked when the source is built, from its header: an integer dtype,
  rank 3 or 4, at least one image, the same image shape in every split (and, for dtypes other
  than uint8, values in `0..255`, the only check that reads the array).

  Args:
    path: the `.npz` file.

  Raises:
    DataError: the file is not a readable `.npz`, or its images fail a check above.
  """

  suffixes = (".npz",)

  def __init__(self, path: str | os.PathLike) -> None:
    path = pathlib.Path(path).expanduser()
    headers = _npz_member_headers(path)
    if "x_train" in headers or "x_test" in headers:
      self._keys = {split: f"x_{split}" for split in ("train", "test")
                    if f"x_{split}" in headers}
    else:
      single = next((name for name in ("x", "images") if name in headers), None)
      if single is None:
        raise errors.DataError(
            f"{path}: found arrays {sorted(headers)} but no images; store the images "
            "under 'x_train' / 'x_test', or under a single key 'x' or 'images'.")
      self._keys = {"train": single}
    self._path = path
    self._sizes = {}
    shapes = {}
    for split, key in self._keys.items():
      where = f"{path}[{key!r}]"
      shape, dtype = headers[key]
      _check_pixel_dtype(dtype, where)
      if len(shape) not in (3, 4):
        raise errors.DataError(
            f"{where}: images must have shape (N, H, W) or (N, H, W, C), got shape "
            f"{shape}.")
      if shape[0] == 0:
        raise errors.DataError(f"{where}: holds no images (shape {shape}).")
      try:
        shapes[key] = _validation.image_shape(shape[1:] + (1,) * (4 - len(shape)), owner=where)
      except errors.InvalidValueError as error:
        raise errors.DataError(str(error)) from None
      if dtype != np.uint8:
        with np.load(path, allow_pickle=False) as npz:
          _check_pixel_range(npz[key], where)
      self._sizes[split] = shape[0]
    if len(set(shapes.values())) > 1:
      described = " but ".join(f"{key!r} has images of shape {shape}"
                               for key, shape in shapes.items())
      raise errors.DataError(
          f"{path}: {described}; all splits must hold images of one shape "
          "(H, W, C).")
    has_labels = all(_NPZ_LABEL_KEYS[key] in headers for key in self._keys.values())
    super().__init__(os.fspath(path), next(iter(shapes.values())), tuple(self._keys), has_labels)

  @property
  def run_name(self) -> str:
    """The file name without `.npz`."""
    return self._path.stem

  def _missing_split_message(self, base: str) -> str:
    if "x_train" in self._keys.values() or "x_test" in self._keys.values():
      available = list(self.splits)
      hint = (f"store them as 'x_{base}' in the .npz"
              + (f", {splits_lib._holdout_hint()}"
                 if base == "test" and "train" in self.splits else ""))
      return (f"{self._path}: no split {base!r} (no array 'x_{base}'); its splits are "
              f"{available}; {hint}.")
    return (f"{self._path}: holds a single image array {self._keys['train']!r}, which is split "
            f"'train'; there is no split {base!r} (store x_train / x_test to have both, "
            f"{splits_lib._holdout_hint()}).")

  def _no_train_hint(self) -> str:
    return ("store the training images as 'x_train' in the .npz (or rename 'x_test' to 'x' to "
            "use them as the single split 'train')")

  def split_size(self, base: str) -> int:
    return self._sizes[base]

  def read_split(self, base: str, with_labels: bool) -> tuple[np.ndarray, np.ndarray | None]:
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


# ------------------------------------------------------------------------------------------------
# Folders of image files.


def _image_files(folder: pathlib.Path) -> list[pathlib.Path]:
  return sorted(p for p in folder.iterdir()
                if p.is_file() and p.suffix.lower() in _IMAGE_EXTENSIONS)


def _class_folders(folder: pathlib.Path) -> list[pathlib.Path]:
  """The sub-folders of `folder` that hold images (hidden ones ignored), sorted by name."""
  return [p for p in sorted(folder.iterdir())
          if p.is_dir() and not p.name.startswith(".") and _image_files(p)]


def _image_header_shape(path: pathlib.Path) -> tuple[int, int, int]:
  """The `(H, W, C)` of an image file as `_read_image` will return it, from its header."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  try:
    with Image.open(path) as image:
      mode = _PIL_CONVERSIONS.get(image.mode, image.mode)
      width, height = image.size
  except (OSError, ValueError) as error:
    raise errors.DataError(
        f"{path}: cannot read the image ({type(error).__name__}: {error}).") from None
  if mode not in _PIL_CHANNELS:
    raise errors.DataError(
        f"{path}: unsupported image mode {mode!r}; only 8-bit grayscale, RGB, RGBA "
        "or palette images can be used.")
  return (height, width, _PIL_CHANNELS[mode])


def _read_image(path: pathlib.Path) -> np.ndarray:
  """One image file as a uint8 `(H, W, C)` array."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  try:
    with Image.open(path) as file:
      image: Image.Image = file
      if image.mode in _PIL_CONVERSIONS:
        image = image.convert(_PIL_CONVERSIONS[image.mode])
      if image.mode not in _PIL_CHANNELS:
        raise errors.DataError(
            f"{path}: unsupported image mode {image.mode!r}; only 8-bit grayscale, "
            "RGB, RGBA or palette images can be used.")
      array = np.asarray(image, dtype=np.uint8)
  except (OSError, ValueError) as error:
    if isinstance(error, errors.Error):
      raise
    raise errors.DataError(
        f"{path}: cannot read the image ({type(error).__name__}: {error}).") from None
  if array.ndim == 2:
    array = array[..., np.newaxis]
  return array


def _shape_mismatch(path: pathlib.Path, shape: tuple[int, ...], first: pathlib.Path,
                    first_shape: tuple[int, ...]) -> errors.DataError:
  return errors.DataError(
      f"{path}: image of size (H, W, C) = {shape} differs from {first_shape} of "
      f"{first}; all images of a folder must have the same size and channels.")


@sources.register_source("folder")
class FolderSource(sources.InMemorySource):
  """A folder of PNG / JPEG / BMP images of one size, decoded into memory when read.

  If the folder has sub-folders named `train` and / or `test`, these are the splits; otherwise
  the folder is the single split `"train"`. Inside a split, images may sit directly in it or in
  class sub-folders; the labels `0..K-1` index the sorted names of the class folders of all
  splits together (so a class missing from one split does not shift the others), and
  `has_labels` requires every image to be in a class folder. Grayscale images give one channel,
  RGB three, RGBA four; palette images are converted to RGB.

  The files are listed when the source is built, and the first image of every split is checked
  (mode and size, from its header); the other images are checked when they are read.

  Args:
    path: the folder.

  Raises:
    FileNotFoundError: `path` is not a folder.
    DataError: a split without images, an unreadable image or one of another size or mode.
  """

  reads_folders = True
  description = "a path to an existing folder of PNG/JPEG/BMP images"

  def __init__(self, path: str | os.PathLike) -> None:
    root = pathlib.Path(path).expanduser()
    if not root.is_dir():
      raise FileNotFoundError(f"{root}: no such folder.")
    present = [name for name in ("train", "test") if (root / name).is_dir()]
    self._root = root
    self._split_folders = {name: root / name for name in present} or {"train": root}
    classes = sorted({p.name for folder in self._split_folders.values()
                      for p in _class_folders(folder)})
    self._listing: dict[str, tuple[list[pathlib.Path], list[int | None]]] = {}
    shapes = {}
    for split, folder in self._split_folders.items():
      files = _image_files(folder)
      labels: list[int | None] = [None] * len(files)
      for class_folder in _class_folders(folder):
        members = _image_files(class_folder)
        files += members
        labels += [classes.index(class_folder.name)] * len(members)
      if not files:
        raise errors.DataError(
            f"{folder}: no image files ({', '.join(_IMAGE_EXTENSIONS)}) in it or in "
            "its sub-folders.")
      self._listing[split] = (files, labels)
      shapes[files[0]] = _image_header_shape(files[0])
    if len(set(shapes.values())) > 1:
      (first, shape), (other, other_shape) = list(shapes.items())[:2]
      raise _shape_mismatch(other, other_shape, first, shape)
    has_labels = all(None not in labels for _, labels in self._listing.values())
    super().__init__(os.fspath(root), next(iter(shapes.values())), tuple(self._listing),
                     has_labels)

  @property
  def run_name(self) -> str:
    """The name of the folder."""
    return self._root.resolve().name or "data"

  def _missing_split_message(self, base: str) -> str:
    if self._split_folders.get("train") == self._root:
      return (f"{self._root}: a folder of images without 'train' / 'test' sub-folders is the "
              f"single split 'train'; got split {base!r}. Put the images in train/ and test/ "
              f"sub-folders, {splits_lib._holdout_hint()}.")
    hint = (f"add a {base}/ folder of images"
            + (f", {splits_lib._holdout_hint()}"
               if base == "test" and "train" in self.splits else ""))
    return (f"{self._root}: has split folders {list(self.splits)} but no folder {base!r}; "
            f"{hint}.")

  def _no_train_hint(self) -> str:
    return "add a train/ folder of images"

  def split_size(self, base: str) -> int:
    return len(self._listing[base][0])

  def read_split(self, base: str, with_labels: bool) -> tuple[np.ndarray, np.ndarray | None]:
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
        raise _shape_mismatch(path, array.shape, files[0], first.shape)
      images[i] = array
    return images, (np.asarray(labels, np.int32) if with_labels else None)
