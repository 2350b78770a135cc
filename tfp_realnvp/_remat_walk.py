"""The walk of a flow that `tfp_realnvp.remat` runs: its steps as instructions, both passes.

A flow is flattened into instructions in the data -> latent order (`walk`): one `Step` per
bijector, a `ScanSteps` per `Scan` (its steps replayed by a loop of their own) and a
`Split`/`Merge` pair around each `FactorOut`'s inner flow. `run_forward` and `run_backward`
walk them; `step_vjp` recomputes one step under a tape for its vector-Jacobian product.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence, Union

import tensorflow as tf
import tensorflow_probability as tfp

from tfp_realnvp import errors
from tfp_realnvp import _tfp_internals
from tfp_realnvp.bijectors import batch_norm as batch_norm_lib
from tfp_realnvp.bijectors import factor_out as factor_out_lib
from tfp_realnvp.bijectors import scan as scan_lib

# `(x, sources, outputs, input_gradient)` of a step recomputed under a tape (`Step.recompute`).
Replay = tuple[tf.Tensor, list[tf.Tensor], list[tf.Tensor],
                Callable[[Sequence[tf.Tensor]], tf.Tensor]]


class Split:
  """Walk instruction: a `FactorOut` sets its factored-out half aside."""

  def __init__(self, factor_out: factor_out_lib.FactorOut) -> None:
    self.factor_out = factor_out


class Merge(Split):
  """Walk instruction: the half set aside by the matching `Split` comes back."""


class Step:
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

  def recompute(self, x: tf.Tensor, tape: tf.GradientTape) -> Replay:
    """`apply` from the input `x` under `tape`, as `(x, sources, outputs, input_gradient)`.

    `outputs` `[z, ildj]` are computed under the tape from the watched `sources`, and
    `input_gradient` maps the gradients with respect to `sources` to that with respect to `x`.
    """
    x = tf.identity(x)  # Not the forward pass's tensor: TFP's cache misses.
    tape.watch(x)
    z, ildj, _ = self.apply(x)
    return x, [x], [z, ildj], lambda gradients: gradients[0]

  def rebuild_and_recompute(self, z: tf.Tensor, state: Any, tape: tf.GradientTape) -> Replay:
    """Rebuilds the input from the output `z` (and `state`), then `recompute`s under `tape`."""
    if hasattr(self.bijector, "replay_inverse"):  # A coupling: one conditioner call.
      return self.bijector.replay_inverse(z, tape, **self.kwargs)
    with tape.stop_recording():
      if isinstance(self.bijector, batch_norm_lib.BatchNorm):
        x = self.bijector.forward_with_statistics(z, state)
      else:  # A new tensor: TFP's cache would otherwise answer with the forward pass's input.
        x = self.bijector.forward(tf.identity(z), **self.kwargs)
    return self.recompute(x, tape)


class ScanSteps:
  """Walk instruction: a `Scan`, whose steps are replayed by a loop of their own.

  Its steps are the instructions of the `Scan`'s step bijector (`program`), run for every step
  `k` with that step's slice of the stacked variables: the forward pass and the backward pass
  are each one `tf.while_loop`, so the traced graph holds one step, however many there are.
  """

  def __init__(self, scan: scan_lib.Scan, kwargs: dict[str, Any], event_ndims: int) -> None:
    self.scan = scan
    self.kwargs = kwargs
    self.event_ndims = event_ndims
    program = walk(scan.step, kwargs, event_ndims)
    self.program = [instruction for instruction in program if isinstance(instruction, Step)]
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
    read = self.scan.stacked.step_reader()

    def body(k: tf.Tensor, x: tf.Tensor, log_det: tf.Tensor, kept: tf.TensorArray
             ) -> tuple[tf.Tensor, tf.Tensor, tf.TensorArray]:
      if keep_inputs:
        kept = kept.write(k, x)
      y, ildj = self.scan.step_inverse(read, k, x, **self.kwargs)
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
    read = stacked.step_reader()

    def body(i: tf.Tensor, y: tf.Tensor, dy: tf.Tensor, arrays: list[tf.TensorArray],
             condition_sums: list[tf.Tensor]) -> tuple[Any, ...]:
      k = steps - 1 - i
      values = read(k)
      value_sums: list[tf.Tensor | None] = [None] * len(values)
      extra = list(values) + list(conditions)
      with stacked.values_of(values):
        replays: list[tuple[Step | Whole, tf.Tensor | None]]
        if kept is not None:  # Recompute: the whole step from its kept input.
          replays = [(Whole(self.program), tf.gather(kept, k))]
        else:  # Reversible: each instruction of the step rebuilt from its output.
          replays = [(instruction, None) for instruction in reversed(self.program)]
        for instruction, kept_input in replays:
          y, dy, extra_grads, _ = step_vjp(instruction, y, dy, dildj, kept_input, None, extra)
          value_sums = [add(total, g)
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


def scan_rebuild(scan_steps: ScanSteps, z: tf.Tensor, kept: tf.Tensor
                  ) -> tuple[tf.Tensor, tf.Tensor]:
  """Rebuilds a scan's inputs from its output: `(x, gaps)`, `gaps[k]` step `k`'s largest error
  against the kept inputs `kept` `[K, ...]`."""
  stacked = scan_steps.scan.stacked
  steps = scan_steps.scan.num_steps
  gaps = tf.TensorArray(z.dtype, size=steps)
  read = stacked.step_reader()

  def body(i: tf.Tensor, y: tf.Tensor, gaps: tf.TensorArray
           ) -> tuple[tf.Tensor, tf.TensorArray]:
    k = steps - 1 - i
    with stacked.values_of(read(k)):
      for instruction in reversed(scan_steps.program):
        with tf.GradientTape() as tape:
          y = instruction.rebuild_and_recompute(y, None, tape)[0]
    return y, gaps.write(k, tf.reduce_max(tf.abs(y - tf.gather(kept, k))))

  x, gaps = scan_lib.loop(steps, body, (z, gaps))
  return x, gaps.stack()


class Whole:
  """The instructions of a step recomputed together from their kept input (recompute mode)."""

  def __init__(self, program: Sequence[Step]) -> None:
    self.program = program

  def recompute(self, x: tf.Tensor, tape: tf.GradientTape) -> Replay:
    x = tf.identity(x)
    tape.watch(x)
    z, ildj, _, _, _ = run_forward(self.program, x, keep_inputs=False)
    return x, [x], [z, ildj], lambda gradients: gradients[0]


def step_vjp(step: Any, y: tf.Tensor, dy: tf.Tensor, dildj: tf.Tensor,
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


Instruction = Union[Split, Step, ScanSteps]
"""A step of the walk: `Step`, `ScanSteps`, `Split` or `Merge` (a `Split`)."""


def walk(bijector: tfp.bijectors.Bijector, kwargs: dict[str, Any],
          event_ndims: int) -> list[Instruction]:
  """The instructions of `bijector`, in the data -> latent order."""
  if isinstance(bijector, _tfp_internals.RoutingChain):
    return [instruction for inner, inner_kwargs in bijector.routed(kwargs)
            for instruction in walk(inner, inner_kwargs, event_ndims)]
  if isinstance(bijector, factor_out_lib.FactorOut):
    return ([Split(bijector)] + walk(bijector.bijector, kwargs, event_ndims)
            + [Merge(bijector)])
  if isinstance(bijector, scan_lib.Scan):
    return [ScanSteps(bijector, kwargs, event_ndims)]
  return [Step(bijector, kwargs, event_ndims)]


def split(factor_out: factor_out_lib.FactorOut, x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
  return factor_out._split(x)  # pylint: disable=protected-access


def run_forward(program: Sequence[Instruction], x: tf.Tensor, keep_inputs: bool
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
    if isinstance(instruction, Merge):
      x = tf.concat([aside.pop(), x], axis=-1)
    elif isinstance(instruction, Split):
      anchors.append(x)
      factored, x = split(instruction.factor_out, x)
      aside.append(factored)
    else:
      if keep_inputs:
        inputs.append(x)
      if isinstance(instruction, ScanSteps):
        x, log_det, state = instruction.apply(x, keep_inputs)
      else:
        x, log_det, state = instruction.apply(x)
      states.append(state)
      ildj = log_det if ildj is None else ildj + log_det
  return x, ildj, inputs, states, anchors


def run_backward(program: Sequence[Instruction], carried: list[tf.Tensor],
                  replay: Callable[[Step | ScanSteps, int, list[tf.Tensor]],
                                   list[tf.Tensor]],
                  anchors: Sequence[tf.Tensor]) -> list[tf.Tensor]:
  """Walks `program` from its end with tensors shaped like the latent (e.g. `[z, dz]`).

  The factored-out halves of `carried` are set aside at a `Merge` and come back at its
  `Split`, where the rebuilt value `carried[0]` is replaced by the forward pass's (`anchors`,
  popped): the rounding of the rebuilds does not carry over from one level to the next. At
  the `i`-th step, `carried = replay(step, i, carried)` maps the step's output side to its
  input side.
  """
  anchors = list(anchors)
  aside: list[list[tf.Tensor]] = []
  index = sum(isinstance(instruction, (Step, ScanSteps)) for instruction in program)
  for instruction in reversed(program):
    if isinstance(instruction, Merge):
      halves = [split(instruction.factor_out, t) for t in carried]
      aside.append([factored for factored, _ in halves])
      carried = [kept for _, kept in halves]
    elif isinstance(instruction, Split):
      halves = aside.pop()
      carried = [anchors.pop()] + [tf.concat([factored, t], axis=-1)
                                   for factored, t in zip(halves[1:], carried[1:], strict=True)]
    else:
      index -= 1
      carried = replay(instruction, index, carried)
  return carried


def add(total: tf.Tensor | None, gradient: Any) -> tf.Tensor | None:
  if gradient is None:
    return total
  gradient = tf.convert_to_tensor(gradient)
  return gradient if total is None else total + gradient
