"""`tfp_realnvp.presets`: defaults per image shape and data set, overrides, the flows they build."""

import dataclasses

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
  assert isinstance(flow.coupling_networks[0].params_per_unit, int)
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


# Every registered preset, and the registry.

# The presets whose flows build in a few seconds; the others are checked without building.
CHEAP = ("digits", "mnist", "glow_digits", "glow_mnist")


@pytest.mark.parametrize("name", list(presets.PRESETS))
def test_every_preset_resolves_and_builds_its_flow_for_its_image_size(name):
  preset = presets.get_preset(name)
  for channels in (1, 3):
    shape = preset.image_size + (channels,)
    assert preset.supports(shape)
    resolved = presets.resolve(name, shape)
    assert resolved == preset  # Nothing to override: the preset itself.
  assert preset.flow.flow_class is configs.FLOWS[preset.flow.kind]().flow_class
  if name in CHEAP:
    flow = presets.build_flow(name, preset.image_size + (1,))
    assert type(flow) is preset.flow.flow_class  # pylint: disable=unidiomatic-typecheck
    assert flow.event_shape == preset.image_size + (1,)
    assert {key: getattr(flow, key) for key in preset.flow.settings()} == (
        dataclasses.asdict(preset.flow))


def test_the_cheap_presets_are_registered():
  assert set(CHEAP) <= set(presets.PRESETS)


@pytest.fixture
def own_registry(monkeypatch):
  """`PRESETS` as it is, restored after the test."""
  list(presets.PRESETS)  # Loads the plugins first, so that the copy below holds them.
  monkeypatch.setattr(presets.PRESETS, "_entries", dict(presets.PRESETS._entries))  # pylint: disable=protected-access


def test_register_preset_adds_a_preset_that_resolve_finds(own_registry):
  del own_registry
  tiny = presets.Preset("tiny_glow", (4, 4), configs.GlowConfig(num_levels=1, num_steps=1,
                                                                 num_filters=4),
                        configs.TrainingSettings(epochs=1, batch_size=8), "a test preset")
  assert presets.register_preset(tiny) is tiny
  assert presets.register_preset(tiny) is tiny  # The same preset again: nothing happens.
  resolved = presets.resolve("tiny_glow", (4, 4, 3), num_steps=2)
  assert (resolved.name, resolved.flow.num_steps, resolved.training.batch_size) == (
      "tiny_glow", 2, 8)
  assert "tiny_glow" in presets.compatible_presets((4, 4, 3), flow="glow")
  assert isinstance(presets.build_flow("tiny_glow", (4, 4, 3)), tfp_realnvp.Glow)
  with pytest.raises(ValueError, match="The preset name 'digits' is taken by"):
    presets.register_preset(dataclasses.replace(presets.get_preset("digits"), description="x"))
  with pytest.raises(TypeError, match="register_preset takes a Preset, got dict"):
    presets.register_preset({"name": "dict"})


def test_a_registered_preset_is_gone_after_its_test():
  assert "tiny_glow" not in presets.PRESETS


def test_resolve_errors_name_what_is_wrong():
  with pytest.raises(ValueError, match="Unknown preset 'big'; the registered ones are"):
    presets.resolve("big", (8, 8, 1))
  with pytest.raises(ValueError, match="No default preset for images of size 30x30"):
    presets.resolve(None, (30, 30, 1))
  with pytest.raises(ValueError, match=r"No default preset .*\(no preset fits this shape"):
    presets.resolve(None, (7, 7, 1), flow="glow")
  with pytest.raises(ValueError, match="num_steps is a Glow setting; Real NVP presets .* take "
                                       "num_filters, coupling, num_scales"):
    presets.resolve("digits", (8, 8, 1), num_steps=2)
  with pytest.raises(ValueError, match=r"event_shape must be \(height, width, channels\)"):
    presets.resolve("digits", (8, 8))


def test_overrides_by_flat_names_reach_the_flow_or_the_training_settings():
  preset = presets.resolve("glow_digits", (8, 8, 1), num_steps=3, num_filters=8,
                           coupling_network="resnet", epochs=2, learning_rate=0.01, ema=0.99,
                           warmup_steps=5, clipnorm=1.0, dequantization="variational",
                           batch_size=None)
  assert preset.name == "glow_digits" and isinstance(preset.flow, configs.GlowConfig)
  assert (preset.flow.num_levels, preset.flow.num_steps, preset.flow.num_filters,
          preset.flow.coupling_network) == (2, 3, 8, "resnet")
  assert preset.training == configs.TrainingSettings(
      epochs=2, learning_rate=0.01, ema=0.99, warmup_steps=5, clipnorm=1.0,
      dequantization="variational")
  real_nvp = presets.resolve("mnist", (28, 28, 1), batch_norm=False, num_blocks=1,
                             coupling="affine")
  assert real_nvp.flow == configs.RealNVPConfig(num_scales=3, num_filters=32, num_blocks=1,
                                                batch_norm=False)
  assert real_nvp.training == presets.get_preset("mnist").training
  # The registered preset itself does not change.
  assert presets.get_preset("glow_digits").flow.num_steps == 4
