"""The Keras 3 / TFP seam: Keras layers and models that hold TFP objects without tracking them.

A flow is a Keras layer that owns (tracks) every network; its bijector, a TFP `tf.Module`,
only refers to them. Assigned to a Keras attribute, a bijector would also become a tf.train
dependency, each variable reached twice under two names; `Untracked` prevents both:

```python
class Flow(HoldsUntracked, keras.layers.Layer):
  _bijector = Untracked("The flow's bijector.")

  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.network = make_network()             # tracked: Keras sees its variables
    self._bijector = make_bijector(self.network)  # untracked: refers to the same variables
```
"""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["HoldsUntracked", "Untracked"]


class Untracked:
  """A class attribute whose per-instance value neither Keras nor tf.train tracks.

  Declare it on a subclass of `HoldsUntracked` (whose assignments it intercepts) and assign it
  like any attribute. Reading it before any assignment returns `default()` (stored for the
  next reads) when a `default` factory is given, else raises `AttributeError`.

  Args:
    doc: docstring of the attribute.
    default: optional factory of the initial value, e.g. `dict`.
  """

  def __init__(self, doc: str | None = None, default: Callable[[], Any] | None = None) -> None:
    self.__doc__ = doc
    self._default = default
    self._name = ""  # Set by `__set_name__` when the owner class is created.

  def __set_name__(self, owner: type, name: str) -> None:
    self._name = name

  def __get__(self, instance: object, owner: type | None = None) -> Any:
    if instance is None:
      return self
    values = instance.__dict__
    if self._name not in values:
      if self._default is None:
        raise AttributeError(f"{type(instance).__name__} has no {self._name!r} yet.")
      values[self._name] = self._default()
    return values[self._name]

  def __set__(self, instance: object, value: Any) -> None:
    instance.__dict__[self._name] = value


class HoldsUntracked:
  """Mixin, before the Keras base class, that routes assignments of `Untracked` attributes.

  Keras's `Layer.__setattr__` and tf.train's `AutoTrackable.__setattr__` track what they are
  given; this mixin hands the value of an `Untracked` attribute straight to its descriptor,
  past both of them.
  """

  def __setattr__(self, name: str, value: Any) -> None:
    if isinstance(getattr(type(self), name, None), Untracked):
      object.__setattr__(self, name, value)
    else:
      super().__setattr__(name, value)
