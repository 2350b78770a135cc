"""Named Real NVP configurations for the image sizes of the paper, and the default choice.

A preset fixes the architecture of `tfp_realnvp.RealNVP` (number of scales, width and depth of
the coupling ResNets, batch normalisation) and the training settings that go with it. The
architectures follow Section 4.1 of Dinh, Sohl-Dickstein and Bengio (2017):

* CIFAR-10: 8 residual blocks of 64 feature maps, and the images are downscaled only once
  (`num_scales=2`: one squeeze and factor-out, then the final scale).
* 32x32 downsampled ImageNet: 4 residual blocks of 32 feature maps; 64x64 ImageNet and CelebA:
  2 residual blocks of 32 feature maps. For these the multi-scale recursion is repeated until
  the last coupling layers see a 4x4 image (`num_scales=4` for 32x32, `5` for 64x64).
* Batch normalisation bijectors after the couplings, batch size 64, Adam with learning rate
  1e-3 (and the L2 penalty 5e-5 of `FlowModel`).

Two presets are not in the paper:

* `"digits"`, for the embedded 8x8 scikit-learn digits, is deliberately small (2 scales, 2
  residual blocks of 32 feature maps) so that the default `tfp-realnvp train` finishes in 2 to 5
  minutes on two CPU cores. It trains on 1350 of the 1500 training images and validates on
  the other 150 (`data.ImageSource.training_splits`). Measured (`tfp-realnvp train` with its
  defaults, 2 AMD EPYC cores, 2026-11-30): 1 min 35 s in all on a quiet machine (about 4 min
  under load); the validation bits/dim fall to 5.12 by epoch 7, then wander between 4.89 and
  5.14 while the training bits/dim keep falling to 4.44 (the small training set overfits).
  The run keeps the best validation epoch (19, 4.890) and reaches 4.937 test bits/dim on the
  297 test images with it. A rerun reproduced every number of the history exactly (seeded
  weights, order and noise); only the time depends on the load.
* `"mnist"` (28x28) uses 3 scales (28 -> 14 -> 7, the most that 28 allows), 32 feature maps
  and 2 residual blocks: in 4-minute pilots on 2 CPU cores this learned fastest per minute of
  the sizes tried (see `benchmarks/RESULTS.md`); it is the configuration of
  `benchmarks/mnist_quality.py`.

Differences from the paper: the number of feature maps is the same at every scale (the paper
doubles it each time the resolution halves), and the epoch counts are starting points chosen
here, not the paper's schedules (which train until the validation likelihood stops improving).

| preset       | image size | num_scales | num_filters | num_blocks | batch_norm | epochs |
| ------------ | ---------- | ---------- | ----------- | ---------- | ---------- | ------ |
| `digits`     | 8x8        | 2          | 32          | 2          | yes        | 20     |
| `mnist`      | 28x28      | 3          | 32          | 2          | yes        | 50     |
| `cifar10`    | 32x32      | 2          | 64          | 8          | yes        | 100    |
| `imagenet32` | 32x32      | 4          | 32          | 4          | yes        | 20     |
| `imagenet64` | 64x64      | 5          | 32          | 2          | yes        | 10     |
| `celeba`     | 64x64      | 5          | 32          | 2          | yes        | 20     |

Every preset uses a batch size of 64 and a learning rate of 1e-3.

`resolve` is the one place where a preset, the data's default and overrides meet: it returns
the `Preset` with the overrides applied (checked against the image shape), and everything
downstream (`build_flow`, `tfp_realnvp.training.train`, `metrics.json`) reads its settings
from that one object.

```python
flow = presets.build_flow("cifar10", (32, 32, 3))
preset = presets.resolve(None, (8, 8, 1), source="digits", num_filters=4, epochs=3)
flow = presets.build_flow(preset, (8, 8, 1))  # 2 scales, 4 filters, 2 blocks
```
"""

import dataclasses
import types

from tfp_realnvp import _validation

__all__ = ["PRESETS", "Preset", "build_flow", "check_shape", "compatible_presets",
           "SETTINGS", "default_preset", "get_preset", "preset_for_shape", "resolve"]


