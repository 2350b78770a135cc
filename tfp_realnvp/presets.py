"""Named Real NVP and Glow configurations for the image sizes of the papers, and the default choice.

A preset names a kind of flow (`flow`: `"realnvp"` for `tfp_realnvp.RealNVP`, `"glow"` for
`tfp_realnvp.Glow`), fixes its architecture and the training settings that go with it.

Real NVP presets: number of scales, width and depth of the coupling ResNets, batch
normalisation. The architectures follow Section 4.1 of Dinh, Sohl-Dickstein and Bengio (2017):

* CIFAR-10: 8 residual blocks of 64 feature maps, and the images are downscaled only once
  (`num_scales=2`: one squeeze and factor-out, then the final scale).
* 32x32 downsampled ImageNet: 4 residual blocks of 32 feature maps; 64x64 ImageNet and CelebA:
  2 residual blocks of 32 feature maps. For these the multi-scale recursion is repeated until
  the last coupling layers see a 4x4 image (`num_scales=4` for 32x32, `5` for 64x64).
* Batch normalisation bijectors after the couplings, batch size 64, Adam with learning rate
  1e-3 (and the L2 penalty 5e-5 of `FlowModel`).

Two Real NVP presets are not in the paper:

* `"digits"`, for the embedded 8x8 scikit-learn digits, is deliberately small (2 scales, 2
  residual blocks of 32 feature maps) so that the default `tfp-realnvp train` finishes in 2 to 5
  minutes on two CPU cores. It trains on 1350 of the 1500 training images and validates on
  the other 150 (`data.ImageSource.training_splits`). Measured (`tfp-realnvp train` with its
  defaults, 2 AMD EPYC cores, 2026-11-30, with `FusedAdam`): 1 min 7 s in all on a quiet
  machine (about 4 min under load, measured with Keras's Adam); the validation bits/dim fall to
  5.13 by epoch 7, then wander between 4.90 and 5.15 while the training bits/dim keep falling to
  4.45 (the small training set overfits). The run keeps the best validation epoch (18, 4.901)
  and reaches 4.928 test bits/dim on the 297 test images with it. A rerun reproduced every
  number of the history exactly (seeded weights, order and noise); only the time depends on
  the load.
* `"mnist"` (28x28) uses 3 scales (28 -> 14 -> 7, the most that 28 allows), 32 feature maps
  and 2 residual blocks: in 4-minute pilots on 2 CPU cores this learned fastest per minute of
  the sizes tried (see `benchmarks/RESULTS.md`); it is the configuration of
  `benchmarks/mnist_quality.py`. Its couplings are rational-quadratic splines
  (`coupling="spline"`), the best recipe measured on MNIST: 1.316 test bits/dim after 10
  training minutes on one AMD EPYC core against 1.617 for affine couplings run beside it, and
  1.251 after 30 minutes and 1.146 after 2 hours (affine: 1.475 and 1.376 on two cores),
  with no non-finite step (benchmarks/RESULTS.md, 2026-11-30). `coupling="affine"` gives the
  paper's couplings.

Differences from the paper: the number of feature maps is the same at every scale (the paper
doubles it each time the resolution halves), and the epoch counts are starting points chosen
here, not the paper's schedules (which train until the validation likelihood stops improving).

Glow presets (`glow_<size name>`): number of levels `L` (`num_levels`; Glow squeezes at every
level, so height and width must be divisible by `2 ** L`), steps of flow per level `K`
(`num_steps`), width of the coupling networks (`num_filters`) and their kind
(`coupling_network`: Glow's own network, or Real NVP's ResNet). From Kingma and Dhariwal
(2018), Section 5 and the hyperparameters of its appendix:

* `"glow_cifar10"`: the paper's CIFAR-10 model, L=3, K=32, 512 channels (3.35 test bits/dim).
* `"glow_imagenet32"` (L=3, K=48, 512) and `"glow_imagenet64"` (L=4, K=48, 512): the paper's
  downsampled ImageNet models.

Ours, not in the paper:

* `"glow_celeba"` (64x64): the paper's CelebA-HQ model is 256x256 with L=6; for 64x64 images
  this keeps its K=32 and 512 channels and uses L=4 (down to 4x4, as `glow_imagenet64`).
* `"glow_digits"` (8x8) and `"glow_mnist"` (28x28; with L=2: 28 -> 14 -> 7) are small
  enough for CPUs (sizes in the table). `glow_mnist`'s steps couple with Real NVP's ResNets (4
  blocks of 32 feature maps, batch-normalised) and rational-quadratic splines: 1.637 / 1.423
  test bits/dim after 10 / 30 training minutes on one core (1.573 / 1.347 on two), against
  1.848 / 1.594 for Glow's own networks with affine couplings (16 steps of 64 filters, this
  preset until 2026-11-30; benchmarks/RESULTS.md). `glow_digits` is a starting point, not
  measured.

The paper trains with Adam at learning rate 1e-3 after a linear warm-up, with larger batches
and until convergence; the Glow presets keep the batch size 64 and learning rate 1e-3 (no
warm-up) of the Real NVP presets and their epoch counts, which are starting points.

| preset            | flow     | size  | architecture                                | epochs |
| ----------------- | -------- | ----- | ------------------------------------------- | ------ |
| `digits`          | Real NVP | 8x8   | 2 scales, 32 filters, 2 blocks, BN          | 20     |
| `mnist`           | Real NVP | 28x28 | 3 scales, 32 filters, 2 blocks, BN, splines | 50     |
| `cifar10`         | Real NVP | 32x32 | 2 scales, 64 filters, 8 blocks, BN          | 100    |
| `imagenet32`      | Real NVP | 32x32 | 4 scales, 32 filters, 4 blocks, BN          | 20     |
| `imagenet64`      | Real NVP | 64x64 | 5 scales, 32 filters, 2 blocks, BN          | 10     |
| `celeba`          | Real NVP | 64x64 | 5 scales, 32 filters, 2 blocks, BN          | 20     |
| `glow_digits`     | Glow     | 8x8   | 2 levels, 4 steps, 64 filters (ours)        | 20     |
| `glow_mnist`      | Glow     | 28x28 | 2 levels, 8 steps, 32 filters (ours) *      | 50     |
| `glow_cifar10`    | Glow     | 32x32 | 3 levels, 32 steps, 512 filters             | 100    |
| `glow_imagenet32` | Glow     | 32x32 | 3 levels, 48 steps, 512 filters             | 20     |
| `glow_imagenet64` | Glow     | 64x64 | 4 levels, 48 steps, 512 filters             | 10     |
| `glow_celeba`     | Glow     | 64x64 | 4 levels, 32 steps, 512 filters (ours)      | 20     |

(BN: batch-normalisation bijectors after the couplings. `mnist` also dequantizes with a learned
`VariationalDequantizer`, below.)

Every preset uses a batch size of 64 and a learning rate of 1e-3; every Glow preset Glow's own
coupling network (`coupling_network="glow"`) and affine couplings but `glow_mnist` (*: ResNet
coupling networks of 4 blocks, spline couplings).

Optimizer settings (`TRAINING_SETTINGS`, built into Adam by `tfp_realnvp.training.make_optimizer`),
every one off by default in every preset:

* `warmup_steps` (default 0): linear learning-rate warm-up from 0 over that many steps.
* `clipnorm` (default `None`): clip the global norm of all the gradients (Keras's
  `global_clipnorm`).
* `ema` (default 0): momentum of Keras's exponential moving average of the weights, which the
  run validates, samples, tests and saves (`tfp_realnvp.training.train`).

Dequantization (`dequantization`, a training setting too): `"uniform"` (uniform noise added by
the data pipeline, Real NVP's bound; the default of every preset but `mnist`) or
`"variational"` (a `tfp_realnvp.VariationalDequantizer` with its default architecture, 4
couplings of 32 filters, trained with the flow; the bits/dim are then the variational bound of
Flow++, see `build_dequantizer`). The `mnist` preset dequantizes variationally: on MNIST, one
core each, 30 training minutes, its test bound was 1.277 / 1.218 at 10 / 30 minutes against
1.316 / 1.251 with uniform noise, although a step costs about 1.5x as much
(benchmarks/RESULTS.md, 2026-11-30).

Why off: in short pilots on the embedded digits (`tfp-realnvp train` with one option changed,
pinned to one CPU core, about 5 minutes each under load, 2026-11-30) none of them helped, and
the EMA hurt.

* Baseline `digits` (20 epochs, 480 steps): best validation 4.886 (epoch 19), test 4.939.
* `--warmup-steps 200`: slower start (validation 7.27 after 4 epochs against 5.69), then the
  same level: best validation 4.897 (epoch 18), test 4.908, within the epoch-to-epoch wander
  of the baseline (4.89 to 5.05). No non-finite step with or without it at 1e-3 (every
  epoch's mean loss finite).
* `--ema 0.99`: the raw weights trained as in the baseline (training bits/dim within 0.004
  of it every epoch), but the averaged weights validated at 7.75, 8.92, ..., 49.2 (epoch 6),
  ..., 5.37 (epoch 20): the batch-norm moving statistics, which Keras does not average, are
  those of the raw weights and do not fit the averaged ones while the weights move fast.
  Test 5.388.
* Glow (`--flow glow --epochs 10`, no batch norm): `--ema 0.99` stayed behind the raw weights
  all along (validation 5.934 against 5.733 after 220 steps; test 5.931 against 5.736): Keras
  starts the average at the first step's weights, without bias correction, so after `t` steps
  they still weigh `ema ** t` (11 % here).

So EMA is for long runs (many times `1 / (1 - ema)` steps) and, with batch normalisation, only
where the statistics can be re-estimated for the averaged weights; `--clipnorm` was not needed
at the default learning rate. On MNIST (`benchmarks/mnist_quality.py`, one core, 2026-11-30)
the `mnist` preset trained 7,890 steps in 2 hours at the default learning rate without a
non-finite step, and `--ema 0.999` tested at 77.6 / 37.9 bits/dim after 10 / 30 minutes (3.07
at 30 with the statistics re-estimated for the averaged weights) against 1.316 / 1.251
without: far too few steps for that average. From the `mnist` recipe (one run each, training
bound of the (up to 100) steps before the 10 / 30-minute marks: 1.273 / 1.173), 100 warm-up
steps gave 1.278 / 1.180, `--clipnorm 2000` (the gradients' global norm is 1,200 to 10,500 in
the first 150 steps) 1.281 / 1.175, and both 1.301 / 1.180: none helped. (Their test figures
spread far more, 1.158 to 1.304 at 30 minutes, with the batch-norm moving averages of the
moment.)

`resolve` is the one place where a preset, the data's default and overrides meet: it returns
the `Preset` with the overrides applied (checked against the flow and the image shape), and
everything downstream (`build_flow`, `tfp_realnvp.training.train`, `metrics.json`) reads its
settings from that one object. The default for a data set is a Real NVP preset unless
`flow="glow"` asks for the Glow one, the Real NVP preset's name with the prefix `glow_`.

```python
flow = presets.build_flow("cifar10", (32, 32, 3))
preset = presets.resolve(None, (8, 8, 1), source="digits", num_filters=4, epochs=3)
flow = presets.build_flow(preset, (8, 8, 1))  # 2 scales, 4 filters, 2 blocks
glow = presets.build_flow(presets.resolve(None, (28, 28, 1), flow="glow"), (28, 28, 1))
```
"""

