"""`tfp.bijectors.Bijector` subclasses on images `[..., H, W, C]`, and the layers of their state.

Every bijector follows TensorFlow Probability's direction: `forward` maps latent to data
(sampling), `inverse` maps data to latent (density evaluation).
"""

from tfp_realnvp.bijectors.actnorm import ActNorm
from tfp_realnvp.bijectors.actnorm import ActNormParameters
from tfp_realnvp.bijectors.batch_norm import BatchNorm
from tfp_realnvp.bijectors.batch_norm import BatchNormStatistics
from tfp_realnvp.bijectors.conditional import ConditionalChain
from tfp_realnvp.bijectors.coupling import AffineCoupling
from tfp_realnvp.bijectors.coupling import Coupling
from tfp_realnvp.bijectors.coupling import SplineCoupling
from tfp_realnvp.bijectors.factor_out import FactorOut
from tfp_realnvp.bijectors.glow import multiscale_glow
from tfp_realnvp.bijectors.invertible_conv import InvertibleConv1x1
from tfp_realnvp.bijectors.invertible_conv import InvertibleConv1x1Parameters
from tfp_realnvp.bijectors.logit import Logit
from tfp_realnvp.bijectors.masks import ChannelMask
from tfp_realnvp.bijectors.masks import CheckerboardMask
from tfp_realnvp.bijectors.multiscale import multiscale_real_nvp
from tfp_realnvp.bijectors.multiscale import scale_shapes
from tfp_realnvp.bijectors.scan import Scan
from tfp_realnvp.bijectors.scan import StackedParameters
from tfp_realnvp.bijectors.split_prior import SplitPrior
from tfp_realnvp.bijectors.squeeze import Squeeze
from tfp_realnvp.bijectors.transforms import COUPLING_TRANSFORMS
from tfp_realnvp.bijectors.transforms import AdditiveTransform
from tfp_realnvp.bijectors.transforms import AffineTransform
from tfp_realnvp.bijectors.transforms import CouplingTransform
from tfp_realnvp.bijectors.transforms import SplineTransform
from tfp_realnvp.bijectors.transforms import make_transform
from tfp_realnvp.bijectors.transforms import spline_params_per_unit

__all__ = [
    "COUPLING_TRANSFORMS",
    "ActNorm",
    "ActNormParameters",
    "AdditiveTransform",
    "AffineCoupling",
    "AffineTransform",
    "BatchNorm",
    "BatchNormStatistics",
    "ChannelMask",
    "CheckerboardMask",
    "ConditionalChain",
    "Coupling",
    "CouplingTransform",
    "FactorOut",
    "InvertibleConv1x1",
    "InvertibleConv1x1Parameters",
    "Logit",
    "Scan",
    "SplineCoupling",
    "SplineTransform",
    "SplitPrior",
    "Squeeze",
    "StackedParameters",
    "make_transform",
    "multiscale_glow",
    "multiscale_real_nvp",
    "scale_shapes",
    "spline_params_per_unit",
]
