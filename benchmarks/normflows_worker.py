#!/usr/bin/env python
"""Speed worker for the normflows (PyTorch) side of the Real NVP and Glow comparisons.

Builds, with normflows' own flow pieces, the multi-scale Real NVP (`--flow realnvp`) or Glow
(`--flow glow`) that `tfp_realnvp` builds for the same configuration (`_configs.py`), and times
its training step, log-density and sampling on this machine's CPU. It serves the line protocol
of `_worker.py`, as our worker (`speed.py --worker`) does, so one driver can time both.

Both models are NCHW (as PyTorch and normflows are) `normflows.MultiscaleFlow`s with
`normflows.transforms.Logit(alpha=0.05)` as the data preprocessing, so `log_prob` is the
density of `x` in `[0, 1)^D` including the logit's log-Jacobian, as `tfp_realnvp.FlowModel`'s
is, and fixed standard-normal `normflows.distributions.DiagGaussian` bases (one per level: the
factored-out channels and the last level's output).

The Real NVP model:

* In the data -> latent direction, every scale but the last: 3 checkerboard couplings
  (alternating parity), `normflows.flows.Squeeze`, 3 channel couplings (alternating parity),
  then `normflows.flows.Merge('channel_inv')` factors out the first half of the channels (as
  `tfp_realnvp` does) and the second half goes on; the last scale: 4 checkerboard couplings.
  Every coupling is `normflows.flows.AffineCouplingBlock(param_map, scale=True,
  scale_map='exp', split_mode=...)` with `y = x * exp(log_scale) + shift` on the transformed
  half.
* Every `param_map` is `CouplingResNet` below, the conditioner of `tfp_realnvp`: batch norm
  and weight-normalised 3x3 convolutions in a ResNet, last convolution starting at zero,
  `log_scale = a * tanh(raw)`; it emits shift and log-scale interleaved on the channel axis
  (`0::2` and `1::2`), which is where normflows' `AffineCoupling` reads them.

Where normflows' pieces differ from `tfp_realnvp` (same shapes, parameters and cost): its
checkerboard split alternates the colour across channels too (`(c + i + j) % 2`, where
`tfp_realnvp` uses `(i + j) % 2` for every channel), which matters from 2 channels on (the last
MNIST scale, every CIFAR scale); and its squeeze orders the channels `c * 4 + block position`
where `tf.nn.space_to_depth` uses `block position * C + c` (the same for 1 channel, so for
MNIST), so for C > 1 the channel couplings split the squeezed channels differently.

The Glow model (`tfp_realnvp.Glow(..., coupling_network="glow")`):

* In the data -> latent direction, every level: `normflows.flows.Squeeze`, `num_steps`
  `normflows.flows.GlowBlock(channels, num_filters, scale=True, scale_map="sigmoid",
  split_mode="channel", leaky=0, init_zeros=True, use_lu=True, net_actnorm=True)` (ActNorm with
  data-dependent initialisation, invertible 1x1 convolution in the LU parameterisation, affine
  coupling transforming the second half of the channels given the first with the scale
  `sigmoid(h + 2)`; its network conv3x3 -> ActNorm -> ReLU -> conv1x1 -> ActNorm -> ReLU ->
  zero conv3x3, the hidden convolutions without bias, as `GlowCouplingNetwork`), then, on every
  level but the last, Glow's learned split prior and `Merge('channel_inv')`, which factors out
  the first half of the channels (as `tfp_realnvp` does).
* The split prior `N(mu(z1), sigma(z1))` of the factored-out half `z2` given the kept half
  `z1`: normflows' `MultiscaleFlow` has no base distribution conditioned on the kept half (its
  Glow examples use unconditioned `GlowBase`/`ClassCondDiagGaussian` bases), so it is written,
  as `tfp_realnvp.bijectors.SplitPrior` writes it, as a coupling that whitens `z2` ahead of a
  standard-normal base: `AffineCouplingBlock(ConvNet2d([c/2, c], [3], init_zeros=True),
  scale_map="exp", split_mode="channel_inv")`, i.e. `eps = (z2 - mu) / sigma` with
  `(mu, log sigma)` from one zero-initialised conv3x3 of `z1`, our `SplitPriorNetwork`. The
  density is the same as with the learned Gaussian prior.
* The hidden convolutions of the coupling networks are re-initialised with
  `nn.init.xavier_uniform_`, Keras's `glorot_uniform` that ours start from; the 1x1
  convolutions start as random rotations on both sides.

Parameter counts are equal (`--check`; ours from `expected_glow_step_params` and
`expected_split_prior_params`, a formula checked once against `tfp_realnvp.FlowModel(Glow(...))`
built in our venv: 437,964 for `mnist`, 28x28x1, 2 levels, 8 steps, 128 filters; 1,621,068 for
`cifar`, 32x32x3, 3 levels, 8 steps, 128 filters). Both store the LU factors as full `C x C`
matrices of which only a triangle is used. Where normflows' pieces differ from `tfp_realnvp`
(same shapes, parameters and cost): its squeeze orders the channels differently (see above),
which the learned 1x1 convolutions make immaterial; its coupling computes
`(x_b - shift) * scale` where ours computes `x_b * scale + shift`, and its split prior
`(z2 - shift) * exp(-s)` where ours computes `z2 * exp(s) + shift` (the same families,
parameterised differently); its ActNorm initialises from the unbiased standard deviation of the
first batch (+1e-6), ours from the biased one (+1e-6), and it initialises on the first forward
pass in any mode, ours on the first training step (the speed workers' warm-up runs a training
step first, so both are initialised before any timing); its ReLUs are `LeakyReLU(0)`.

Training objective: mean over the batch of `-log p(x)` (nats) plus `5e-5 * sum(g**2)` over the
weight-norm scales `g` of every convolution (Real NVP; Glow has no weight-norm convolutions, so
no penalty, as in `tfp_realnvp.FlowModel`), Adam with learning rate 1e-3.

`--precision bfloat16` (Real NVP only) runs every conditioner under
`torch.autocast("cpu", bfloat16)` and casts its output back to float32, so the couplings'
arithmetic, log-determinants and densities stay float32, as with Keras's `mixed_bfloat16`
policy on the tfp_realnvp side.

Usage (with the benchmark venv, see `benchmarks/requirements-normflows.txt`):

```bash
# Parameter counts per coupling (Glow: per step and split prior) against the tfp_realnvp
# formula, and sanity checks. (On the fixed noise batch at learning rate 1e-3, Glow's loss
# spikes in the first steps before it falls, as ours does on the same batch.)
.bench-venv/bin/python benchmarks/normflows_worker.py --config mnist --check
.bench-venv/bin/python benchmarks/normflows_worker.py --flow glow --config mnist --check

# Speed mode: a "ready" JSON line, then one reply per JSON command on stdin (`_worker.py`):
# train_step, log_prob, sample (64 samples a call), info, profile (torch.profiler's self CPU
# time per op), quit.
.bench-venv/bin/python benchmarks/normflows_worker.py --config cifar --batch-size 64

# Memory mode: peak resident memory after --memory-steps training steps.
.bench-venv/bin/python benchmarks/normflows_worker.py --config mnist --mode memory
```

The fixed batch is `numpy.random.default_rng(seed).uniform(size=(B, H, W, C))` in float32,
transposed to NCHW once before any timing (the transpose is not inside the timed calls). Every
timed call is measured with `time.perf_counter()` around the whole call (PyTorch on the CPU is
synchronous). Training steps run in train mode (batch statistics); `log_prob` and `sample` run
in eval mode (moving averages) under `torch.no_grad()`. Only protocol lines go to stdout.
The "ready" line counts the ActNorms whose data-dependent initialisation has run.
"""

