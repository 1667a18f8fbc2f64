"""The `togethernet` command: every subcommand is listed and has working --help."""

from __future__ import annotations

import importlib
import re
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


def _nested_actions(name: str) -> list[str]:
    """Names of the actions under subcommand `name` (e.g. `bag run`), read from its parser."""
    import argparse

    from togethernet_ros.cli import build_parser

    parser = build_parser([name])
    top = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    nested = top.choices[name]
    return [
        action_name
        for action in nested._actions
        if isinstance(action, argparse._SubParsersAction)
        for action_name in action.choices
    ]


NESTED = [(name, action) for name in sorted(SUBCOMMANDS) for action in _nested_actions(name)]


def test_subcommands_with_actions_are_found():
    assert {("bag", "run"), ("bag", "replay"), ("bag", "eval"), ("data", "fog")} <= set(NESTED)


@pytest.mark.parametrize(("name", "action"), NESTED)
def test_every_nested_action_has_working_help(name, action, capsys):
    # argparse formats help lazily: a stray '%' in a help text only fails here.
    with pytest.raises(SystemExit) as exit_info:
        main([name, action, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: togethernet {name} {action}" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--set", "data.root={missing}"],
        ["eval", "--voc-root", "{missing}", "--detections", "{missing}/d.json"],
        ["distill", "{missing}/clip.mp4"],
    ],
)
def test_a_missing_path_is_one_line_naming_it_not_a_traceback(argv, tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert main([part.format(missing=missing) for part in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"togethernet {argv[0]}: error: ") and str(missing) in err
    assert "Traceback" not in err


def test_an_output_folder_that_is_a_file_is_one_line(tmp_path, capsys):
    image = tmp_path / "frame.png"
    image.write_bytes(b"")  # never read: the output folder is checked first
    taken = tmp_path / "taken"
    taken.write_text("a file, not a folder")
    argv = ["predict", "--source", str(image), "--output", str(taken), "--allow-untrained"]
    assert main(argv) == 2
    assert str(taken) in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # A folder where a file goes said "does not exist", or "[Errno 17] File exists".
        (["train", "--config", "{folder}"], "training config {folder} is a folder"),
        (["demo", "--params-file", "{folder}"], "--params-file {folder} is a folder"),
        (["data", "voc2yolo", "--voc-root", "{voc}", "--out", "{file}"], "--out {file} is a file"),
    ],
)
def test_a_folder_where_a_file_goes_and_the_reverse_are_named(argv, message, tmp_path, capsys):
    from support.cli_refusal import refused

    from togethernet_ros.training.synthetic_scenes import SyntheticFogDataset, write_voc_fog_dataset

    folder = tmp_path / "folder"
    folder.mkdir()
    taken = tmp_path / "taken.txt"
    taken.write_text("a file")
    voc = write_voc_fog_dataset(
        tmp_path / "voc", SyntheticFogDataset(1, 96, 128, num_classes=3, seed=1), ("a", "b", "c")
    )
    paths = {"folder": folder, "file": taken, "voc": voc}
    refused(
        capsys,
        [part.format(**paths) for part in argv],
        re.escape(message.format(**paths)),
    )
