#!/usr/bin/env bash
# Sets up .venv with the `docs` extra and builds the documentation site into site/ with
# `mkdocs build --strict`: any warning (a broken link, a docstring griffe cannot read, a page
# missing from the navigation) fails the build. Extra arguments go to `mkdocs build`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pip install --quiet -e ".[docs]"
# Material 9.7+ prints a notice about MkDocs 2.0 on every build; it is not a warning.
export NO_MKDOCS_2_WARNING=1
exec .venv/bin/mkdocs build --strict "$@"
