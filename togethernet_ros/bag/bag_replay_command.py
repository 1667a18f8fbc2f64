"""`togethernet bag replay`: the bag's images over DDS into a real detector_node process."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `replay` action to the `bag` subparsers."""
    parser = sub.add_parser(
        "replay", help="replay images over DDS into a real detector_node and measure it"
    )
    parser.add_argument("input", type=__import__("pathlib").Path)
    parser.set_defaults(_bag_run=lambda args: 2)
