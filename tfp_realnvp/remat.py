"""Training memory that does not grow with a flow's depth: recomputation and reversible backprop.

`FlowModel(flow, remat=...)` chooses how the gradient of the flow is computed, with `inverse`
below: the standard mode (`None`) keeps every activation of every step; `"recompute"` keeps each
step's input and recomputes the step in the backward pass; `"reversible"` keeps the flow's
output (and each level's input) and rebuilds each step's input with the step's exact inverse
(Gomez et al., 2017; Jacobsen et al., 2018; Glow's memory-saving mode). The gradients are the
standard mode's up to rounding; `reconstruction_errors` measures the rebuild's rounding.

```python
model = tfp_realnvp.FlowModel(flow, remat="reversible")  # or "recompute"; None: standard
```
"""

from __future__ import annotations

from typing import Any, Callable, Sequence, Union

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_realnvp import errors
from tfp_realnvp import _keras_internals
from tfp_realnvp import _tfp_internals
from tfp_realnvp.bijectors import batch_norm as batch_norm_lib
from tfp_realnvp.bijectors import factor_out as factor_out_lib
from tfp_realnvp.bijectors import scan as scan_lib

__all__ = ["MODES", "check_mode", "inverse", "reconstruction_errors"]

MODES = ("recompute", "reversible")
"""The memory-saving modes of `FlowModel(remat=...)`; `None` is the standard mode."""

# `(x, sources, outputs, input_gradient)` of a step recomputed under a tape (`_Step.recompute`).
_Replay = tuple[tf.Tensor, list[tf.Tensor], list[tf.Tensor],
                Callable[[Sequence[tf.Tensor]], tf.Tensor]]


class _Split:
  """Walk instruction: a `FactorOut` sets its factored-out half aside."""

  def __init__(self, factor_out: factor_out_lib.FactorOut) -> None:
    self.factor_out = factor_out


class _Merge(_Split):
  """Walk instruction: the half set aside by the matching `_Split` comes back."""


class _Step:
  """Walk instruction: one bijector, with the keyword arguments its chain routes to it."""

  def __init__(self, bijector: tfp.bijectors.Bijector, kwargs: dict[str, Any],
               event_ndims: int) -> None:
    self.bijector = bijector
    self.kwargs = kwargs
    self.event_ndims = event_ndims

  def apply(self, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, Any]:
    """`(z, ildj, state)` in the data -> latent direction; `state` rebuilds `x` from `z`."""
    if isinstance(self.bijector, batch_norm_lib.BatchNorm):
      return self.bijector.inverse_with_statistics(x)
    z = self.bijector.inverse(x, **self.kwargs)
    return z, self.bijector.inverse_log_det_jacobian(x, self.event_ndims, **self.kwargs), None

  def recompute(self, x: tf.Tensor, tape: tf.GradientTape) -> _Replay:
    """`apply` from the input `x` under `tape`, as `(x, sources, outputs, input_gradient)`.

    `outputs` `[z, ildj]` are computed under the tape from the watched `sources`, and
    `input_gradient` maps the gradients with respect to `sources` to that with respect to `x`.
    """
    x = tf.identity(x)  # Not the forward pass's tensor: TFP's cache misses.
    tape.watch(x)
    z, ildj, _ = self.apply(x)
    return x, [x], [z, ildj], lambda gradients: gradients[0]

  def rebuild_and_recompute(self, z: tf.Tensor, state: Any, tape: tf.GradientTape) -> _Replay:
    """Rebuilds the input from the output `z` (and `state`), then `recompute`s under `tape`."""
    if hasattr(self.bijector, "replay_inverse"):  # A coupling: one conditioner call.
      return self.bijector.replay_inverse(z, tape, **self.kwargs)
    with tape.stop_recording():
      if isinstance(self.bijector, batch_norm_lib.BatchNorm):
        x = self.bijector.forward_with_statistics(z, state)
      else:  # A new tensor: TFP's cache would otherwise answer with the forward pass's input.
        x = self.bijector.forward(tf.identity(z), **self.kwargs)
    return self.recompute(x, tape)


