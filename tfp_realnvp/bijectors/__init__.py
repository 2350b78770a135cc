"""Real NVP bijectors: `tfp.bijectors.Bijector` subclasses on images `[..., H, W, C]`.

Every bijector follows TensorFlow Probability's direction: `forward` maps latent to data
(sampling), `inverse` maps data to latent (density evaluation).
"""

from tfp_realnvp.bijectors.actnorm import ActNorm
from tfp_realnvp.bijectors.batch_norm import BatchNorm
from tfp_realnvp.bijectors.conditional import ConditionalChain
from tfp_realnvp.bijectors.coupling import AffineCoupling
from tfp_realnvp.bijectors.coupling import SplineCoupling
from tfp_realnvp.bijectors.coupling import coupling_maker
from tfp_realnvp.bijectors.coupling import spline_params_per_unit
from tfp_realnvp.bijectors.factor_out import FactorOut
from tfp_realnvp.bijectors.glow import multiscale_glow
from tfp_realnvp.bijectors.invertible_conv import InvertibleConv1x1
from tfp_realnvp.bijectors.logit import Logit
from tfp_realnvp.bijectors.masks import ChannelMask
from tfp_realnvp.bijectors.masks import CheckerboardMask
from tfp_realnvp.bijectors.multiscale import multiscale_real_nvp
from tfp_realnvp.bijectors.multiscale import scale_shapes
from tfp_realnvp.bijectors.split_prior import SplitPrior
from tfp_realnvp.bijectors.squeeze import Squeeze

__all__ = [
    "ActNorm",
    "AffineCoupling",
    "BatchNorm",
    "ChannelMask",
    "ConditionalChain",
    "CheckerboardMask",
    "FactorOut",
    "InvertibleConv1x1",
    "Logit",
    "SplineCoupling",
    "SplitPrior",
    "Squeeze",
    "coupling_maker",
    "multiscale_glow",
    "multiscale_real_nvp",
    "scale_shapes",
    "spline_params_per_unit",
]
