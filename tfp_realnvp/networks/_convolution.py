"""Stride-1 "same" convolutions whose gradients XLA compiles well on a CPU, inside loops too.

`conv2d_same` is the convolution of `Conv2D` and `WeightNormConv2D`; why and how its gradient
differs under XLA on a CPU is in `Conv2D`'s docstring.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops
import tensorflow as tf

from tfp_realnvp import _tf_internals
from tfp_realnvp import hardware

__all__ = ["Conv2D", "conv2d_same"]


@tf.custom_gradient
def _conv2d_with_canonical_gradient(inputs: tf.Tensor, kernel: tf.Tensor) -> Any:
  """`conv2d(inputs, kernel)`, stride 1, "same", its gradient in the NHWC/HWIO layout only.

  The gradient's equations are in `Conv2D`'s docstring; `kernel`'s spatial sizes are odd.
  """
  outputs = tf.nn.conv2d(inputs, kernel, strides=1, padding="SAME")

  def gradient(upstream: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    kh, kw = kernel.shape[0], kernel.shape[1]
    flipped = tf.transpose(tf.reverse(kernel, axis=[0, 1]), [0, 1, 3, 2])
    inputs_gradient = tf.nn.conv2d(upstream, flipped, strides=1, padding="SAME")
    pad_h, pad_w = (kh - 1) // 2, (kw - 1) // 2
    kernel_gradient = tf.nn.conv2d(
        tf.transpose(inputs, [3, 1, 2, 0]), tf.transpose(upstream, [1, 2, 0, 3]), strides=1,
        padding=[[0, 0], [pad_h, pad_h], [pad_w, pad_w], [0, 0]])
    return inputs_gradient, tf.transpose(kernel_gradient, [1, 2, 0, 3])

  return outputs, gradient


def conv2d_same(inputs: Any, kernel: Any) -> Any:
  """A stride-1, "same"-padded 2-D convolution of NHWC `inputs` with an HWIO `kernel`.

  The kernel's spatial sizes must be odd. Traced for XLA on a CPU, the gradient is computed in
  the one layout XLA's CPU compiler runs fast everywhere, inside loops too (`Conv2D`'s
  docstring); otherwise this is `keras.ops.conv(inputs, kernel, padding="same")`.
  """
  if (_tf_internals.in_xla_context()
      and hardware._device_kind(None) == "CPU"):  # pylint: disable=protected-access
    return _conv2d_with_canonical_gradient(tf.convert_to_tensor(inputs),
                                           tf.convert_to_tensor(kernel))
  return ops.conv(inputs, kernel, strides=1, padding="same")


@keras.saving.register_keras_serializable(package="tfp_realnvp")
class Conv2D(keras.layers.Conv2D):
  """`keras.layers.Conv2D` whose gradient stays fast under XLA on a CPU, inside loops too.

  The same layer as Keras's (arguments, weights, configuration and outputs), for coupling
  networks that may run inside a scanned flow (`Glow(scan=True)`: each level's steps are one
  loop) compiled with XLA on a CPU. There, TensorFlow's convolution gradients reach XLA in
  layouts that XLA's CPU compiler turns into plain nested loops inside a loop's body, tens of
  times slower than its library convolution. For a stride-1 convolution `y = conv(x, W)` with
  "same" padding (or a 1x1 kernel) and odd `kh x kw` kernel, this layer's gradient with
  respect to the upstream gradient `g = dL/dy` is computed as two convolutions in the layout
  XLA runs fast (NHWC images, HWIO kernels):

  ```none
  dL/dx = conv(g, W'),           W'[i, j, o, c] = W[kh - 1 - i, kw - 1 - j, c, o]
  dL/dW[i, j, c, o] = sum_{n, h, w} x_pad[n, h + i, w + j, c] g[n, h, w, o],
  ```

  the second as a convolution of the transposed `x_pad` (`[C, H + kh - 1, W + kw - 1, N]`)
  with the transposed `g` (`[H, W, N, O]`). Elsewhere (eager, plain graphs, GPUs, TPUs) and
  for other settings (strides, dilation, groups, channels first, even kernels, "valid" padding
  of a larger kernel) it is Keras's convolution and TensorFlow's gradient. Glow's coupling
  networks (`GlowCouplingNetwork`, `SplitPriorNetwork`) are built from it, and
  `WeightNormConv2D` computes its convolution the same way.

  ```python
  conv = tfp_realnvp.networks.Conv2D(64, 3, padding="same")
  y = conv(tf.zeros([2, 8, 8, 3]))     # [2, 8, 8, 64], as keras.layers.Conv2D
  ```

  Its constructor takes `keras.layers.Conv2D`'s arguments (`filters`, `kernel_size`,
  `padding`, ...), with the same meaning and defaults.

  References:
    Vincent Dumoulin and Francesco Visin. A guide to convolution arithmetic for deep learning.
    2016. https://arxiv.org/abs/1603.07285 (the gradient of a convolution as a convolution).
  """

  def convolution_op(self, inputs: Any, kernel: Any) -> Any:
    pointwise = all(k == 1 for k in self.kernel_size)  # "valid" is "same" for a 1x1 kernel.
    if ((self.padding == "same" or pointwise) and self.data_format == "channels_last"
        and self.groups == 1 and all(s == 1 for s in self.strides)
        and all(d == 1 for d in self.dilation_rate)
        and all(k % 2 == 1 for k in self.kernel_size)):
      return conv2d_same(inputs, kernel)
    return super().convolution_op(inputs, kernel)
