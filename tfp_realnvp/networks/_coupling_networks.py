"""The registry of the networks that Glow's couplings can use, by name."""

from __future__ import annotations

from tfp_realnvp import _registry

__all__ = ["COUPLING_NETWORKS"]

COUPLING_NETWORKS: _registry.Registry[type] = _registry.Registry(
    "coupling network", "tfp_realnvp.coupling_networks")
"""Coupling networks by name: `"glow"`, `"resnet"` and any registered.

A registered class is a Keras 3 layer built as `cls(output_channels, num_filters=F,
conditional_size=K, params_per_unit=P, dtype=..., name=...)` and called as
`layer(h, conditional_input=c)` on the conditioning units `[N, h, w, c_in]`; it returns
`(shift, log_scale)` for `params_per_unit=None`, else raw parameters `[N, h, w, c_out, P]`.
Its last layer starts at zero, so that a new coupling starts as (or, for Glow's scale
`sigmoid(h + 2)`, close to) the identity. Its convolutions are best `networks.Conv2D` or
`networks.WeightNormConv2D`: inside a scanned Glow compiled with XLA on a CPU, a plain
`keras.layers.Conv2D`'s gradient runs tens of times slower.
"""