import argparse
import math
import sys

import normflows as nf
import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrizations, parametrize

import _configs
import _worker

LOGIT_ALPHA = 0.05
L2_SCALE = 5e-5
LEARNING_RATE = 1e-3
NUM_SAMPLES = 64
# Keras's BatchNormalization epsilon, and tfp_realnvp's moving-average momentum of 0.9, which
# is PyTorch's momentum 0.1 (PyTorch weights the new batch by `momentum`, Keras the old average).
BATCH_NORM_EPSILON = 1e-3
BATCH_NORM_MOMENTUM = 0.1


def weight_norm_conv3x3(in_channels, out_channels, zero_init=False):
  """A weight-normalised 3x3 "same" convolution with bias, initialised like tfp_realnvp's.

  The weight is `g * v / ||v||` per output filter. As in `tfp_realnvp`, `g` starts at one (so
  every filter starts with unit norm) or, with `zero_init`, at zero (the layer then outputs
  its bias, zero); the bias starts at zero and the direction `v` is drawn from a normal.
  """
  conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=True)
  with torch.no_grad():
    nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
    conv.bias.zero_()
  conv = parametrizations.weight_norm(conv, name="weight", dim=0)
  with torch.no_grad():
    conv.parametrizations.weight.original0.fill_(0.0 if zero_init else 1.0)
  return conv


