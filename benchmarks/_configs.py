"""The architectures that both libraries' benchmark scripts build, by flow and configuration name.

Standard library only, so that the scripts of both benchmark environments (`speed.py` and its
worker, with TensorFlow; `normflows_worker.py` and `normflows_quality.py`, with PyTorch) read
one table and one set of command-line flags:

* `--flow realnvp`: the multi-scale Real NVP (`num_scales`, `num_filters` and `num_blocks` of
  the coupling ResNets);
* `--flow glow`: the multi-scale Glow (`num_levels`, `num_steps` of flow per level,
  `num_filters` of the coupling networks).

A configuration name (`mnist`, `cifar`) fixes the image shape and the defaults of its flow's
architecture; the flags `--num-scales`, `--num-blocks`, `--num-levels`, `--num-steps` and
`--num-filters` override them (each only for the flow that has it).
"""

FLOWS = ("realnvp", "glow")
CONFIGS = {
    "realnvp": {
        "mnist": {"image_shape": (28, 28, 1), "num_scales": 2, "num_filters": 32,
                  "num_blocks": 2},
        "cifar": {"image_shape": (32, 32, 3), "num_scales": 2, "num_filters": 64,
                  "num_blocks": 2},
    },
    "glow": {
        "mnist": {"image_shape": (28, 28, 1), "num_levels": 2, "num_steps": 8,
                  "num_filters": 128},
        "cifar": {"image_shape": (32, 32, 3), "num_levels": 3, "num_steps": 8,
                  "num_filters": 128},
    },
}
NAMES = ("mnist", "cifar")
# Architecture flag -> the flows that have it.
_OVERRIDES = {"num_scales": ("realnvp",), "num_blocks": ("realnvp",),
              "num_levels": ("glow",), "num_steps": ("glow",),
              "num_filters": ("realnvp", "glow")}


def add_arguments(parser):
  """Adds `--flow` and the architecture overrides to an `argparse.ArgumentParser`."""
  parser.add_argument("--flow", choices=FLOWS, default="realnvp",
                      help="The flow to build: multi-scale Real NVP or Glow.")
  for key, flows in _OVERRIDES.items():
    parser.add_argument("--" + key.replace("_", "-"), type=int, default=None,
                        help=f"Overrides the configuration's {key} ({', '.join(flows)}).")


def resolve(args, name):
  """The architecture of configuration `name` for `args.flow`, with `args`' overrides.

  Args:
    args: parsed arguments of a script that called `add_arguments` (and, if it has one,
      `--precision`).
    name: a configuration name (`mnist`, `cifar`).

  Returns:
    A new dict: `flow`, `image_shape` `(H, W, C)` and the flow's architecture parameters.

  Raises:
    ValueError: an unknown name, an override of a parameter the flow does not have, or
      bfloat16 with Glow (implemented for Real NVP only).
  """
  if name not in NAMES:
    raise ValueError(f"unknown configuration {name!r}; choose among {list(NAMES)}.")
  config = dict(CONFIGS[args.flow][name], flow=args.flow)
  for key, flows in _OVERRIDES.items():
    value = getattr(args, key)
    if value is None:
      continue
    if args.flow not in flows:
      raise ValueError(f"--{key.replace('_', '-')} is for --flow {' or '.join(flows)}, not "
                       f"--flow {args.flow}.")
    config[key] = value
  if args.flow == "glow" and getattr(args, "precision", "float32") != "float32":
    raise ValueError("--precision bfloat16 is implemented for --flow realnvp only.")
  return config


def architecture(args):
  """`--flow` and the architecture overrides of `args`, as keyword arguments (unset: None)."""
  return dict({key: getattr(args, key) for key in _OVERRIDES}, flow=args.flow)


def override_flags(args):
  """The command-line flags that pass `--flow` and `args`' overrides on to a worker."""
  flags = ["--flow", args.flow]
  for key in _OVERRIDES:
    if getattr(args, key) is not None:
      flags += ["--" + key.replace("_", "-"), str(getattr(args, key))]
  return flags
