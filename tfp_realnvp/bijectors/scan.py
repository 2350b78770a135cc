"""`Scan`: a flow's repeated steps as one loop over stacked parameters, traced once however many."""

from __future__ import annotations

import contextlib
import contextvars
from typing import Any, Callable, Iterator, Sequence

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_realnvp import _distribute
from tfp_realnvp import _seam
from tfp_realnvp import _validation
from tfp_realnvp import errors
from tfp_realnvp.bijectors import _cached_log_det
from tfp_realnvp.bijectors import _checks
from tfp_realnvp.bijectors import conditional

__all__ = ["Scan", "StackedParameters", "loop", "recording_updates"]

_RECORDING = contextvars.ContextVar("tfp_realnvp_recording_updates", default=False)


def recording_updates() -> bool:
  """Whether the layers called now run a `Scan`'s step, whose state updates are kept.

  A step runs in a `keras.StatelessScope` that maps its template's variables to one step's
  values; the assignments its layers make (batch-norm moving averages, ActNorm's
  initialisation) are recorded there and written back to that step's slice. Outside a
  `Scan`, a stateless scope is a replay whose assignments are discarded (`tfp_realnvp.remat`).
  """
  return _RECORDING.get()


def loop(num_steps: int, body: Callable[..., tuple[Any, ...]], loop_vars: tuple[Any, ...]
         ) -> tuple[Any, ...]:
  """`body(k, *loop_vars) -> loop_vars` for `k = 0 .. num_steps - 1`; the final `loop_vars`.

  One `tf.while_loop`, so that a traced function holds `body` once. Under a strategy whose
  replicas synchronise through `merge_call` (ActNorm's initialisation and synchronised batch
  norms all-reduce), which a `tf.while_loop` may not hold, the loop is unrolled instead
  (`tfp_realnvp._distribute.loops_can_synchronize`): the same numbers, a graph that grows with
  the number of steps.
  """
  if not _distribute.loops_can_synchronize():
    for k in range(num_steps):
      loop_vars = body(tf.constant(k), *loop_vars)
    return loop_vars

  def step(k: tf.Tensor, *loop_vars: Any) -> tuple[Any, ...]:
    return (k + 1, *body(k, *loop_vars))

  return tf.while_loop(lambda k, *_: k < num_steps, step, (tf.constant(0), *loop_vars),
                       maximum_iterations=num_steps)[1:]