import dataclasses
import math
import numbers
import types

from tfp_realnvp import errors
from tfp_realnvp import _validation

__all__ = ["DEQUANTIZATIONS", "FLOWS", "FLOW_SETTINGS", "PRESETS", "Preset", "SETTINGS",
           "TRAINING_SETTINGS", "build_dequantizer", "build_flow", "check_shape",
           "compatible_presets", "default_preset", "get_preset", "preset_for_shape", "resolve"]

FLOWS = types.MappingProxyType({"realnvp": "Real NVP", "glow": "Glow"})
"""Read-only mapping of flow kind (`Preset.flow`) -> its name in titles and messages."""

FLOW_SETTINGS = types.MappingProxyType({
    "realnvp": ("num_scales", "num_filters", "num_blocks", "batch_norm", "coupling"),
    "glow": ("num_levels", "num_steps", "num_filters", "coupling_network", "coupling")})
"""Read-only mapping of flow kind -> the `Preset` fields that are its flow's keyword arguments."""

TRAINING_SETTINGS = ("batch_size", "learning_rate", "epochs", "ema", "warmup_steps", "clipnorm",
                     "dequantization")
"""The `Preset` fields of the training run, the same for every kind of flow."""

SETTINGS = tuple(dict.fromkeys(
    [name for names in FLOW_SETTINGS.values() for name in names] + list(TRAINING_SETTINGS)))