def batch_norm(channels):
  """`nn.BatchNorm2d` with Keras's epsilon and tfp_realnvp's moving-average momentum."""
  return nn.BatchNorm2d(channels, eps=BATCH_NORM_EPSILON, momentum=BATCH_NORM_MOMENTUM)


class ResidualBlock(nn.Module):
  """`h + conv(relu(bn(conv(relu(bn(h))))))` with weight-normalised 3x3 convolutions."""

  def __init__(self, filters):
    """Builds the block for `filters` input and output channels."""
    super().__init__()
    self.norm_in = batch_norm(filters)
    self.conv_in = weight_norm_conv3x3(filters, filters)
    self.norm_out = batch_norm(filters)
    self.conv_out = weight_norm_conv3x3(filters, filters)

  def forward(self, h):
    """Applies the block to `h` `[N, filters, H, W]`."""
    inner = self.conv_in(torch.relu(self.norm_in(h)))
    return h + self.conv_out(torch.relu(self.norm_out(inner)))


class CouplingResNet(nn.Module):
  """Shift and log-scale network of a coupling, the same as tfp_realnvp's `CouplingResNet`.

  ```none
  h = conv3x3_wn(bn(input))                        # in_channels -> num_filters
  h = residual_block(h), num_blocks times
  shift, raw = split(conv3x3_wn(relu(bn(h))))      # num_filters -> 2 * out_channels, starts at 0
  log_scale = a * tanh(raw)                        # a: [out_channels], starts at one
  ```

  The output is `[N, 2 * out_channels, H, W]` with the shift in channels `0::2` and the
  log-scale in channels `1::2`, the layout normflows' `AffineCoupling` reads.
  """

  def __init__(self, in_channels, out_channels, num_filters, num_blocks, bfloat16=False):
    """Builds the network for `in_channels` inputs and `out_channels` shifts and log-scales.

    With `bfloat16`, the network computes under `torch.autocast` in bfloat16 (weights stay
    float32) and returns float32, as a Keras network with the mixed_bfloat16 policy does.
    """
    super().__init__()
    self.out_channels = out_channels
    self.bfloat16 = bfloat16
    self.input_norm = batch_norm(in_channels)
    self.stem = weight_norm_conv3x3(in_channels, num_filters)
    self.blocks = nn.ModuleList([ResidualBlock(num_filters) for _ in range(num_blocks)])
    self.output_norm = batch_norm(num_filters)
    self.head = weight_norm_conv3x3(num_filters, 2 * out_channels, zero_init=True)
    self.log_scale_factor = nn.Parameter(torch.ones(out_channels))

  def forward(self, x):
    """Maps the conditioning half `x` to interleaved `[shift, log_scale]` channels."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bfloat16):
      h = self.stem(self.input_norm(x))
      for block in self.blocks:
        h = block(h)
      shift, raw = self.head(torch.relu(self.output_norm(h))).chunk(2, dim=1)
      log_scale = self.log_scale_factor[None, :, None, None] * torch.tanh(raw)
      return torch.stack((shift, log_scale), dim=2).flatten(1, 2).float()


def expected_coupling_params(in_channels, out_channels, num_filters, num_blocks):
  """Trainable parameters of tfp_realnvp's `CouplingResNet` (the Keras implementation)."""
  f = num_filters
  input_norm = 2 * in_channels
  stem = 9 * in_channels * f + 2 * f
  blocks = num_blocks * (2 * 2 * f + 2 * (9 * f * f + 2 * f))
  output_norm = 2 * f
  head = 9 * f * 2 * out_channels + 2 * 2 * out_channels
  return input_norm + stem + blocks + output_norm + head + out_channels


