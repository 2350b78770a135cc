"""MkDocs hook: a page made of a Markdown file of the repository outside docs/.

A line `<!-- include: benchmarks/RESULTS.md -->` (a path from the repository root) is
replaced by that file's text, so the file stays where it is and the site shows it as it is.
Its relative links are resolved against the file's own folder: a link to another included
file goes to the page that includes it, and a link to any other file of the repository
becomes plain code text (the site has no page for it), so `mkdocs build --strict` finds no
broken link. The file's own title is the page's title.
"""

import pathlib
import posixpath
import re

_INCLUDE = re.compile(r"^<!-- include: (\S+) -->$", re.MULTILINE)
_LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(([^)\s#]+)(#[^)\s]*)?\)")

# Repository path of each included file -> the docs page (path under docs/) that includes it.
_pages = {}


def _root(config):
  return pathlib.Path(config["config_file_path"]).parent


# pylint: disable-next=unused-argument
def on_files(files, config, **kwargs):
  """Finds which page includes which file, before any page is rendered."""
  _pages.clear()
  for file in files.documentation_pages():
    text = pathlib.Path(file.abs_src_path).read_text(encoding="utf-8")
    for match in _INCLUDE.finditer(text):
      _pages[match.group(1)] = file.src_uri
  return files


def _rewrite_links(text, source, page_uri):
  """Relative links of `source` (a repository path) as links of the page `page_uri`."""
  folder = posixpath.dirname(source)
  page_folder = posixpath.dirname(page_uri)

  def rewrite(match):
    label, target, anchor = match.group(1), match.group(2), match.group(3) or ""
    if "://" in target or target.startswith(("mailto:", "/")):
      return match.group(0)
    path = posixpath.normpath(posixpath.join(folder, target))
    if path in _pages:
      return f"[{label}]({posixpath.relpath(_pages[path], page_folder or '.')}{anchor})"
    return f"{label} (`{path}`)"

  return _LINK.sub(rewrite, text)


# pylint: disable-next=unused-argument
def on_page_markdown(markdown, page, config, files, **kwargs):
  """Replaces each include line with the file's text."""
  def include(match):
    source = match.group(1)
    text = (_root(config) / source).read_text(encoding="utf-8")
    return _rewrite_links(text, source, page.file.src_uri)

  return _INCLUDE.sub(include, markdown)
