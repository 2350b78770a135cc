"""`Squeeze`: errors that name the size it cannot squeeze.

Its TFP contract is checked by the conformance suite (`test_conformance.py`).
"""

import pytest
import tensorflow as tf

from tfp_realnvp import bijectors as rb


def test_odd_spatial_size_is_rejected_with_the_size():
  with pytest.raises(ValueError, match="height 7"):
    rb.Squeeze(event_shape=(7, 8, 1))
  with pytest.raises(ValueError, match="height 7"):
    rb.Squeeze().forward(tf.zeros([2, 7, 8, 1]))
  with pytest.raises(ValueError, match="width 5"):
    rb.Squeeze().forward_event_shape([8, 5, 1])
  with pytest.raises(ValueError, match="divisible by 4"):
    rb.Squeeze().inverse(tf.zeros([2, 4, 4, 6]))
