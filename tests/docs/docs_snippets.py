"""The code blocks of README.md and docs/**/*.md, as the snippet tests run them.

A fenced block ```` ```python ```` or ```` ```bash ```` (at any indentation, e.g. inside a
list) is a `Block`. The last non-blank line before its opening fence may mark it:

* `<!-- slow -->`: the block runs only in the slow suite (`pytest -m slow`);
* `<!-- no-run: reason -->`: the block never runs, and its test is skipped with `reason`
  (for what cannot run here: a TPU, a GPU, a data set that needs a download, a template).

Of a bash block only the `tfp-realnvp ...` command lines run (comments dropped, lines ending
in a backslash joined), and only in the slow suite.
"""

import dataclasses
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`\n]*)$")
_MARKER = re.compile(r"^<!--\s*(?P<kind>slow|no-run)\s*(?::\s*(?P<reason>.*?))?\s*-->$")
LANGUAGES = ("python", "bash")
COMMAND = "tfp-realnvp"


@dataclasses.dataclass(frozen=True)
class Block:
  """One fenced code block of a Markdown file.

  Attributes:
    path: the file, relative to the repository root (posix).
    line: the 1-based line of the first line of code (after the opening fence).
    language: `"python"` or `"bash"`.
    code: the block's text, its fence's indentation removed.
    slow: marked `<!-- slow -->`.
    skip_reason: the reason of a `<!-- no-run: reason -->` mark, else `None`.
  """

  path: str
  line: int
  language: str
  code: str
  slow: bool = False
  skip_reason: str = None

  @property
  def id(self):
    return f"{self.path}:{self.line}"

  def commands(self):
    """The `tfp-realnvp` command lines of a bash block, with their line numbers."""
    commands, pending, start = [], "", None
    for number, line in enumerate(self.code.splitlines(), self.line):
      text = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
      if start is None:
        start = number
      if text.endswith("\\"):
        pending += text[:-1] + " "
        continue
      text = " ".join((pending + text).split())
      pending = ""
      if text.split(" ", 1)[0] == COMMAND:
        commands.append((start, text))
      start = None
    return commands


class MarkerError(ValueError):
  """A mark that is malformed or marks no code block."""


def parse(text, path="<text>"):
  """The `python` and `bash` blocks of the Markdown `text`, in order.

  Raises:
    MarkerError: a `no-run` mark without a reason, a mark not followed by a code block, or an
      unclosed fence.
  """
  lines = text.splitlines()
  blocks, marker, index = [], None, 0
  while index < len(lines):
    line = lines[index]
    stripped = line.strip()
    match = _FENCE.match(line)
    if match:
      fence, indent = match.group("fence"), match.group("indent")
      language = match.group("info").strip().split(" ", 1)[0].lower()
      end = index + 1
      while end < len(lines) and not (lines[end].strip().startswith(fence[0] * len(fence))
                                      and not lines[end].strip().strip(fence[0])):
        end += 1
      if end == len(lines):
        raise MarkerError(f"{path}:{index + 1}: unclosed code fence")
      body = [text_line[len(indent):] if text_line.startswith(indent) else text_line.lstrip()
              for text_line in lines[index + 1:end]]
      if language in LANGUAGES:
        blocks.append(Block(path, index + 2, language, "\n".join(body) + "\n",
                            slow=marker == "slow",
                            skip_reason=marker[1] if isinstance(marker, tuple) else None))
      elif marker is not None:
        raise MarkerError(f"{path}:{index + 1}: a mark before a {language or 'plain'} block")
      marker, index = None, end + 1
      continue
    mark = _MARKER.match(stripped)
    if mark:
      if marker is not None:
        raise MarkerError(f"{path}:{index + 1}: two marks in a row")
      if mark.group("kind") == "slow":
        marker = "slow"
      elif not mark.group("reason"):
        raise MarkerError(f"{path}:{index + 1}: <!-- no-run: reason --> needs its reason")
      else:
        marker = ("no-run", mark.group("reason"))
    elif stripped and marker is not None:
      raise MarkerError(f"{path}:{index + 1}: a mark must come right before a code block")
    index += 1
  if marker is not None:
    raise MarkerError(f"{path}: a mark at the end of the file marks no code block")
  return blocks


def markdown_files():
  """README.md and every Markdown page of docs/, sorted (posix paths from the root)."""
  files = [ROOT / "README.md"] + sorted((ROOT / "docs").rglob("*.md"))
  return [file.relative_to(ROOT).as_posix() for file in files if file.is_file()]


def blocks_of(path):
  """The blocks of the file `path` (relative to the repository root)."""
  return parse((ROOT / path).read_text(encoding="utf-8"), path)
