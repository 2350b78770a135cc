"""MkDocs hook: the pages generated from the code at build time, so that they cannot drift.

* `<!-- generated: cli -->` becomes the reference of every `tfp-realnvp` command and flag,
  read from the argparse parser `tfp_realnvp_launcher.build_parser()`;
* `<!-- generated: presets -->` becomes the table of `tfp_realnvp.presets.PRESETS`.

Only the page's Markdown changes: the sources in docs/ keep the marker line.
"""

import argparse

CLI_MARKER = "<!-- generated: cli -->"
PRESETS_MARKER = "<!-- generated: presets -->"


def _preset_row(preset):
  """The columns of one preset in the table: the one place that reads a preset's fields."""
  size = "x".join(str(side) for side in preset.image_size)
  recipe = preset.training
  extras = [] if recipe.dequantization == "uniform" else [f"{recipe.dequantization} "
                                                          "dequantization"]
  return {"preset": f"`{preset.name}`",
          "flow, images": f"{preset.title}, {size}",
          "architecture": preset.describe(),
          "training": ", ".join([f"{recipe.epochs} epochs, batch {recipe.batch_size}, "
                                 f"learning rate {recipe.learning_rate:g}", *extras]),
          "from": preset.description}


def _cell(text):
  """`text` safe inside a Markdown table cell (no HTML, no column break, one line)."""
  text = " ".join(str(text).split())
  return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
          .replace("|", "\\|"))


def _table(rows):
  """A Markdown table of `rows` (dicts with the same keys, in order)."""
  header = list(rows[0])
  lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
  for row in rows:
    lines.append("| " + " | ".join(_cell(row[key]) for key in header) + " |")
  return "\n".join(lines)


def presets_table():
  """The Markdown table of every preset of `tfp_realnvp.presets.PRESETS`."""
  from tfp_realnvp import presets  # Imports TensorFlow: only for the page that needs it.

  return _table([_preset_row(preset) for preset in presets.PRESETS.values()])


def _option_name(action):
  """The flags of an optional argument, or the metavar of a positional one, as code."""
  if action.option_strings:
    names = ", ".join(action.option_strings)
    if action.nargs == 0 or (action.choices and action.nargs is None):
      return f"`{names}`"  # No value, or its values are in the choices column.
    formatter = argparse.HelpFormatter("tfp-realnvp")
    # pylint: disable-next=protected-access
    metavar = formatter._format_args(action, formatter._get_default_metavar_for_optional(action))
    return f"`{names} {metavar}`"
  return f"`{action.metavar or action.dest}`"


def _action_rows(parser):
  """One row per argument of `parser`: name, choices, default and help."""
  formatter = parser._get_formatter()  # pylint: disable=protected-access
  rows = []
  for action in parser._actions:  # pylint: disable=protected-access
    if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):  # pylint: disable=protected-access
      continue
    default = action.default
    shown_default = ("" if default in (None, False, argparse.SUPPRESS) or action.nargs == 0
                     else f"`{default}`")
    help_text = formatter._expand_help(action) if action.help else ""  # pylint: disable=protected-access
    choices = ", ".join(f"`{choice}`" for choice in action.choices) if action.choices else ""
    rows.append({"argument": _option_name(action), "choices": choices,
                 "default": shown_default, "description": help_text})
  return rows


def _sentence(text):
  """`text` with a capital first letter and a full stop."""
  return f"{text[:1].upper()}{text[1:]}." if text else ""


def cli_reference():
  """The Markdown reference of `tfp-realnvp`: usage, then each command's arguments."""
  import tfp_realnvp_launcher  # The standard-library parser: no TensorFlow.

  parser = tfp_realnvp_launcher.build_parser()
  subparsers = next(action for action in parser._actions  # pylint: disable=protected-access
                    if isinstance(action, argparse._SubParsersAction))  # pylint: disable=protected-access
  summaries = {choice.dest: choice.help
               for choice in subparsers._choices_actions}  # pylint: disable=protected-access
  out = ["```none", parser.format_usage().strip(), "```", "",
         " ".join((parser.description or "").split()), "",
         "Options of every command (before the command's name):", "",
         _table(_action_rows(parser)), ""]
  for name, command in subparsers.choices.items():
    out += [f"### `{parser.prog} {name}`", "", _sentence(summaries.get(name, "")), "",
            "```none", command.format_usage().strip(), "```", ""]
    if command.description:
      out += [" ".join(command.description.split()), ""]
    rows = _action_rows(command)
    if rows:
      out += [_table(rows), ""]
  return "\n".join(out)


# pylint: disable-next=unused-argument
def on_page_markdown(markdown, page, config, files, **kwargs):
  """Replaces the markers of generated content in a page's Markdown."""
  if CLI_MARKER in markdown:
    markdown = markdown.replace(CLI_MARKER, cli_reference())
  if PRESETS_MARKER in markdown:
    markdown = markdown.replace(PRESETS_MARKER, presets_table())
  return markdown
