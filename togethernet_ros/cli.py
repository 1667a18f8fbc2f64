"""The `togethernet` command: one entry point, one module per subcommand.

Each subcommand lives next to the code it drives and exposes three names:
``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported
only when their subcommand runs, so `togethernet --help` stays fast and a missing optional
dependency of one subcommand cannot break the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# name -> module implementing it; the order is the order shown in --help.
SUBCOMMANDS: dict[str, str] = {
    "predict": "togethernet_ros.inference.predict_command",
    "export": "togethernet_ros.inference.export_command",
    "bench": "togethernet_ros.inference.bench_command",
    "train": "togethernet_ros.training.train_command",
    "eval": "togethernet_ros.evaluation.eval_command",
    "data": "togethernet_ros.training.data_command",
    "bag": "togethernet_ros.bag.bag_command",
    "demo-data": "togethernet_ros.bag.demo_data_command",
    "distill": "togethernet_ros.distill.distill_command",
    "demo": "togethernet_ros.bag.demo_command",
}


def _available() -> dict[str, object]:
    modules = {}
    for name, module_name in SUBCOMMANDS.items():
        try:
            modules[name] = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            # Only hide subcommands whose own module is absent; a broken import inside an
            # existing module is a bug and must surface.
            if error.name != module_name:
                raise
    return modules


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="togethernet",
        description="TogetherNet: joint dehazing and object detection in adverse weather.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in _available().items():
        sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `togethernet` command line; returns the process exit code."""
    args = build_parser().parse_args(argv)
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
