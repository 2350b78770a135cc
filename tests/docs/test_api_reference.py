"""Every public symbol of the package is on a page of the API reference (docs/api/*.md).

The public symbols are the `__all__` of `tfp_realnvp` and of each of its public modules and
subpackages (those without a leading underscore, but the ones in `NOT_NAMESPACES`). A symbol is
documented when a directive `::: some.path.Name` of a docs/api page resolves to the same
object, under whatever path (`tfp_realnvp.RealNVP` documents `tfp_realnvp.flows.RealNVP`).
"""

import importlib
import pathlib
import pkgutil
import re

import pytest

import tfp_realnvp

API = pathlib.Path(__file__).resolve().parents[2] / "docs" / "api"
_DIRECTIVE = re.compile(r"^:::\s+(\S+)\s*$", re.MULTILINE)

# Public modules that are not namespaces of the API reference, and why.
NOT_NAMESPACES = {
    "cli": "the command line's implementation; documented by docs/guide/cli.md, generated "
           "from the parser",
    "plotting": "the figures of a training run (sample grids, bits/dim curves), used by "
                "tfp_realnvp.training",
}
# Namespaces below the first level that are public extension points, walked once they exist.
DEEPER_NAMESPACES = ("tfp_realnvp.bijectors.transforms",)


def _resolve(path):
  """The object named by a dotted `path` (a module, or attributes of one)."""
  parts = path.split(".")
  for split in range(len(parts), 0, -1):
    try:
      target = importlib.import_module(".".join(parts[:split]))
    except ImportError:
      continue
    for name in parts[split:]:
      target = getattr(target, name)
    return target
  raise ImportError(path)


def _directives():
  """`{path: page}` of every `:::` directive of the API reference."""
  return {path: page.name for page in sorted(API.glob("*.md"))
          for path in _DIRECTIVE.findall(page.read_text(encoding="utf-8"))}


def _namespaces():
  names = ["tfp_realnvp"] + [
      f"tfp_realnvp.{module.name}" for module in pkgutil.iter_modules(tfp_realnvp.__path__)
      if not module.name.startswith("_") and module.name not in NOT_NAMESPACES]
  for name in DEEPER_NAMESPACES:
    try:
      importlib.import_module(name)
    except ImportError:
      continue
    names.append(name)
  return names


def _public_symbols():
  """`(namespace, name)` of every public symbol (dunder names such as `__version__` aside)."""
  symbols = []
  for namespace in _namespaces():
    module = importlib.import_module(namespace)
    assert hasattr(module, "__all__"), f"{namespace} has no __all__"
    symbols += [(namespace, name) for name in module.__all__ if not name.startswith("__")]
  return symbols


def test_every_directive_resolves():
  directives = _directives()
  assert len(directives) >= 50, directives
  for path, page in directives.items():
    try:
      _resolve(path)
    except (ImportError, AttributeError) as error:
      pytest.fail(f"docs/api/{page}: ::: {path} does not resolve ({error!r})")


def test_every_public_symbol_is_in_the_api_reference():
  documented = {}
  for path in _directives():
    documented.setdefault(path.rsplit(".", 1)[-1], []).append(_resolve(path))
  missing = []
  for namespace, name in _public_symbols():
    value = getattr(importlib.import_module(namespace), name)
    if isinstance(value, type(tfp_realnvp)):  # A module: its own page documents it.
      if not (API / f"{name}.md").is_file():
        missing.append(f"{namespace}.{name} (a module: docs/api/{name}.md)")
    elif not any(value is other for other in documented.get(name, ())):
      missing.append(f"{namespace}.{name}")
  assert not missing, "not in any docs/api/*.md page (add `::: <path>`): " + ", ".join(missing)


def test_the_walk_finds_the_namespaces():
  namespaces = _namespaces()
  for name in ("tfp_realnvp.bijectors", "tfp_realnvp.networks", "tfp_realnvp.data",
               "tfp_realnvp.training", "tfp_realnvp.presets", "tfp_realnvp.errors"):
    assert name in namespaces
  assert len(_public_symbols()) >= 80
