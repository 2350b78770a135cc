"""Keras 3 networks used as conditioners of the flows."""

from tfp_realnvp.networks.actnorm import ActNormalization
from tfp_realnvp.networks.actnorm_parameters import ActNormParameters
from tfp_realnvp.networks.batch_norm_statistics import BatchNormStatistics
from tfp_realnvp.networks.batch_normalization import FusedBatchNormalization
from tfp_realnvp.networks.glow_network import GlowCouplingNetwork
from tfp_realnvp.networks.glow_network import SplitPriorNetwork
from tfp_realnvp.networks.invertible_conv_parameters import InvertibleConv1x1Parameters
from tfp_realnvp.networks.made import MADE
from tfp_realnvp.networks.made import AutoregressiveNetwork
from tfp_realnvp.networks.resnet import CouplingResNet
from tfp_realnvp.networks.resnet import ResidualBlock
from tfp_realnvp.networks.templates import MaskedAutoregressiveDefaultTemplate
from tfp_realnvp.networks.templates import RealNVPDefaultTemplate
from tfp_realnvp.networks.templates import masked_autoregressive_default_template
from tfp_realnvp.networks.templates import real_nvp_default_template
from tfp_realnvp.networks.weight_norm import WeightNormConv2D

__all__ = ["MADE", "ActNormParameters", "ActNormalization", "AutoregressiveNetwork",
           "BatchNormStatistics", "CouplingResNet", "FusedBatchNormalization",
           "GlowCouplingNetwork", "InvertibleConv1x1Parameters",
           "MaskedAutoregressiveDefaultTemplate", "RealNVPDefaultTemplate", "ResidualBlock",
           "SplitPriorNetwork", "WeightNormConv2D", "masked_autoregressive_default_template",
           "real_nvp_default_template"]
