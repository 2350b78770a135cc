"""SavedModel export of a trained `FlowModel`, served without this package or TFP."""

from __future__ import annotations

import os
import pathlib
import secrets
import shutil
from typing import TYPE_CHECKING

import tensorflow as tf

if TYPE_CHECKING:
  from tfp_realnvp import model as model_lib

__all__ = ["export_saved_model", "SIGNATURES", "signatures_of"]

SIGNATURES = ("log_prob", "bits_per_dim", "sample", "forward", "inverse")
"""The signatures of every export (and `serving_default`, which is `log_prob`)."""

DEQUANTIZER_SIGNATURES = ("log_prob_bound",)
"""The signatures added for a model with a `tfp_realnvp.VariationalDequantizer`."""


def signatures_of(model: model_lib.FlowModel) -> tuple[str, ...]:
  """The names of the signatures that `export_saved_model(model, ...)` writes."""
  return SIGNATURES + (DEQUANTIZER_SIGNATURES if model.dequantizer is not None else ())


class _FlowServing(tf.Module):
  """The traced functions of a flow model, one per serving signature.

  Each function takes `*condition`: nothing for an unconditional model, one `condition` input
  `[batch] + condition_spec.shape` for a conditional one.
  """

  def __init__(self, model: model_lib.FlowModel) -> None:
    super().__init__(name="flow_serving")
    self.model = model
    # The data's shape is the distribution's event shape: the base's (`model.event_shape`)
    # mapped through the bijector, which may reshape (e.g. a MAF prior on flattened latents).
    data = tf.TensorSpec([None] + model.distribution.event_shape.as_list(), model.compute_dtype,
                         name="x")
    latent = tf.TensorSpec([None] + list(model.event_shape), model.compute_dtype, name="z")
    spec = model.condition_spec
    condition = [] if spec is None else [
        tf.TensorSpec([None] + spec.shape.as_list(), spec.dtype, name="condition")]
    bijector = model.distribution.bijector

    self.log_prob = tf.function(lambda x, *c: {"log_prob": model.log_prob(x, *c)},
                                input_signature=[data] + condition)
    # The bits/dim of the density of `x` (with a dequantizer too, see `log_prob_bound`).
    self.bits_per_dim = tf.function(
        lambda x, *c: {"bits_per_dim": model.bits_from_log_prob(model.log_prob(x, *c))},
        input_signature=[data] + condition)
    self.forward = tf.function(
        lambda z, *c: {"x": bijector.forward(z, **model.bijector_kwargs(*c))},
        input_signature=[latent] + condition)
    self.inverse = tf.function(
        lambda x, *c: {"z": bijector.inverse(x, **model.bijector_kwargs(*c))},
        input_signature=[data] + condition)

    def log_prob_bound(pixels: tf.Tensor, num_samples: tf.Tensor, seed: tf.Tensor,
                       *c: tf.Tensor) -> dict[str, tf.Tensor]:
      seed = tf.stack([tf.zeros([], tf.int32), seed])
      condition = c[0] if c else None
      return {"log_prob_bound": model.log_prob_bound(pixels, condition, num_samples=num_samples,
                                                     seed=seed)}

    if model.dequantizer is not None:
      self.log_prob_bound = tf.function(log_prob_bound, input_signature=[
          tf.TensorSpec([None] + model.distribution.event_shape.as_list(), tf.uint8,
                        name="pixels"),
          tf.TensorSpec([], tf.int32, name="num_samples"),
          tf.TensorSpec([], tf.int32, name="seed")] + condition)

    def sample(count: tf.Tensor, seed: tf.Tensor, temperature: tf.Tensor,
               *c: tf.Tensor) -> dict[str, tf.Tensor]:
      seed = tf.stack([tf.zeros([], tf.int32), tf.cast(seed, tf.int32)])
      condition = c[0] if c else None
      return {"images": model.sample(count, condition, temperature=temperature, seed=seed)}

    self.sample = tf.function(sample, input_signature=[
        tf.TensorSpec([], tf.int32, name="count"),
        tf.TensorSpec([], tf.int32, name="seed"),
        tf.TensorSpec([], model.compute_dtype, name="temperature")] + condition)


