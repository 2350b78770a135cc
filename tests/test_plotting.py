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
