"""The `togethernet` command: one entry point, one module per subcommand.

Each subcommand lives next to the code it drives and exposes three names:
``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``. Only the module of the
subcommand being run is imported, so `togethernet --help` stays fast and a subcommand never needs
the dependencies of another (the training commands run on GPU machines without rosbags or rclpy).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NamedTuple

from togethernet_ros.training.interruption import sigterm_as_interrupt, stop_status


class Subcommand(NamedTuple):
    """A subcommand: the module that implements it (imported only when chosen) and a summary.

    `streams_frames`: it decodes, receives or runs the model on frame after frame, and gets
    the glibc heap settings for that (pipeline/heap_tuning.py). Training keeps glibc's defaults
    (its many data-loading processes were not measured with them).
    """

    module: str
    summary: str
    streams_frames: bool = False


# The order is the order shown in --help. Summaries are repeated here so that listing the
# subcommands imports none of them; each module's HELP is the full description.
SUBCOMMANDS: dict[str, Subcommand] = {
    "predict": Subcommand(
        "togethernet_ros.inference.predict_command",
        "detect (and dehaze) images, a folder or a video",
        streams_frames=True,
    ),
    "export": Subcommand(
        "togethernet_ros.inference.export_command", "export to ONNX and verify against PyTorch"
    ),
    "bench": Subcommand(
        "togethernet_ros.inference.bench_command",
        "benchmark backends, batch and input sizes",
        streams_frames=True,
    ),
    "train": Subcommand("togethernet_ros.training.train_command", "train TogetherNet"),
    "eval": Subcommand(
        "togethernet_ros.evaluation.eval_command", "VOC and COCO mAP", streams_frames=True
    ),
    "data": Subcommand(
        "togethernet_ros.training.data_command", "dataset tools: voc2yolo, split, fog"
    ),
    "fog": Subcommand(
        "togethernet_ros.training.fog_command", "synthesise fog on a VOC dataset (= data fog)"
    ),
    "distill": Subcommand(
        "togethernet_ros.distill.distill_command",
        "distil a clear-weather teacher into TogetherNet on fogged video",
    ),
    "bag": Subcommand(
        "togethernet_ros.bag.bag_command", "rosbag2 tools: run, replay, eval", streams_frames=True
    ),
    "demo-data": Subcommand(
        "togethernet_ros.bag.demo_data_command", "build a foggy two-camera sample bag"
    ),
    "demo": Subcommand(
        "togethernet_ros.bag.demo_command",
        "end-to-end demo on real footage (make demo)",
        streams_frames=True,
    ),
}


def _requested_subcommand(argv: Sequence[str]) -> str | None:
    for argument in argv:
        if not argument.startswith("-"):
            return argument if argument in SUBCOMMANDS else None
    return None


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """Build the parser; only the subcommand named in `argv` gets its full arguments."""
    parser = argparse.ArgumentParser(
        prog="togethernet",
        description="TogetherNet: joint dehazing and object detection in adverse weather.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    requested = _requested_subcommand(argv)
    for name, subcommand in SUBCOMMANDS.items():
        if name != requested:
            subparsers.add_parser(name, help=subcommand.summary)
            continue
        module = importlib.import_module(subcommand.module)
        sub = subparsers.add_parser(name, help=subcommand.summary, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


# A path the user gave that is missing, or of the wrong kind, or not readable: one line that
# names it, not a traceback. Other errors keep theirs (they may be bugs worth reporting).
PATH_ERRORS = (
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `togethernet` command line; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    subcommand = SUBCOMMANDS[args.command]
    if subcommand.streams_frames:
        from togethernet_ros.pipeline.heap_tuning import keep_frames_on_the_heap

        keep_frames_on_the_heap()
    try:
        # SIGTERM (`timeout`, systemd, launch) stops a command like Ctrl-C: its `finally` blocks
        # run, so child processes (the replay's detector_node) are stopped and bags, videos and
        # checkpoints are closed. Python's default ends the process on the spot.
        with sigterm_as_interrupt():
            return int(args._run(args) or 0)
    except KeyboardInterrupt as stop:
        # Cleaned up on the way here; one line, and the shell's code for the signal.
        name, status = stop_status(stop)
        print(f"togethernet {args.command}: stopped by {name}", file=sys.stderr)
        return status
    except PATH_ERRORS as error:
        print(f"togethernet {args.command}: error: {error}", file=sys.stderr)
        return 2
    except SystemExit as stop:
        if not isinstance(stop.code, str):
            raise
        # A command that stops with a message stops on its input: exit 2 like every other
        # usage error (argparse's too), so 1 keeps meaning "ran, and the result is bad".
        print(stop.code, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
