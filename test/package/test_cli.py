"""The `togethernet` command: every subcommand is listed and has working --help."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from togethernet_ros.cli import SUBCOMMANDS, main

TOGETHERNET = Path(sys.executable).parent / "togethernet"


def test_top_level_help_lists_every_subcommand_without_importing_them():
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "togethernet_ros.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for name in SUBCOMMANDS:
        assert name in result.stdout
    assert "torch" not in {line.split("|")[-1].strip() for line in result.stderr.splitlines()}


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_subcommand_module_contract_and_help(name, capsys):
    module = importlib.import_module(SUBCOMMANDS[name].module)
    assert isinstance(module.HELP, str) and module.HELP
    assert callable(module.add_arguments) and callable(module.run)
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    assert "usage: togethernet " + name in capsys.readouterr().out


def test_console_script_is_installed_and_rejects_unknown_subcommands():
    assert TOGETHERNET.exists(), "pip install -e . should install the togethernet script"
    result = subprocess.run([str(TOGETHERNET), "fly"], capture_output=True, text=True)
    assert result.returncode == 2 and "invalid choice: 'fly'" in result.stderr
