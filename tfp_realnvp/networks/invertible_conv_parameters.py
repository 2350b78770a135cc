"""`InvertibleConv1x1Parameters`: the Keras 3 layer holding an `InvertibleConv1x1` kernel."""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

__all__ = ["InvertibleConv1x1Parameters"]


@keras.saving.register_keras_serializable(package="tfp_realnvp")
class InvertibleConv1x1Parameters(keras.layers.Layer):
  """Keras 3 variables of the `C x C` kernel `W` of an invertible 1x1 convolution (Glow).

  With `lu=True` (Glow's LU parameterisation) the kernel is

  ```none
  W = P L (U + diag(sign * exp(log_scale))),   log|det W| = sum(log_scale)
  ```

  with a fixed permutation `P` (`permutation`, int32), a unit lower-triangular `L` (the
  strictly lower part of `lower`), a strictly upper-triangular `U` (the strictly upper part of
  `upper`), a fixed `sign` and a learned `log_scale`. `permutation` and `sign` are
  non-trainable variables, so that a `.keras` file or a checkpoint restores the same `W`.
  With `lu=False`, `W` is one unconstrained trainable `kernel`.

  Either way `W` starts as a random rotation (the Q of the QR decomposition of a Gaussian
  matrix drawn with `seed`); the LU factors are those of that rotation.

  The layer is not called: the `InvertibleConv1x1` bijector asks it for `kernel(dtype)`,
  `inverse_kernel(dtype)` and `log_abs_det(dtype)`, each computed once per bijector call.
  With `lu=False` the inverse is `tf.linalg.inv(W)` and `log|det W|` is `sum(log|diag(R)|)`
  for the QR decomposition `W = QR` (`tf.linalg.slogdet` has no XLA kernel).

  Args:
    lu: whether to parameterise `W` by its LU decomposition.
    seed: integer seed of the initial rotation, or `None` for a fresh one.
    **kwargs: `keras.layers.Layer` arguments.
  """

  def __init__(self, lu=True, seed=None, **kwargs):
    super().__init__(**kwargs)
    self.lu = bool(lu)
    self.seed = seed

  def build(self, input_shape):
    channels = input_shape[-1]
    rotation, _ = np.linalg.qr(np.random.default_rng(self.seed).standard_normal(
        (channels, channels)))
    if not self.lu:
      self.kernel_variable = self._add_matrix("kernel", rotation)
      return
    with tf.init_scope():  # Keras builds in a scratch graph: factorise eagerly.
      lower_upper, permutation = (t.numpy() for t in tf.linalg.lu(rotation))
    diagonal = np.diag(lower_upper)
    self.permutation = self.add_weight(
        name="permutation", shape=(channels,), dtype="int32", trainable=False,
        initializer=lambda shape, dtype: permutation)
    self.sign = self.add_weight(name="sign", shape=(channels,), trainable=False,
                                initializer=lambda shape, dtype: np.sign(diagonal))
    self.log_scale = self.add_weight(name="log_scale", shape=(channels,),
                                     initializer=lambda shape, dtype: np.log(np.abs(diagonal)))
    self.lower = self._add_matrix("lower", np.tril(lower_upper, -1))
    self.upper = self._add_matrix("upper", np.triu(lower_upper, 1))
    self._strictly_lower = np.tril(np.ones((channels, channels)), -1)
    self._strictly_upper = self._strictly_lower.T

  def _add_matrix(self, name, value):
    return self.add_weight(name=name, shape=value.shape,
                           initializer=lambda shape, dtype: value)

  def _lower_upper(self, dtype):
    """`L - I + U + diag(sign * exp(log_scale))`, TensorFlow's packed LU of `W`, in `dtype`."""
    lower, upper, sign, log_scale = (
        tf.cast(v, dtype) for v in (self.lower, self.upper, self.sign, self.log_scale))
    return (lower * self._strictly_lower.astype(dtype.as_numpy_dtype)
            + upper * self._strictly_upper.astype(dtype.as_numpy_dtype)
            + tf.linalg.diag(sign * tf.exp(log_scale)))

  def kernel(self, dtype):
    """`W`, `[C, C]` in `dtype`."""
    if not self.lu:
      return tf.cast(self.kernel_variable, dtype)
    return tfp.math.lu_reconstruct(self._lower_upper(dtype), self.permutation)

  def inverse_kernel(self, dtype):
    """`W^{-1}`, `[C, C]` in `dtype`: from the LU factors, or `tf.linalg.inv(W)`."""
    if not self.lu:
      return tf.linalg.inv(self.kernel(dtype))
    return tfp.math.lu_matrix_inverse(self._lower_upper(dtype), self.permutation)

  def log_abs_det(self, dtype):
    """`log|det W|`, a scalar in `dtype`: `sum(log_scale)`, or from the QR decomposition of W."""
    if self.lu:
      return tf.reduce_sum(tf.cast(self.log_scale, dtype))
    # `tf.linalg.slogdet` has no XLA kernel, `tf.linalg.lu` neither, nor a gradient.
    r = tf.linalg.qr(self.kernel(dtype))[1]
    return tf.reduce_sum(tf.math.log(tf.abs(tf.linalg.diag_part(r))))

  def get_config(self):
    config = super().get_config()
    config.update(lu=self.lu, seed=self.seed)
    return config
