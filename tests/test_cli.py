"""Tests of the ``difsci`` command line that do not need the compiler."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

try:
    from difsci import cli
except Exception:  # the package's __init__ may be mid-rewrite: load cli.py alone
    _path = Path(__file__).resolve().parent.parent / "difsci" / "cli.py"
    _spec = importlib.util.spec_from_file_location("difsci_cli_standalone", _path)
    cli = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(cli)


def run_cli(argv: list[str]) -> int:
    """Call ``cli.main(argv)``, turning argparse's SystemExit into a return code."""
    try:
        return cli.main(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 1


def test_help(capsys):
    assert run_cli(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("examples", "run", "bench"):
        assert command in out


def test_no_command_prints_help(capsys):
    assert run_cli([]) == 0
    assert "usage" in capsys.readouterr().out.lower()


def test_examples_lists_demo(capsys):
    assert run_cli(["examples"]) == 0
    lines = capsys.readouterr().out.splitlines()
    demo = [line for line in lines if line.split()[:1] == ["demo"]]
    assert demo, lines
    assert "gradient of a 1-D heat step" in demo[0]


def test_unknown_example_exit_code_2(capsys):
    assert run_cli(["run", "no_such_example"]) == 2
    err = capsys.readouterr().err
    assert "no_such_example" in err
    assert "demo" in err  # lists the available ones


def test_bad_backend_is_a_usage_error(capsys):
    assert run_cli(["run", "demo", "--backend", "tpu"]) == 2


def test_run_help_lists_options(capsys):
    assert run_cli(["run", "--help"]) == 0
    out = capsys.readouterr().out
    for opt in ("--iters", "--plot", "--backend", "--size", "--gif"):
        assert opt in out


@pytest.mark.parametrize("name", sorted(cli.list_examples()))
def test_every_example_has_description_and_main(name):
    desc = cli.list_examples()[name]
    assert desc, f"examples/physics/{name}.py needs a module docstring"
    src = (cli.EXAMPLES_DIR / f"{name}.py").read_text()
    assert "def main(" in src
