"""tfp_realnvp: Real NVP normalizing flows as TensorFlow Probability bijectors and Keras 3 layers.

`forward` maps latent to data and `inverse` data to latent, as everywhere in TFP.
"""

from tfp_realnvp import _backend

_backend.ensure_tensorflow_backend()

# pylint: disable=g-import-not-at-top,wrong-import-position
from tfp_realnvp import bijectors
from tfp_realnvp import configs
from tfp_realnvp import data
from tfp_realnvp import errors
from tfp_realnvp import flows
from tfp_realnvp import hardware
from tfp_realnvp import networks
from tfp_realnvp import optimizers
from tfp_realnvp import presets
from tfp_realnvp import remat
from tfp_realnvp import training
from tfp_realnvp._seam import Untracked
from tfp_realnvp.dequantization import VariationalDequantizer
from tfp_realnvp.export import export_saved_model
from tfp_realnvp.flows import ConditionalFlowLayer
from tfp_realnvp.flows import FlowLayer
from tfp_realnvp.flows import Glow
from tfp_realnvp.flows import RealNVP
from tfp_realnvp.model import FlowModel
from tfp_realnvp.networks import AutoregressiveNetwork
from tfp_realnvp.networks import masked_autoregressive_default_template
from tfp_realnvp.networks import real_nvp_default_template
from tfp_realnvp.optimizers import FusedAdam

__version__ = "0.2.0"

__all__ = ["AutoregressiveNetwork", "ConditionalFlowLayer", "FlowLayer", "FlowModel", "FusedAdam",
           "Glow", "RealNVP", "Untracked", "VariationalDequantizer", "__version__", "bijectors",
           "configs", "data", "errors", "export_saved_model", "flows", "hardware",
           "masked_autoregressive_default_template", "networks", "optimizers", "presets",
           "real_nvp_default_template", "remat", "training"]
