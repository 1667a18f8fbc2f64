"""`togethernet fog`: the fog synthesis of `togethernet data fog`, as a command of its own."""

from __future__ import annotations

import argparse

from togethernet_ros.training import data_command

HELP = data_command.FOG_HELP


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `data fog`."""
    data_command.add_fog_arguments(parser)
    parser.set_defaults(_data_run=data_command.run_fog, data_command="fog")


def run(args: argparse.Namespace) -> int:
    """Run `data fog` with these options."""
    return data_command.run(args)
