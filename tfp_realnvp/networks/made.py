"""MADE, the masked autoencoder behind MAF and IAF, as a Keras 3 layer."""

import numbers

import keras
from keras import ops
import numpy as np

from tfp_realnvp import _validation

__all__ = ["MADE", "made_masks"]

_NAMED_ORDERS = ("left-to-right", "right-to-left", "random")
_HIDDEN_DEGREES = ("equal", "random")


def _input_degrees(event_size, input_order, rng):
  """The degree (1-based position in the autoregressive order) of every input."""
  if isinstance(input_order, str):
    if input_order == "left-to-right":
      return np.arange(1, event_size + 1)
    if input_order == "right-to-left":
      return np.arange(event_size, 0, -1)
    if input_order == "random":
      return rng.permutation(event_size) + 1
    raise ValueError(
        f"input_order must be one of {_NAMED_ORDERS} or a permutation of 1..{event_size}, got "
        f"{input_order!r}.")
  try:
    degrees = np.asarray(input_order)
  except Exception:  # pylint: disable=broad-except
    degrees = None
  if (degrees is None or degrees.ndim != 1 or degrees.size == 0
      or not np.issubdtype(degrees.dtype, np.integer)):
    raise ValueError(
        f"input_order must be one of {_NAMED_ORDERS} or a list of integers (a permutation of "
        f"1..{event_size}), got {input_order!r}.")
  if np.array_equal(np.sort(degrees), np.arange(1, event_size + 1)):
    return degrees.astype(np.int64)
  if np.array_equal(np.sort(degrees), np.arange(event_size)):
    raise ValueError(
        f"input_order uses 1-based degrees (a permutation of 1..{event_size}, as in "
        f"tfb.AutoregressiveNetwork), got the 0-based permutation {list(degrees)}; add 1 to it.")
  raise ValueError(
      f"input_order must be a permutation of 1..{event_size} (event_size={event_size}), got "
      f"{list(degrees)}.")


def _hidden_degrees(event_size, hidden_units, method, previous_min, rng):
  """Degrees of the units of every hidden layer (Germain et al., 2015, Sec. 4)."""
  degrees = []
  high = event_size - 1  # No hidden unit may see every input.
  for units in hidden_units:
    low = min(previous_min, high)
    count = high - low + 1
    if method == "equal":
      # Every degree in [low, high] gets floor or ceil of units / count units; with fewer units
      # than degrees, the units are spread evenly over the range.
      layer = low + (np.arange(units) * count) // units
    else:
      layer = rng.integers(low, high + 1, size=units)
    degrees.append(layer.astype(np.int64))
    previous_min = int(layer.min())
  return degrees


def made_masks(event_size, hidden_units, input_order="left-to-right", hidden_degrees="equal",
               seed=None):
  """Connectivity masks of a dense MADE network, as NumPy arrays.

  A hidden unit of degree `m` sees the units of the layer below of degree `<= m`; the outputs of
  input `i` (degree `d_i`) see the units of the last hidden layer (or, without hidden layers, the
  inputs) of degree `< d_i`. So output `i` depends only on the inputs `j` with `d_j < d_i`.

  Args:
    event_size: number of inputs `D`.
    hidden_units: widths of the hidden layers.
    input_order: see `MADE`.
    hidden_degrees: `"equal"` or `"random"`.
    seed: integer seed of the random order and degrees (`None`: fresh entropy).

  Returns:
    `(input_degrees, masks)`: the `[D]` degrees of the inputs and one boolean mask
    `[fan_in, fan_out]` per hidden layer plus the `[fan_in, D]` mask of the output layer.
  """
  rng = np.random.default_rng(seed)
  input_degrees = _input_degrees(event_size, input_order, rng)
  hidden = _hidden_degrees(event_size, hidden_units, hidden_degrees, int(input_degrees.min()),
                           rng)
  masks = []
  below = input_degrees
  for layer in hidden:
    masks.append(below[:, None] <= layer[None, :])
    below = layer
  masks.append(below[:, None] < input_degrees[None, :])
  return input_degrees, masks