"""The fields of `Preset` that `resolve` can override: the union of `FLOW_SETTINGS` (each
preset takes those of its flow) and `TRAINING_SETTINGS`."""

DEQUANTIZATIONS = ("uniform", "variational")
"""The values of the `dequantization` setting."""

# The integer settings, checked by `resolve`.
_COUNTS = ("num_scales", "num_filters", "num_blocks", "num_levels", "num_steps", "batch_size",
           "epochs")


def _height_width(event_shape):
  return _validation.image_shape(event_shape)[:2]


def _quoted(names):
  return ", ".join(repr(name) for name in names)


def _check_flow(flow):
  if flow not in FLOWS:
    raise errors.InvalidValueError(f"Unknown flow {flow!r}; the flows are {_quoted(FLOWS)}.")


def _is_real(value):
  return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _check_optimizer_settings(ema, warmup_steps, clipnorm):
  """Raises for an EMA momentum, warm-up or gradient clip out of range, naming the problem."""
  if not (_is_real(ema) and 0 <= ema < 1):
    raise errors.InvalidValueError(
        f"ema must be the momentum of the weights' moving average, a number in "
        f"[0, 1) (0 turns the averaging off), got {ema!r}.")
  if not (_validation.is_integer(warmup_steps) and warmup_steps >= 0):
    raise errors.InvalidValueError(
        f"warmup_steps must be a non-negative integer (0 turns the warm-up off), "
        f"got {warmup_steps!r}.")
  if clipnorm is not None and not (_is_real(clipnorm) and clipnorm > 0):
    raise errors.InvalidValueError(
        f"clipnorm must be a positive number (the largest global norm of the "
        f"gradients) or None (no clipping), got {clipnorm!r}.")