def expected_glow_step_params(channels, num_filters):
  """Trainable parameters of one tfp_realnvp Glow step on `channels` channels.

  ActNorm, LU 1x1 convolution (full `lower` and `upper` matrices and `log_scale`) and the
  `GlowCouplingNetwork` of the coupling (two ActNorms, bias-free hidden convolutions).
  """
  c, f = channels, num_filters
  in_channels, out_channels = (c + 1) // 2, c // 2
  network = (9 * in_channels * f + 2 * f      # conv3x3 (no bias), ActNorm
             + f * f + 2 * f                   # conv1x1 (no bias), ActNorm
             + 9 * f * 2 * out_channels + 2 * out_channels)  # zero conv3x3 with bias
  return 2 * c + (2 * c * c + c) + network


def expected_split_prior_params(channels):
  """Trainable parameters of tfp_realnvp's `SplitPriorNetwork` on a level of `channels`."""
  kept, factored = channels - channels // 2, channels // 2
  return 9 * kept * 2 * factored + 2 * factored


def count_params(module):
  """Number of trainable parameters (sum of `numel`) of `module`."""
  return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _shape_text(shape):
  """`(C, H, W)` as `CxHxW`."""
  return "x".join(map(str, shape))


def _coupling(kind, parity, shape, num_filters, num_blocks, name, pieces, bfloat16):
  """One `AffineCouplingBlock` on events `shape` `(C, H, W)`; records it in `pieces`.

  `kind` is "checkerboard" (the conditioner sees one colour of the checkerboard packed to
  `[C, H, W/2]` and transforms the other) or "channel" (it sees half the channels).
  """
  c, h, w = shape
  if kind == "checkerboard":
    in_channels, out_channels, spatial = c, c, (h, w // 2)
  else:
    in_channels, out_channels, spatial = c - c // 2, c // 2, (h, w)
  mode = kind if parity == 0 else kind + "_inv"
  net = CouplingResNet(in_channels, out_channels, num_filters, num_blocks, bfloat16)
  pieces.append({"name": name, "module": net,
                 "detail": f"{mode} {_shape_text(shape)}, net input "
                           f"{_shape_text((in_channels, *spatial))}",
                 "expected": expected_coupling_params(in_channels, out_channels, num_filters,
                                                      num_blocks)})
  return nf.flows.AffineCouplingBlock(net, scale=True, scale_map="exp", split_mode=mode)


def build_model(config, bfloat16=False):
  """Builds the normflows model of a resolved configuration (`_configs.resolve`).

  With `bfloat16` (Real NVP only), the coupling networks compute in bfloat16 (see
  `CouplingResNet`).

  Returns:
    `(model, pieces)`: the `normflows.MultiscaleFlow`, and one dict per piece that has
    parameters (a coupling; for Glow a step or a split prior), in data -> latent order: `name`,
    `detail` (its kind and shape), `module`, and `expected`, the trainable parameters of the
    same piece in tfp_realnvp.

  Raises:
    ValueError: a shape that the squeezes or normflows' checkerboard split cannot handle.
  """
  if config["flow"] == "glow":
    return _build_glow(config["image_shape"], config["num_levels"], config["num_steps"],
                       config["num_filters"])
  return _build_real_nvp(config["image_shape"], config["num_scales"], config["num_filters"],
                         config["num_blocks"], bfloat16)


def _multiscale_flow(levels):
  """The `MultiscaleFlow` of `levels`, each `(flows in data -> latent order, base shape)`.

  Every level but the last ends where `Merge('channel_inv')` factors out the first half of the
  channels; every base is a fixed standard normal, and the data goes through `Logit` first.
  """
  # normflows orders levels from the latent side and runs each level's flows latent -> data.
  levels = list(reversed(levels))
  q0 = [nf.distributions.DiagGaussian(base_shape, trainable=False) for _, base_shape in levels]
  flows = [list(reversed(steps)) for steps, _ in levels]
  merges = [nf.flows.Merge("channel_inv") for _ in range(len(levels) - 1)]
  return nf.MultiscaleFlow(q0, flows, merges, transform=nf.transforms.Logit(alpha=LOGIT_ALPHA),
                           class_cond=False)


def _build_glow(image_shape, num_levels, num_steps, num_filters):
  """The multi-scale Glow for channels-last `image_shape`; see `build_model`."""
  h, w, c = image_shape
  shape = (c, h, w)
  pieces = []
  levels = []  # Per level, data -> latent: (flows in data -> latent order, factored-out shape).
  for level in range(num_levels):
    c, h, w = shape
    if h % 2 or w % 2:
      raise ValueError(f"level {level} has height {h} and width {w}: the squeeze needs both "
                       f"even; use fewer levels (--num-levels).")
    shape = (4 * c, h // 2, w // 2)
    steps = [nf.flows.Squeeze()]
    for k in range(num_steps):
      block = nf.flows.GlowBlock(shape[0], num_filters, scale=True, scale_map="sigmoid",
                                 split_mode="channel", leaky=0.0, init_zeros=True, use_lu=True,
                                 net_actnorm=True)
      hidden_convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)][:-1]
      for conv in hidden_convs:  # Keras's glorot_uniform; the last one stays at zero.
        nn.init.xavier_uniform_(conv.weight)
      steps.append(block)
      pieces.append({"name": f"level{level}/step{k}", "module": block,
                     "detail": f"GlowBlock {_shape_text(shape)}",
                     "expected": expected_glow_step_params(shape[0], num_filters)})
    if level == num_levels - 1:
      levels.append((steps, shape))
      break
    kept, factored = shape[0] - shape[0] // 2, shape[0] // 2
    prior = nf.flows.AffineCouplingBlock(
        nf.nets.ConvNet2d([kept, 2 * factored], [3], init_zeros=True), scale=True,
        scale_map="exp", split_mode="channel_inv")
    steps.append(prior)
    pieces.append({"name": f"level{level}/split_prior", "module": prior,
                   "detail": f"split prior {_shape_text(shape)}",
                   "expected": expected_split_prior_params(shape[0])})
    levels.append((steps, (factored, *shape[1:])))
    shape = (kept, *shape[1:])
  return _multiscale_flow(levels), pieces