@keras.saving.register_keras_serializable(package="tfp_realnvp")
class StackedParameters(_seam.HoldsUntracked, keras.layers.Layer):
  """The variables of `num_steps` copies of one Keras layer, stacked along a leading axis.

  The steps of one level of a flow have the same structure, so they are computed by one
  *template* layer whose variables stand for those of any step: each variable of shape `S` of
  the template is held here as one variable of shape `[num_steps, *S]`, whose slice `k` is
  step `k`'s (independently initialised, as `num_steps` separate layers would be). `step(k)`
  runs the template with step `k`'s values (a `keras.StatelessScope`) and writes the state it
  updates (moving averages, data-dependent initialisations) back to slice `k`.

  The stacked variables are this layer's, and so the model's: the optimizer, `.keras` files,
  checkpoints and `tf.distribute` see one variable per variable of a step, whatever the
  number of steps. The template is untracked: its own variables are never trained or saved.

  Args:
    make_layer: callable returning a new, built copy of the step's layer; it is called
      `num_steps` times for the initial values (the first copy becomes the template).
    num_steps: number of steps (>= 1).
    **kwargs: `keras.layers.Layer` arguments.
  """

  template = _seam.Untracked("The layer that computes any step, with that step's values.")
  _template_variables = _seam.Untracked("The template's variables, in the order of `stacked`.")

  def __init__(self, make_layer: Callable[[], keras.layers.Layer], num_steps: int,
               **kwargs: Any) -> None:
    super().__init__(**kwargs)
    self.num_steps = _validation.positive_int(num_steps, "num_steps")
    copies = [make_layer() for _ in range(self.num_steps)]
    self.template = copies[0]
    self._template_variables = list(self.template.weights)
    self.stacked: list[keras.Variable] = []
    for index, variable in enumerate(self._template_variables):
      values = np.stack([np.asarray(copy.weights[index].numpy()) for copy in copies])
      self.stacked.append(self.add_weight(
          name=variable.path.replace("/", "."), shape=values.shape, dtype=variable.dtype,
          trainable=variable.trainable, aggregation=variable.aggregation,
          initializer=lambda shape, dtype, values=values: values))
    self.built = True

  def step_reader(self) -> Callable[[tf.Tensor], list[tf.Tensor]]:
    """`read(k)`: the values of step `k`'s variables (in the template's order) in a loop.

    Call this outside the loop over the steps and `read` inside it. The variables of each dtype
    are flattened into one `[K, P]` tensor, whose rows go to a list (`tf.TensorArray`); `read(k)`
    takes row `k` and splits it into the step's values. In a `tf.while_loop`, the gradient of a
    read from a list is that step's row, stacked once after the loop, where that of a
    `tf.gather` of slice `k` is a dense `[K, ...]` tensor added up at every step (`K` times the
    work); and one list per dtype, not one per variable, keeps the loop's own state (its loop
    variables and the gradient's accumulators) from growing with the number of variables.
    """
    groups: dict[tf.DType, list[int]] = {}
    for index, variable in enumerate(self.stacked):
      groups.setdefault(variable.dtype, []).append(index)
    arrays = []  # (list of the rows, the variables' indices, shapes and sizes) per dtype.
    for dtype, indices in groups.items():
      shapes = [self.stacked[i].shape[1:] for i in indices]
      rows = tf.concat([tf.reshape(tf.convert_to_tensor(self.stacked[i]), [self.num_steps, -1])
                        for i in indices], axis=1)
      arrays.append((tf.TensorArray(dtype, size=self.num_steps,
                                    element_shape=rows.shape[1:]).unstack(rows),
                     indices, shapes, [shape.num_elements() for shape in shapes]))

    def read(k: tf.Tensor) -> list[tf.Tensor]:
      values: list[Any] = [None] * len(self.stacked)
      for array, indices, shapes, sizes in arrays:
        for i, shape, part in zip(indices, shapes, tf.split(array.read(k), sizes), strict=True):
          values[i] = tf.reshape(part, shape)
      return values

    return read

  def step(self, read: Callable[[tf.Tensor], list[tf.Tensor]], k: tf.Tensor,
           fn: Callable[[], Any], record_updates: bool = True) -> tuple[Any, list[Any]]:
    """Runs `fn()` (which calls the template) with step `k`'s values.

    Args:
      read: a `step_reader` made outside the loop over the steps.
      k: the step, a scalar int32 tensor.
      fn: the computation of one step with the template's layers.
      record_updates: write the state the step's layers update back to slice `k` (training);
        otherwise the updates are discarded.

    Returns:
      `(fn(), updates)`: the result and the ops writing the updates back (put the outputs
      of the step under a control dependency on them).
    """
    values = read(k)
    mapping = list(zip(self._template_variables, values, strict=True))
    token = _RECORDING.set(record_updates)
    try:
      with keras.StatelessScope(state_mapping=mapping) as scope:
        result = fn()
    finally:
      _RECORDING.reset(token)
    updates = []
    if record_updates:
      index = k[tf.newaxis]
      for stacked, variable, value in zip(self.stacked, self._template_variables, values,
                                          strict=True):
        new = scope.get_current_value(variable)
        if new is not None and new is not value:
          # The TensorFlow variable behind the Keras one: a scatter writes slice `k` alone.
          updates.append(stacked.value.scatter_update(
              tf.IndexedSlices(tf.cast(new, stacked.dtype)[tf.newaxis], index)))
    return result, updates

  @contextlib.contextmanager
  def values_of(self, values: Sequence[tf.Tensor]) -> Iterator[None]:
    """The template computes with `values` (a replay: its updates are discarded)."""
    mapping = list(zip(self._template_variables, values, strict=True))
    with keras.StatelessScope(state_mapping=mapping):
      yield

  def get_config(self) -> dict[str, Any]:
    raise errors.InvalidTypeError(
        "StackedParameters is built by the flow that owns it (e.g. tfp_realnvp.Glow), which "
        "saves and restores it; it is not serialised on its own.")


