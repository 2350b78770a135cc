"""`AutoregressiveNetwork`: MADE, the masked network behind MAF and IAF, with TFP's arguments."""

from __future__ import annotations

from typing import Any, Callable, Sequence, cast

import keras
from keras import ops
import numpy as np
import tensorflow as tf

from tfp_realnvp import _validation
from tfp_realnvp import errors
from tfp_realnvp._types import LayerShape
from tfp_realnvp._types import TensorLike
from tfp_realnvp.networks import _made_masks

__all__ = ["AutoregressiveNetwork"]


def _shape_1d(value: Any, name: str) -> tuple[int] | None:
  """`value` (an int or a rank-1 shape) as a one-element tuple `(size,)`, or `None`."""
  if value is None:
    return None
  if _validation.is_integer(value):
    value = (value,)
  try:
    shape = tuple(value)
  except TypeError:
    shape = None
  if shape is None or len(shape) != 1:
    raise errors.InvalidValueError(
        f"{name} must describe a rank-1 shape (an integer D or [D]); vector events only, as "
        f"in tfb.AutoregressiveNetwork; got {value!r}. Reshape higher-rank events to vectors "
        f"(tfb.Reshape) first.")
  return (_validation.positive_int(shape[0], f"{name}[0]"),)


def _maybe_serialize(module: Any, value: Any) -> Any:
  return None if value is None else module.serialize(value)


