"""Every code block of README.md and docs/**/*.md runs (see `docs_snippets` for the marks).

The python blocks of one file run in order in one namespace, in a temporary working
directory: one test per file with the blocks of the default suite, and one more per file
that has `<!-- slow -->` blocks, in the slow suite, running all of them. The `tfp-realnvp`
lines of the bash blocks of a file run in order in one temporary folder, in the slow suite.
A `<!-- no-run: reason -->` block is a skipped test that shows its reason.
"""

import os
import pathlib
import shlex
import subprocess
import sys

import pytest

import docs_snippets as snippets

FILES = snippets.markdown_files()
BLOCKS = {path: snippets.blocks_of(path) for path in FILES}


def _python_blocks(path, slow):
  return [block for block in BLOCKS[path] if block.language == "python"
          and block.skip_reason is None and (slow or not block.slow)]


def _run_python(path, slow, directory, monkeypatch):
  """Runs the python blocks of `path` in order, in one namespace, inside `directory`."""
  monkeypatch.chdir(directory)
  namespace = {"__name__": "__snippets__"}
  source = snippets.ROOT / path
  for block in _python_blocks(path, slow):
    # Blank lines before the code keep the line numbers of tracebacks those of the file.
    code = compile("\n" * (block.line - 1) + block.code, os.fspath(source), "exec")
    exec(code, namespace)  # pylint: disable=exec-used


@pytest.mark.parametrize("path", [path for path in FILES if _python_blocks(path, slow=False)])
def test_python_blocks(path, tmp_path, monkeypatch):
  _run_python(path, False, tmp_path, monkeypatch)


@pytest.mark.slow
@pytest.mark.parametrize("path", [path for path in FILES
                                  if any(block.slow for block in _python_blocks(path, True))])
def test_python_blocks_with_the_slow_ones(path, tmp_path, monkeypatch):
  _run_python(path, True, tmp_path, monkeypatch)


def _command():
  """The console script of the environment running the tests."""
  script = pathlib.Path(sys.executable).parent / snippets.COMMAND
  return [os.fspath(script)] if script.exists() else [sys.executable, "-m", "tfp_realnvp"]


def _commands(path):
  return [(block, line, command) for block in BLOCKS[path]
          if block.language == "bash" and block.skip_reason is None
          for line, command in block.commands()]


@pytest.mark.slow
@pytest.mark.parametrize("path", [path for path in FILES if _commands(path)])
def test_command_lines(path, tmp_path):
  environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  for _, line, command in _commands(path):
    arguments = shlex.split(command)[1:]
    result = subprocess.run(_command() + arguments, cwd=tmp_path, env=environment,
                            capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, (
        f"{path}:{line}: {command}\nexit status {result.returncode}\n{result.stdout[-3000:]}"
        f"\n{result.stderr[-3000:]}")


_SKIPPED = [block for path in FILES for block in BLOCKS[path] if block.skip_reason is not None]


@pytest.mark.parametrize("block", _SKIPPED, ids=[block.id for block in _SKIPPED])
def test_blocks_not_run(block):
  pytest.skip(f"{block.id}: {block.skip_reason}")


def test_the_runner_finds_the_blocks():
  """An empty glob or a broken parser must not pass silently."""
  assert "README.md" in FILES and "docs/getting-started.md" in FILES
  assert len(FILES) >= 30, FILES
  readme = [block for block in BLOCKS["README.md"] if block.language == "python"]
  assert len(readme) >= 2, "the README's snippets"
  assert any(block.commands() for block in BLOCKS["README.md"]), "the README's command line"
  python = sum(block.language == "python" for blocks in BLOCKS.values() for block in blocks)
  commands = sum(len(_commands(path)) for path in FILES)
  assert python >= 30 and commands >= 5, (python, commands)
  for page in ("docs/getting-started.md", "docs/guide/bijectors.md", "docs/guide/flows.md"):
    assert _python_blocks(page, slow=False), f"{page} has no python block that runs"


def test_the_parser_reads_marks_and_commands():
  text = "\n".join([
      "Text.", "", "```python", "a = 1", "```", "", "<!-- slow -->", "```python", "b = a", "```",
      "", "1. a list:", "", "   <!-- no-run: needs a TPU -->", "   ```python", "   tpu()",
      "   ```", "", "```bash", "pip install x   # not run", "tfp-realnvp train --epochs 1 \\",
      "    --seed 3   # joined", "# tfp-realnvp commented out", "```", "", "```none",
      "tfp-realnvp not a bash block", "```", ""])
  first, slow, skipped, bash = snippets.parse(text)
  assert (first.line, first.code, first.slow, first.skip_reason) == (4, "a = 1\n", False, None)
  assert slow.slow and slow.code == "b = a\n"
  assert skipped.skip_reason == "needs a TPU" and skipped.code == "tpu()\n"
  assert bash.commands() == [(21, "tfp-realnvp train --epochs 1 --seed 3")]
  for bad in ("<!-- no-run -->\n```python\nx\n```\n", "<!-- slow -->\ntext\n",
              "<!-- slow -->\n```none\nx\n```\n", "```python\nx\n", "<!-- slow -->\n"):
    with pytest.raises(snippets.MarkerError):
      snippets.parse(bad)
