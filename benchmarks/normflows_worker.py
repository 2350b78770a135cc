#!/usr/bin/env python
"""Speed worker for the normflows (PyTorch) side of the Real NVP comparison benchmark.

Builds, with normflows' own flow pieces, the multi-scale Real NVP that `tfp_realnvp` builds,
and times its training step, log-density and sampling on this machine's CPU. It serves the
line protocol of `_worker.py`, as our worker (`speed.py --worker`) does, so one driver can time
both.

The model (NCHW, as PyTorch and normflows are):

* `normflows.MultiscaleFlow` with `normflows.transforms.Logit(alpha=0.05)` as the data
  preprocessing, so `log_prob` is the density of `x` in `[0, 1)^D` including the logit's
  log-Jacobian, and fixed standard-normal `normflows.distributions.DiagGaussian` bases (one per
  scale: the factored-out channels and the last scale's output).
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

Training objective: mean over the batch of `-log p(x)` (nats) plus `5e-5 * sum(g**2)` over the
weight-norm scales `g` of every convolution, Adam with learning rate 1e-3.

`--precision bfloat16` runs every conditioner under `torch.autocast("cpu", bfloat16)` and
casts its output back to float32, so the couplings' arithmetic, log-determinants and
densities stay float32, as with Keras's `mixed_bfloat16` policy on the tfp_realnvp side.

Usage (with the benchmark venv, see `benchmarks/requirements-normflows.txt`):

```bash
# Parameter counts per coupling against the tfp_realnvp formula, and sanity checks.
.bench-venv/bin/python benchmarks/normflows_worker.py --config mnist --check

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
"""

import argparse
import math
import sys

import normflows as nf
import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrizations, parametrize

import _worker

CONFIGS = {
    "mnist": {"image_shape": (28, 28, 1), "num_scales": 2, "num_filters": 32, "num_blocks": 2},
    "cifar": {"image_shape": (32, 32, 3), "num_scales": 2, "num_filters": 64, "num_blocks": 2},
}
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


