"""Named configurations of Real NVP and Glow for the papers' image sizes, and the default choice.

A `Preset` pairs a typed flow configuration (`tfp_realnvp.configs`: `RealNVPConfig`,
`GlowConfig`, ...) with its `TrainingSettings`; presets are registered by name in `PRESETS`.
`resolve` is the one place where a preset, the data's default and overrides meet; everything
downstream (`build_flow`, `tfp_realnvp.training.train`, the run record) reads that object:

```python
preset = presets.resolve(None, (8, 8, 1), source="digits", num_filters=4, epochs=3)
flow = presets.build_flow(preset, (8, 8, 1))  # RealNVP: 2 scales, 4 filters, 2 blocks
glow = presets.build_flow(presets.resolve(None, (28, 28, 1), flow="glow"), (28, 28, 1))
```
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from tfp_realnvp import _registry
from tfp_realnvp import _validation
from tfp_realnvp import errors
from tfp_realnvp.configs import FLOWS
from tfp_realnvp.configs import TRAINING_SETTINGS
from tfp_realnvp.configs import FlowConfig
from tfp_realnvp.configs import GlowConfig
from tfp_realnvp.configs import RealNVPConfig
from tfp_realnvp.configs import TrainingSettings
from tfp_realnvp.configs import all_settings

if TYPE_CHECKING:
  from tfp_realnvp import dequantization
  from tfp_realnvp import flows

__all__ = ["PRESETS", "Preset", "build_dequantizer", "build_flow", "check_shape",
           "compatible_presets", "default_preset", "get_preset", "preset_for_shape",
           "register_preset", "resolve"]

PRESETS: _registry.Registry[Preset] = _registry.Registry("preset", "tfp_realnvp.presets")
"""The presets by name; `register_preset` (or a plugin's entry point) adds one."""


def _quoted(names: Iterable[str]) -> str:
  return ", ".join(repr(name) for name in names)


@dataclasses.dataclass(frozen=True)
class Preset:
  """A named flow configuration with the training settings that go with it.

  Attributes:
    name: the preset's name.
    image_size: `(height, width)` of the images the preset is meant for.
    flow: the architecture, a `FlowConfig` (`RealNVPConfig`, `GlowConfig`, ...).
    training: the `TrainingSettings`.
    description: one line saying where the configuration comes from.
  """

  name: str
  image_size: tuple[int, int]
  flow: FlowConfig
  training: TrainingSettings = TrainingSettings()
  description: str = ""

  @property
  def title(self) -> str:
    """The name of the preset's kind of flow, e.g. `"Real NVP"` or `"Glow"`."""
    return self.flow.title

  def describe(self) -> str:
    """The architecture in one line."""
    return self.flow.describe()

  def supports(self, event_shape: Sequence[int]) -> bool:
    """Whether the preset's depth can squeeze images of shape `(H, W, C)`."""
    return self.flow.supports(event_shape)

  def replace(self, **settings: Any) -> Preset:
    """A copy with new values of flow or training settings (`None` values ignored)."""
    settings = {key: value for key, value in settings.items() if value is not None}
    flow_names = set(self.flow.settings())
    flow = {key: value for key, value in settings.items() if key in flow_names}
    training = {key: value for key, value in settings.items() if key in TRAINING_SETTINGS}
    return dataclasses.replace(self, flow=dataclasses.replace(self.flow, **flow),
                               training=dataclasses.replace(self.training, **training))


def register_preset(preset: Preset) -> Preset:
  """Adds `preset` to `PRESETS` under its name (for `resolve`, `train` and the command line).

  Raises:
    InvalidValueError: the name is taken by another preset.
  """
  if not isinstance(preset, Preset):
    raise errors.InvalidTypeError(f"register_preset takes a Preset, got {type(preset).__name__}.")
  return PRESETS.register(preset.name, preset)


def _real_nvp(name: str, size: int, epochs: int, description: str, **flow: Any) -> Preset:
  return Preset(name, (size, size), RealNVPConfig(**flow), TrainingSettings(epochs=epochs),
                description)


def _glow(name: str, size: int, epochs: int, description: str, **flow: Any) -> Preset:
  return Preset(name, (size, size), GlowConfig(**flow), TrainingSettings(epochs=epochs),
                description)


for _preset in (
    _real_nvp("digits", 8, 20, "small network for the embedded 8x8 digits (ours, for CPUs)",
              num_scales=2, num_filters=32, num_blocks=2),
    Preset("mnist", (28, 28),
           RealNVPConfig(num_scales=3, num_filters=32, num_blocks=2, coupling="spline"),
           TrainingSettings(epochs=50, dequantization="variational"),
           "28x28 images: 3 scales, 2 blocks of 32, spline couplings, variational "
           "dequantization (ours, for CPUs)"),
    _real_nvp("cifar10", 32, 100, "the paper's CIFAR-10 model: 8 blocks of 64, one downscale",
              num_scales=2, num_filters=64, num_blocks=8),
    _real_nvp("imagenet32", 32, 20, "the paper's 32x32 ImageNet model: 4 blocks of 32",
              num_scales=4, num_filters=32, num_blocks=4),
    _real_nvp("imagenet64", 64, 10, "the paper's 64x64 ImageNet model: 2 blocks of 32",
              num_scales=5, num_filters=32, num_blocks=2),
    _real_nvp("celeba", 64, 20, "the paper's CelebA 64x64 model: 2 blocks of 32",
              num_scales=5, num_filters=32, num_blocks=2),
    _glow("glow_digits", 8, 20, "small Glow for the embedded 8x8 digits (ours)",
          num_levels=2, num_steps=4, num_filters=64),
    _glow("glow_mnist", 28, 50, "Glow for 28x28 images with ResNet coupling networks and spline "
          "couplings (ours, for CPUs)", num_levels=2, num_steps=8, num_filters=32,
          coupling_network="resnet", coupling="spline"),
    _glow("glow_cifar10", 32, 100, "the Glow paper's CIFAR-10 model: L=3, K=32, 512 channels",
          num_levels=3, num_steps=32, num_filters=512),
    _glow("glow_imagenet32", 32, 20, "the Glow paper's 32x32 ImageNet model: L=3, K=48, 512 "
          "channels", num_levels=3, num_steps=48, num_filters=512),
    _glow("glow_imagenet64", 64, 10, "the Glow paper's 64x64 ImageNet model: L=4, K=48, 512 "
          "channels", num_levels=4, num_steps=48, num_filters=512),
    _glow("glow_celeba", 64, 20, "CelebA 64x64: the Glow paper's CelebA-HQ K=32 and 512 "
          "channels with L=4 (ours)", num_levels=4, num_steps=32, num_filters=512),
):
  register_preset(_preset)

# The Real NVP preset chosen for each image size when no data set name says otherwise.
_SHAPE_DEFAULTS = {(8, 8): "digits", (28, 28): "mnist", (32, 32): "cifar10",
                   (64, 64): "imagenet64"}
# Data sources of `tfp_realnvp.data` whose preset differs from the default for their size.
_DATA_DEFAULTS = {"downsampled_imagenet/32x32": "imagenet32",
                  "downsampled_imagenet/64x64": "imagenet64", "celeb_a": "celeba"}


def _for_flow(name: str, flow: str | None) -> str:
  """The default preset `name` (a Real NVP preset) for a kind of flow (`None`: Real NVP)."""
  if flow is None or flow == "realnvp":
    return name
  FLOWS.lookup(flow)
  return f"{flow}_{name}"


def get_preset(preset: str | Preset) -> Preset:
  """The `Preset` named `preset` (a `Preset` is returned as it is).

  Raises:
    InvalidValueError: an unknown name; the message lists the registered ones.
  """
  if isinstance(preset, Preset):
    return preset
  return PRESETS.lookup(preset)


def compatible_presets(event_shape: Sequence[int], flow: str | None = None) -> list[str]:
  """Names of the presets (of the kind `flow`, or of any kind) that fit images `(H, W, C)`."""
  _validation.image_shape(event_shape)
  if flow is not None:
    FLOWS.lookup(flow)
  return [name for name, preset in PRESETS.items()
          if preset.supports(event_shape) and flow in (None, preset.flow.kind)]


def preset_for_shape(event_shape: Sequence[int], flow: str | None = None) -> str:
  """The name of the default preset for images of shape `(H, W, C)`.

  8x8 -> `"digits"`, 28x28 -> `"mnist"`, 32x32 -> `"cifar10"`, 64x64 -> `"imagenet64"`, for
  any number of channels; with `flow="glow"` the Glow presets of the same names with the
  prefix `glow_`.

  Raises:
    InvalidValueError: an unknown flow, or another image size; the message lists the sizes
      that have a default and the presets that would still fit the shape.
  """
  size = _validation.image_shape(event_shape)[:2]
  if size in _SHAPE_DEFAULTS:
    return _for_flow(_SHAPE_DEFAULTS[size], flow)
  sizes = ", ".join(f"{h}x{w}" for h, w in _SHAPE_DEFAULTS)
  fitting = compatible_presets(event_shape, flow)
  hint = (f"presets that fit this shape: {_quoted(fitting)}" if fitting
          else "no preset fits this shape (its height and width must be divisible by 2 at "
               "every squeeze)")
  raise errors.InvalidValueError(
      f"No default preset for images of size {size[0]}x{size[1]}; defaults exist for {sizes}. "
      f"Choose a preset explicitly ({hint}).")


def default_preset(source: Any, event_shape: Sequence[int],
                   flow: str | None = None) -> str:
  """The preset name for a data source whose images have shape `event_shape`.

  Data set names that share an image size with another data set pick their own preset
  (`"celeb_a"` -> `"celeba"`, `"downsampled_imagenet/32x32"` -> `"imagenet32"`; with
  `flow="glow"`, `"glow_celeba"`, ...); everything else goes through `preset_for_shape`.
  """
  if isinstance(source, str) and source in _DATA_DEFAULTS:
    return _for_flow(_DATA_DEFAULTS[source], flow)
  return preset_for_shape(event_shape, flow)


def check_shape(preset: str | Preset, event_shape: Sequence[int]) -> None:
  """Raises unless a preset (overrides applied) fits `(H, W, C)` images.

  Raises:
    InvalidValueError: an unknown preset, or a height or width that the preset's depth
      cannot squeeze; the message lists the presets of the same flow that fit the shape.
  """
  preset = get_preset(preset)
  if not preset.supports(event_shape):
    fitting = compatible_presets(event_shape, preset.flow.kind)
    raise errors.InvalidValueError(
        f"Preset {preset.name!r} with {preset.flow.depth} cannot be used for images of shape "
        f"{tuple(event_shape)}: height and width must be divisible by "
        f"{preset.flow.squeeze_factor}. {preset.title} presets that fit this shape: "
        f"{_quoted(fitting) or 'none'}.")


def resolve(preset: str | Preset | None, event_shape: Sequence[int],
            source: Any = None, flow: str | None = None, **overrides: Any) -> Preset:
  """The preset to use for images of shape `(H, W, C)`, with overrides applied and checked.

  Args:
    preset: a preset name, a `Preset`, or `None` for the default of the data and flow
      (`default_preset` of `source`, `event_shape` and `flow`).
    event_shape: `(height, width, channels)` of the images.
    source: the data source, used only to pick the default preset.
    flow: `None` (the preset's flow; Real NVP when `preset` is `None`) or a name in `FLOWS`
      (`"realnvp"`, `"glow"`); a named preset must be of this kind.
    **overrides: new values of the preset's flow settings (the fields of its `FlowConfig`,
      e.g. `num_scales` for Real NVP, `num_steps` for Glow) or of `TRAINING_SETTINGS`;
      `None` values are ignored.

  Returns:
    A `Preset` (keeping the preset's name) whose fields are the settings to use.

  Raises:
    InvalidValueError: an unknown preset, flow or setting, a preset of another flow than
      `flow`, a setting of another flow than the preset's, an image size without a default
      preset, a shape that the resolved depth cannot squeeze, or a setting out of range.
  """
  shape = _validation.image_shape(event_shape)
  if flow is not None:
    FLOWS.lookup(flow)
  settings = all_settings()
  unknown = sorted(set(overrides) - set(settings))
  if unknown:
    raise errors.InvalidValueError(
        f"Unknown preset settings {unknown}; the settings are {list(settings)}.")
  preset = get_preset(default_preset(source, shape, flow) if preset is None else preset)
  if flow is not None and preset.flow.kind != flow:
    same_kind = (name for name, p in PRESETS.items() if p.flow.kind == flow)
    raise errors.InvalidValueError(
        f"Preset {preset.name!r} is a {preset.title} preset, not a {FLOWS[flow].title} one; "
        f"choose a {FLOWS[flow].title} preset ({_quoted(same_kind)}) or leave the flow to the "
        "preset.")
  own = preset.flow.settings()
  for name, value in overrides.items():
    if value is None or name in own or name in TRAINING_SETTINGS:
      continue
    owners = " or ".join(config.title for config in FLOWS.values() if name in config.settings())
    raise errors.InvalidValueError(
        f"{name} is a {owners} setting; {preset.title} presets (such as {preset.name!r}) take "
        f"{', '.join(own)}.")
  preset = preset.replace(**overrides)
  preset.flow.check_names()
  check_shape(preset, shape)
  return preset


def build_flow(preset: str | Preset, event_shape: Sequence[int],
               **overrides: Any) -> flows.FlowLayer:
  """Builds the flow layer of a preset (`tfp_realnvp.RealNVP`, `tfp_realnvp.Glow`, ...).

  Args:
    preset: a preset name or a `Preset` (e.g. from `resolve`).
    event_shape: `(height, width, channels)` of the images.
    **overrides: settings of the preset's flow that replace the preset's, or other keyword
      arguments of the flow layer (e.g. `dtype`); `None` values are ignored.

  Raises:
    InvalidValueError: an unknown preset, a setting of another flow, or a shape that the
      preset's depth cannot squeeze.
  """
  settings = all_settings()
  chosen = {name: overrides.pop(name) for name in list(overrides) if name in settings}
  preset = resolve(preset, event_shape, **chosen)
  layer_kwargs = {key: value for key, value in overrides.items() if value is not None}
  return preset.flow.build(event_shape, **layer_kwargs)


def build_dequantizer(preset: Preset, event_shape: Sequence[int], **kwargs: Any
                      ) -> dequantization.VariationalDequantizer | None:
  """The dequantizer of a preset's model: `None` for uniform noise, else a new one.

  Returns `None` when `preset.training.dequantization` is `"uniform"` (the data pipeline adds
  the noise), else a `tfp_realnvp.VariationalDequantizer` for `event_shape` with its default
  architecture and `kwargs` (`keras.layers.Layer` arguments such as `dtype`).
  """
  if preset.training.dequantization == "uniform":
    return None
  from tfp_realnvp import dequantization  # pylint: disable=g-import-not-at-top
  return dequantization.VariationalDequantizer(_validation.image_shape(event_shape), **kwargs)