@dataclasses.dataclass(frozen=True)
class Preset:
  """A Real NVP architecture plus recommended training settings.

  Attributes:
    name: the preset's name.
    image_size: `(height, width)` of the images the preset is meant for.
    num_scales: `RealNVP` number of scales.
    num_filters: feature maps of the coupling ResNets.
    num_blocks: residual blocks per coupling ResNet.
    batch_norm: whether batch-normalisation bijectors follow the couplings.
    batch_size: recommended global batch size.
    learning_rate: recommended Adam learning rate.
    epochs: default number of training epochs.
    description: one line saying where the configuration comes from.
  """

  name: str
  image_size: tuple
  num_scales: int
  num_filters: int
  num_blocks: int
  batch_norm: bool
  batch_size: int = 64
  learning_rate: float = 1e-3
  epochs: int = 10
  description: str = ""

  def flow_kwargs(self):
    """The keyword arguments of `tfp_realnvp.RealNVP` that this preset fixes."""
    return {"num_scales": self.num_scales, "num_filters": self.num_filters,
            "num_blocks": self.num_blocks, "batch_norm": self.batch_norm}

  def supports(self, event_shape):
    """Whether the preset's number of scales can squeeze images of shape `(H, W, C)`."""
    height, width = _height_width(event_shape)
    factor = 2 ** (self.num_scales - 1)
    return height % factor == 0 and width % factor == 0


def _make_presets():
  presets = [
      Preset("digits", (8, 8), num_scales=2, num_filters=32, num_blocks=2, batch_norm=True,
             epochs=20,
             description="small network for the embedded 8x8 digits (2 to 5 minutes on 2 CPU "
                         "cores; about 4.94 test bits/dim)"),
      Preset("mnist", (28, 28), num_scales=3, num_filters=32, num_blocks=2, batch_norm=True,
             epochs=50, description="28x28 images: 3 scales, 2 blocks of 32 feature maps"),
      Preset("cifar10", (32, 32), num_scales=2, num_filters=64, num_blocks=8, batch_norm=True,
             epochs=100, description="the paper's CIFAR-10 model: 8 blocks of 64, one downscale"),
      Preset("imagenet32", (32, 32), num_scales=4, num_filters=32, num_blocks=4,
             batch_norm=True, epochs=20,
             description="the paper's 32x32 ImageNet model: 4 blocks of 32, down to 4x4"),
      Preset("imagenet64", (64, 64), num_scales=5, num_filters=32, num_blocks=2,
             batch_norm=True, epochs=10,
             description="the paper's 64x64 ImageNet model: 2 blocks of 32, down to 4x4"),
      Preset("celeba", (64, 64), num_scales=5, num_filters=32, num_blocks=2, batch_norm=True,
             epochs=20, description="the paper's CelebA 64x64 model: 2 blocks of 32, down to 4x4"),
  ]
  return types.MappingProxyType({preset.name: preset for preset in presets})


PRESETS = _make_presets()
"""Read-only mapping of preset name -> `Preset`."""

# The preset chosen for each image size when no data set name says otherwise.
_SHAPE_DEFAULTS = {(8, 8): "digits", (28, 28): "mnist", (32, 32): "cifar10",
                   (64, 64): "imagenet64"}

# Data sources of `tfp_realnvp.data` whose preset differs from the default for their size.
_DATA_DEFAULTS = {"downsampled_imagenet/32x32": "imagenet32",
                  "downsampled_imagenet/64x64": "imagenet64", "celeb_a": "celeba"}


def _height_width(event_shape):
  return _validation.image_shape(event_shape)[:2]


def _names():
  return ", ".join(repr(name) for name in PRESETS)


def get_preset(preset):
  """Returns the `Preset` named `preset` (a `Preset` is returned as it is).

  Raises:
    ValueError: for an unknown name; the message lists the valid ones.
  """
  if isinstance(preset, Preset):
    return preset
  if not isinstance(preset, str) or preset not in PRESETS:
    raise ValueError(f"Unknown preset {preset!r}; the presets are {_names()}.")
  return PRESETS[preset]


def compatible_presets(event_shape):
  """Names of the presets whose number of scales fits images of shape `(H, W, C)`."""
  _height_width(event_shape)
  return [name for name, preset in PRESETS.items() if preset.supports(event_shape)]


def preset_for_shape(event_shape):
  """Returns the name of the default preset for images of shape `(H, W, C)`.

  8x8 -> `"digits"`, 28x28 -> `"mnist"`, 32x32 -> `"cifar10"`, 64x64 -> `"imagenet64"`, for
  any number of channels.

  Raises:
    ValueError: for another image size; the message lists the sizes that have a default and
      the presets that would still fit the shape (pass one of them explicitly).
  """
  size = _height_width(event_shape)
  if size in _SHAPE_DEFAULTS:
    return _SHAPE_DEFAULTS[size]
  sizes = ", ".join(f"{h}x{w}" for h, w in _SHAPE_DEFAULTS)
  fitting = compatible_presets(event_shape)
  hint = (f"presets that fit this shape: {', '.join(repr(n) for n in fitting)}" if fitting
          else "no preset fits this shape (its height and width must be even at every scale "
               "but the last)")
  raise ValueError(f"No default preset for images of size {size[0]}x{size[1]}; defaults exist "
                   f"for {sizes}. Choose a preset explicitly ({hint}).")


