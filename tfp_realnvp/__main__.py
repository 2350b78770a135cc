"""`python -m tfp_realnvp`: the `tfp-realnvp` command line (see `tfp_realnvp_launcher`)."""

import sys

import tfp_realnvp_launcher

if __name__ == "__main__":
  sys.exit(tfp_realnvp_launcher.main())
