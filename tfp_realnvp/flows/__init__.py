"""Flows as Keras 3 layers that own their networks: the bases, `RealNVP` and `Glow`."""

from tfp_realnvp.flows.base import ConditionalFlowLayer
from tfp_realnvp.flows.base import FlowLayer
from tfp_realnvp.flows.glow import Glow
from tfp_realnvp.flows.realnvp import RealNVP

__all__ = ["ConditionalFlowLayer", "FlowLayer", "Glow", "RealNVP"]
