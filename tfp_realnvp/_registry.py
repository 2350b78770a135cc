"""Named registries of the things users add (coupling transforms, flows, data sources, presets).

A registry maps names to objects. The package registers its own in code; other packages add
theirs either in code (`registry.register(name, obj)`) or, to reach the command line too, as
entry points of the registry's group in their package metadata, loaded on first use.
"""

from __future__ import annotations

import collections.abc
import importlib.metadata
import threading
import warnings
from typing import Callable, Generic, Iterator, TypeVar, overload

from tfp_realnvp import errors

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(collections.abc.Mapping, Generic[T]):
  """A read-only mapping of names to registered objects of one kind, open to plugins.

  `registry[name]` and `name in registry` include the plugins: the entry points of `group`
  (`[options.entry_points]` of a package's `setup.cfg`, or `[project.entry-points]` of its
  `pyproject.toml`) are loaded the first time the registry is read. A plugin that fails to load
  is skipped with a warning naming it. `lookup(name)` is `registry[name]` with an error that
  lists the registered names.

  Args:
    kind: what the registry holds, for messages (e.g. `"coupling transform"`).
    group: the entry-point group of plugins (e.g. `"tfp_realnvp.coupling_transforms"`).
  """

  def __init__(self, kind: str, group: str) -> None:
    self.kind = kind
    self.group = group
    self._entries: dict[str, T] = {}
    self._plugins_loaded = False
    self._lock = threading.Lock()

  @overload
  def register(self, name: str) -> Callable[[T], T]:
    ...

  @overload
  def register(self, name: str, value: T) -> T:
    ...

  def register(self, name: str, value: T | None = None) -> T | Callable[[T], T]:
    """Registers `value` under `name`; without `value`, returns a decorator that does.

    Registering the same object again under its name does nothing, and so does registering a
    redefinition of it (a class of the same module and qualified name, e.g. a notebook cell
    run twice), which replaces it.

    Raises:
      InvalidValueError: `name` is not a non-empty string, or is taken by another object.
    """
    if not isinstance(name, str) or not name:
      raise errors.InvalidValueError(
          f"A {self.kind} must be registered under a non-empty name, got {name!r}.")
    if value is None:
      return lambda decorated: self.register(name, decorated)
    existing = self._entries.get(name)
    if existing is not None and not _same(existing, value):
      raise errors.InvalidValueError(
          f"The {self.kind} name {name!r} is taken by {_describe(existing)}; choose another.")
    self._entries[name] = value
    return value

  def lookup(self, name: str) -> T:
    """`self[name]`, or an `InvalidValueError` that names the registered ones."""
    try:
      return self[name]
    except (KeyError, TypeError):
      raise errors.InvalidValueError(
          f"Unknown {self.kind} {name!r}; the registered ones are "
          f"{', '.join(repr(known) for known in self)}.") from None

  def __getitem__(self, name: str) -> T:
    self._load_plugins()
    return self._entries[name]

  def __iter__(self) -> Iterator[str]:
    self._load_plugins()
    return iter(list(self._entries))

  def __len__(self) -> int:
    self._load_plugins()
    return len(self._entries)

  def __repr__(self) -> str:
    return f"Registry({self.kind!r}, names={list(self)})"

  def _load_plugins(self) -> None:
    if self._plugins_loaded:
      return
    with self._lock:
      if self._plugins_loaded:
        return
      self._plugins_loaded = True
      for entry_point in importlib.metadata.entry_points(group=self.group):
        try:
          value = entry_point.load()
          if self._entries.get(entry_point.name) is not value:
            self.register(entry_point.name, value)
        except Exception as error:  # pylint: disable=broad-except
          warnings.warn(
              f"tfp_realnvp: skipped the {self.kind} {entry_point.name!r} of the entry point "
              f"{entry_point.value!r} (group {self.group!r}): {type(error).__name__}: {error}",
              stacklevel=3)


def _same(existing: object, value: object) -> bool:
  """Whether `value` is `existing` again: the same object, an equal one, or a redefinition."""
  if existing is value or (not isinstance(value, type) and existing == value):
    return True
  return isinstance(value, type) and isinstance(existing, type) and (
      _describe(existing) == _describe(value))


def _describe(value: object) -> str:
  name = getattr(value, "__qualname__", None) or type(value).__qualname__
  return f"{getattr(value, '__module__', '?')}.{name}"
