"""`tfp_realnvp.presets`: defaults per image shape and data set, overrides, the flows they build."""

import pytest

import tfp_realnvp
from tfp_realnvp import cli
from tfp_realnvp import configs
from tfp_realnvp import presets
import tfp_realnvp_launcher


def test_resolve_applies_overrides_once_and_checks_the_shape():
  preset = presets.resolve(None, (8, 8, 1), source="digits", num_filters=4, epochs=3,
                           num_blocks=None)
  assert (preset.name, preset.flow.num_scales, preset.flow.num_filters,
          preset.flow.num_blocks) == ("digits", 2, 4, 2)
  assert preset.training.epochs == 3 and preset.training.batch_size == 64
  assert presets.resolve(None, (64, 64, 3), source="celeb_a").name == "celeba"
  # A resolved preset builds exactly its own architecture.
  flow = presets.build_flow(preset, (8, 8, 1))
  assert (flow.num_scales, flow.num_filters, flow.num_blocks) == (2, 4, 2)
  with pytest.raises(ValueError, match="num_scales=5 cannot be used for images of shape"):
    presets.resolve("digits", (8, 8, 1), num_scales=5)
  with pytest.raises(ValueError, match="Unknown preset settings \\['width'\\]"):
    presets.resolve("digits", (8, 8, 1), width=3)
  with pytest.raises(ValueError, match="epochs must be a positive integer"):
    presets.resolve("digits", (8, 8, 1), epochs=0)


def test_glow_defaults_per_shape_and_data():
  for shape, source, expected in [((8, 8, 1), None, "glow_digits"),
                                  ((28, 28, 1), None, "glow_mnist"),
                                  ((32, 32, 3), None, "glow_cifar10"),
                                  ((64, 64, 3), None, "glow_imagenet64"),
                                  ((32, 32, 3), "downsampled_imagenet/32x32", "glow_imagenet32"),
                                  ((64, 64, 3), "celeb_a", "glow_celeba")]:
    preset = presets.resolve(None, shape, source=source, flow="glow")
    assert (preset.name, preset.flow.kind, preset.title) == (expected, "glow", "Glow")
    assert isinstance(preset.flow, configs.GlowConfig)
    # The default flow.
    assert presets.resolve(None, shape, source=source).flow.kind == "realnvp"
  assert presets.resolve("glow_mnist", (28, 28, 1)).flow.kind == "glow"  # The preset's flow.
  with pytest.raises(ValueError, match="Unknown flow 'maf'; the registered ones are 'realnvp', "
                                       "'glow'"):
    presets.resolve(None, (8, 8, 1), flow="maf")
  with pytest.raises(ValueError, match="Preset 'glow_mnist' is a Glow preset, not a Real NVP"):
    presets.resolve("glow_mnist", (28, 28, 1), flow="realnvp")
  with pytest.raises(ValueError, match="batch_norm is a Real NVP setting; Glow presets"):
    presets.resolve("glow_digits", (8, 8, 1), batch_norm=False)
  with pytest.raises(ValueError, match="Unknown coupling network 'unet'; the registered ones "
                                       "are 'glow', 'resnet'"):
    presets.resolve("glow_digits", (8, 8, 1), coupling_network="unet")
  with pytest.raises(ValueError, match="Unknown coupling transform 'cubic'; the registered ones "
                                       "are 'affine', 'additive', 'spline'"):
    presets.resolve("digits", (8, 8, 1), coupling="cubic")
  # Settings of the other flow are ignored when unset (None), as the command line passes them.
  assert not hasattr(presets.resolve("glow_digits", (8, 8, 1), num_scales=None).flow,
                     "num_scales")