@dataclasses.dataclass(frozen=True)
class Preset:
  """A Real NVP or Glow architecture plus recommended training settings.

  The architecture is the fields of `FLOW_SETTINGS[flow]`; those of the other flow are `None`.

  Attributes:
    name: the preset's name.
    image_size: `(height, width)` of the images the preset is meant for.
    num_scales: `RealNVP` number of scales (Real NVP).
    num_filters: feature maps of the coupling networks (both flows).
    num_blocks: residual blocks per coupling ResNet (Real NVP).
    batch_norm: whether batch-normalisation bijectors follow the couplings (Real NVP).
    batch_size: recommended global batch size.
    learning_rate: recommended Adam learning rate.
    epochs: default number of training epochs.
    description: one line saying where the configuration comes from.
    flow: the kind of flow, a key of `FLOWS`: `"realnvp"` or `"glow"`.
    num_levels: `Glow` number of levels `L` (Glow).
    num_steps: `Glow` steps of flow per level `K` (Glow).
    coupling_network: `Glow` coupling network, `"glow"` or `"resnet"` (Glow).
    coupling: the couplings' elementwise transform, `"affine"` (every preset but `mnist`)
      or `"spline"` (rational-quadratic splines of 8 bins on `[-3, 3]`; both flows).
    ema: momentum of the exponential moving average of the weights that the run evaluates,
      samples and saves (Keras's `use_ema`), in [0, 1); 0 (the default) turns it off.
    warmup_steps: steps of the linear learning-rate warm-up from 0 to `learning_rate`; 0 (the
      default) turns it off.
    clipnorm: the global norm (over all the gradients) above which the gradients are scaled
      down (Keras's `global_clipnorm`); `None` (the default) turns it off.
    dequantization: `"uniform"` (the default: uniform noise in the data pipeline) or
      `"variational"` (a learned `tfp_realnvp.VariationalDequantizer`, `build_dequantizer`).

  Raises:
    ValueError: for an unknown `flow` or `dequantization`, architecture fields that do not
      match the flow, or an `ema`, `warmup_steps` or `clipnorm` out of range.
  """

  name: str
  image_size: tuple
  num_scales: int = None
  num_filters: int = None
  num_blocks: int = None
  batch_norm: bool = None
  batch_size: int = 64
  learning_rate: float = 1e-3
  epochs: int = 10
  description: str = ""
  flow: str = "realnvp"
  num_levels: int = None
  num_steps: int = None
  coupling_network: str = None
  coupling: str = "affine"
  ema: float = 0.0
  warmup_steps: int = 0
  clipnorm: float = None
  dequantization: str = "uniform"

  def __post_init__(self):
    _check_optimizer_settings(self.ema, self.warmup_steps, self.clipnorm)
    if self.dequantization not in DEQUANTIZATIONS:
      raise errors.InvalidValueError(
          f"dequantization must be one of {_quoted(DEQUANTIZATIONS)}, got "
          f"{self.dequantization!r}.")
    _check_flow(self.flow)
    own = FLOW_SETTINGS[self.flow]
    missing = [name for name in own if getattr(self, name) is None]
    foreign = [name for name in SETTINGS
               if name not in own and name not in TRAINING_SETTINGS
               and getattr(self, name) is not None]
    if missing or foreign:
      raise errors.InvalidValueError(
          f"Preset {self.name!r}: a {self.title} preset sets {', '.join(own)} "
          f"and no other flow settings (missing: {missing}, foreign: {foreign}).")

  @property
  def title(self):
    """The name of the preset's kind of flow, `"Real NVP"` or `"Glow"`."""
    return FLOWS[self.flow]

  def flow_kwargs(self):
    """The keyword arguments of `tfp_realnvp.RealNVP` or `tfp_realnvp.Glow` of this preset.

    `coupling` is left out when it is the flows' default `"affine"`, so that the run records
    (`metrics.json`, backups) of affine flows keep the architecture they had before spline
    couplings existed, and their interrupted runs still resume.
    """
    return {name: getattr(self, name) for name in FLOW_SETTINGS[self.flow]
            if name != "coupling" or self.coupling != "affine"}

  def describe(self):
    """The architecture in one line, e.g. `"3 scales, 32 filters, 2 blocks, batch norm on"`."""
    couplings = "" if self.coupling == "affine" else f", {self.coupling} couplings"
    if self.flow == "glow":
      return (f"{_count(self.num_levels, 'level')}, {_count(self.num_steps, 'step')}, "
              f"{_count(self.num_filters, 'filter')}, {self.coupling_network} coupling "
              f"networks{couplings}")
    return (f"{_count(self.num_scales, 'scale')}, {_count(self.num_filters, 'filter')}, "
            f"{_count(self.num_blocks, 'block')}, batch norm "
            f"{'on' if self.batch_norm else 'off'}{couplings}")

  def supports(self, event_shape):
    """Whether the preset's depth can squeeze images of shape `(H, W, C)`.

    Real NVP squeezes at every scale but the last (`H` and `W` divisible by
    `2 ** (num_scales - 1)`), Glow at every level (divisible by `2 ** num_levels`).
    """
    height, width = _height_width(event_shape)
    _, factor = _depth(self)
    return height % factor == 0 and width % factor == 0


