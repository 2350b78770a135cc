"""Running the scripts of `examples/` and reading what they print and write (tests/integration)."""

import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[1]
TIMEOUT = 240


def run_example(name, output_dir, *args):
  """Runs `examples/<name>.py --tiny --output-dir <output_dir> <args>`; returns its stdout."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow")
  proc = subprocess.run(
      [sys.executable, str(ROOT / "examples" / f"{name}.py"), "--tiny",
       "--output-dir", str(output_dir), *args],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False)
  assert proc.returncode == 0, (
      f"{name}.py exited with {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\n"
      f"stderr:\n{proc.stderr[-3000:]}")
  return proc.stdout


def number_after(label, text):
  """The float printed right after `label` in `text` (the first occurrence)."""
  match = re.search(re.escape(label) + r"\s*([-+0-9.eE]+|nan|inf)", text)
  assert match, f"{label!r} not found in the output:\n{text}"
  return float(match.group(1))


def read_metrics(output_dir):
  with open(output_dir / "metrics.json", encoding="utf-8") as f:
    return json.load(f)


def assert_png(path, min_size=(100, 100)):
  """The file is a PNG that Pillow decodes, at least `min_size`, and not a single colour."""
  assert path.is_file(), f"{path} was not written"
  with Image.open(path) as image:
    assert image.format == "PNG"
    image.load()
    assert image.size[0] >= min_size[0] and image.size[1] >= min_size[1], image.size
    pixels = np.asarray(image.convert("L"))
  assert pixels.std() > 0, f"{path} is blank"
  return pixels