class _ScanSteps:
  """Walk instruction: a `Scan`, whose steps are replayed by a loop of their own.

  Its steps are the instructions of the `Scan`'s step bijector (`program`), run for every step
  `k` with that step's slice of the stacked variables: the forward pass and the backward pass
  are each one `tf.while_loop`, so the traced graph holds one step, however many there are.
  """

  def __init__(self, scan: scan_lib.Scan, kwargs: dict[str, Any], event_ndims: int) -> None:
    self.scan = scan
    self.kwargs = kwargs
    self.event_ndims = event_ndims
    program = _walk(scan.step, kwargs, event_ndims)
    self.program = [instruction for instruction in program if isinstance(instruction, _Step)]
    if len(self.program) != len(program):
      raise errors.InvalidValueError(
          f"{scan.name}: the step of a Scan cannot factor out or scan again in the remat modes.")

  def apply(self, x: tf.Tensor, keep_inputs: bool) -> tuple[tf.Tensor, tf.Tensor, Any]:
    """`(z, ildj, kept)` in the data -> latent direction; `kept`: every step's input, or None.

    Raises:
      InvalidValueError: the reversible mode (`keep_inputs=False`) with a step whose rebuild
        needs a state of the forward pass (a `BatchNorm` in training): it is not kept per step.
    """
    if not keep_inputs and any(isinstance(i.bijector, batch_norm_lib.BatchNorm)
                               for i in self.program):
      raise errors.InvalidValueError(
          f"{self.scan.name}: remat='reversible' cannot rebuild a scanned BatchNorm step; use "
          "remat='recompute' or an unscanned flow.")
    steps = self.scan.num_steps
    kept = tf.TensorArray(x.dtype, size=steps if keep_inputs else 1, element_shape=x.shape)
    log_det = tf.zeros(tf.shape(x)[:-self.event_ndims], x.dtype)

    def body(k: tf.Tensor, x: tf.Tensor, log_det: tf.Tensor, kept: tf.TensorArray
             ) -> tuple[tf.Tensor, tf.Tensor, tf.TensorArray]:
      if keep_inputs:
        kept = kept.write(k, x)
      y, ildj = self.scan.step_inverse(k, x, **self.kwargs)
      return y, log_det + ildj, kept

    z, log_det, kept = scan_lib.loop(steps, body, (x, log_det, kept))
    return z, log_det, kept.stack() if keep_inputs else None

  def replay(self, y: tf.Tensor, dy: tf.Tensor, dildj: tf.Tensor,
             conditions: Sequence[tf.Tensor], kept: tf.Tensor | None
             ) -> tuple[tf.Tensor, tf.Tensor, list[tf.Tensor | None], list[tf.Tensor | None]]:
    """Walks the steps from the last: `(x, dx, condition_grads, stacked_grads)`.

    `kept` holds every step's input (recompute) or is `None` (reversible: each step's input is
    rebuilt from its output). `stacked_grads` are the gradients of the stacked variables
    (`None` for the non-trainable ones), from the vector-Jacobian products of every step.
    """
    stacked = self.scan.stacked
    steps = self.scan.num_steps
    variables = stacked.stacked
    arrays = [tf.TensorArray(v.dtype, size=steps, element_shape=v.shape[1:]) for v in variables]
    condition_sums = [tf.zeros_like(c) for c in conditions]

    def body(i: tf.Tensor, y: tf.Tensor, dy: tf.Tensor, arrays: list[tf.TensorArray],
             condition_sums: list[tf.Tensor]) -> tuple[Any, ...]:
      k = steps - 1 - i
      values = stacked.step_values(k)
      value_sums: list[tf.Tensor | None] = [None] * len(values)
      extra = list(values) + list(conditions)
      with stacked.values_of(values):
        replays: list[tuple[_Step | _Whole, tf.Tensor | None]]
        if kept is not None:  # Recompute: the whole step from its kept input.
          replays = [(_Whole(self.program), tf.gather(kept, k))]
        else:  # Reversible: each instruction of the step rebuilt from its output.
          replays = [(instruction, None) for instruction in reversed(self.program)]
        for instruction, kept_input in replays:
          y, dy, extra_grads, _ = _step_vjp(instruction, y, dy, dildj, kept_input, None, extra)
          value_sums = [_add(total, g)
                        for total, g in zip(value_sums, extra_grads[:len(values)], strict=True)]
          condition_sums = [c if g is None else c + tf.convert_to_tensor(g)
                            for c, g in zip(condition_sums, extra_grads[len(values):],
                                            strict=True)]
      arrays = [array.write(k, tf.zeros_like(v) if g is None else tf.cast(g, v.dtype))
                for array, v, g in zip(arrays, values, value_sums, strict=True)]
      return y, dy, arrays, condition_sums

    x, dx, arrays, condition_sums = scan_lib.loop(steps, body, (y, dy, arrays, condition_sums))
    grads = [array.stack() if v.trainable else None
             for array, v in zip(arrays, variables, strict=True)]
    return x, dx, list(condition_sums), grads