def _count(number, noun):
  """`"1 level"`, `"2 levels"`."""
  return f"{number} {noun}{'' if number == 1 else 's'}"


def _depth(preset):
  """`(setting, divisor)`: a preset's depth setting, and what height and width must divide by."""
  if preset.flow == "glow":  # Glow squeezes at every level.
    return f"num_levels={preset.num_levels}", 2 ** preset.num_levels
  return f"num_scales={preset.num_scales}", 2 ** (preset.num_scales - 1)


def _make_presets():
  def glow(name, image_size, num_levels, num_steps, num_filters, epochs, description,
           coupling_network="glow", coupling="affine"):
    return Preset(name, image_size, flow="glow", num_levels=num_levels, num_steps=num_steps,
                  num_filters=num_filters, coupling_network=coupling_network,
                  coupling=coupling, epochs=epochs, description=description)

  presets = [
      Preset("digits", (8, 8), num_scales=2, num_filters=32, num_blocks=2, batch_norm=True,
             epochs=20,
             description="small network for the embedded 8x8 digits (2 to 5 minutes on 2 CPU "
                         "cores; about 4.93 test bits/dim)"),
      Preset("mnist", (28, 28), num_scales=3, num_filters=32, num_blocks=2, batch_norm=True,
             coupling="spline", dequantization="variational", epochs=50,
             description="28x28 images: 3 scales, 2 blocks of 32 feature maps, spline "
                         "couplings, variational dequantization"),
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
      glow("glow_digits", (8, 8), num_levels=2, num_steps=4, num_filters=64, epochs=20,
           description="small Glow for the embedded 8x8 digits (ours)"),
      glow("glow_mnist", (28, 28), num_levels=2, num_steps=8, num_filters=32, epochs=50,
           coupling_network="resnet", coupling="spline",
           description="Glow for 28x28 images, sized for CPUs: ResNet coupling networks, "
                       "spline couplings (ours)"),
      glow("glow_cifar10", (32, 32), num_levels=3, num_steps=32, num_filters=512, epochs=100,
           description="the Glow paper's CIFAR-10 model: L=3, K=32, 512 channels"),
      glow("glow_imagenet32", (32, 32), num_levels=3, num_steps=48, num_filters=512, epochs=20,
           description="the Glow paper's 32x32 ImageNet model: L=3, K=48, 512 channels"),
      glow("glow_imagenet64", (64, 64), num_levels=4, num_steps=48, num_filters=512, epochs=10,
           description="the Glow paper's 64x64 ImageNet model: L=4, K=48, 512 channels"),
      glow("glow_celeba", (64, 64), num_levels=4, num_steps=32, num_filters=512, epochs=20,
           description="CelebA 64x64: the Glow paper's CelebA-HQ K=32, 512 channels, L=4 "
                       "(ours)"),
  ]
  return types.MappingProxyType({preset.name: preset for preset in presets})