class Scan(_cached_log_det.CachedLogDetBijector):
  """Applies the bijector of one step `num_steps` times, each time with that step's parameters.

  A flow of `K` steps of the same structure, `f = f_K o ... o f_1` in the data -> latent
  direction, where `f_k` is the step bijector `step` computed with the `k`-th slice of the
  stacked variables `parameters`:

  ```none
  inverse:  z = f_K(... f_1(x))                 (x_k = f_k(x_{k-1}), x_0 = x, z = x_K)
  forward:  x = f_1^-1(... f_K^-1(z))
  inverse_log_det_jacobian(x) = sum_k ildj_k(x_{k-1})
  ```

  It runs as one `tf.while_loop` over `k`, so a traced function (a training step, `log_prob`,
  `sample`, an XLA compilation) holds the step once, however many steps the flow has, and the
  gradients of the stacked variables are those of the unrolled flow with the same values. The
  state the step's layers update in the data -> latent direction (ActNorm's data-dependent
  initialisation, moving averages) is written back to each step's slice.

  Direction follows TFP: `forward` maps latent to data, `inverse` data to latent.

  #### Example

  ```python
  import tfp_realnvp
  from tfp_realnvp import bijectors as rb

  def make_layer():
    layer = rb.ActNormParameters()
    layer.build((None, 8, 8, 4))
    return layer

  parameters = rb.StackedParameters(make_layer, num_steps=16)   # owned by your Keras model
  flow = rb.Scan(rb.ActNorm(parameters.template), parameters)   # 16 actnorms, one trace
  ```

  #### References

  [1] Patrick Kidger, Daniel Ward and others. flowjax's `Scan` bijection, and lingvo's
      `RepeatLayer`: stacked parameters run by one loop, to keep compilation flat in depth.

  Args:
    step: the bijector of one step, built on `parameters.template`'s layers; a step that takes
      `conditional_input` makes the `Scan` take it too.
    parameters: the `StackedParameters` of the steps; the Keras model that trains the flow
      must own (track) it.
    validate_args: if `True`, inputs are checked at run time to be finite.
    name: name of the bijector.

  Raises:
    InvalidTypeError: `parameters` is not a `StackedParameters`, or `step` not a bijector.
  """

  def __init__(self, step: tfp.bijectors.Bijector, parameters: StackedParameters,
               validate_args: bool = False, name: str = "scan") -> None:
    parameters_dict = dict(locals())
    with tf.name_scope(name) as name:
      if not isinstance(parameters, StackedParameters):
        raise errors.InvalidTypeError(
            f"parameters must be a StackedParameters layer, got {type(parameters).__name__}.")
      if not isinstance(step, tfp.bijectors.Bijector):
        raise errors.InvalidTypeError(f"step must be a tfp.bijectors.Bijector, got "
                                      f"{type(step).__name__}.")
      self._step = step
      self._stacked = parameters
      self.takes_conditional_input = conditional.takes_conditional_input(step)
      super().__init__(forward_min_event_ndims=_checks.EVENT_NDIMS,
                       validate_args=validate_args, parameters=parameters_dict, name=name)

  @property
  def step(self) -> tfp.bijectors.Bijector:
    """The bijector of one step (on the template's layers)."""
    return self._step

  @property
  def stacked(self) -> StackedParameters:
    """The stacked parameters of the steps."""
    return self._stacked

  @property
  def num_steps(self) -> int:
    return self._stacked.num_steps

  def step_inverse(self, read: Callable[[tf.Tensor], list[tf.Tensor]], k: tf.Tensor,
                   x: tf.Tensor, record_updates: bool = True, **kwargs: Any
                   ) -> tuple[tf.Tensor, tf.Tensor]:
    """`(f_k(x), ildj_k(x))`: step `k` data -> latent (`read`: the stacked `step_reader`)."""
    def run() -> tuple[tf.Tensor, tf.Tensor]:
      return (self._step.inverse(x, **kwargs),
              self._step.inverse_log_det_jacobian(x, event_ndims=_checks.EVENT_NDIMS, **kwargs))

    (y, ildj), updates = self._stacked.step(read, k, run, record_updates)
    with tf.control_dependencies(updates):
      return tf.identity(y), tf.identity(ildj)

  def step_forward(self, read: Callable[[tf.Tensor], list[tf.Tensor]], k: tf.Tensor,
                   z: tf.Tensor, **kwargs: Any) -> tuple[tf.Tensor, tf.Tensor]:
    """`(f_k^-1(z), ildj_k(f_k^-1(z)))`: step `k` latent -> data (no state is updated)."""
    def run() -> tuple[tf.Tensor, tf.Tensor]:
      return (self._step.forward(z, **kwargs),
              -self._step.forward_log_det_jacobian(z, event_ndims=_checks.EVENT_NDIMS, **kwargs))

    return self._stacked.step(read, k, run, record_updates=False)[0]

  def _loop(self, x: tf.Tensor, inverse: bool, **kwargs: Any) -> tuple[tf.Tensor, tf.Tensor]:
    x = _checks.check_image_event(x, self.name, validate_args=self.validate_args)
    steps = self.num_steps
    log_det = tf.zeros(tf.shape(x)[:-_checks.EVENT_NDIMS], x.dtype)
    read = self._stacked.step_reader()

    def body(i: tf.Tensor, x: tf.Tensor, log_det: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
      if inverse:
        y, ildj = self.step_inverse(read, i, x, **kwargs)
      else:
        y, ildj = self.step_forward(read, steps - 1 - i, x, **kwargs)
      return y, log_det + ildj

    return loop(steps, body, (x, log_det))

  def _augmented_inverse(self, x: tf.Tensor, **kwargs: Any) -> tuple[tf.Tensor, dict[str, Any]]:
    z, ildj = self._loop(x, inverse=True, **kwargs)
    return z, _cached_log_det.log_dets(ildj)

  def _augmented_forward(self, z: tf.Tensor, **kwargs: Any) -> tuple[tf.Tensor, dict[str, Any]]:
    x, ildj = self._loop(z, inverse=False, **kwargs)
    return x, _cached_log_det.log_dets(ildj)
