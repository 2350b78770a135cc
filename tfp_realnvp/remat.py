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


_Instruction = Union[_Split, _Step]
"""A step of the walk: `_Step`, `_Split` or `_Merge` (a `_Split`)."""


def _walk(bijector: tfp.bijectors.Bijector, kwargs: dict[str, Any],
          event_ndims: int) -> list[_Instruction]:
  """The instructions of `bijector`, in the data -> latent order."""
  if isinstance(bijector, _tfp_internals.RoutingChain):
    return [instruction for inner, inner_kwargs in bijector.routed(kwargs)
            for instruction in _walk(inner, inner_kwargs, event_ndims)]
  if isinstance(bijector, factor_out_lib.FactorOut):
    return ([_Split(bijector)] + _walk(bijector.bijector, kwargs, event_ndims)
            + [_Merge(bijector)])
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
      x, log_det, state = instruction.apply(x)
      states.append(state)
      ildj = log_det if ildj is None else ildj + log_det
  return x, ildj, inputs, states, anchors


def _run_backward(program: Sequence[_Instruction], carried: list[tf.Tensor],
                  replay: Callable[[_Step, int, list[tf.Tensor]], list[tf.Tensor]],
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
  index = sum(isinstance(instruction, _Step) for instruction in program)
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

      def replay(step: _Step, i: int, carried: list[tf.Tensor]) -> list[tf.Tensor]:
        # Nothing of this step runs before the last step's gradients are done: the replays'
        # forward ops do not depend on them, and running ahead would keep the activations
        # of several steps alive at once (graph mode).
        with tf.control_dependencies(barrier):
          y = tf.identity(inputs[i] if mode == "recompute" else carried[0])
        dy = carried[1]
        with tf.GradientTape() as tape:
          tape.watch(conditions)
          if mode == "recompute":
            x_in, sources, outputs, input_gradient = step.recompute(y, tape)
          else:
            x_in, sources, outputs, input_gradient = step.rebuild_and_recompute(
                y, states[i], tape)
        watched = [v for v in tape.watched_variables() if v.ref() in index]
        grads = tape.gradient(outputs, sources + conditions + watched,
                              output_gradients=[dy, dildj])
        barrier[:] = [tf.convert_to_tensor(g) for g in grads if g is not None]
        source_grads = [tf.zeros_like(s) if g is None else g
                        for s, g in zip(sources, grads[:len(sources)], strict=True)]
        grads = grads[len(sources):]
        for k, g in enumerate(grads[:len(conditions)]):
          condition_grads[k] = _add(condition_grads[k], g)
        for v, g in zip(watched, grads[len(conditions):], strict=True):
          variable_grads[index[v.ref()]] = _add(variable_grads[index[v.ref()]], g)
        return [x_in, input_gradient(source_grads)]

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
    difference between the rebuilt input of the step and its input in the forward pass.
  """
  program = _walk(bijector, kwargs, event_ndims)
  with _keras_internals.training_context(training):
    z, _, inputs, states, anchors = _run_forward(program, x, keep_inputs=True)
  gaps: list[tf.Tensor] = [None] * len(inputs)

  def rebuild(step: _Step, i: int, carried: list[tf.Tensor]) -> list[tf.Tensor]:
    with tf.GradientTape() as tape:
      x_in = step.rebuild_and_recompute(carried[0], states[i], tape)[0]
    gaps[i] = tf.reduce_max(tf.abs(x_in - inputs[i]))
    return [x_in]

  with _keras_internals.training_context(training), keras.StatelessScope():
    _run_backward(program, [z], rebuild, anchors)
  return gaps


def _add(total: tf.Tensor | None, gradient: Any) -> tf.Tensor | None:
  if gradient is None:
    return total
  gradient = tf.convert_to_tensor(gradient)
  return gradient if total is None else total + gradient