def _build_real_nvp(image_shape, num_scales, num_filters, num_blocks, bfloat16):
  """The multi-scale Real NVP for channels-last `image_shape`; see `build_model`."""
  h, w, c = image_shape
  shape = (c, h, w)
  pieces = []
  levels = []  # Per scale, data -> latent: (flows in data -> latent order, factored-out shape).
  for s in range(num_scales):
    c, h, w = shape
    if w % 2:
      raise ValueError(
          f"scale {s} has width {w}: normflows' checkerboard split needs an even width; use "
          f"fewer scales (--num-scales).")
    if s < num_scales - 1:
      if h % 2:
        raise ValueError(f"scale {s} has height {h}: the squeeze needs an even height.")
      steps = [_coupling("checkerboard", i % 2, shape, num_filters, num_blocks,
                         f"scale{s}/checkerboard{i}", pieces, bfloat16) for i in range(3)]
      steps.append(nf.flows.Squeeze())
      shape = (4 * c, h // 2, w // 2)
      steps += [_coupling("channel", i % 2, shape, num_filters, num_blocks,
                          f"scale{s}/channel{i}", pieces, bfloat16) for i in range(3)]
      half = (shape[0] // 2, *shape[1:])
      levels.append((steps, half))
      shape = half
    else:
      steps = [_coupling("checkerboard", i % 2, shape, num_filters, num_blocks,
                         f"scale{s}/checkerboard{i}", pieces, bfloat16) for i in range(4)]
      levels.append((steps, shape))
  return _multiscale_flow(levels), pieces


def weight_scales(model):
  """The weight-norm scales `g` of every weight-normalised convolution of `model`."""
  return [m.parametrizations.weight.original0 for m in model.modules()
          if parametrize.is_parametrized(m, "weight")]


def make_train_step(model, optimizer):
  """Returns `step(x) -> (loss, nll)`: one Adam step on the NLL plus the L2 on `g`.

  A step whose loss is not finite is not applied (the gradients are dropped); the caller sees
  the non-finite loss.
  """
  scales = weight_scales(model)

  def step(x):
    """One training step on the NCHW batch `x`; returns the detached `(loss, nll)`."""
    optimizer.zero_grad(set_to_none=True)
    nll = -model.log_prob(x, None).mean()
    loss = nll + L2_SCALE * sum(torch.sum(g * g) for g in scales)
    loss.backward()
    if torch.isfinite(loss):
      optimizer.step()
    return loss.detach(), nll.detach()

  return step


def bits_per_dim(nll_nats, num_dims):
  """Bits/dim of 8-bit data from the NLL (nats) of the dequantized `x` in `[0, 1)^D`."""
  return (nll_nats + num_dims * math.log(256.0)) / (num_dims * math.log(2.0))


def profile(call, calls):
  """Runs `call` `calls` times under `torch.profiler`; returns `_worker.op_table`'s args.

  Op time is each PyTorch op's self CPU time (its own work, not that of the ops it calls).
  """
  with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
    wall = sum(_worker.call_times(call, calls))
  averages = prof.key_averages()
  return ({a.key: a.self_cpu_time_total / 1e3 for a in averages},
          {a.key: a.count for a in averages}, calls, wall)


def versions():
  """Versions of the libraries that matter for the numbers."""
  return {"normflows": nf.__version__, "torch": torch.__version__, "numpy": np.__version__}


def parse_args(argv=None):
  """Parses the command line and resolves the configuration."""
  parser = argparse.ArgumentParser(
      description=__doc__.split("\n\n", maxsplit=1)[0],
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  parser.add_argument("--config", choices=_configs.NAMES, default="mnist")
  _configs.add_arguments(parser)
  parser.add_argument("--batch-size", type=int, default=64)
  parser.add_argument("--seed", type=int, default=0,
                      help="Seed of the weights (torch) and of the fixed batch (numpy).")
  parser.add_argument("--mode", choices=("speed", "memory"), default="speed")
  parser.add_argument("--precision", choices=("float32", "bfloat16"), default="float32",
                      help="bfloat16 (Real NVP only): every conditioner runs under "
                           "torch.autocast(bfloat16) and returns float32, like a Keras "
                           "mixed_bfloat16 network.")
  parser.add_argument("--memory-steps", type=int, default=50)
  parser.add_argument("--check", action="store_true",
                      help="Print per-coupling (Glow: per-step) parameter counts against the "
                           "tfp_realnvp formula and run the sanity checks, then exit (not the "
                           "protocol).")
  args = parser.parse_args(argv)
  try:
    args.model_config = _configs.resolve(args, args.config)
  except ValueError as e:
    parser.error(str(e))
  return args


def fixed_batch(image_shape, batch_size, seed):
  """The benchmark batch: uniform float32 `[B, H, W, C]` from numpy, as an NCHW tensor."""
  x = np.random.default_rng(seed).uniform(size=(batch_size, *image_shape)).astype(np.float32)
  return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()


def count_actnorms(model):
  """`(initialised, total)` numbers of normflows ActNorms in `model` (data-dependent init)."""
  actnorms = [m for m in model.modules() if isinstance(m, nf.flows.ActNorm)]
  return sum(bool(m.data_dep_init_done > 0) for m in actnorms), len(actnorms)


def run_check(model, pieces, x, train_step):
  """Prints the per-piece parameter comparison and runs the sanity checks."""
  print(f"{'piece':<22} {'kind and shape':<46} {'ours':>9} {'normflows':>9}")
  for piece in pieces:
    actual = count_params(piece["module"])
    flag = "" if piece["expected"] == actual else "  MISMATCH"
    print(f"{piece['name']:<22} {piece['detail']:<46} {piece['expected']:>9} "
          f"{actual:>9}{flag}")
  total_expected, total = sum(piece["expected"] for piece in pieces), count_params(model)
  print(f"{'total':<69} {total_expected:>9} {total:>9}  (normflows / ours "
        f"{total / total_expected:.4f})")
  print(f"weight-norm convolutions (L2 penalty): {len(weight_scales(model))}")

  model.eval()
  with torch.no_grad():
    log_p = model.log_prob(x, None)
  d = x[0].numel()
  print(f"log_prob finite: {bool(torch.isfinite(log_p).all())}; initial bits/dim "
        f"{bits_per_dim(-log_p.mean().item(), d):.4f}")
  model.train()
  losses = [train_step(x)[0].item() for _ in range(20)]
  print("train loss over 20 steps on the fixed batch: "
        + " ".join(f"{v:.1f}" for v in losses))
  print(f"loss decreased: {losses[-1] < losses[0]}")
  model.eval()
  with torch.no_grad():
    samples, _ = model.sample(NUM_SAMPLES)
  outside = ((samples < 0) | (samples > 1)).float().mean().item()
  print(f"sample shape {tuple(samples.shape)}, finite: {bool(torch.isfinite(samples).all())}, "
        f"range [{samples.min().item():.4f}, {samples.max().item():.4f}], fraction outside "
        f"[0, 1]: {outside:.5f} (normflows' Logit maps back to [-a/(1-2a), (1-a)/(1-2a)])")


def build(config, precision="float32", batch_size=64, seed=0):
  """The model, its fixed batch and its timed operations, as the speed worker builds them.

  Seeds torch with `seed`, builds the model of the resolved `config` (`build_model`; with
  `precision` "bfloat16" its conditioners compute in bfloat16), its Adam and training step
  (`make_train_step`) and the fixed batch of `batch_size` images (`fixed_batch`).

  Returns:
    `(model, pieces, x, train_step, ops)`: `build_model`'s model and pieces, the NCHW batch,
    the training step, and the timed operations, name -> zero-argument callable
    (`train_step` in train mode; `log_prob` and `sample`, 64 images, in eval mode under
    `torch.no_grad()`).

  Raises:
    ValueError: a shape that the squeezes or normflows' checkerboard split cannot handle.
  """
  torch.manual_seed(seed)
  model, pieces = build_model(config, bfloat16=precision == "bfloat16")
  optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
  train_step = make_train_step(model, optimizer)
  x = fixed_batch(config["image_shape"], batch_size, seed)

  def op_train_step():
    """One training step on the fixed batch, in train mode."""
    model.train()
    train_step(x)

  def op_log_prob():
    """The log-density of the fixed batch, in eval mode."""
    model.eval()
    with torch.no_grad():
      model.log_prob(x, None)

  def op_sample():
    """64 samples, in eval mode."""
    model.eval()
    with torch.no_grad():
      model.sample(NUM_SAMPLES)

  ops = {"train_step": op_train_step, "log_prob": op_log_prob, "sample": op_sample}
  return model, pieces, x, train_step, ops


def main(argv=None):
  """Runs the worker; returns the exit status."""
  args = parse_args(argv)
  try:
    model, pieces, x, train_step, ops = build(args.model_config, args.precision,
                                              args.batch_size, args.seed)
  except ValueError as e:
    sys.exit(f"error: {e}")

  if args.check:
    run_check(model, pieces, x, train_step)
    return 0

  def ready():
    return {"precision": args.precision, "versions": versions(),
            "num_params": count_params(model), "torch_threads": torch.get_num_threads(),
            "actnorms_initialized": count_actnorms(model)}

  _worker.run("normflows", ops, profile, args.mode, args.memory_steps, ready)
  return 0


if __name__ == "__main__":
  sys.exit(main())
