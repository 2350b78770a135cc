"""`tfp_realnvp.configs`: the typed flow configurations, the training settings, and `FLOWS`."""

import dataclasses

import pytest

import tfp_realnvp
from tfp_realnvp import configs
from tfp_realnvp import errors
from tfp_realnvp.configs import GlowConfig
from tfp_realnvp.configs import RealNVPConfig
from tfp_realnvp.configs import TrainingSettings


def test_each_kind_of_flow_has_its_own_fields_and_is_registered():
  assert RealNVPConfig.settings() == (
      "num_filters", "coupling", "num_scales", "num_blocks", "batch_norm")
  assert GlowConfig.settings() == (
      "num_filters", "coupling", "num_levels", "num_steps", "coupling_network", "scan")
  assert (RealNVPConfig().num_filters, GlowConfig().num_filters) == (64, 512)
  assert {"realnvp": RealNVPConfig, "glow": GlowConfig}.items() <= dict(configs.FLOWS).items()
  for name, config in configs.FLOWS.items():
    assert config.kind == name and config().flow_class.__name__ in ("RealNVP", "Glow")
  assert (RealNVPConfig.title, GlowConfig.title) == ("Real NVP", "Glow")
  assert configs.TRAINING_SETTINGS == ("epochs", "batch_size", "learning_rate", "ema",
                                       "warmup_steps", "clipnorm", "dequantization")
  # Every setting once: those of the flows, then the training settings.
  assert configs.all_settings() == (
      "num_filters", "coupling", "num_scales", "num_blocks", "batch_norm", "num_levels",
      "num_steps", "coupling_network", "scan", *configs.TRAINING_SETTINGS)
  with pytest.raises(dataclasses.FrozenInstanceError):
    RealNVPConfig().num_scales = 3


def test_describe_says_the_architecture_in_one_line():
  assert RealNVPConfig(num_scales=1, num_filters=1, num_blocks=1,
                       batch_norm=False).describe() == "1 scale, 1 filter, 1 block, batch norm off"
  assert RealNVPConfig(coupling="spline").describe() == (
      "2 scales, 64 filters, 4 blocks, batch norm on, spline couplings")
  assert GlowConfig().describe() == "3 levels, 32 steps, 512 filters, glow coupling networks"
  assert GlowConfig(num_levels=1, num_steps=1, coupling_network="resnet",
                    coupling="additive").describe() == (
      "1 level, 1 step, 512 filters, resnet coupling networks, additive couplings")


def test_flow_kwargs_leave_out_the_values_from_before_a_setting_existed():
  assert RealNVPConfig().flow_kwargs() == {"num_filters": 64, "num_scales": 2, "num_blocks": 4,
                                           "batch_norm": True}
  assert RealNVPConfig(coupling="spline").flow_kwargs()["coupling"] == "spline"
  assert GlowConfig(coupling="additive").flow_kwargs() == {
      "num_filters": 512, "coupling": "additive", "num_levels": 3, "num_steps": 32,
      "coupling_network": "glow", "scan": True}
  assert "scan" not in GlowConfig(scan=False).flow_kwargs()  # Glow's layout before scanning.


def test_build_makes_the_flow_of_the_configuration():
  flow = RealNVPConfig(num_scales=2, num_filters=4, num_blocks=1, batch_norm=False).build(
      (8, 8, 1), dtype="float64", name="small")
  assert isinstance(flow, tfp_realnvp.RealNVP) and flow.name == "small"
  assert (flow.num_scales, flow.num_filters, flow.num_blocks, flow.batch_norm) == (2, 4, 1, False)
  assert flow.coupling == "affine" and flow.compute_dtype == "float64"
  glow = GlowConfig(num_levels=1, num_steps=1, num_filters=4, coupling="spline").build([4, 4, 3])
  assert isinstance(glow, tfp_realnvp.Glow) and glow.event_shape == (4, 4, 3)
  assert (glow.num_levels, glow.num_steps, glow.coupling) == (1, 1, "spline")
  with pytest.raises(ValueError, match=r"event_shape must be \(height, width, channels\)"):
    RealNVPConfig().build((8, 8))


def test_supports_the_shapes_its_depth_can_squeeze():
  real_nvp, glow = RealNVPConfig(num_scales=3), GlowConfig(num_levels=3)
  assert (real_nvp.squeeze_factor, real_nvp.depth) == (4, "num_scales=3")
  assert (glow.squeeze_factor, glow.depth) == (8, "num_levels=3")
  assert real_nvp.supports((12, 20, 1)) and not real_nvp.supports((12, 10, 1))
  assert glow.supports((8, 16, 3)) and not glow.supports((12, 12, 3))
  assert RealNVPConfig(num_scales=1).supports((7, 5, 1))


@pytest.mark.parametrize("config, setting", [
    (lambda: RealNVPConfig(num_scales=0), "num_scales"),
    (lambda: RealNVPConfig(num_filters="8"), "num_filters"),
    (lambda: RealNVPConfig(num_blocks=2.0), "num_blocks"),
    (lambda: GlowConfig(num_steps=True), "num_steps"),
    (lambda: GlowConfig(num_levels=-1), "num_levels"),
    (lambda: TrainingSettings(epochs=0), "epochs"),
    (lambda: TrainingSettings(batch_size=1.5), "batch_size"),
    (lambda: TrainingSettings(learning_rate=0.0), "learning_rate"),
    (lambda: TrainingSettings(learning_rate=float("nan")), "learning_rate"),
    (lambda: TrainingSettings(ema=1.0), "ema"),
    (lambda: TrainingSettings(warmup_steps=-1), "warmup_steps"),
    (lambda: TrainingSettings(clipnorm=0), "clipnorm"),
    (lambda: TrainingSettings(dequantization="gaussian"), "dequantization"),
], ids=lambda value: value if isinstance(value, str) else "")
def test_a_setting_out_of_range_is_an_error_naming_it(config, setting):
  with pytest.raises(errors.InvalidValueError, match=f"^{setting} must be"):
    config()


def test_training_settings_defaults_and_options():
  settings = TrainingSettings()
  assert (settings.epochs, settings.batch_size, settings.learning_rate, settings.ema,
          settings.warmup_steps, settings.clipnorm, settings.dequantization) == (
              10, 64, 1e-3, 0.0, 0, None, "uniform")
  assert TrainingSettings(ema=0.999, clipnorm=1, warmup_steps=0,
                          dequantization="variational").ema == 0.999


def test_check_names_looks_the_registered_names_up():
  RealNVPConfig(coupling="spline").check_names()
  GlowConfig(coupling_network="resnet").check_names()
  with pytest.raises(ValueError, match="Unknown coupling transform 'cubic'; the registered ones "
                                       "are 'affine', 'additive', 'spline'"):
    RealNVPConfig(coupling="cubic").check_names()
  with pytest.raises(ValueError, match="Unknown coupling network 'unet'; the registered ones "
                                       "are 'glow', 'resnet'"):
    GlowConfig(coupling_network="unet").check_names()
