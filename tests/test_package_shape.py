"""The package's shape: modules of one concern each, docstrings that state contracts."""

import ast
import pathlib
import re

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "tfp_realnvp"
MODULES = sorted(PACKAGE.rglob("*.py"))
MAX_MODULE_LINES = 450
MAX_MODULE_DOCSTRING_LINES = 15


def _name(path):
  return str(path.relative_to(PACKAGE.parent))


def test_the_package_is_found():
  assert len(MODULES) > 40 and PACKAGE / "__init__.py" in MODULES


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_module_is_short_with_a_short_docstring(path):
  text = path.read_text()
  assert len(text.splitlines()) <= MAX_MODULE_LINES, (
      f"{_name(path)} has {len(text.splitlines())} lines; split it by concern.")
  docstring = ast.get_docstring(ast.parse(text))
  assert docstring, f"{_name(path)} has no module docstring."
  assert len(docstring.splitlines()) <= MAX_MODULE_DOCSTRING_LINES, (
      f"{_name(path)}'s module docstring has {len(docstring.splitlines())} lines.")


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_module_carries_no_dates(path):
  """Measurements and run histories are dated in benchmarks/RESULTS.md, not in the code."""
  dates = re.findall(r"\b20\d\d-\d\d-\d\d\b", path.read_text())
  assert not dates, f"{_name(path)} mentions {dates}."
