"""How `FlowModel` trains under Keras: its steps, loss, L2 penalty and metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import keras
from keras import ops
import tensorflow as tf

from tfp_realnvp import _distribute
from tfp_realnvp.networks import weight_norm

if TYPE_CHECKING:
  # For a type checker the mixin is the Keras model it is mixed into (Keras is untyped).
  from keras import Model as _ModelBase

  from tfp_realnvp import dequantization
  from tfp_realnvp import flows
else:
  _ModelBase = object

__all__ = ["LikelihoodTraining"]


class LikelihoodTraining(_ModelBase):
  """The maximum-likelihood training of a `keras.Model` whose outputs are log-likelihoods.

  A mixin of `tfp_realnvp.FlowModel`, which provides `flow`, `dequantizer`, `l2`,
  `condition_spec`, `check_inputs`, `bits_from_log_prob` and `bits_per_dim_tracker`. Keras
  reads a pair `(x, c)` as inputs and targets and calls a model on the inputs alone, so the steps
  repack a conditional model's batch as inputs `(x, c)` without targets and hand it to Keras's own
  steps, which keep the loss tracking, the per-replica loss scaling and the metrics.
  """

  flow: flows.FlowLayer
  dequantizer: dequantization.VariationalDequantizer | None
  l2: float
  bits_per_dim_tracker: keras.metrics.Mean


  def _check_host_data(self, x: Any, y: Any = None) -> None:
    """`check_inputs` of the arrays given to `fit`, `evaluate` or `predict` (on the host)."""
    conditional = self.condition_spec is not None
    if conditional and isinstance(x, (tuple, list)) and len(x) == 2:
      x, y = x
    self.check_inputs(x, y if conditional else None)

  def fit(self, x: Any = None, y: Any = None, *args: Any, **kwargs: Any) -> Any:
    """Keras's `fit`, after checking the data given as arrays (see `FlowModel.check_inputs`)."""
    self._check_host_data(x, y)
    validation = kwargs.get("validation_data")
    if isinstance(validation, (tuple, list)):
      self._check_host_data(*validation[:2])
    elif validation is not None:
      self._check_host_data(validation)
    return super().fit(x, y, *args, **kwargs)

  def evaluate(self, x: Any = None, y: Any = None, *args: Any, **kwargs: Any) -> Any:
    """Keras's `evaluate`, after checking the data given as arrays."""
    self._check_host_data(x, y)
    return super().evaluate(x, y, *args, **kwargs)

  def predict(self, x: Any, *args: Any, **kwargs: Any) -> Any:
    """Keras's `predict` (per-example log-likelihoods), after checking array data."""
    self._check_host_data(x)
    return super().predict(x, *args, **kwargs)

  def make_train_function(self, force: bool = False) -> Any:
    """Builds the optimizer's variables eagerly, then Keras's training function.

    Without a distribution strategy Keras creates the optimizer's slot variables inside the
    first traced training step, one captured variable at a time, which made the first step
    of a Real NVP (hundreds of variables) several times slower to trace.
    """
    if self.optimizer is not None and not self.optimizer.built:
      with self.distribute_strategy.scope():
        self.optimizer.build(self.trainable_variables)
    return super().make_train_function(force=force)

  def _pack_condition(self, data: Any) -> Any:
    """Repacks a conditional model's batch `(x, c[, sample_weight])` as inputs `(x, c)`."""
    if self.condition_spec is None:
      return data
    x, condition, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    if condition is None:  # Already inputs `((x, c),)`, or `x` alone, which `call` rejects.
      return data
    return ((x, condition),) if sample_weight is None else ((x, condition), None, sample_weight)

  def train_step(self, data: Any) -> dict[str, Any]:
    return super().train_step(self._pack_condition(data))

  def test_step(self, data: Any) -> dict[str, Any]:
    return super().test_step(self._pack_condition(data))

  def predict_step(self, data: Any) -> tf.Tensor:
    return super().predict_step(self._pack_condition(data))

  def regularization_penalty(self) -> tf.Tensor:
    """`l2 * sum(g ** 2)` over the weight-norm scales of every network of the flow (and of the
    dequantizer, if any)."""
    scales = weight_norm.weight_scales(self.flow)
    if self.dequantizer is not None:
      scales += self.dequantizer.weight_scales
    if not self.l2 or not scales:
      return tf.zeros([], self.compute_dtype)
    return self.l2 * ops.sum(ops.stack([ops.sum(ops.square(g)) for g in scales]))

  def compute_loss(self, x: Any = None, y: Any = None, y_pred: Any = None,
                   sample_weight: tf.Tensor | None = None, training: bool = True) -> tf.Tensor:
    """The mean NLL of the batch (weighted by `sample_weight`, if any) plus the L2 penalty."""
    del x, y, training
    if sample_weight is None:
      nll = -ops.mean(y_pred)
    else:
      weights = ops.cast(sample_weight, y_pred.dtype)
      if len(weights.shape) > len(y_pred.shape):  # E.g. `[N, 1]` weights of `[N]` examples.
        weights = ops.reshape(weights, ops.shape(y_pred))
      weights = ops.broadcast_to(weights, ops.shape(y_pred))
      nll = ops.divide_no_nan(-ops.sum(y_pred * weights), ops.sum(weights))
    loss = nll + ops.cast(self.regularization_penalty(), y_pred.dtype)
    return _distribute.scale_loss_for_distribution(loss)

  def compute_metrics(self, x: Any, y: Any, y_pred: tf.Tensor,
                      sample_weight: tf.Tensor | None = None) -> dict[str, Any]:
    del x, y
    self.bits_per_dim_tracker.update_state(self.bits_from_log_prob(y_pred),
                                           sample_weight=sample_weight)
    results = self.get_metrics_result()
    if _distribute.in_multi_worker_mode(self.distribute_strategy):
      # Keras 3 reduces every log across workers along axis 0, which fails on scalars under
      # MultiWorkerMirroredStrategy ("Invalid reduction dimension 0"); give them that axis.
      results = {name: ops.reshape(value, [1]) for name, value in results.items()}
    return results
