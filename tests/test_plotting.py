"""`tfp_realnvp.plotting`: image grids in the format of their suffix, and their errors."""

import numpy as np
import pytest
from PIL import Image

from tfp_realnvp import plotting


@pytest.mark.parametrize("suffix, expected", [(".png", "PNG"), (".jpg", "JPEG"),
                                              (".JPEG", "JPEG"), (".bmp", "BMP")])
def test_image_grid_format_follows_the_suffix(tmp_path, suffix, expected):
  path = plotting.save_image_grid(np.full((2, 8, 8, 1), 0.5), tmp_path / f"grid{suffix}")
  with Image.open(path) as picture:
    assert picture.format == expected
  assert plotting.is_image(path)
  path.write_bytes(path.read_bytes()[:40])
  assert not plotting.is_image(path)


def test_unknown_image_suffix_is_refused(tmp_path):
  with pytest.raises(ValueError, match="cannot write images of type '.xyz'"):
    plotting.save_image_grid(np.zeros((1, 8, 8)), tmp_path / "grid.xyz")
  assert not list(tmp_path.iterdir())


def test_image_grid_rgb_and_errors(tmp_path):
  images = np.random.default_rng(0).uniform(size=(5, 32, 32, 3))
  path = plotting.save_image_grid(images, tmp_path / "sub" / "rgb.png", ncols=5)
  with Image.open(path) as picture:
    size, mode, pixels = picture.size, picture.mode, np.asarray(picture)
  assert (size, mode) == ((5 * 64 + 4 * plotting.PADDING, 64), "RGB")
  # Nearest-neighbour enlargement by 2 of the exact 8-bit levels.
  np.testing.assert_array_equal(pixels[:64:2, :64:2], np.floor(images[0] * 256).astype(np.uint8))
  with pytest.raises(ValueError, match="got shape"):
    plotting.save_image_grid(np.zeros((2, 8, 8, 2)), tmp_path / "bad.png")
  with pytest.raises(ValueError, match="no 'bits_per_dim'"):
    plotting.save_bits_per_dim_plot({"loss": [1.0]}, tmp_path / "bad_plot.png")
