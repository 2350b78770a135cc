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

from typing import Any, Callable, Sequence

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_realnvp import errors
from tfp_realnvp import _keras_internals
from tfp_realnvp import _remat_walk as walk_lib

__all__ = ["MODES", "check_mode", "inverse", "reconstruction_errors"]

MODES = ("recompute", "reversible")
"""The memory-saving modes of `FlowModel(remat=...)`; `None` is the standard mode."""


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
    program = walk_lib.walk(bijector, tf.nest.pack_sequence_as(kwargs, conditions), event_ndims)
    z, ildj, inputs, states, anchors = walk_lib.run_forward(program, x,
                                                    keep_inputs=mode == "recompute")

    def grad(dz: tf.Tensor, dildj: tf.Tensor | None, variables: Sequence[tf.Variable] | None = None
             ) -> tuple[list[tf.Tensor | None], list[tf.Tensor | None]]:
      variables = list(variables or [])
      index = {v.ref(): i for i, v in enumerate(variables)}
      variable_grads: list[tf.Tensor | None] = [None] * len(variables)
      condition_grads: list[tf.Tensor | None] = [None] * len(conditions)
      dildj = tf.zeros_like(ildj) if dildj is None else dildj

      barrier: list[tf.Tensor] = []  # The gradients of the step replayed last.

      def replay(step: walk_lib.Step | walk_lib.ScanSteps, i: int, carried: list[tf.Tensor]
                 ) -> list[tf.Tensor]:
        # Nothing of this step runs before the last step's gradients are done: the replays'
        # forward ops do not depend on them, and running ahead would keep the activations
        # of several steps alive at once (graph mode).
        with tf.control_dependencies(barrier):
          y = tf.identity(carried[0])
          dy = tf.identity(carried[1])
          kept = (tf.identity(states[i] if isinstance(step, walk_lib.ScanSteps) else inputs[i])
                  if mode == "recompute" else None)
        if isinstance(step, walk_lib.ScanSteps):
          x_in, dx, extra_grads, stacked_grads = step.replay(y, dy, dildj, conditions, kept)
          read = [(variable.value, g) for variable, g in zip(step.scan.stacked.stacked,
                                                              stacked_grads, strict=True)]
        else:
          x_in, dx, extra_grads, read = walk_lib.step_vjp(step, y, dy, dildj, kept,
                                                          states[i], conditions)
        for variable, g in read:
          position = index.get(variable.ref())
          if position is not None:
            variable_grads[position] = walk_lib.add(variable_grads[position], g)
        for k, g in enumerate(extra_grads):
          condition_grads[k] = walk_lib.add(condition_grads[k], g)
        barrier[:] = [tf.convert_to_tensor(g) for g in [dx] + extra_grads + [g for _, g in read]
                      if g is not None]
        return [x_in, dx]

      with _keras_internals.training_context(training), keras.StatelessScope():
        _, dx = walk_lib.run_backward(program, [z, dz], replay, anchors)
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
  program = walk_lib.walk(bijector, kwargs, event_ndims)
  with _keras_internals.training_context(training):
    z, _, inputs, states, anchors = walk_lib.run_forward(program, x, keep_inputs=True)
  gaps: list[Any] = [None] * len(inputs)

  def rebuild(step: walk_lib.Step | walk_lib.ScanSteps, i: int, carried: list[tf.Tensor]
              ) -> list[tf.Tensor]:
    if isinstance(step, walk_lib.ScanSteps):
      x_in, gaps[i] = walk_lib.scan_rebuild(step, carried[0], states[i])
      return [x_in]
    with tf.GradientTape() as tape:
      x_in = step.rebuild_and_recompute(carried[0], states[i], tape)[0]
    gaps[i] = tf.reduce_max(tf.abs(x_in - inputs[i]))
    return [x_in]

  with _keras_internals.training_context(training), keras.StatelessScope():
    walk_lib.run_backward(program, [z], rebuild, anchors)
  # A scan's steps each have their own figure.
  return [gap for entry in gaps
          for gap in (tf.unstack(entry) if entry.shape.rank == 1 else [entry])]
