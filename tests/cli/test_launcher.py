"""The console script's launcher (`tfp_realnvp_launcher`): parsing, `--help` and `--version`
without TensorFlow, its choices, and how it reports errors: a user's as one line, a bug's
with its traceback."""

import os
import subprocess
import sys

import pytest

from tfp_realnvp import cli
from tfp_realnvp import errors
import tfp_realnvp_launcher

from helpers import describe_process

TIMEOUT = 240  # Seconds for one process; a hang fails the test instead of the whole run.


def _python(*args, **kwargs):
  """Runs `python ARGS` to completion; returns the CompletedProcess."""
  return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                        timeout=TIMEOUT, check=False, **kwargs)


@pytest.mark.parametrize("args, code", [
    (["--version"], 0), (["--help"], 0), (["train", "--help"], 0),
    (["sample", "m.keras", "--count", "0"], 2), (["no-such-command"], 2)])
def test_launcher_answers_without_tensorflow(args, code):
  """What the console script answers from its arguments alone never imports TensorFlow."""
  probe = ("import sys, tfp_realnvp_launcher\n"
           "try:\n  tfp_realnvp_launcher.main(sys.argv[1:])\n"
           "except SystemExit as exit_:\n"
           "  print('exit', exit_.code, 'tensorflow' in sys.modules, 'tfp_realnvp' in sys.modules)")
  result = _python("-c", probe, *args)
  assert f"exit {code} False False" in result.stdout, describe_process(result)


def test_the_commands_do_not_import_the_launcher():
  """One import direction: the launcher imports `tfp_realnvp.cli`, never the reverse."""
  probe = "import sys, tfp_realnvp.cli\nprint('tfp_realnvp_launcher' in sys.modules)"
  result = _python("-c", probe)
  assert result.stdout.splitlines()[-1:] == ["False"], describe_process(result)


def test_python_m_tfp_realnvp_still_works(tmp_path):
  result = _python("-m", "tfp_realnvp", "--version", cwd=tmp_path)
  assert result.returncode == 0, describe_process(result)
  assert result.stdout.startswith("tfp-realnvp "), describe_process(result)


def test_console_script_version():
  script = os.path.join(os.path.dirname(sys.executable), "tfp-realnvp")
  result = subprocess.run([script, "--version"], capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)
  assert result.returncode == 0, describe_process(result)
  assert result.stdout.startswith("tfp-realnvp "), describe_process(result)
  assert result.stderr == ""


def test_help_lists_the_commands(capsys):
  with pytest.raises(SystemExit) as exit_info:
    tfp_realnvp_launcher.main(["--help"])
  assert exit_info.value.code == 0
  text = capsys.readouterr().out
  for name in ("train", "evaluate", "sample", "interpolate", "export"):
    assert name in text



def test_launcher_choices_are_the_library_s():
  # The extensible kinds come from the registries' entry points, so they are the library's.
  from tfp_realnvp import configs  # pylint: disable=g-import-not-at-top
  from tfp_realnvp import networks  # pylint: disable=g-import-not-at-top
  from tfp_realnvp import remat  # pylint: disable=g-import-not-at-top
  from tfp_realnvp import training  # pylint: disable=g-import-not-at-top
  from tfp_realnvp.bijectors import transforms  # pylint: disable=g-import-not-at-top

  for group, registry in (("tfp_realnvp.flows", configs.FLOWS),
                          ("tfp_realnvp.coupling_networks", networks.COUPLING_NETWORKS),
                          ("tfp_realnvp.coupling_transforms", transforms.COUPLING_TRANSFORMS)):
    assert set(tfp_realnvp_launcher.registered(group)) == set(registry), group
    assert registry.group == group
  assert tfp_realnvp_launcher.DEQUANTIZATIONS == configs.DEQUANTIZATIONS
  assert tfp_realnvp_launcher.REMAT_MODES == ("none", *remat.MODES)
  assert tfp_realnvp_launcher.MIXED_PRECISIONS == tuple(
      "none" if value is None else value for value in training.MIXED_PRECISIONS)
  parser = tfp_realnvp_launcher.build_parser()
  assert parser.parse_args(["train", "--coupling", "additive"]).coupling == "additive"



def test_a_bug_in_a_command_shows_its_traceback_and_exits_non_zero():
  """An exception that is not a user error (here a `TypeError`) is a bug: not one line."""
  probe = ("import sys, tfp_realnvp_launcher\n"
           "from tfp_realnvp import cli\n"
           "def sample(args):\n"
           "  raise TypeError('unsupported operand type(s) for +: int and str')\n"
           "cli.sample = sample\n"
           "sys.exit(tfp_realnvp_launcher.main(['sample', 'model.keras']))")
  result = _python("-c", probe)
  assert result.returncode != 0, describe_process(result)
  assert "Traceback (most recent call last)" in result.stderr, describe_process(result)
  assert result.stderr.rstrip().splitlines()[-1] == (
      "TypeError: unsupported operand type(s) for +: int and str"), describe_process(result)
  assert "tfp-realnvp: error:" not in result.stderr, describe_process(result)


@pytest.mark.parametrize("error", [
    errors.InvalidValueError("a bad\n  value"), errors.DataError("a bad\n  value"),
    errors.RunError("a bad\n  value"), FileNotFoundError("a bad\n  value")])
def test_a_user_error_is_one_line_with_exit_status_1(monkeypatch, capsys, error):
  def sample(args):
    del args
    raise error

  monkeypatch.setattr(cli, "sample", sample)
  assert tfp_realnvp_launcher.main(["sample", "model.keras"]) == 1
  assert capsys.readouterr().err == "tfp-realnvp: error: a bad value\n"
  with pytest.raises(type(error)):  # --traceback: the whole traceback instead.
    tfp_realnvp_launcher.main(["--traceback", "sample", "model.keras"])


def test_a_bug_in_process_is_raised(monkeypatch, capsys):
  def sample(args):
    del args
    raise TypeError("a bug")

  monkeypatch.setattr(cli, "sample", sample)
  with pytest.raises(TypeError, match="a bug"):
    tfp_realnvp_launcher.main(["sample", "model.keras"])
  assert "error:" not in capsys.readouterr().err
