"""`tfp_realnvp.presets`: defaults per image shape and data set, overrides, the flows they build."""

import pytest

from tfp_realnvp import presets


def test_resolve_applies_overrides_once_and_checks_the_shape():
  preset = presets.resolve(None, (8, 8, 1), source="digits", num_filters=4, epochs=3,
                           num_blocks=None)
  assert (preset.name, preset.num_scales, preset.num_filters, preset.num_blocks) == (
      "digits", 2, 4, 2)
  assert preset.epochs == 3 and preset.batch_size == 64
  assert presets.resolve(None, (64, 64, 3), source="celeb_a").name == "celeba"
  # A resolved preset builds exactly its own architecture.
  flow = presets.build_flow(preset, (8, 8, 1))
  assert (flow.num_scales, flow.num_filters, flow.num_blocks) == (2, 4, 2)
  with pytest.raises(ValueError, match="num_scales=5 cannot be used for images of shape"):
    presets.resolve("digits", (8, 8, 1), num_scales=5)
  with pytest.raises(ValueError, match="Unknown preset settings \\['width'\\]"):
    presets.resolve("digits", (8, 8, 1), width=3)
  with pytest.raises(ValueError, match="epochs must be None or a positive integer"):
    presets.resolve("digits", (8, 8, 1), epochs=0)
