"""What the package needs from `tf.distribute`: global-batch moments, loss scaling, workers."""

from __future__ import annotations

from typing import Sequence

from keras import ops
import tensorflow as tf

__all__ = ["batch_moments", "in_multi_worker_mode", "loops_can_synchronize", "replicas_in_sync",
           "scale_loss_for_distribution"]


def replicas_in_sync() -> int:
  """Replicas whose batches make up the global batch (1 outside a `tf.distribute` strategy)."""
  context = tf.distribute.get_replica_context()
  return 1 if context is None else context.num_replicas_in_sync


def loops_can_synchronize() -> bool:
  """Whether an all-reduce may run inside a `tf.while_loop` of the current replica context.

  One replica has nothing to synchronise, and a TPU's replicas reduce with XLA's collectives,
  which loops may hold; the other strategies with several replicas (MirroredStrategy,
  MultiWorkerMirroredStrategy) all-reduce through `merge_call`, which control flow may not hold.
  """
  return replicas_in_sync() == 1 or isinstance(tf.distribute.get_strategy(),
                                               tf.distribute.TPUStrategy)


def batch_moments(x: tf.Tensor, axes: Sequence[int]) -> tuple[tf.Tensor, tf.Tensor]:
  """Mean and (biased) variance of `x` over `axes` and over the global batch.

  Under a `tf.distribute` strategy with more than one replica in sync the sums are all-reduced,
  so every replica gets the statistics of the global batch. With one replica (no strategy, or
  a one-device strategy) there is nothing to reduce, and the two-pass `tf.nn.moments` is used
  instead: Keras's synchronised moments would still build the all-reduce's extra tensors (a
  count tensor the size of `x`, sums of squares).

  Args:
    x: floating-point tensor.
    axes: axes to reduce.

  Returns:
    `(mean, variance)` with `axes` removed.
  """
  if replicas_in_sync() > 1:
    return ops.moments(x, axes=axes, synchronized=True)
  return tf.nn.moments(x, axes=axes)


def scale_loss_for_distribution(loss: tf.Tensor) -> tf.Tensor:
  """Divides a per-replica loss by the number of replicas under a `tf.distribute` strategy.

  Keras sums the gradients of all replicas and un-scales the reported loss again, so a custom
  loss must be scaled like Keras's own losses for the global batch to be trained on its mean.
  """
  replicas = tf.distribute.get_strategy().num_replicas_in_sync
  return loss if replicas == 1 else loss / tf.cast(replicas, loss.dtype)


def in_multi_worker_mode(strategy: tf.distribute.Strategy) -> bool:
  """Whether `strategy` is a MultiWorkerMirroredStrategy spanning several workers."""
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return False
  return strategy.extended._in_multi_worker_mode()  # pylint: disable=protected-access
