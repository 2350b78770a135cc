"""Adam whose update of each variable is one TensorFlow kernel."""

from __future__ import annotations

from typing import Any, Sequence

import keras
import tensorflow as tf

from tfp_realnvp import _keras_internals
from tfp_realnvp import _validation

__all__ = ["FusedAdam"]


def _constant(value: float | tf.Tensor, dtype: tf.DType) -> tf.Tensor:
  """`value` (a Python float or a tensor) in `dtype`; a float is not rounded to float32 first."""
  return tf.cast(tf.convert_to_tensor(value, dtype_hint=dtype), dtype)


@keras.saving.register_keras_serializable(package="tfp_realnvp")
class FusedAdam(keras.optimizers.Adam):
  """`keras.optimizers.Adam` with each variable's update done by one fused TensorFlow kernel.

  The algorithm, arguments, variables and serialisation are Keras's Adam (Kingma and Ba, 2015):
  at step `t` (1-based), for each variable `w` with gradient `g`,

  ```none
  m = m + (1 - beta_1) * (g - m)
  v = v + (1 - beta_2) * (g**2 - v)
  w = w - lr * sqrt(1 - beta_2**t) / (1 - beta_1**t) * m / (sqrt(v) + epsilon)
  ```

  Keras writes this update as a dozen tensor operations per variable, and recomputes the bias
  corrections `beta**t` for every variable. This optimizer runs it as TensorFlow's
  `ResourceApplyAdam`, one kernel per variable, with the step's scalars computed once per dtype. A
  Real NVP or Glow has hundreds of variables, so the training graph has thousands fewer
  operations: it is traced and optimised faster and each step runs fewer kernels. XLA compiles the
  kernel (`jit_compile=True`, as a TPU needs; tested on CPU). With `amsgrad=True` the update is
  Keras's own (TensorFlow's AMSGrad kernel has no XLA implementation), so nothing is gained there.
  Everything `keras.optimizers.Adam` does around the update (learning-rate schedules, clipping,
  weight decay, moving averages of the weights, gradient accumulation, loss scaling by
  `keras.optimizers.LossScaleOptimizer`, `tf.distribute` strategies) is Keras's own code.

  #### Example

  ```python
  model = tfp_realnvp.FlowModel(tfp_realnvp.RealNVP((28, 28, 1)))
  model.compile(optimizer=tfp_realnvp.FusedAdam(1e-3))
  ```

  Args:
    *args: positional arguments of `keras.optimizers.Adam` (`learning_rate`, `beta_1`, ...).
    **kwargs: keyword arguments of `keras.optimizers.Adam`.

  References:
    Diederik P. Kingma and Jimmy Ba. Adam: A Method for Stochastic Optimization. ICLR 2015.
    https://arxiv.org/abs/1412.6980
  """

  def __init__(self, *args: Any, **kwargs: Any) -> None:
    super().__init__(*args, **kwargs)
    _validation.number_in(self.beta_1, "beta_1", 0.0, 1.0, high_open=True)
    _validation.number_in(self.beta_2, "beta_2", 0.0, 1.0, high_open=True)
    _validation.number_in(self.epsilon, "epsilon", 0.0)
    if isinstance(self.learning_rate, keras.Variable):  # A schedule is checked by its maker.
      _validation.number_in(float(self.learning_rate.numpy()), "learning_rate", 0.0,
                            low_open=True)
    # The scalars of the step being applied, by dtype (`apply` sets it; None outside a step).
    self._step_scalars: dict[tf.DType, dict[str, tf.Tensor]] | None = None

  def apply(self, grads: Sequence[tf.Tensor],
            trainable_variables: Sequence[keras.Variable] | None = None) -> Any:
    self._step_scalars = {}
    try:
      return super().apply(grads, trainable_variables)
    finally:
      self._step_scalars = None

  def _scalars(self, learning_rate: float | tf.Tensor, dtype: tf.DType) -> dict[str, tf.Tensor]:
    """The kernel's scalar arguments in `dtype`, computed once per step and dtype."""
    scalars = (self._step_scalars or {}).get(dtype)
    if scalars is None:
      beta_1, beta_2, epsilon = (_constant(value, dtype)
                                 for value in (self.beta_1, self.beta_2, self.epsilon))
      step = tf.cast(self.iterations + 1, dtype)
      scalars = {"beta1_power": tf.pow(beta_1, step), "beta2_power": tf.pow(beta_2, step),
                 "lr": tf.cast(learning_rate, dtype), "beta1": beta_1, "beta2": beta_2,
                 "epsilon": epsilon}
      if self._step_scalars is not None:
        self._step_scalars[dtype] = scalars
    return scalars

  def update_step(self, gradient: tf.Tensor, variable: keras.Variable,
                  learning_rate: float | tf.Tensor) -> Any:
    if self.amsgrad:
      return super().update_step(gradient, variable, learning_rate)
    m, v = _keras_internals.adam_moments(self, variable)
    return tf.raw_ops.ResourceApplyAdam(
        var=variable.handle, m=m.handle, v=v.handle, grad=tf.cast(gradient, variable.dtype),
        **self._scalars(learning_rate, variable.dtype))