def test_glow_supports_shapes_that_every_level_squeezes():
  glow = presets.get_preset("glow_cifar10")  # L=3: squeezed 3 times.
  assert glow.supports((32, 32, 3)) and glow.supports((8, 8, 3))
  assert not glow.supports((28, 28, 1)) and not glow.supports((4, 4, 3))
  assert presets.get_preset("cifar10").supports((28, 28, 1))  # Real NVP 2 scales: one squeeze.
  assert presets.compatible_presets((28, 28, 1), flow="glow") == ["glow_digits", "glow_mnist"]
  with pytest.raises(ValueError, match="'glow_cifar10' with num_levels=3 cannot be used for "
                                       "images of shape \\(28, 28, 1\\): height and width must "
                                       "be divisible by 8. Glow presets that fit this shape: "
                                       "'glow_digits', 'glow_mnist'\\.$"):
    presets.resolve("glow_cifar10", (28, 28, 1))
  for preset in presets.PRESETS.values():  # Affine couplings: `coupling` is left out.
    assert configs.FLOWS[preset.flow.kind] is type(preset.flow)
    assert set(preset.flow.flow_kwargs()) | {"coupling"} == set(preset.flow.settings())


def test_build_flow_of_a_glow_preset():
  flow = presets.build_flow("glow_digits", (8, 8, 1), num_filters=4, num_steps=1)
  preset = presets.get_preset("glow_digits")
  assert isinstance(flow, tfp_realnvp.Glow)
  assert (flow.num_levels, flow.num_steps, flow.num_filters, flow.coupling_network) == (
      preset.flow.num_levels, 1, 4, preset.flow.coupling_network)
  assert preset.describe() == "2 levels, 4 steps, 64 filters, glow coupling networks"
  assert presets.get_preset("digits").describe() == (
      "2 scales, 32 filters, 2 blocks, batch norm on")
  assert presets.resolve("glow_digits", (8, 8, 1), num_levels=1, num_steps=1).describe() == (
      "1 level, 1 step, 64 filters, glow coupling networks")


@pytest.mark.parametrize("preset", ["digits", "glow_digits"])
def test_spline_couplings_through_the_presets_overrides(preset):
  resolved = presets.resolve(preset, (8, 8, 1), coupling="spline")
  assert resolved.flow.flow_kwargs()["coupling"] == "spline"
  assert resolved.describe().endswith(", spline couplings")
  flow = presets.build_flow(preset, (8, 8, 1), coupling="spline", num_filters=4)
  assert flow.coupling == "spline" and flow.get_config()["coupling"] == "spline"
  assert isinstance(flow.conditioners[0].params_per_unit, int)
  args = tfp_realnvp_launcher.build_parser().parse_args(
      ["train", "--preset", preset, "--coupling", "spline"])
  assert cli.train_options(args)["coupling"] == "spline"


def test_preset_for_shape_and_unknown_sizes():
  assert presets.preset_for_shape((8, 8, 1)) == "digits"
  assert presets.preset_for_shape((28, 28, 1)) == "mnist"
  assert presets.preset_for_shape((32, 32, 3)) == "cifar10"
  assert presets.preset_for_shape((64, 64, 3)) == "imagenet64"
  assert presets.default_preset("celeb_a", (64, 64, 3)) == "celeba"
  assert presets.default_preset("downsampled_imagenet/32x32", (32, 32, 3)) == "imagenet32"
  with pytest.raises(ValueError, match="No default preset for images of size 30x30.*'digits'"):
    presets.preset_for_shape((30, 30, 1))
  with pytest.raises(ValueError, match="Unknown preset 'big'; the registered ones are 'digits'"):
    presets.get_preset("big")
  for preset in presets.PRESETS.values():
    assert preset.training.batch_size == 64 and preset.training.learning_rate == 1e-3
    assert preset.supports(preset.image_size + (3,))


def test_build_flow_checks_the_shape():
  flow = presets.build_flow("digits", (8, 8, 1), num_filters=4, num_blocks=1)
  assert (flow.num_scales, flow.num_filters, flow.num_blocks, flow.batch_norm) == (2, 4, 1, True)
  with pytest.raises(ValueError, match="'imagenet64' with num_scales=5 cannot be used.*'digits'"):
    presets.build_flow("imagenet64", (8, 8, 1))
