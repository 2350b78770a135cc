"""MkDocs hook: the docstring warnings known today, kept out of the strict build by name.

griffe warns about docstrings it cannot fully parse, and `mkdocs build --strict` stops on any
warning. Each entry of `KNOWN` names one such warning (the file, the documented symbol, and
the text of griffe's message); it is logged as INFO instead, so that every other warning,
a new one included, still stops the build. When a docstring is fixed, the build warns that
its entry no longer matches anything: delete the entry then.
"""

import logging

# (file under tfp_realnvp/, symbol, text of griffe's warning)
KNOWN = (
    ("networks/made.py", "AutoregressiveNetwork",
     "Failed to get 'name: description' pair from 'kernel_initializer, bias_initializer,"),
    ("networks/templates.py", "RealNVPDefaultTemplate",
     "Failed to get 'name: description' pair from 'use_bias, kernel_initializer,"),
    ("networks/templates.py", "MaskedAutoregressiveDefaultTemplate",
     "Parameter 'log_scale_min_clip, log_scale_max_clip' does not appear in the function"),
    ("networks/templates.py", "masked_autoregressive_default_template",
     "Parameter 'log_scale_min_clip, log_scale_max_clip' does not appear in the function"),
    ("networks/batch_normalization.py", "FusedBatchNormalization",
     "Parameter '**kwargs' does not appear in the function signature"),
)

_GRIFFE_LOGGER = "mkdocs.plugins.griffe"


class _KnownWarnings(logging.Filter):
  """Turns the known warnings into INFO records and counts the entries they matched."""

  def __init__(self):
    super().__init__()
    self.matched = set()

  def filter(self, record):
    if record.levelno == logging.WARNING:
      message = record.getMessage()
      entries = [(path, symbol, text) for path, symbol, text in KNOWN
                 if f"tfp_realnvp/{path}:" in message and text in message]
      if entries:  # Two symbols of one file may give the same message: one each.
        self.matched.add(next((entry for entry in entries if entry not in self.matched),
                              entries[0]))
        record.levelno, record.levelname = logging.INFO, "INFO"
    return True


_filter = _KnownWarnings()


# pylint: disable-next=unused-argument
def on_config(config, **kwargs):
  """Installs the filter for this build."""
  _filter.matched.clear()
  logger = logging.getLogger(_GRIFFE_LOGGER)
  if _filter not in logger.filters:
    logger.addFilter(_filter)
  return config


# pylint: disable-next=unused-argument
def on_post_build(config, **kwargs):
  """Warns about the entries that matched no warning: their docstrings are fixed."""
  for path, symbol, text in KNOWN:
    if (path, symbol, text) not in _filter.matched:
      logging.getLogger("mkdocs.plugins.known_warnings").warning(
          "docs/hooks/known_warnings.py: %s %s no longer warns (%r): remove its entry",
          path, symbol, text)