def _scan_rebuild(scan_steps: _ScanSteps, z: tf.Tensor, kept: tf.Tensor
                  ) -> tuple[tf.Tensor, tf.Tensor]:
  """Rebuilds a scan's inputs from its output: `(x, gaps)`, `gaps[k]` step `k`'s largest error
  against the kept inputs `kept` `[K, ...]`."""
  stacked = scan_steps.scan.stacked
  steps = scan_steps.scan.num_steps
  gaps = tf.TensorArray(z.dtype, size=steps)

  def body(i: tf.Tensor, y: tf.Tensor, gaps: tf.TensorArray
           ) -> tuple[tf.Tensor, tf.TensorArray]:
    k = steps - 1 - i
    with stacked.values_of(stacked.step_values(k)):
      for instruction in reversed(scan_steps.program):
        with tf.GradientTape() as tape:
          y = instruction.rebuild_and_recompute(y, None, tape)[0]
    return y, gaps.write(k, tf.reduce_max(tf.abs(y - tf.gather(kept, k))))

  x, gaps = scan_lib.loop(steps, body, (z, gaps))
  return x, gaps.stack()


class _Whole:
  """The instructions of a step recomputed together from their kept input (recompute mode)."""

  def __init__(self, program: Sequence[_Step]) -> None:
    self.program = program

  def recompute(self, x: tf.Tensor, tape: tf.GradientTape) -> _Replay:
    x = tf.identity(x)
    tape.watch(x)
    z, ildj, _, _, _ = _run_forward(self.program, x, keep_inputs=False)
    return x, [x], [z, ildj], lambda gradients: gradients[0]


def _step_vjp(step: Any, y: tf.Tensor, dy: tf.Tensor, dildj: tf.Tensor,
              kept_input: tf.Tensor | None, state: Any, extra: Sequence[tf.Tensor]
              ) -> tuple[tf.Tensor, tf.Tensor, list[Any], list[tuple[tf.Variable, Any]]]:
  """Recomputes a step under a tape (from its kept input, or rebuilt from its output `y`).

  Returns `(x, dx, extra_grads, variable_grads)`: the step's input, the gradient reaching it
  from `dy` and `dildj`, the gradients of the tensors `extra` (stacked values, conditions), and
  `(variable, gradient)` for every variable the step read.
  """
  with tf.GradientTape() as tape:
    tape.watch(list(extra))
    if kept_input is not None:
      x, sources, outputs, input_gradient = step.recompute(kept_input, tape)
    else:
      x, sources, outputs, input_gradient = step.rebuild_and_recompute(y, state, tape)
  watched = list(tape.watched_variables())
  grads = tape.gradient(outputs, list(sources) + list(extra) + watched,
                        output_gradients=[dy, dildj])
  source_grads = [tf.zeros_like(s) if g is None else g
                  for s, g in zip(sources, grads[:len(sources)], strict=True)]
  extra_grads = list(grads[len(sources):len(sources) + len(extra)])
  variable_grads = list(zip(watched, grads[len(sources) + len(extra):], strict=True))
  return x, input_gradient(source_grads), extra_grads, variable_grads


