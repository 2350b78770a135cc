"""Every public callable of the package has complete type hints (parameters and return).

The public API is found by walking the namespace, as the conformance suite finds the bijectors:
every module of `tfp_realnvp` whose path has no private part, and the names of its `__all__`.
For each function the check asks for an annotation on every parameter (`*args` and `**kwargs`
included) and on the return; for each class, on `__init__`, `__call__` and every public method
and property defined by the class or by a base class of this package (Keras and TFP overrides
such as `call`, `build` and `get_config` included). `mypy` checks that the hints are right;
this test makes sure that a new public function cannot arrive without them.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import types
from typing import Any, Callable, Iterator

import pytest

import tfp_realnvp

PACKAGE = "tfp_realnvp"

# Public callables that may lack hints, each with its reason: `(qualified name, reason)`.
# Empty: prefer annotating (Keras's fixed signatures are annotated too) to listing here.
EXCEPTIONS: dict[str, str] = {}


@dataclasses.dataclass(frozen=True)
class PublicCallable:
  """A public callable: where it is reachable, and the function whose signature is checked."""

  name: str
  function: Callable[..., Any]


def _public_modules() -> Iterator[types.ModuleType]:
  """`tfp_realnvp` and every module or package below it whose path has no private part."""
  yield tfp_realnvp
  for info in pkgutil.walk_packages(tfp_realnvp.__path__, prefix=f"{PACKAGE}."):
    if any(part.startswith("_") for part in info.name.split(".")):
      continue
    yield importlib.import_module(info.name)


def _ours(obj: object) -> bool:
  module = getattr(obj, "__module__", None) or ""
  return module == PACKAGE or module.startswith(f"{PACKAGE}.")


def _members(cls: type) -> Iterator[tuple[str, Callable[..., Any]]]:
  """`(name, function)` of the public methods and properties of `cls` and its own bases."""
  seen = set()
  for owner in cls.__mro__:
    if not _ours(owner):
      continue
    for name, value in vars(owner).items():
      if name in seen or (name.startswith("_") and name not in ("__init__", "__call__")):
        continue
      seen.add(name)
      if isinstance(value, (staticmethod, classmethod)):
        value = value.__func__
      if isinstance(value, property):
        value = value.fget
      if inspect.isfunction(value):
        yield f"{owner.__qualname__}.{name}", value


def public_callables() -> list[PublicCallable]:
  """Every public function, and every public method of a public class, once."""
  found: dict[int, PublicCallable] = {}
  classes: dict[int, type] = {}
  for module in _public_modules():
    for name in getattr(module, "__all__", ()):
      obj = getattr(module, name)
      if inspect.isclass(obj) and _ours(obj):
        classes[id(obj)] = obj
      elif inspect.isfunction(obj) and _ours(obj):
        found[id(obj)] = PublicCallable(f"{obj.__module__}.{obj.__qualname__}", obj)
  for cls in classes.values():
    for qualname, function in _members(cls):
      found.setdefault(id(function), PublicCallable(f"{function.__module__}.{qualname}", function))
  return sorted(found.values(), key=lambda c: c.name)


def missing_hints(function: Callable[..., Any]) -> list[str]:
  """The parameters of `function` without an annotation, and `"return"` if it has none."""
  signature = inspect.signature(function)
  parameters = list(signature.parameters.values())
  if parameters and parameters[0].name in ("self", "cls"):
    parameters = parameters[1:]
  missing = [p.name for p in parameters if p.annotation is inspect.Parameter.empty]
  if signature.return_annotation is inspect.Signature.empty:
    missing.append("return")
  return missing


CALLABLES = public_callables()


def test_the_walk_finds_the_public_api() -> None:
  names = {c.name for c in CALLABLES}
  for expected in ("tfp_realnvp.model.FlowModel.log_prob",
                   "tfp_realnvp.bijectors.coupling.Coupling.__init__",
                   "tfp_realnvp.data.pipeline.load_images",
                   "tfp_realnvp.flows.base.FlowLayer.bijector_kwargs",
                   "tfp_realnvp._model_bounds.DiscreteBounds.bits_per_dim",
                   "tfp_realnvp.networks.resnet.CouplingResNet.call"):
    assert expected in names
  assert len(CALLABLES) > 300


@pytest.mark.parametrize("public", CALLABLES, ids=lambda c: c.name)
def test_public_callable_has_complete_hints(public: PublicCallable) -> None:
  if public.name in EXCEPTIONS:
    pytest.skip(EXCEPTIONS[public.name])
  missing = missing_hints(public.function)
  assert not missing, (
      f"{public.name} has no type hint for {', '.join(missing)}: annotate every parameter "
      f"and the return of a public callable (or list it in EXCEPTIONS with a reason).")


def test_missing_hints_names_what_is_missing() -> None:
  def partly_annotated(a, b: int, *args, c: str = "", **kwargs: float):
    del a, b, args, c, kwargs

  assert missing_hints(partly_annotated) == ["a", "args", "return"]


def test_exceptions_are_public_callables() -> None:
  names = {c.name for c in CALLABLES}
  assert not set(EXCEPTIONS) - names, "EXCEPTIONS lists callables that are gone."


def test_hints_are_readable_at_run_time() -> None:
  """Dataclasses and Keras read annotations: the package's postponed hints name real things."""
  import typing  # pylint: disable=g-import-not-at-top

  from tfp_realnvp import configs
  from tfp_realnvp import presets
  for cls in (configs.RealNVPConfig, configs.GlowConfig, configs.TrainingSettings,
              presets.Preset):
    hints = typing.get_type_hints(cls)
    assert set(f.name for f in dataclasses.fields(cls)) <= set(hints)