PRESETS = _make_presets()
"""Read-only mapping of preset name -> `Preset`."""

# The Real NVP preset chosen for each image size when no data set name says otherwise.
_SHAPE_DEFAULTS = {(8, 8): "digits", (28, 28): "mnist", (32, 32): "cifar10",
                   (64, 64): "imagenet64"}

# Data sources of `tfp_realnvp.data` whose preset differs from the default for their size.
_DATA_DEFAULTS = {"downsampled_imagenet/32x32": "imagenet32",
                  "downsampled_imagenet/64x64": "imagenet64", "celeb_a": "celeba"}


def _for_flow(name, flow):
  """The default preset `name` (a Real NVP preset) for a kind of flow (`None`: Real NVP)."""
  if flow is None or flow == "realnvp":
    return name
  _check_flow(flow)
  return f"{flow}_{name}"


def get_preset(preset):
  """Returns the `Preset` named `preset` (a `Preset` is returned as it is).

  Raises:
    ValueError: for an unknown name; the message lists the valid ones.
  """
  if isinstance(preset, Preset):
    return preset
  if not isinstance(preset, str) or preset not in PRESETS:
    raise errors.InvalidValueError(
        f"Unknown preset {preset!r}; the presets are {_quoted(PRESETS)}.")
  return PRESETS[preset]


def compatible_presets(event_shape, flow=None):
  """Names of the presets (of the kind `flow`, or of any kind) that fit images `(H, W, C)`."""
  _height_width(event_shape)
  if flow is not None:
    _check_flow(flow)
  return [name for name, preset in PRESETS.items()
          if preset.supports(event_shape) and flow in (None, preset.flow)]


