"""`benchmarks/mnist_quality.py`'s progress lines cover every step of their chunk."""

import math
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))
import mnist_quality  # pylint: disable=g-import-not-at-top,wrong-import-position


def test_chunk_means_span_a_metric_reset():
  """Steps 1-3 then, after an evaluation resets Keras's metrics, steps 4-5."""
  values = [10.0, 8.0, 6.0, 4.0, 2.0]
  chunk = mnist_quality.ChunkMeans()
  assert all(math.isnan(v) for v in chunk.means().values())
  for segment in (values[:3], values[3:]):
    for count in range(1, len(segment) + 1):  # Keras logs running means since the reset.
      running = sum(segment[:count]) / count
      chunk.step({"loss": running, "bits_per_dim": running / 2})
    chunk.metrics_reset()
  assert chunk.steps == 5
  assert chunk.means() == pytest.approx({"loss": 6.0, "bits_per_dim": 3.0})
  chunk.start()
  assert chunk.steps == 0
