"""Pictures of a flow's training: image grids (Pillow) and bits/dim curves (matplotlib, Agg).

Both functions write files and need no display: the grid is drawn with Pillow, the curves with
matplotlib's Agg canvas directly (no `pyplot`, so the global matplotlib backend of the calling
process is left alone). Files are written atomically (a temporary file beside the destination,
then `os.replace`), so that a killed process never leaves a half-written picture.
"""

from __future__ import annotations

import math
import os
import pathlib
from typing import Any, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from tfp_realnvp import errors
from tfp_realnvp import _files
from tfp_realnvp import _validation

__all__ = ["grid_size", "image_format", "is_image", "save_bits_per_dim_plot", "save_image_grid"]

# Tiles smaller than this many pixels (in their smaller dimension) are enlarged by an integer
# nearest-neighbour factor: an 8x8 digit becomes a 64x64 tile.
MIN_TILE_SIZE = 64
# Pixels between tiles, and their gray level.
PADDING = 2
_PADDING_LEVEL = 128


def _upscale_factor(height: int, width: int, scale: int | None) -> int:
  if scale is None:
    return max(1, MIN_TILE_SIZE // min(height, width))
  return _validation.positive_int(scale, "scale")


def grid_size(num_images: int, image_shape: Sequence[int], ncols: int | None = None,
              scale: int | None = None) -> tuple[int, int]:
  """`(width, height)` in pixels of the PNG that `save_image_grid` writes.

  Args:
    num_images: number of images in the grid.
    image_shape: `(H, W)` or `(H, W, C)` of one image.
    ncols: as for `save_image_grid`.
    scale: as for `save_image_grid`.
  """
  height, width = int(image_shape[0]), int(image_shape[1])
  ncols = _num_columns(num_images, ncols)
  nrows = math.ceil(num_images / ncols)
  factor = _upscale_factor(height, width, scale)
  return (ncols * width * factor + (ncols - 1) * PADDING,
          nrows * height * factor + (nrows - 1) * PADDING)


def _num_columns(num_images: int, ncols: int | None) -> int:
  if ncols is None:
    return max(1, math.ceil(math.sqrt(num_images)))
  return min(_validation.positive_int(ncols, "ncols"), num_images)


def _to_pixels(images: npt.ArrayLike) -> np.ndarray:
  """`[N, H, W, C]` uint8 pixels (`C` in 1, 3) from float images in `[0, 1)`."""
  array = np.asarray(images, dtype=np.float64)
  if array.ndim == 3:
    array = array[..., np.newaxis]
  if array.ndim != 4 or array.shape[-1] not in (1, 3):
    raise errors.InvalidValueError(
        f"images must have shape [N, H, W], [N, H, W, 1] (grayscale) or [N, H, W, 3] (RGB), "
        f"got shape {array.shape}.")
  if array.shape[0] == 0:
    raise errors.InvalidValueError("images is empty: there is nothing to draw.")
  # k / 256 <= x < (k + 1) / 256 -> k, the inverse of the 8-bit quantisation; NaN -> black.
  array = np.nan_to_num(array, nan=0.0, posinf=1.0, neginf=0.0)
  return np.clip(np.floor(array * 256.0), 0, 255).astype(np.uint8)


def image_format(path: str | os.PathLike[str]) -> str:
  """The Pillow format that the suffix of `path` names (`.png` -> `"PNG"`, `.jpg` -> `"JPEG"`).

  Raises:
    ValueError: for a suffix that Pillow cannot write, listing common ones that it can.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top

  suffix = pathlib.Path(os.fspath(path)).suffix.lower()
  name = Image.registered_extensions().get(suffix)
  if name is None or name not in Image.SAVE:
    raise errors.InvalidValueError(
        f"{path}: cannot write images of type {suffix or '(no suffix)'!r}; use a "
        "file name ending in .png, .jpg, .bmp, .gif, .tif or .webp.")
  return name


def is_image(path: str | os.PathLike[str]) -> bool:
  """Whether `path` is a complete picture that Pillow decodes (not truncated or overwritten)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  try:
    with Image.open(path) as picture:
      picture.load()
  except (OSError, ValueError, SyntaxError):  # Pillow's errors for damaged files.
    return False
  return True


def save_image_grid(images: npt.ArrayLike, path: str | os.PathLike[str], ncols: int | None = None,
                    scale: int | None = None) -> pathlib.Path:
  """Saves images as one grid picture (PNG, or the format the suffix of `path` names).

  Values are read as in the rest of the package: a float `x` in `[0, 1)` is the 8-bit level
  `floor(256 x)` (values outside are clipped, NaN is drawn black). Grayscale images
  (`[N, H, W]` or `[N, H, W, 1]`) give a grayscale PNG, `[N, H, W, 3]` an RGB one. Tiles are
  separated by `PADDING` gray pixels, and small images are enlarged by an integer
  nearest-neighbour factor (8x8 digits become 64x64 tiles) so that they are visible. The
  size of the picture is `grid_size(N, (H, W), ncols, scale)`. The format is the one that the
  suffix of `path` names (`image_format`): PNG for `.png`, JPEG for `.jpg`, and so on.

  Args:
    images: array or tensor of images with values in `[0, 1)`.
    path: output file (`.png`, `.jpg`, ...); missing parent folders are created.
    ncols: number of columns; defaults to `ceil(sqrt(N))`. Rows follow.
    scale: integer enlargement factor; `None` picks one so that tiles are at least
      `MIN_TILE_SIZE` pixels (1 for images that are already that large).

  Returns:
    The path written, as a `pathlib.Path`.

  Raises:
    ValueError: for images of another shape or number of channels, a bad `ncols`/`scale`, or
      a suffix of `path` that names no format Pillow writes.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top

  file_format = image_format(path)
  pixels = _to_pixels(images)
  num_images, height, width, channels = pixels.shape
  ncols = _num_columns(num_images, ncols)
  factor = _upscale_factor(height, width, scale)
  if factor > 1:
    pixels = pixels.repeat(factor, axis=1).repeat(factor, axis=2)
  tile_height, tile_width = height * factor, width * factor
  grid_width, grid_height = grid_size(num_images, (height, width), ncols, factor)
  canvas = np.full((grid_height, grid_width, channels), _PADDING_LEVEL, np.uint8)
  for index in range(num_images):
    row, col = divmod(index, ncols)
    top, left = row * (tile_height + PADDING), col * (tile_width + PADDING)
    canvas[top:top + tile_height, left:left + tile_width] = pixels[index]
  mode = "L" if channels == 1 else "RGB"
  picture = Image.fromarray(canvas[..., 0] if channels == 1 else canvas, mode=mode)
  with _files.atomic_path(path) as temporary:
    picture.save(temporary, format=file_format)
  return pathlib.Path(os.fspath(path))


def save_bits_per_dim_plot(history_dict: Mapping[str, Sequence[Any]], path: str | os.PathLike[str],
                           title: str | None = None) -> pathlib.Path:
  """Plots training and validation bits/dim per epoch into a PNG.

  Args:
    history_dict: a Keras `History.history`-style dict of per-epoch lists; the curves drawn are
      `"bits_per_dim"` (training) and `"val_bits_per_dim"` (validation), whichever are present.
      An optional `"epoch"` list gives the epoch numbers (default `1..N`).
    path: output file (`.png`); missing parent folders are created.
    title: optional title of the plot.

  Returns:
    The path written, as a `pathlib.Path`.

  Raises:
    ValueError: if the dict has neither curve, or a curve's length differs from the epochs'.
  """
  fig = _bits_per_dim_figure(history_dict, title)
  with _files.atomic_path(path) as temporary:
    fig.savefig(temporary, format="png")
  return pathlib.Path(os.fspath(path))


def _bits_per_dim_figure(history_dict: Mapping[str, Sequence[Any]],
                         title: str | None) -> Any:
  """The figure of `save_bits_per_dim_plot` (whole epochs on the horizontal axis)."""
  from matplotlib.backends import backend_agg  # pylint: disable=g-import-not-at-top
  from matplotlib import figure  # pylint: disable=g-import-not-at-top
  from matplotlib import ticker  # pylint: disable=g-import-not-at-top

  curves = [(key, label) for key, label in
            (("bits_per_dim", "training"), ("val_bits_per_dim", "validation"))
            if history_dict.get(key)]
  if not curves:
    raise errors.InvalidValueError(
        f"history_dict has no 'bits_per_dim' or 'val_bits_per_dim' values to plot "
        f"(keys: {sorted(history_dict)}).")
  length = len(history_dict[curves[0][0]])
  epochs = list(history_dict.get("epoch") or range(1, length + 1))
  fig = figure.Figure(figsize=(6, 4), dpi=100)
  backend_agg.FigureCanvasAgg(fig)
  axes = fig.add_subplot(1, 1, 1)
  for key, label in curves:
    values = [float("nan") if v is None else float(v) for v in history_dict[key]]
    if len(values) != len(epochs):
      raise errors.InvalidValueError(
          f"history_dict[{key!r}] has {len(values)} values for {len(epochs)} "
          "epochs.")
    axes.plot(epochs, values, marker="o", markersize=3, label=label)
  axes.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))  # Epochs are whole numbers.
  axes.set_xlabel("epoch")
  axes.set_ylabel("bits/dim")
  if title:
    axes.set_title(title)
  axes.grid(True, alpha=0.3)
  axes.legend()
  fig.tight_layout()
  return fig
