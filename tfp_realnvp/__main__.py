"""`python -m tfp_realnvp`: the `tfp-realnvp` command line (see `tfp_realnvp.cli`)."""

import sys

from tfp_realnvp import cli

if __name__ == "__main__":
  sys.exit(cli.main())
