"""`make_optimizer`: the Adam optimizer of a preset's training settings."""

from __future__ import annotations

import keras

from tfp_realnvp import configs
from tfp_realnvp import optimizers

__all__ = ["make_optimizer", "set_learning_rate"]


def make_optimizer(settings: configs.TrainingSettings) -> optimizers.FusedAdam:
  """The Adam optimizer of a preset's training settings (`Preset.training`).

  It is `tfp_realnvp.FusedAdam`: Keras's Adam with one kernel per variable update.

  * `learning_rate`, after `warmup_steps` steps of linear warm-up from 0 when `warmup_steps` is
    not 0: Keras's `CosineDecay` schedule with `warmup_target`, held constant after the warm-up
    (`alpha=1`), so that the optimizer (and a `.keras` file) stays serializable;
  * `clipnorm`: Keras's `global_clipnorm`, which scales all the gradients together so that their
    global norm is at most `clipnorm` (not Keras's `clipnorm`, which clips each variable's
    gradient on its own and changes the direction of the update);
  * `ema`: Keras's exponential moving average of the trainable weights (`use_ema=True`,
    `ema_momentum=ema`), kept in the optimizer's variables; see `averaged_weights` and `train`
    for where the averaged weights are used.
  """
  learning_rate = settings.learning_rate
  if settings.warmup_steps:
    learning_rate = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=1, alpha=1.0, warmup_target=settings.learning_rate,
        warmup_steps=settings.warmup_steps)
  return optimizers.FusedAdam(learning_rate, global_clipnorm=settings.clipnorm,
                              use_ema=settings.ema > 0, ema_momentum=settings.ema)


def set_learning_rate(optimizer: keras.optimizers.Optimizer, learning_rate: float) -> None:
  """Sets the constant learning rate of `optimizer` (inside a `LossScaleOptimizer` too).

  Keras keeps a constant learning rate in a variable, which a backup restores with the other
  optimizer variables: a run resumed with another learning rate sets it again here. A schedule
  (the warm-up) is part of the optimizer's configuration, not of its variables, so nothing is
  set then.
  """
  optimizer = getattr(optimizer, "inner_optimizer", optimizer)
  if isinstance(optimizer.learning_rate, keras.Variable):
    optimizer.learning_rate.assign(learning_rate)