def count_params(module):
  """Number of trainable parameters (sum of `numel`) of `module`."""
  return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _coupling(kind, parity, shape, num_filters, num_blocks, name, couplings, bfloat16):
  """One `AffineCouplingBlock` on events `shape` `(C, H, W)`; records it in `couplings`.

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
  couplings.append({"name": name, "split_mode": mode, "event_shape": list(shape),
                    "conditioner_input": [in_channels, *spatial],
                    "in_channels": in_channels, "out_channels": out_channels, "module": net})
  return nf.flows.AffineCouplingBlock(net, scale=True, scale_map="exp", split_mode=mode)


def build_model(image_shape, num_scales, num_filters, num_blocks, bfloat16=False):
  """Builds the multi-scale Real NVP for channels-last `image_shape` `(H, W, C)`.

  With `bfloat16`, the coupling networks compute in bfloat16 (see `CouplingResNet`).

  Returns:
    `(model, couplings)`: the `normflows.MultiscaleFlow`, and one dict per coupling (name,
    split mode, shapes, conditioner module) in data -> latent order.

  Raises:
    ValueError: a shape that the squeezes or normflows' checkerboard split cannot handle.
  """
  h, w, c = image_shape
  shape = (c, h, w)
  couplings = []
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
                         f"scale{s}/checkerboard{i}", couplings, bfloat16) for i in range(3)]
      steps.append(nf.flows.Squeeze())
      shape = (4 * c, h // 2, w // 2)
      steps += [_coupling("channel", i % 2, shape, num_filters, num_blocks,
                          f"scale{s}/channel{i}", couplings, bfloat16) for i in range(3)]
      half = (shape[0] // 2, *shape[1:])
      levels.append((steps, half))
      shape = half
    else:
      steps = [_coupling("checkerboard", i % 2, shape, num_filters, num_blocks,
                         f"scale{s}/checkerboard{i}", couplings, bfloat16) for i in range(4)]
      levels.append((steps, shape))
  # normflows orders levels from the latent side and runs each level's flows latent -> data.
  levels.reverse()
  q0 = [nf.distributions.DiagGaussian(base_shape, trainable=False) for _, base_shape in levels]
  flows = [list(reversed(steps)) for steps, _ in levels]
  merges = [nf.flows.Merge("channel_inv") for _ in range(num_scales - 1)]
  model = nf.MultiscaleFlow(q0, flows, merges, transform=nf.transforms.Logit(alpha=LOGIT_ALPHA),
                            class_cond=False)
  return model, couplings


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
  parser.add_argument("--config", choices=sorted(CONFIGS), default="mnist")
  parser.add_argument("--num-scales", type=int, default=None, help="Overrides the config.")
  parser.add_argument("--num-filters", type=int, default=None, help="Overrides the config.")
  parser.add_argument("--num-blocks", type=int, default=None, help="Overrides the config.")
  parser.add_argument("--batch-size", type=int, default=64)
  parser.add_argument("--seed", type=int, default=0,
                      help="Seed of the weights (torch) and of the fixed batch (numpy).")
  parser.add_argument("--mode", choices=("speed", "memory"), default="speed")
  parser.add_argument("--precision", choices=("float32", "bfloat16"), default="float32",
                      help="bfloat16: every conditioner runs under torch.autocast(bfloat16) and "
                           "returns float32, like a Keras mixed_bfloat16 network.")
  parser.add_argument("--memory-steps", type=int, default=50)
  parser.add_argument("--check", action="store_true",
                      help="Print per-coupling parameter counts against the tfp_realnvp "
                           "formula and run the sanity checks, then exit (not the protocol).")
  args = parser.parse_args(argv)
  config = dict(CONFIGS[args.config])
  for key in ("num_scales", "num_filters", "num_blocks"):
    if getattr(args, key) is not None:
      config[key] = getattr(args, key)
  args.model_config = config
  return args


def fixed_batch(image_shape, batch_size, seed):
  """The benchmark batch: uniform float32 `[B, H, W, C]` from numpy, as an NCHW tensor."""
  x = np.random.default_rng(seed).uniform(size=(batch_size, *image_shape)).astype(np.float32)
  return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()


def run_check(model, couplings, config, x, train_step):
  """Prints the per-coupling parameter comparison and runs the sanity checks."""
  f, b = config["num_filters"], config["num_blocks"]
  print(f"{'coupling':<24} {'split_mode':<18} {'event CxHxW':<12} {'cond. input':<12} "
        f"{'ours':>9} {'normflows':>9}")
  total_expected = 0
  for info in couplings:
    expected = expected_coupling_params(info["in_channels"], info["out_channels"], f, b)
    actual = count_params(info["module"])
    total_expected += expected
    flag = "" if expected == actual else "  MISMATCH"
    print(f"{info['name']:<24} {info['split_mode']:<18} "
          f"{'x'.join(map(str, info['event_shape'])):<12} "
          f"{'x'.join(map(str, info['conditioner_input'])):<12} {expected:>9} {actual:>9}{flag}")
  total = count_params(model)
  print(f"{'total':<68} {total_expected:>9} {total:>9}")
  print(f"weight-norm convolutions: {len(weight_scales(model))}")

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


def main(argv=None):
  """Runs the worker; returns the exit status."""
  args = parse_args(argv)
  config = args.model_config
  torch.manual_seed(args.seed)
  try:
    model, couplings = build_model(config["image_shape"], config["num_scales"],
                                   config["num_filters"], config["num_blocks"],
                                   bfloat16=args.precision == "bfloat16")
  except ValueError as e:
    sys.exit(f"error: {e}")
  optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
  train_step = make_train_step(model, optimizer)
  x = fixed_batch(config["image_shape"], args.batch_size, args.seed)

  if args.check:
    run_check(model, couplings, config, x, train_step)
    return 0

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

  def ready():
    return {"precision": args.precision, "versions": versions(),
            "num_params": count_params(model), "torch_threads": torch.get_num_threads()}

  ops = {"train_step": op_train_step, "log_prob": op_log_prob, "sample": op_sample}
  _worker.run("normflows", ops, profile, args.mode, args.memory_steps, ready)
  return 0


if __name__ == "__main__":
  sys.exit(main())
