"""Typed configurations: one per kind of flow (`RealNVPConfig`, `GlowConfig`) and the training.

`FLOWS` registers the kinds of flow by name; a preset (`tfp_realnvp.presets`) pairs one flow
configuration with its `TrainingSettings`.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, ClassVar, Sequence

from tfp_realnvp import _registry
from tfp_realnvp import _validation
from tfp_realnvp import errors
from tfp_realnvp import networks
from tfp_realnvp.bijectors import transforms
from tfp_realnvp.flows import base
from tfp_realnvp.flows import glow
from tfp_realnvp.flows import realnvp

__all__ = ["DEQUANTIZATIONS", "FLOWS", "TRAINING_SETTINGS", "FlowConfig", "GlowConfig",
           "RealNVPConfig", "TrainingSettings", "all_settings"]

DEQUANTIZATIONS = ("uniform", "variational")
"""The values of `TrainingSettings.dequantization`."""

FLOWS: _registry.Registry[type[FlowConfig]] = _registry.Registry("flow", "tfp_realnvp.flows")
"""The kinds of flow by name (`"realnvp"`, `"glow"`, ...): their `FlowConfig` classes."""


def _count(number: int, noun: str) -> str:
  """`"1 level"`, `"2 levels"`."""
  return f"{number} {noun}{'' if number == 1 else 's'}"


def _is_real(value: Any) -> bool:
  return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


@dataclasses.dataclass(frozen=True)
class FlowConfig:
  """The architecture of one kind of flow; subclasses are registered in `FLOWS`.

  A subclass is a frozen dataclass whose fields are keyword arguments of its flow layer, with
  the class attributes `kind` (its name in `FLOWS`), `title` and `flow_class` (a
  `tfp_realnvp.FlowLayer`), and implements `squeeze_factor` and `describe`.

  Attributes:
    num_filters: feature maps of the coupling networks.
    coupling: the couplings' elementwise map, a name in
      `tfp_realnvp.bijectors.COUPLING_TRANSFORMS` (`"affine"`, `"spline"`, ...).
  """

  kind: ClassVar[str]
  title: ClassVar[str]
  # The values of the settings before they existed, which run records leave out.
  LEGACY: ClassVar[dict[str, Any]] = {"coupling": "affine"}

  num_filters: int = 64
  coupling: str = "affine"

  def __post_init__(self) -> None:
    for field in dataclasses.fields(self):
      value = getattr(self, field.name)
      if field.type == "int":
        _validation.positive_int(value, field.name)
      elif field.type in ("bool", "str") and not isinstance(value, {"bool": bool,
                                                                     "str": str}[field.type]):
        raise errors.InvalidTypeError(
            f"{field.name} must be a {field.type}, got {value!r} ({type(value).__name__}).")

  def check_names(self) -> None:
    """Raises unless the registered names it uses (e.g. `coupling`) are registered."""
    transforms.COUPLING_TRANSFORMS.lookup(self.coupling)

  @classmethod
  def settings(cls) -> tuple[str, ...]:
    """The names of the fields, the settings that `resolve` can override."""
    return tuple(field.name for field in dataclasses.fields(cls))

  @property
  def flow_class(self) -> type[base.FlowLayer]:
    """The `tfp_realnvp.FlowLayer` subclass this configuration builds."""
    raise NotImplementedError

  @property
  def squeeze_factor(self) -> int:
    """What image height and width must be divisible by for this depth."""
    raise NotImplementedError

  @property
  def depth(self) -> str:
    """The setting that fixes `squeeze_factor`, e.g. `"num_scales=3"`."""
    raise NotImplementedError

  def describe(self) -> str:
    """The architecture in one line."""
    raise NotImplementedError

  def flow_kwargs(self) -> dict[str, Any]:
    """The keyword arguments of the flow layer, as a run's record keeps them.

    A setting is left out when it has the value that flows had before the setting existed
    (`LEGACY`: `coupling="affine"`; Glow's `scan=False`), so that the records of those flows
    keep their form and their interrupted runs still resume.
    """
    return {name: getattr(self, name) for name in self.settings()
            if name not in self.LEGACY or getattr(self, name) != self.LEGACY[name]}

  def build(self, event_shape: Sequence[int], **layer_kwargs: Any) -> base.FlowLayer:
    """The flow layer of this configuration for images `(H, W, C)`."""
    settings = {name: getattr(self, name) for name in self.settings()}
    return self.flow_class(_validation.image_shape(event_shape), **settings,
                           **layer_kwargs)

  def supports(self, event_shape: Sequence[int]) -> bool:
    """Whether this depth can squeeze images of shape `(H, W, C)`."""
    height, width, _ = _validation.image_shape(event_shape)
    return height % self.squeeze_factor == 0 and width % self.squeeze_factor == 0

  def _couplings(self) -> str:
    return "" if self.coupling == "affine" else f", {self.coupling} couplings"


@FLOWS.register("realnvp")
@dataclasses.dataclass(frozen=True)
class RealNVPConfig(FlowConfig):
  """The architecture of a `tfp_realnvp.RealNVP` flow (Dinh et al., 2017).

  Attributes:
    num_scales: number of scales; every scale but the last squeezes.
    num_filters: feature maps of the coupling ResNets.
    num_blocks: residual blocks per coupling ResNet.
    batch_norm: whether batch-normalisation bijectors follow the couplings.
    coupling: the couplings' elementwise map (`"affine"`, `"spline"`, ...).
  """

  kind: ClassVar[str] = "realnvp"
  title: ClassVar[str] = "Real NVP"

  num_scales: int = 2
  num_blocks: int = 4
  batch_norm: bool = True

  @property
  def flow_class(self) -> type[base.FlowLayer]:
    return realnvp.RealNVP

  @property
  def squeeze_factor(self) -> int:
    return 2 ** (self.num_scales - 1)

  @property
  def depth(self) -> str:
    return f"num_scales={self.num_scales}"

  def describe(self) -> str:
    """E.g. `"3 scales, 32 filters, 2 blocks, batch norm on, spline couplings"`."""
    return (f"{_count(self.num_scales, 'scale')}, {_count(self.num_filters, 'filter')}, "
            f"{_count(self.num_blocks, 'block')}, batch norm "
            f"{'on' if self.batch_norm else 'off'}{self._couplings()}")


@FLOWS.register("glow")
@dataclasses.dataclass(frozen=True)
class GlowConfig(FlowConfig):
  """The architecture of a `tfp_realnvp.Glow` flow (Kingma and Dhariwal, 2018).

  Attributes:
    num_levels: number of levels `L`; every level squeezes.
    num_steps: steps of flow per level `K`.
    num_filters: feature maps of the coupling networks.
    coupling_network: a name in `tfp_realnvp.networks.COUPLING_NETWORKS` (`"glow"`,
      `"resnet"`).
    coupling: the couplings' elementwise map (`"affine"`, `"spline"`, ...).
    scan: each level's steps as one loop over stacked variables (`tfp_realnvp.Glow`'s
      `scan`); `False`, a layer per step, is how Glow flows were built before.
  """

  kind: ClassVar[str] = "glow"
  title: ClassVar[str] = "Glow"
  LEGACY: ClassVar[dict[str, Any]] = {"coupling": "affine", "scan": False}

  num_levels: int = 3
  num_steps: int = 32
  num_filters: int = 512
  coupling_network: str = "glow"
  scan: bool = True

  def check_names(self) -> None:
    super().check_names()
    networks.COUPLING_NETWORKS.lookup(self.coupling_network)

  @property
  def flow_class(self) -> type[base.FlowLayer]:
    return glow.Glow

  @property
  def squeeze_factor(self) -> int:
    return 2 ** self.num_levels

  @property
  def depth(self) -> str:
    return f"num_levels={self.num_levels}"

  def describe(self) -> str:
    """E.g. `"3 levels, 32 steps, 512 filters, glow coupling networks"`."""
    return (f"{_count(self.num_levels, 'level')}, {_count(self.num_steps, 'step')}, "
            f"{_count(self.num_filters, 'filter')}, {self.coupling_network} coupling "
            f"networks{self._couplings()}")


@dataclasses.dataclass(frozen=True)
class TrainingSettings:
  """How a preset's flow is trained (`tfp_realnvp.training.train`), the same for every flow.

  Attributes:
    epochs: number of training epochs.
    batch_size: global batch size.
    learning_rate: Adam's learning rate.
    ema: momentum of the moving average of the weights that the run evaluates, samples and
      saves (Keras's `use_ema`), in [0, 1); 0 turns it off.
    warmup_steps: steps of linear learning-rate warm-up from 0; 0 turns it off.
    clipnorm: the global gradient norm above which all gradients are scaled down (Keras's
      `global_clipnorm`); `None` turns it off.
    dequantization: `"uniform"` (noise added by the data pipeline) or `"variational"` (a
      learned `tfp_realnvp.VariationalDequantizer`, see `build_dequantizer`).

  Raises:
    InvalidValueError: a setting out of its range, naming it.
  """

  epochs: int = 10
  batch_size: int = 64
  learning_rate: float = 1e-3
  ema: float = 0.0
  warmup_steps: int = 0
  clipnorm: float | None = None
  dequantization: str = "uniform"

  def __post_init__(self) -> None:
    _validation.positive_int(self.epochs, "epochs")
    _validation.positive_int(self.batch_size, "batch_size")
    if not (_is_real(self.learning_rate) and self.learning_rate > 0):
      raise errors.InvalidValueError(
          f"learning_rate must be a positive finite number, got {self.learning_rate!r}.")
    if not (_is_real(self.ema) and 0 <= self.ema < 1):
      raise errors.InvalidValueError(
          f"ema must be the momentum of the weights' moving average, a number in [0, 1) (0 "
          f"turns the averaging off), got {self.ema!r}.")
    if not (_validation.is_integer(self.warmup_steps) and self.warmup_steps >= 0):
      raise errors.InvalidValueError(
          f"warmup_steps must be a non-negative integer (0 turns the warm-up off), got "
          f"{self.warmup_steps!r}.")
    if self.clipnorm is not None and not (_is_real(self.clipnorm) and self.clipnorm > 0):
      raise errors.InvalidValueError(
          f"clipnorm must be a positive number (the largest global norm of the gradients) or "
          f"None (no clipping), got {self.clipnorm!r}.")
    if self.dequantization not in DEQUANTIZATIONS:
      raise errors.InvalidValueError(
          f"dequantization must be one of {', '.join(map(repr, DEQUANTIZATIONS))}, got "
          f"{self.dequantization!r}.")


TRAINING_SETTINGS = tuple(field.name for field in dataclasses.fields(TrainingSettings))
"""The fields of `TrainingSettings`, which `resolve` can override for every flow."""


def all_settings() -> tuple[str, ...]:
  """The settings that `resolve` can override: those of every kind of flow in `FLOWS`, then
  `TRAINING_SETTINGS`."""
  flows = [name for config in FLOWS.values() for name in config.settings()]
  return tuple(dict.fromkeys(flows + list(TRAINING_SETTINGS)))