_Instruction = Union[_Split, _Step, _ScanSteps]
"""A step of the walk: `_Step`, `_ScanSteps`, `_Split` or `_Merge` (a `_Split`)."""


def _walk(bijector: tfp.bijectors.Bijector, kwargs: dict[str, Any],
          event_ndims: int) -> list[_Instruction]:
  """The instructions of `bijector`, in the data -> latent order."""
  if isinstance(bijector, _tfp_internals.RoutingChain):
    return [instruction for inner, inner_kwargs in bijector.routed(kwargs)
            for instruction in _walk(inner, inner_kwargs, event_ndims)]
  if isinstance(bijector, factor_out_lib.FactorOut):
    return ([_Split(bijector)] + _walk(bijector.bijector, kwargs, event_ndims)
            + [_Merge(bijector)])
  if isinstance(bijector, scan_lib.Scan):
    return [_ScanSteps(bijector, kwargs, event_ndims)]
  return [_Step(bijector, kwargs, event_ndims)]


def _split(factor_out: factor_out_lib.FactorOut, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
  return factor_out._split(x)  # pylint: disable=protected-access


def _run_forward(program: Sequence[_Instruction], x: tf.Tensor, keep_inputs: bool
                 ) -> tuple[tf.Tensor, tf.Tensor, list[tf.Tensor], list[Any], list[tf.Tensor]]:
  """The data -> latent pass: `(z, ildj, inputs, states, anchors)`.

  `inputs` (every step's input) is empty unless kept; `anchors` are the inputs of the
  `FactorOut`s (one per level of a multi-scale flow, at most the data's size each), where the
  reversible walk restarts.
  """
  inputs: list[tf.Tensor] = []
  states: list[Any] = []
  aside: list[tf.Tensor] = []
  anchors: list[tf.Tensor] = []
  ildj = None
  for instruction in program:
    if isinstance(instruction, _Merge):
      x = tf.concat([aside.pop(), x], axis=-1)
    elif isinstance(instruction, _Split):
      anchors.append(x)
      factored, x = _split(instruction.factor_out, x)
      aside.append(factored)
    else:
      if keep_inputs:
        inputs.append(x)
      if isinstance(instruction, _ScanSteps):
        x, log_det, state = instruction.apply(x, keep_inputs)
      else:
        x, log_det, state = instruction.apply(x)
      states.append(state)
      ildj = log_det if ildj is None else ildj + log_det
  return x, ildj, inputs, states, anchors


def _run_backward(program: Sequence[_Instruction], carried: list[tf.Tensor],
                  replay: Callable[[_Step | _ScanSteps, int, list[tf.Tensor]],
                                   list[tf.Tensor]],
                  anchors: Sequence[tf.Tensor]) -> list[tf.Tensor]:
  """Walks `program` from its end with tensors shaped like the latent (e.g. `[z, dz]`).

  The factored-out halves of `carried` are set aside at a `_Merge` and come back at its
  `_Split`, where the rebuilt value `carried[0]` is replaced by the forward pass's (`anchors`,
  popped): the rounding of the rebuilds does not carry over from one level to the next. At
  the `i`-th step, `carried = replay(step, i, carried)` maps the step's output side to its
  input side.
  """
  anchors = list(anchors)
  aside: list[list[tf.Tensor]] = []
  index = sum(isinstance(instruction, (_Step, _ScanSteps)) for instruction in program)
  for instruction in reversed(program):
    if isinstance(instruction, _Merge):
      halves = [_split(instruction.factor_out, t) for t in carried]
      aside.append([factored for factored, _ in halves])
      carried = [kept for _, kept in halves]
    elif isinstance(instruction, _Split):
      halves = aside.pop()
      carried = [anchors.pop()] + [tf.concat([factored, t], axis=-1)
                                   for factored, t in zip(halves[1:], carried[1:], strict=True)]
    else:
      index -= 1
      carried = replay(instruction, index, carried)
  return carried


def check_mode(mode: str) -> None:
  """Raises a `ValueError` unless `mode` is one of `MODES`."""
  if mode not in MODES:
    raise errors.InvalidValueError(f"remat must be None or one of {MODES}, got {mode!r}.")


def inverse(bijector: tfp.bijectors.Bijector, x: tf.Tensor, mode: str, event_ndims: int,
            training: bool | None = None, **kwargs: Any) -> tuple[tf.Tensor, tf.Tensor]:
  """`(bijector.inverse(x), bijector.inverse_log_det_jacobian(x))` with a memory-saving gradient.

  The modes keep less than the standard backpropagation and compute more:

  * `"recompute"`: only the input of each step is kept; the backward pass recomputes each
    step (its conditioner's activations included) from it, then differentiates it.
  * `"reversible"`: only the flow's output and the input of each `FactorOut` are kept. The
    backward pass walks the steps from the last to the first, rebuilds each step's input from
    its output with the step's exact inverse (`forward`), recomputes the step from that input
    and differentiates it; at each `FactorOut` it starts again from the kept input, so the
    rounding of the rebuilds does not carry over from one level to the next.

  For the steps `f_1 .. f_n` in the data -> latent direction (`x_0 = x`,
  `x_i = f_i(x_{i-1})`, `z = x_n`, `ildj = sum_i ildj_i(x_{i-1})`), given the cotangents `dz`
  and `dildj`:

  ```none
  y, dy = z, dz
  for i = n .. 1:
    x = f_i^{-1}(y)                          # rebuilt input ("recompute": the kept input)
    y', l = f_i(x), ildj_i(x)                # recomputed under a gradient tape
    dx, dvars_i = vjp((y', l), (x, vars_i), (dy, dildj))
    y, dy = x, dx
  ```

  The flow is walked through its `ConditionalChain`s (each step gets the keyword arguments the
  chain routes to it) and `FactorOut`s; every other bijector is one step. Steps see Keras's
  training flag as in the forward pass, and their replays run in a `keras.StatelessScope`, so
  batch-norm moving averages are updated once per step and ActNorm layers never initialise in
  the backward pass. A `BatchNorm` in training keeps its batch statistics (2 numbers per
  channel) for the exact rebuild. A coupling is replayed with one conditioner call
  (`Coupling.replay_inverse`). In graph mode each step's replay waits for the gradients of the
  step replayed before it, so that only one step's activations are alive at a time.

  Args:
    bijector: the flow (`forward`: latent -> data), e.g. a `FlowModel`'s
      `distribution.bijector`.
    x: data `[..., *event_shape]`.
    mode: one of `MODES`.
    event_ndims: number of event dimensions of `x`.
    training: Keras's training flag of the call (the layers of the steps read it in the
      backward pass too).
    **kwargs: keyword arguments of `bijector` (e.g. `conditional_input=c`); tensors, which
      receive gradients too.

  Returns:
    `(z, ildj)`: the latent and the inverse log-determinant per example.

  Raises:
    ValueError: an unknown `mode`.
  """
  check_mode(mode)

  @tf.custom_gradient
  def run(x: tf.Tensor, *flat_conditions: tf.Tensor
          ) -> tuple[tuple[tf.Tensor, tf.Tensor], Callable[..., Any]]:
    conditions = list(flat_conditions)
    program = _walk(bijector, tf.nest.pack_sequence_as(kwargs, conditions), event_ndims)
    z, ildj, inputs, states, anchors = _run_forward(program, x,
                                                    keep_inputs=mode == "recompute")

    def grad(dz: tf.Tensor, dildj: tf.Tensor | None, variables: Sequence[tf.Variable] | None = None
             ) -> tuple[list[tf.Tensor | None], list[tf.Tensor | None]]:
      variables = list(variables or [])
      index = {v.ref(): i for i, v in enumerate(variables)}
      variable_grads: list[tf.Tensor | None] = [None] * len(variables)
      condition_grads: list[tf.Tensor | None] = [None] * len(conditions)
      dildj = tf.zeros_like(ildj) if dildj is None else dildj

      barrier: list[tf.Tensor] = []  # The gradients of the step replayed last.

      def replay(step: _Step | _ScanSteps, i: int, carried: list[tf.Tensor]
                 ) -> list[tf.Tensor]:
        # Nothing of this step runs before the last step's gradients are done: the replays'
        # forward ops do not depend on them, and running ahead would keep the activations
        # of several steps alive at once (graph mode).
        with tf.control_dependencies(barrier):
          y = tf.identity(carried[0])
          dy = tf.identity(carried[1])
          kept = (tf.identity(states[i] if isinstance(step, _ScanSteps) else inputs[i])
                  if mode == "recompute" else None)
        if isinstance(step, _ScanSteps):
          x_in, dx, extra_grads, stacked_grads = step.replay(y, dy, dildj, conditions, kept)
          read = [(variable.value, g) for variable, g in zip(step.scan.stacked.stacked,
                                                              stacked_grads, strict=True)]
        else:
          x_in, dx, extra_grads, read = _step_vjp(step, y, dy, dildj, kept, states[i],
                                                  conditions)
        for variable, g in read:
          position = index.get(variable.ref())
          if position is not None:
            variable_grads[position] = _add(variable_grads[position], g)
        for k, g in enumerate(extra_grads):
          condition_grads[k] = _add(condition_grads[k], g)
        barrier[:] = [tf.convert_to_tensor(g) for g in [dx] + extra_grads + [g for _, g in read]
                      if g is not None]
        return [x_in, dx]

      with _keras_internals.training_context(training), keras.StatelessScope():
        _, dx = _run_backward(program, [z, dz], replay, anchors)
      return [dx] + condition_grads, variable_grads

    return (z, ildj), grad

  return run(x, *tf.nest.flatten(kwargs))


def reconstruction_errors(bijector: tfp.bijectors.Bijector, x: tf.Tensor, event_ndims: int,
                          training: bool | None = None, **kwargs: Any) -> list[tf.Tensor]:
  """How far the reversible mode's rebuilt step inputs are from the forward pass's.

  Runs `bijector.inverse(x)` keeping every step's input, then rebuilds the inputs from the
  latent as the reversible backward pass does (with the same training flag, batch-norm
  statistics and stateless scope).

  Args:
    bijector: the flow, as for `inverse`.
    x: data `[..., *event_shape]`.
    event_ndims: number of event dimensions of `x`.
    training: Keras's training flag for the layers of the steps.
    **kwargs: keyword arguments of `bijector`.

  Returns:
    A list, one float tensor per step in the data -> latent order: the largest absolute
    difference between the rebuilt input of the step and its input in the forward pass. A
    step of a `Scan` (e.g. a scanned Glow step: ActNorm, 1x1 convolution and coupling) is one
    step, rebuilt as a whole.
  """
  program = _walk(bijector, kwargs, event_ndims)
  with _keras_internals.training_context(training):
    z, _, inputs, states, anchors = _run_forward(program, x, keep_inputs=True)
  gaps: list[Any] = [None] * len(inputs)

  def rebuild(step: _Step | _ScanSteps, i: int, carried: list[tf.Tensor]) -> list[tf.Tensor]:
    if isinstance(step, _ScanSteps):
      x_in, gaps[i] = _scan_rebuild(step, carried[0], states[i])
      return [x_in]
    with tf.GradientTape() as tape:
      x_in = step.rebuild_and_recompute(carried[0], states[i], tape)[0]
    gaps[i] = tf.reduce_max(tf.abs(x_in - inputs[i]))
    return [x_in]

  with _keras_internals.training_context(training), keras.StatelessScope():
    _run_backward(program, [z], rebuild, anchors)
  # A scan's steps each have their own figure.
  return [gap for entry in gaps
          for gap in (tf.unstack(entry) if entry.shape.rank == 1 else [entry])]


def _add(total: tf.Tensor | None, gradient: Any) -> tf.Tensor | None:
  if gradient is None:
    return total
  gradient = tf.convert_to_tensor(gradient)
  return gradient if total is None else total + gradient
