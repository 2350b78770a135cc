#!/usr/bin/env bash
# Sets up .venv, checks the code with ruff (configured in pyproject.toml) and mypy (setup.cfg),
# then runs the default test suite (slow tests excluded; `-m slow` runs them). Extra arguments
# go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check --quiet .
.venv/bin/mypy
exec .venv/bin/python -m pytest -n 2 --dist worksteal "$@"