@keras.saving.register_keras_serializable(package="tfp_realnvp")
class MADE(keras.layers.Layer):
  """Masked autoencoder (MADE) giving the shift and log-scale of a MAF or an IAF.

  A dense network whose weight matrices are masked so that `shift[..., i]` and
  `log_scale[..., i]` depend only on the inputs that come before `i` in the autoregressive
  order (Germain et al., 2015). It is the `shift_and_log_scale_fn` of TFP's masked
  autoregressive flow, and a Keras 3 replacement for `tfb.AutoregressiveNetwork(params=2)`
  (a `tf_keras` layer that a Keras 3 model can neither track nor train):

  ```python
  made = MADE(event_size=5, hidden_units=(64, 64))
  maf = tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=made)  # Papamakarios et al.
  iaf = tfb.Invert(tfb.MaskedAutoregressiveFlow(shift_and_log_scale_fn=made))  # Kingma et al.
  flow = tfd.TransformedDistribution(tfd.Sample(tfd.Normal(0., 1.), [5]), maf)
  ```

  Direction is TFP's: `maf.forward` maps latent to data in `event_size` sequential passes of the
  network, `maf.inverse` (used by `log_prob`) takes one pass; an IAF is the other way round.
  Hold the layer in a `keras.Model` so that the model tracks, trains and saves its variables.

  ```none
  h_0 = x
  h_l = activation((W_l * M_l) h_{l-1} + b_l + V_l c)     # c: conditional input, unmasked
  shift, raw = split((W * M) h_L + b + V c)              # output layer starts at zero
  log_scale = raw, or bound * tanh(raw / bound)
  ```

  Input order: `input_order[i]` is the 1-based degree (position in the autoregressive order) of
  input `i`, the convention of `tfb.AutoregressiveNetwork`; output `i` depends exactly on the
  inputs `j` with `input_order[j] < input_order[i]`. `"left-to-right"` is `[1, 2, ..., D]`
  (`p(x_1) p(x_2 | x_1) ...`), `"right-to-left"` is `[D, ..., 2, 1]`, `"random"` a random
  permutation drawn from `seed`.

  Hidden degrees lie in `[min degree of the layer below, D - 1]`: `"equal"` spreads them evenly
  (every degree gets the same number of units up to one when the layer has at least `D - 1`
  units), `"random"` draws them uniformly from `seed`. The masks are NumPy constants computed in
  `__init__` from the configuration (never variables), so `get_config` recreates them; when a
  random order or random degrees are asked for without a `seed`, a seed is drawn once and
  stored in the configuration so a saved model reloads with the same masks.

  The output layer (its kernel, bias and conditional kernel) starts at zero, so a new layer gives
  `shift = log_scale = 0` and a new MAF or IAF is the identity.

  Args:
    event_size: size `D` of the (vector) events.
    hidden_units: widths of the hidden layers; `()` gives a masked linear map.
    activation: activation of the hidden layers (anything `keras.activations.get` accepts).
    input_order: `"left-to-right"`, `"right-to-left"`, `"random"`, or a permutation of
      `1..D` giving the degree of every input (see above).
    hidden_degrees: `"equal"` or `"random"`.
    conditional_size: size `K` of a conditional input `c` that enters every layer (the hidden
      layers and the output layer) through unmasked dense kernels; `None` for none.
    log_scale_bound: `None` for an unbounded log-scale, or a positive float `b`: the log-scale is
      then `b * tanh(raw / b)`, which lies in `(-b, b)` and is close to `raw` for `|raw| << b`.
    kernel_initializer: initialiser of the hidden (and hidden conditional) kernels.
    seed: integer seed of a random `input_order` and of random `hidden_degrees`. It seeds the
      masks only; seed the weights through `kernel_initializer`.
    **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).

  Call arguments:
    x: `[..., D]` floating-point tensor, any number of batch dimensions.
    conditional_input: `[..., K]` tensor, required iff `conditional_size` is set. Pass it by
      keyword; through TFP, as a bijector keyword argument:
      `maf.forward(z, conditional_input=c)` or
      `flow.log_prob(x, bijector_kwargs={"conditional_input": c})`. Its batch dimensions
      broadcast against those of `x`.

  Returns:
    `(shift, log_scale)`, each `[..., D]` (batch dimensions broadcast), in the layer's compute
    dtype; the caller casts if it needs another dtype.

  Raises:
    ValueError: on invalid constructor arguments, a last dimension of `x` other than
      `event_size`, a missing or unexpected conditional input, or unknown keyword arguments.
    TypeError: `x` is not floating point.

  References:
    Mathieu Germain, Karol Gregor, Iain Murray, and Hugo Larochelle. MADE: Masked Autoencoder
    for Distribution Estimation. ICML 2015. https://arxiv.org/abs/1502.03509

    George Papamakarios, Theo Pavlakou, and Iain Murray. Masked Autoregressive Flow for Density
    Estimation. NeurIPS 2017. https://arxiv.org/abs/1705.07057

    Diederik P. Kingma, Tim Salimans, Rafal Jozefowicz, Xi Chen, Ilya Sutskever, and Max
    Welling. Improved Variational Inference with Inverse Autoregressive Flow. NeurIPS 2016.
    https://arxiv.org/abs/1606.04934
  """

  def __init__(self, event_size, hidden_units=(64, 64), activation="relu",
               input_order="left-to-right", hidden_degrees="equal", conditional_size=None,
               log_scale_bound=None, kernel_initializer="glorot_uniform", seed=None, **kwargs):
    super().__init__(**kwargs)
    self.event_size = _validation.positive_int(event_size, "event_size")
    if _validation.is_integer(hidden_units) or isinstance(hidden_units, str):
      raise ValueError(
          f"hidden_units must be a sequence of positive integers, e.g. (64, 64), got "
          f"{hidden_units!r}.")
    try:
      units = tuple(hidden_units)
    except TypeError:
      units = None
    if units is None or not all(_validation.is_integer(u) and u >= 1 for u in units):
      raise ValueError(
          f"hidden_units must be a sequence of positive integers, e.g. (64, 64), got "
          f"{hidden_units!r}.")
    self.hidden_units = tuple(int(u) for u in units)
    if isinstance(input_order, str):
      self.input_order = input_order
    elif isinstance(input_order, (list, tuple, np.ndarray)):
      if not all(_validation.is_integer(d) for d in input_order):
        raise ValueError(
            f"input_order must be one of {_NAMED_ORDERS} or a list of integers (a permutation "
            f"of 1..{self.event_size}), got {input_order!r}.")
      self.input_order = tuple(int(d) for d in input_order)
    else:
      raise ValueError(
          f"input_order must be one of {_NAMED_ORDERS} or a permutation of "
          f"1..{self.event_size}, got {input_order!r}.")
    if hidden_degrees not in _HIDDEN_DEGREES:
      raise ValueError(
          f"hidden_degrees must be one of {_HIDDEN_DEGREES}, got {hidden_degrees!r}.")
    self.hidden_degrees = hidden_degrees
    self.conditional_size = _validation.positive_int(conditional_size, "conditional_size",
                                                     allow_none=True)
    if log_scale_bound is not None and (
        isinstance(log_scale_bound, bool) or not isinstance(log_scale_bound, numbers.Real)
        or not np.isfinite(log_scale_bound) or log_scale_bound <= 0):
      raise ValueError(
          f"log_scale_bound must be None or a positive finite number, got {log_scale_bound!r}.")
    self.log_scale_bound = None if log_scale_bound is None else float(log_scale_bound)
    self.activation = keras.activations.get(activation)
    self.kernel_initializer = keras.initializers.get(kernel_initializer)
    if seed is not None and not _validation.is_integer(seed):
      raise ValueError(f"seed must be None or an integer, got {seed!r}.")
    needs_seed = self.input_order == "random" or self.hidden_degrees == "random"
    if seed is None and needs_seed:
      seed = int(np.random.default_rng().integers(2**31 - 1))
    self.seed = None if seed is None else int(seed)

    input_degrees, masks = made_masks(self.event_size, self.hidden_units, self.input_order,
                                      self.hidden_degrees, self.seed)
    self._input_degrees = input_degrees
    # Tuples, so that Keras's tracker leaves the NumPy constants alone. The output mask is
    # repeated for the shift and the log-scale halves of the output layer.
    self._hidden_masks = tuple(masks[:-1])
    self._output_mask = np.concatenate([masks[-1], masks[-1]], axis=1)

  @property
  def input_degrees(self):
    """`[D]` NumPy array: the 1-based position of every input in the autoregressive order."""
    return self._input_degrees.copy()

  @property
  def masks(self):
    """The boolean NumPy masks `[fan_in, fan_out]` of the hidden layers and the output layer.

    The output mask has `2 * D` columns: shift first, then log-scale.
    """
    return [m.copy() for m in self._hidden_masks] + [self._output_mask.copy()]

  def build(self, input_shape=None):
    del input_shape  # The weights depend on the configuration only.
    self._hidden_kernels = []
    self._hidden_biases = []
    self._hidden_conditional_kernels = []
    fan_in = self.event_size
    for i, units in enumerate(self.hidden_units):
      self._hidden_kernels.append(self.add_weight(
          name=f"hidden_{i}_kernel", shape=(fan_in, units),
          initializer=self.kernel_initializer))
      self._hidden_biases.append(self.add_weight(
          name=f"hidden_{i}_bias", shape=(units,), initializer="zeros"))
      if self.conditional_size is not None:
        self._hidden_conditional_kernels.append(self.add_weight(
            name=f"hidden_{i}_conditional_kernel", shape=(self.conditional_size, units),
            initializer=self.kernel_initializer))
      fan_in = units
    outputs = 2 * self.event_size
    self.output_kernel = self.add_weight(
        name="output_kernel", shape=(fan_in, outputs), initializer="zeros")
    self.output_bias = self.add_weight(name="output_bias", shape=(outputs,), initializer="zeros")
    self.output_conditional_kernel = None
    if self.conditional_size is not None:
      self.output_conditional_kernel = self.add_weight(
          name="output_conditional_kernel", shape=(self.conditional_size, outputs),
          initializer="zeros")

  def call(self, x, conditional_input=None, **kwargs):
    if kwargs:
      raise ValueError(
          f"{self.name}: unexpected keyword arguments {sorted(kwargs)}; MADE accepts only "
          f"`conditional_input`.")
    x = ops.convert_to_tensor(x)
    if not _is_floating(x.dtype):
      raise TypeError(
          f"{self.name}: expected a floating-point tensor [..., {self.event_size}], got dtype "
          f"{keras.backend.standardize_dtype(x.dtype)}. Cast the input, e.g. "
          f"tf.cast(x, tf.float32).")
    if len(x.shape) < 1:
      raise ValueError(
          f"{self.name}: expected x of shape [..., event_size={self.event_size}], got a scalar.")
    if x.shape[-1] is not None and x.shape[-1] != self.event_size:
      raise ValueError(
          f"{self.name}: the last dimension of x ({x.shape[-1]}, shape {tuple(x.shape)}) must "
          f"equal event_size ({self.event_size}).")
    dtype = self.compute_dtype
    x = ops.cast(x, dtype)
    c = self._conditional(conditional_input, dtype)

    h = x
    for i in range(len(self.hidden_units)):
      kernel = self._hidden_kernels[i] * ops.cast(self._hidden_masks[i], dtype)
      h = ops.matmul(h, kernel) + self._hidden_biases[i]
      if c is not None:
        h = h + ops.matmul(c, self._hidden_conditional_kernels[i])
      h = self.activation(h)
    out = ops.matmul(h, self.output_kernel * ops.cast(self._output_mask, dtype))
    out = out + self.output_bias
    if c is not None:
      out = out + ops.matmul(c, self.output_conditional_kernel)
    shift = out[..., :self.event_size]
    log_scale = out[..., self.event_size:]
    if self.log_scale_bound is not None:
      bound = ops.cast(self.log_scale_bound, dtype)
      log_scale = bound * ops.tanh(log_scale / bound)
    return shift, log_scale

  def _conditional(self, conditional_input, dtype):
    """Checks the conditional input against `conditional_size` and casts it."""
    if self.conditional_size is None:
      if conditional_input is not None:
        raise ValueError(
            f"{self.name}: got a conditional_input but the layer was created without "
            f"conditional_size; pass conditional_size=K to MADE to condition on a [..., K] "
            f"input.")
      return None
    if conditional_input is None:
      raise ValueError(
          f"{self.name}: this MADE has conditional_size={self.conditional_size} and needs a "
          f"[..., {self.conditional_size}] conditional_input, passed by keyword: "
          f"made(x, conditional_input=c), maf.forward(z, conditional_input=c), or "
          f"distribution.log_prob(x, bijector_kwargs={{'conditional_input': c}}).")
    c = ops.convert_to_tensor(conditional_input)
    if len(c.shape) < 1 or (c.shape[-1] is not None and c.shape[-1] != self.conditional_size):
      raise ValueError(
          f"{self.name}: the last dimension of conditional_input (shape {tuple(c.shape)}) must "
          f"equal conditional_size ({self.conditional_size}).")
    return ops.cast(c, dtype)

  def get_config(self):
    config = super().get_config()
    config.update(
        event_size=self.event_size,
        hidden_units=list(self.hidden_units),
        activation=keras.activations.serialize(self.activation),
        input_order=(self.input_order if isinstance(self.input_order, str)
                     else list(self.input_order)),
        hidden_degrees=self.hidden_degrees,
        conditional_size=self.conditional_size,
        log_scale_bound=self.log_scale_bound,
        kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        seed=self.seed)
    return config


def _is_floating(dtype):
  return "float" in keras.backend.standardize_dtype(dtype)
