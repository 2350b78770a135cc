"""The documentation tests import their helpers (`docs_snippets`) from this folder."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import pytest  # noqa: E402  (after the path setup above)

import tfp_realnvp  # noqa: E402

REGISTRIES = (tfp_realnvp.bijectors.COUPLING_TRANSFORMS, tfp_realnvp.networks.COUPLING_NETWORKS,
              tfp_realnvp.configs.FLOWS, tfp_realnvp.presets.PRESETS, tfp_realnvp.data.SOURCES)


@pytest.fixture(autouse=True)
def _registries_restored(monkeypatch):
  """What a page registers (a transform, a preset, a data source) stays within its test."""
  for registry in REGISTRIES:
    monkeypatch.setattr(registry, "_entries", dict(registry._entries))