def export_saved_model(model: model_lib.FlowModel, path: str | os.PathLike[str],
                       overwrite: bool = False) -> pathlib.Path:
  """Writes `model` as a TensorFlow SavedModel that needs neither TFP nor this package.

  Signatures (each returns a dict of tensors):

  * `log_prob(x)` -> `log_prob` per example (also `serving_default`);
  * `bits_per_dim(x)` -> `bits_per_dim` per example;
  * `sample(count, seed, temperature)` -> `images`: the same images as
    `model.sample(count, temperature=temperature, seed=seed)` for an int seed;
  * `forward(z)` -> `x` (latent to data) and `inverse(x)` -> `z` (data to latent), through the
    whole chain including the preprocessing;
  * for a model with a `tfp_realnvp.VariationalDequantizer`, also
    `log_prob_bound(pixels, num_samples, seed)` -> `log_prob_bound` per example: the bound of
    `model.log_prob_bound` for 8-bit images (uint8 pixels `k`), importance-weighted over
    `num_samples` draws of the dequantizer's noise, the same numbers as
    `model.log_prob_bound(pixels, num_samples=num_samples, seed=seed)` for an int seed; in
    bits per dimension of the 8-bit data it is `(D ln 256 - log_prob_bound) / (D ln 2)`.
    `log_prob` and `bits_per_dim` keep taking images `x` in `[0, 1)`: the density of the
    continuous data.

  `z` has shape `[batch] + model.event_shape` (the base's) and `x` the shape
  `[batch] + model.distribution.event_shape` of the data. For a conditional model every
  signature takes one more input, `condition`, of shape
  `[batch] + model.condition_spec.shape` (int32 class labels `[batch]`, or float vectors
  `[batch, K]`): one condition per example, or for `sample` one per image or a single one
  (`[1]` labels, `[1, K]` vectors) for all of them. The unconditional signatures are unchanged.

  The export is atomic: the SavedModel is written to a temporary folder beside `path` and
  renamed into place only once complete, so a failed export leaves nothing behind and never a
  half-written `path`; with `overwrite`, the previous `path` (a folder or a file) is removed
  only once the new export is in place. The folder gets the permissions of a plain `mkdir`
  under the process's umask, so that other users (a serving container) can read it as they
  can read its parent.

  ```python
  tfp_realnvp.export_saved_model(model, "exported/flow")
  served = tf.saved_model.load("exported/flow")         # in any TensorFlow process
  served.signatures["log_prob"](x=images)["log_prob"]
  served.signatures["log_prob"](x=images, condition=labels)["log_prob"]  # conditional model
  ```

  Args:
    model: a `tfp_realnvp.FlowModel`.
    path: the SavedModel folder to create.
    overwrite: replace an existing `path` (a folder or a file); otherwise an existing `path`
      is an error.

  Returns:
    The `pathlib.Path` of the SavedModel.

  Raises:
    FileExistsError: `path` exists and `overwrite` is false.
  """
  path = pathlib.Path(path)
  exists = path.exists() or path.is_symlink()
  if exists and not overwrite:
    what = "a folder" if path.is_dir() else "a file"
    raise FileExistsError(f"{path} already exists ({what}); pass overwrite=True (--overwrite on "
                          f"the command line) to replace it.")
  path.parent.mkdir(parents=True, exist_ok=True)
  serving = _FlowServing(model)
  signatures = {name: getattr(serving, name) for name in signatures_of(model)}
  signatures["serving_default"] = serving.log_prob
  staging = _make_staging_folder(path)
  retired = staging.with_name(staging.name + ".old")
  try:
    tf.saved_model.save(serving, str(staging), signatures=signatures)
    if exists:
      os.replace(path, retired)
      try:
        os.replace(staging, path)
      except BaseException:
        os.replace(retired, path)  # Puts the previous export back.
        raise
    else:
      os.replace(staging, path)
  finally:
    for leftover in (staging, retired):
      _remove(leftover)
  return path


def _make_staging_folder(path: pathlib.Path) -> pathlib.Path:
  """Creates an empty hidden folder beside `path`, with a plain `mkdir`'s permissions.

  `tempfile.mkdtemp` would create it with mode 0700, which the export would keep.
  """
  while True:
    staging = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    try:
      staging.mkdir()
      return staging
    except FileExistsError:
      continue


def _remove(path: pathlib.Path) -> None:
  """Removes a folder tree, a file or a symbolic link at `path`, if there is one."""
  if path.is_dir() and not path.is_symlink():
    shutil.rmtree(path)
  elif path.exists() or path.is_symlink():
    path.unlink()