def default_preset(source, event_shape):
  """The preset for a data source of `tfp_realnvp.data` whose images have shape `event_shape`.

  Known data set names that share an image size with another data set pick their own preset
  (`"celeb_a"` -> `"celeba"`, `"downsampled_imagenet/32x32"` -> `"imagenet32"`); everything
  else goes through `preset_for_shape`.
  """
  if isinstance(source, str) and source in _DATA_DEFAULTS:
    return _DATA_DEFAULTS[source]
  return preset_for_shape(event_shape)


def check_shape(preset, event_shape):
  """Raises unless a preset (a name or a `Preset`, overrides applied) fits `(H, W, C)` images.

  Raises:
    ValueError: for an unknown preset, or a height or width that the preset's number of scales
      cannot squeeze; the message lists the presets that fit the shape.
  """
  preset = get_preset(preset)
  if not preset.supports(event_shape):
    fitting = compatible_presets(event_shape)
    factor = 2 ** (preset.num_scales - 1)
    raise ValueError(
        f"Preset {preset.name!r} with num_scales={preset.num_scales} cannot be used for images "
        f"of shape {tuple(event_shape)}: height and width must be divisible by {factor}. "
        f"Presets that fit this shape: {', '.join(repr(n) for n in fitting) or 'none'}.")


# The fields of `Preset` that `resolve` can override (all but the name and the description).
SETTINGS = ("num_scales", "num_filters", "num_blocks", "batch_norm", "batch_size",
            "learning_rate", "epochs")


def resolve(preset, event_shape, source=None, **overrides):
  """The preset to use for images of shape `(H, W, C)`, with overrides applied and checked.

  Args:
    preset: a preset name, a `Preset`, or `None` for the default of the data (`default_preset`
      of `source` and `event_shape`).
    event_shape: `(height, width, channels)` of the images.
    source: the data source, used only to pick the default preset.
    **overrides: new values of any of `SETTINGS` (`num_scales`, `num_filters`, `num_blocks`,
      `batch_norm`, `batch_size`, `learning_rate`, `epochs`); `None` values are ignored.

  Returns:
    A `Preset` (keeping the preset's name) whose fields are the settings to use.

  Raises:
    ValueError: for an unknown preset or setting, an image size without a default preset, or
      a shape that the resolved number of scales cannot squeeze.
  """
  shape = _validation.image_shape(event_shape)
  unknown = sorted(set(overrides) - set(SETTINGS))
  if unknown:
    raise ValueError(f"Unknown preset settings {unknown}; the settings are {list(SETTINGS)}.")
  preset = get_preset(default_preset(source, shape) if preset is None else preset)
  for name in ("num_scales", "num_filters", "num_blocks", "batch_size", "epochs"):
    _validation.positive_int(overrides.get(name), name, allow_none=True)
  preset = dataclasses.replace(
      preset, **{name: value for name, value in overrides.items() if value is not None})
  check_shape(preset, shape)
  return preset


def build_flow(preset, event_shape, **overrides):
  """Builds the `tfp_realnvp.RealNVP` flow of a preset for images of shape `(H, W, C)`.

  Args:
    preset: a preset name (see `PRESETS`) or a `Preset` (e.g. from `resolve`).
    event_shape: `(height, width, channels)` of the images.
    **overrides: `RealNVP` keyword arguments that replace the preset's (`num_scales`,
      `num_filters`, `num_blocks`, `batch_norm`, or any other argument such as `dtype`);
      arguments whose value is `None` are ignored.

  Returns:
    A new `tfp_realnvp.RealNVP` layer.

  Raises:
    ValueError: for an unknown preset, or a shape that the preset's number of scales cannot
      squeeze (the message lists the presets that fit the shape).
  """
  from tfp_realnvp import flows  # pylint: disable=g-import-not-at-top

  settings = {name: overrides.pop(name) for name in list(overrides) if name in SETTINGS}
  preset = resolve(preset, event_shape, **settings)
  kwargs = preset.flow_kwargs()
  kwargs.update({key: value for key, value in overrides.items() if value is not None})
  return flows.RealNVP(_validation.image_shape(event_shape), **kwargs)