def preset_for_shape(event_shape, flow=None):
  """Returns the name of the default preset for images of shape `(H, W, C)`.

  8x8 -> `"digits"`, 28x28 -> `"mnist"`, 32x32 -> `"cifar10"`, 64x64 -> `"imagenet64"`, for
  any number of channels; with `flow="glow"` the Glow presets of the same names with the
  prefix `glow_` (`"glow_digits"`, ...).

  Raises:
    ValueError: for an unknown flow, or another image size; the message lists the sizes that
      have a default and the presets that would still fit the shape (pass one explicitly).
  """
  size = _height_width(event_shape)
  if size in _SHAPE_DEFAULTS:
    return _for_flow(_SHAPE_DEFAULTS[size], flow)
  sizes = ", ".join(f"{h}x{w}" for h, w in _SHAPE_DEFAULTS)
  fitting = compatible_presets(event_shape, flow)
  hint = (f"presets that fit this shape: {_quoted(fitting)}" if fitting
          else "no preset fits this shape (its height and width must be divisible by 2 at "
               "every squeeze)")
  raise errors.InvalidValueError(
      f"No default preset for images of size {size[0]}x{size[1]}; defaults exist "
      f"for {sizes}. Choose a preset explicitly ({hint}).")


def default_preset(source, event_shape, flow=None):
  """The preset for a data source of `tfp_realnvp.data` whose images have shape `event_shape`.

  Known data set names that share an image size with another data set pick their own preset
  (`"celeb_a"` -> `"celeba"`, `"downsampled_imagenet/32x32"` -> `"imagenet32"`, and with
  `flow="glow"` -> `"glow_celeba"`, `"glow_imagenet32"`); everything else goes through
  `preset_for_shape`.
  """
  if isinstance(source, str) and source in _DATA_DEFAULTS:
    return _for_flow(_DATA_DEFAULTS[source], flow)
  return preset_for_shape(event_shape, flow)


def check_shape(preset, event_shape):
  """Raises unless a preset (a name or a `Preset`, overrides applied) fits `(H, W, C)` images.

  Raises:
    ValueError: for an unknown preset, or a height or width that the preset's depth cannot
      squeeze; the message lists the presets of the same flow that fit the shape.
  """
  preset = get_preset(preset)
  if not preset.supports(event_shape):
    fitting = compatible_presets(event_shape, preset.flow)
    depth, factor = _depth(preset)
    raise errors.InvalidValueError(
        f"Preset {preset.name!r} with {depth} cannot be used for images "
        f"of shape {tuple(event_shape)}: height and width must be divisible by {factor}. "
        f"{preset.title} presets that fit this shape: {_quoted(fitting) or 'none'}.")


def _check_overrides(preset, overrides):
  """Raises for an override that the preset's flow does not take, naming the flow that does."""
  own = FLOW_SETTINGS[preset.flow]
  for name, value in overrides.items():
    if value is None or name in own or name in TRAINING_SETTINGS:
      continue
    owners = " or ".join(FLOWS[flow] for flow, names in FLOW_SETTINGS.items() if name in names)
    raise errors.InvalidValueError(f"{name} is a {owners} setting; {preset.title} presets (such as "
                                   f"{preset.name!r}) take {', '.join(own)}.")
  coupling_network = overrides.get("coupling_network")
  if coupling_network is not None:
    from tfp_realnvp import glow  # pylint: disable=g-import-not-at-top

    if coupling_network not in glow.COUPLING_NETWORKS:
      raise errors.InvalidValueError(
          f"coupling_network must be one of {_quoted(glow.COUPLING_NETWORKS)}, "
          f"got {coupling_network!r}.")
  coupling = overrides.get("coupling")
  if coupling is not None:
    from tfp_realnvp.bijectors import coupling as coupling_lib  # pylint: disable=g-import-not-at-top

    if coupling not in coupling_lib.COUPLINGS:
      raise errors.InvalidValueError(f"coupling must be one of {_quoted(coupling_lib.COUPLINGS)}, "
                                     f"got {coupling!r}.")


