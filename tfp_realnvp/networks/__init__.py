"""Keras 3 networks: the conditioners of the couplings and split priors, and their layers."""

from __future__ import annotations

from typing import Any
import warnings

from tfp_realnvp.networks.actnorm import ActNormalization
from tfp_realnvp.networks.autoregressive import AutoregressiveNetwork
from tfp_realnvp.networks._convolution import Conv2D
from tfp_realnvp.networks.batch_normalization import FusedBatchNormalization
from tfp_realnvp.networks.glow_network import GlowCouplingNetwork
from tfp_realnvp.networks.glow_network import SplitPriorNetwork
from tfp_realnvp.networks.made import MADE
from tfp_realnvp.networks._coupling_networks import COUPLING_NETWORKS
from tfp_realnvp.networks.resnet import CouplingResNet
from tfp_realnvp.networks.resnet import ResidualBlock
from tfp_realnvp.networks.templates import MaskedAutoregressiveDefaultTemplate
from tfp_realnvp.networks.templates import RealNVPDefaultTemplate
from tfp_realnvp.networks.templates import masked_autoregressive_default_template
from tfp_realnvp.networks.templates import real_nvp_default_template
from tfp_realnvp.networks.weight_norm import WeightNormConv2D

__all__ = ["COUPLING_NETWORKS", "MADE", "ActNormalization", "AutoregressiveNetwork",
           "Conv2D", "CouplingResNet", "FusedBatchNormalization", "GlowCouplingNetwork",
           "MaskedAutoregressiveDefaultTemplate", "RealNVPDefaultTemplate", "ResidualBlock",
           "SplitPriorNetwork", "WeightNormConv2D", "masked_autoregressive_default_template",
           "real_nvp_default_template"]

# The layers that hold a bijector's variables live with their bijector since 0.2.0.
_MOVED = {"ActNormParameters": "actnorm", "BatchNormStatistics": "batch_norm",
          "InvertibleConv1x1Parameters": "invertible_conv"}


def __getattr__(name: str) -> Any:
  if name in _MOVED:
    warnings.warn(f"tfp_realnvp.networks.{name} is now tfp_realnvp.bijectors.{name}; the old "
                  "name will be removed.", DeprecationWarning, stacklevel=2)
    from tfp_realnvp import bijectors  # pylint: disable=g-import-not-at-top
    return getattr(bijectors, name)
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
