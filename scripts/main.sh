#!/usr/bin/env bash
# Sets up .venv and runs the main job: `tfp-realnvp train` (default: the embedded 8x8 digits,
# 2 to 5 minutes on two CPU cores). Extra arguments go to `tfp-realnvp train`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/tfp-realnvp train "$@"