def resolve(preset, event_shape, source=None, flow=None, **overrides):
  """The preset to use for images of shape `(H, W, C)`, with overrides applied and checked.

  Args:
    preset: a preset name, a `Preset`, or `None` for the default of the data and flow
      (`default_preset` of `source`, `event_shape` and `flow`).
    event_shape: `(height, width, channels)` of the images.
    source: the data source, used only to pick the default preset.
    flow: `None` (the preset's flow; Real NVP when `preset` is `None`), `"realnvp"` or
      `"glow"`. A named preset must be of this kind.
    **overrides: new values of any of `SETTINGS` that the preset's flow takes
      (`FLOW_SETTINGS`; Real NVP: `num_scales`, `num_filters`, `num_blocks`, `batch_norm`,
      `coupling`; Glow: `num_levels`, `num_steps`, `num_filters`, `coupling_network`,
      `coupling`) or of `TRAINING_SETTINGS` (`batch_size`, `learning_rate`, `epochs`, `ema`,
      `warmup_steps`, `clipnorm`); `None` values are ignored (`ema=0` and `warmup_steps=0`
      turn those off).

  Returns:
    A `Preset` (keeping the preset's name) whose fields are the settings to use.

  Raises:
    ValueError: for an unknown preset, flow or setting, a preset of another flow than `flow`,
      a setting of another flow than the preset's, an image size without a default preset,
      a shape that the resolved depth cannot squeeze, or an `ema`, `warmup_steps` or
      `clipnorm` out of range.
  """
  shape = _validation.image_shape(event_shape)
  if flow is not None:
    _check_flow(flow)
  unknown = sorted(set(overrides) - set(SETTINGS))
  if unknown:
    raise errors.InvalidValueError(
        f"Unknown preset settings {unknown}; the settings are {list(SETTINGS)}.")
  preset = get_preset(default_preset(source, shape, flow) if preset is None else preset)
  if flow is not None and preset.flow != flow:
    raise errors.InvalidValueError(
        f"Preset {preset.name!r} is a {preset.title} preset, not a {FLOWS[flow]} one; choose a "
        f"{FLOWS[flow]} preset ({_quoted(n for n, p in PRESETS.items() if p.flow == flow)}) "
        "or leave the flow to the preset.")
  _check_overrides(preset, overrides)
  for name in _COUNTS:
    _validation.positive_int(overrides.get(name), name, allow_none=True)
  preset = dataclasses.replace(
      preset, **{name: value for name, value in overrides.items() if value is not None})
  check_shape(preset, shape)
  return preset


def build_flow(preset, event_shape, **overrides):
  """Builds the `tfp_realnvp.RealNVP` or `tfp_realnvp.Glow` flow of a preset (per its `flow`).

  Args:
    preset: a preset name (see `PRESETS`) or a `Preset` (e.g. from `resolve`).
    event_shape: `(height, width, channels)` of the images.
    **overrides: keyword arguments of the flow that replace the preset's (any of
      `FLOW_SETTINGS` that the preset's flow takes, or any other argument such as `dtype`);
      arguments whose value is `None` are ignored.

  Returns:
    A new `tfp_realnvp.RealNVP` or `tfp_realnvp.Glow` layer.

  Raises:
    ValueError: for an unknown preset, a setting of another flow, or a shape that the preset's
      depth cannot squeeze (the message lists the presets that fit the shape).
  """
  # pylint: disable=g-import-not-at-top
  from tfp_realnvp import flows
  from tfp_realnvp import glow
  # pylint: enable=g-import-not-at-top

  settings = {name: overrides.pop(name) for name in list(overrides) if name in SETTINGS}
  preset = resolve(preset, event_shape, **settings)
  kwargs = preset.flow_kwargs()
  kwargs.update({key: value for key, value in overrides.items() if value is not None})
  flow_class = {"realnvp": flows.RealNVP, "glow": glow.Glow}[preset.flow]
  return flow_class(_validation.image_shape(event_shape), **kwargs)


def build_dequantizer(preset, event_shape, **kwargs):
  """The dequantizer of a preset's model: `None` for uniform noise, else a new one.

  Args:
    preset: a `Preset` (e.g. from `resolve`).
    event_shape: `(height, width, channels)` of the images.
    **kwargs: `keras.layers.Layer` arguments of the dequantizer (e.g. `dtype`).

  Returns:
    `None` when `preset.dequantization` is `"uniform"` (the data pipeline adds the noise),
    else a `tfp_realnvp.VariationalDequantizer` for `event_shape` with its default
    architecture, for `tfp_realnvp.FlowModel(flow, dequantizer=...)`.
  """
  if preset.dequantization == "uniform":
    return None
  from tfp_realnvp import dequantization  # pylint: disable=g-import-not-at-top
  return dequantization.VariationalDequantizer(_validation.image_shape(event_shape), **kwargs)