@keras.saving.register_keras_serializable(package="tfp_realnvp")
class AutoregressiveNetwork(keras.layers.Layer):
  """MADE network with the arguments and output of `tfb.AutoregressiveNetwork`, in Keras 3.

  A Keras 3 drop-in for TFP's `tfb.AutoregressiveNetwork` (a `tf_keras` layer that a Keras 3
  model can neither track nor train): the same constructor arguments, the same call
  (`net(x, conditional_input=c)`) and the same output, `[..., event_size, params]`, with
  `output[..., i, :]` depending only on the inputs `j` that come before `i` in the
  autoregressive order (Germain et al., 2015). With `params=2` it is the
  `shift_and_log_scale_fn` of TFP's masked autoregressive flow, which unstacks the last axis
  into `(shift, log_scale)`:

  ```python
  made = tfp_realnvp.networks.AutoregressiveNetwork(params=2, hidden_units=[10, 10],
                                                    activation="relu")
  maf = tfb.MaskedAutoregressiveFlow(made)                 # Papamakarios et al., 2017
  iaf = tfb.Invert(tfb.MaskedAutoregressiveFlow(made))     # Kingma et al., 2016
  distribution = tfd.TransformedDistribution(tfd.Sample(tfd.Normal(0., 1.), [2]), maf)
  ```

  Hold the layer in a Keras 3 model (assign it as an attribute) so that the model tracks,
  trains and saves its variables; `MADE` is the same network with `params=2`, returning
  `(shift, log_scale)`. The network, with masks `M` fixed by the degrees (below):

  ```none
  h_0 = x
  h_l = activation((W_l * M_l) h_{l-1} + b_l + V_l c)     # c: conditional input, unmasked
  out = (W * M) h_L + b + V c                             # [..., params * D] -> [..., D, params]
  ```

  `V_l c` enters every layer (`conditional_input_layers="all_layers"`) or only the first
  (`"first_layer"`); the conditional kernels have no bias.

  Degrees: `input_order[i]` is the 1-based degree (position in the autoregressive order) of
  input `i`; `"left-to-right"` is `[1, 2, ..., D]` (`p(x_1) p(x_2 | x_1) ...`),
  `"right-to-left"` `[D, ..., 1]`, `"random"` a permutation drawn from `seed`. Hidden degrees lie
  in `[min degree of the layer below, D - 1]`: `"equal"` spreads them evenly, `"random"` draws
  them from `seed`. A hidden unit of degree `m` sees the units below of degree `<= m`, an output
  of input `i` the last hidden units of degree `< input_order[i]`. The masks are NumPy constants
  computed from the configuration (TFP's `"equal"` rule places the hidden degrees slightly
  differently; both give the autoregressive property); a random order or random degrees without
  a `seed` draw one seed once and store it in the configuration, so a saved model reloads with
  the same masks. Masked kernel entries start at zero and never receive a gradient, so
  regularizers see only the weights in use.

  Differences from `tfb.AutoregressiveNetwork`: the output is in the layer's compute dtype (any
  number of batch dimensions; `x` and `conditional_input` broadcast against each other);
  `event_shape` may be left out with `conditional=True` (it is taken from the first input);
  `seed` and `output_kernel_initializer` are additions; `get_config` makes the layer saveable.

  Args:
    params: number of outputs per input, `>= 1` (the last axis of the output is never squeezed).
    event_shape: `D` or `[D]`, the size of the input vectors; `None`: from the first input.
    conditional: whether the network takes a `conditional_input`.
    conditional_event_shape: `K` or `[K]`, the size of the conditional input; required with
      `conditional=True`, refused without.
    conditional_input_layers: `"all_layers"` or `"first_layer"`: the layers the conditional
      input enters.
    hidden_units: widths of the hidden layers; `None` or `[]` gives a masked linear map.
    input_order: `"left-to-right"`, `"right-to-left"`, `"random"`, or a permutation of `1..D`.
    hidden_degrees: `"equal"` or `"random"`.
    activation: activation of the hidden layers (anything `keras.activations.get` accepts);
      `None` is linear, TFP's default.
    use_bias: whether the masked layers have biases.
    kernel_initializer, bias_initializer, kernel_regularizer, bias_regularizer,
      kernel_constraint, bias_constraint: as in `keras.layers.Dense`, for every masked kernel
      and bias; the kernel ones also for the conditional kernels.
    validate_args: if `True`, `x` and `conditional_input` are checked at run time to be finite.
    seed: integer seed of a random `input_order` and of random `hidden_degrees` (masks only;
      seed the weights through the initializers).
    output_kernel_initializer: initializer of the output layer's kernels (masked and
      conditional); `None`: `kernel_initializer`. `"zeros"` makes a new MAF or IAF the identity.
    **kwargs: `keras.layers.Layer` arguments (`name`, `dtype`, ...).

  Call arguments:
    x: `[..., D]` floating-point tensor.
    conditional_input: `[..., K]` tensor, required iff `conditional`; pass it by keyword, through
      TFP as a bijector keyword argument: `maf.forward(z, conditional_input=c)` or
      `distribution.log_prob(x, bijector_kwargs={"conditional_input": c})`.

  Returns:
    `[..., D, params]` in the layer's compute dtype (batch dimensions broadcast).

  Raises:
    ValueError: on invalid constructor arguments, a last dimension of `x` other than `D`, a
      missing or unexpected conditional input, or unknown keyword arguments.
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

  def __init__(self, params: int, event_shape: int | Sequence[int] | None = None,
               conditional: bool = False,
               conditional_event_shape: int | Sequence[int] | None = None,
               conditional_input_layers: str = "all_layers",
               hidden_units: Sequence[int] | None = None,
               input_order: str | Sequence[int] = "left-to-right",
               hidden_degrees: str = "equal", activation: Any = None, use_bias: bool = True,
               kernel_initializer: Any = "glorot_uniform", bias_initializer: Any = "zeros",
               kernel_regularizer: Any = None, bias_regularizer: Any = None,
               kernel_constraint: Any = None, bias_constraint: Any = None,
               validate_args: bool = False, seed: int | None = None,
               output_kernel_initializer: Any = None, **kwargs: Any) -> None:
    super().__init__(**kwargs)
    self.params = _validation.positive_int(params, "params")
    self.event_shape = _shape_1d(event_shape, "event_shape")
    self.conditional = bool(conditional)
    self.conditional_event_shape = _shape_1d(conditional_event_shape, "conditional_event_shape")
    if self.conditional and self.conditional_event_shape is None:
      raise errors.InvalidValueError(
          "conditional=True needs conditional_event_shape=[K], the size of the "
          "conditional input.")
    if not self.conditional and self.conditional_event_shape is not None:
      raise errors.InvalidValueError(
          f"conditional_event_shape={conditional_event_shape!r} was passed but "
          f"conditional is False; pass conditional=True to condition the network.")
    if conditional_input_layers not in ("all_layers", "first_layer"):
      raise errors.InvalidValueError(
          f"conditional_input_layers must be 'all_layers' or 'first_layer', got "
          f"{conditional_input_layers!r}.")
    self.conditional_input_layers = conditional_input_layers
    self.hidden_units = _validation.widths(() if hidden_units is None else hidden_units,
                                           "hidden_units")
    self.input_order: str | tuple[int, ...]
    if isinstance(input_order, str):
      self.input_order = input_order
    elif isinstance(input_order, (list, tuple, np.ndarray)):
      if not all(_validation.is_integer(d) for d in input_order):
        raise errors.InvalidValueError(
            f"input_order must be one of {_made_masks.NAMED_ORDERS} or a list of integers (a "
            f"permutation of 1..D), got {input_order!r}.")
      self.input_order = tuple(int(d) for d in input_order)
    else:
      raise errors.InvalidValueError(
          f"input_order must be one of {_made_masks.NAMED_ORDERS} or a permutation of 1..D, got "
          f"{input_order!r}.")
    if hidden_degrees not in _made_masks.HIDDEN_DEGREES:
      raise errors.InvalidValueError(
          f"hidden_degrees must be one of {_made_masks.HIDDEN_DEGREES}, got {hidden_degrees!r}.")
    self.hidden_degrees = hidden_degrees
    self.activation = keras.activations.get(activation)
    self.use_bias = bool(use_bias)
    self.kernel_initializer = keras.initializers.get(kernel_initializer)
    self.bias_initializer = keras.initializers.get(bias_initializer)
    self.output_kernel_initializer = (
        None if output_kernel_initializer is None
        else keras.initializers.get(output_kernel_initializer))
    self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
    self.bias_regularizer = keras.regularizers.get(bias_regularizer)
    self.kernel_constraint = keras.constraints.get(kernel_constraint)
    self.bias_constraint = keras.constraints.get(bias_constraint)
    self.validate_args = bool(validate_args)
    if seed is not None and not _validation.is_integer(seed):
      raise errors.InvalidValueError(f"seed must be None or an integer, got {seed!r}.")
    if seed is None and (self.input_order == "random" or self.hidden_degrees == "random"):
      seed = int(np.random.default_rng().integers(2**31 - 1))
    self.seed = None if seed is None else int(seed)
    if self.event_shape is not None:
      self._make_masks()

  @property
  def event_size(self) -> int | None:
    """`D`, the size of the input vectors (`None` until known)."""
    return None if self.event_shape is None else self.event_shape[0]

  @property
  def conditional_size(self) -> int | None:
    """`K`, the size of the conditional input, or `None` for an unconditional network."""
    return None if self.conditional_event_shape is None else self.conditional_event_shape[0]

  def _make_masks(self) -> None:
    """The NumPy masks of the event size `D` (tuples, which Keras's tracker leaves alone)."""
    event_size = cast(int, self.event_size)  # Known: the masks are made once it is.
    input_degrees, masks = _made_masks.made_masks(
        event_size, self.hidden_units, self.input_order, self.hidden_degrees, self.seed)
    self._input_degrees = input_degrees
    self._hidden_masks = tuple(masks[:-1])
    # Parameter-major output columns: column p * D + i is parameter p of input i.
    self._output_mask = np.tile(masks[-1], (1, self.params))

  @property
  def input_degrees(self) -> np.ndarray:
    """`[D]` NumPy array: the 1-based position of every input in the autoregressive order."""
    return self._input_degrees.copy()

  @property
  def masks(self) -> list[np.ndarray]:
    """The boolean NumPy masks `[fan_in, fan_out]` of the hidden layers and the output layer.

    The output mask has `params * D` columns, parameter-major: column `p * D + i` is
    parameter `p` of input `i`.
    """
    return [m.copy() for m in self._hidden_masks] + [self._output_mask.copy()]

  def _conditions_layer(self, index: int) -> bool:
    return self.conditional and (self.conditional_input_layers == "all_layers" or index == 0)

  def build(self, input_shape: LayerShape | None = None) -> None:
    if self.event_shape is None:
      if input_shape is None or input_shape[-1] is None:
        raise errors.InvalidValueError(
            f"{self.name}: the event size is unknown; pass event_shape=[D] or call "
            f"the layer on inputs [..., D] with a known last dimension.")
      self.event_shape = _shape_1d(int(input_shape[-1]), "event_shape")
      self._make_masks()
    self._hidden_kernels, self._hidden_biases, self._hidden_conditional_kernels = [], [], []
    masks = self._hidden_masks + (self._output_mask,)
    event_size = cast(int, self.event_size)  # Known since the masks are.
    sizes = self.hidden_units + (self.params * event_size,)
    fan_in = event_size
    for i, (units, mask) in enumerate(zip(sizes, masks, strict=True)):
      prefix = "output" if i == len(self.hidden_units) else f"hidden_{i}"
      initializer = self.kernel_initializer
      if prefix == "output" and self.output_kernel_initializer is not None:
        initializer = self.output_kernel_initializer
      kernel = self.add_weight(
          name=f"{prefix}_kernel", shape=(fan_in, units),
          initializer=_masked_initializer(initializer, mask),
          regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
      bias = None
      if self.use_bias:
        bias = self.add_weight(name=f"{prefix}_bias", shape=(units,),
                               initializer=self.bias_initializer,
                               regularizer=self.bias_regularizer,
                               constraint=self.bias_constraint)
      conditional_kernel = None
      if self._conditions_layer(i):
        conditional_kernel = self.add_weight(
            name=f"{prefix}_conditional_kernel", shape=(self.conditional_size, units),
            initializer=initializer, regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint)
      if prefix == "output":
        self.output_kernel, self.output_bias = kernel, bias
        self.output_conditional_kernel = conditional_kernel
      else:
        self._hidden_kernels.append(kernel)
        self._hidden_biases.append(bias)
        self._hidden_conditional_kernels.append(conditional_kernel)
      fan_in = units

  def call(self, x: TensorLike, conditional_input: TensorLike | None = None,
           **kwargs: Any) -> tf.Tensor:
    if kwargs:
      raise errors.InvalidValueError(
          f"{self.name}: unexpected keyword arguments {sorted(kwargs)}; {type(self).__name__} "
          f"accepts only `conditional_input`.")
    x = ops.convert_to_tensor(x)
    if not _is_floating(x.dtype):
      raise errors.InvalidTypeError(
          f"{self.name}: expected a floating-point tensor [..., {self.event_size}], got dtype "
          f"{keras.backend.standardize_dtype(x.dtype)}. Cast the input, e.g. "
          f"tf.cast(x, tf.float32).")
    if len(x.shape) < 1:
      raise errors.InvalidValueError(
          f"{self.name}: expected x of shape [..., event_size={self.event_size}], got a scalar.")
    if x.shape[-1] is not None and x.shape[-1] != self.event_size:
      raise errors.InvalidValueError(
          f"{self.name}: the last dimension of x ({x.shape[-1]}, shape {tuple(x.shape)}) must "
          f"equal event_size ({self.event_size}).")
    dtype = self.compute_dtype
    x = self._checked(ops.cast(x, dtype), "x")
    c = self._conditional(conditional_input, dtype)
    kernels = self._hidden_kernels + [self.output_kernel]
    biases = self._hidden_biases + [self.output_bias]
    conditional_kernels = self._hidden_conditional_kernels + [self.output_conditional_kernel]
    masks = self._hidden_masks + (self._output_mask,)
    h = x
    for i, (kernel, bias, conditional_kernel, mask) in enumerate(
        zip(kernels, biases, conditional_kernels, masks, strict=True)):
      h = ops.matmul(h, kernel * ops.cast(mask, dtype))
      if bias is not None:
        h = h + bias
      if conditional_kernel is not None:
        h = h + ops.matmul(c, conditional_kernel)
      if i < len(self.hidden_units):
        h = self.activation(h)
    # [..., params * D] (parameter-major) -> [..., D, params].
    return ops.stack(ops.split(h, self.params, axis=-1), axis=-1)

  def _checked(self, tensor: tf.Tensor, name: str) -> tf.Tensor:
    if not self.validate_args:
      return tensor
    return tf.debugging.assert_all_finite(
        tensor, f"{self.name}: {name} has a NaN or infinite value.")

  def _condition_arguments(self, size: int | str | None = "K") -> str:
    """The constructor arguments that condition the network on `[..., size]`, for messages."""
    return f"conditional=True, conditional_event_shape=[{size}]"

  def _conditional(self, conditional_input: TensorLike | None, dtype: str) -> tf.Tensor | None:
    """Checks the conditional input against the conditional size and casts it."""
    if not self.conditional:
      if conditional_input is not None:
        raise errors.InvalidValueError(
            f"{self.name}: got a conditional_input but the layer was created without "
            f"{self._condition_arguments()}; create it with {self._condition_arguments()} to "
            f"condition on a [..., K] input.")
      return None
    if conditional_input is None:
      raise errors.InvalidValueError(
          f"{self.name}: this network has "
          f"{self._condition_arguments(self.conditional_size)} and needs a "
          f"[..., {self.conditional_size}] conditional_input, passed by keyword: "
          f"net(x, conditional_input=c), maf.forward(z, conditional_input=c), or "
          f"distribution.log_prob(x, bijector_kwargs={{'conditional_input': c}}).")
    c = ops.convert_to_tensor(conditional_input)
    if len(c.shape) < 1 or (c.shape[-1] is not None and c.shape[-1] != self.conditional_size):
      raise errors.InvalidValueError(
          f"{self.name}: the last dimension of conditional_input (shape {tuple(c.shape)}) must "
          f"equal the conditional size "
          f"({self._condition_arguments(self.conditional_size)}).")
    return self._checked(ops.cast(c, dtype), "conditional_input")

  def get_config(self) -> dict[str, Any]:
    config = super().get_config()
    config.update(
        params=self.params,
        event_shape=None if self.event_shape is None else list(self.event_shape),
        conditional=self.conditional,
        conditional_event_shape=(None if self.conditional_event_shape is None
                                 else list(self.conditional_event_shape)),
        conditional_input_layers=self.conditional_input_layers,
        hidden_units=list(self.hidden_units),
        input_order=(self.input_order if isinstance(self.input_order, str)
                     else list(self.input_order)),
        hidden_degrees=self.hidden_degrees,
        activation=keras.activations.serialize(self.activation),
        use_bias=self.use_bias,
        kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        bias_initializer=keras.initializers.serialize(self.bias_initializer),
        kernel_regularizer=_maybe_serialize(keras.regularizers, self.kernel_regularizer),
        bias_regularizer=_maybe_serialize(keras.regularizers, self.bias_regularizer),
        kernel_constraint=_maybe_serialize(keras.constraints, self.kernel_constraint),
        bias_constraint=_maybe_serialize(keras.constraints, self.bias_constraint),
        validate_args=self.validate_args,
        seed=self.seed,
        output_kernel_initializer=_maybe_serialize(keras.initializers,
                                                   self.output_kernel_initializer))
    return config


def _masked_initializer(initializer: Callable[..., tf.Tensor], mask: np.ndarray
                        ) -> Callable[..., tf.Tensor]:
  """`initializer` with the entries outside the boolean `mask` set to zero."""

  def masked(shape: Sequence[int], dtype: Any = None) -> tf.Tensor:
    return initializer(shape, dtype) * ops.cast(mask, dtype)

  return masked


def _is_floating(dtype: Any) -> bool:
  return "float" in keras.backend.standardize_dtype(dtype)
