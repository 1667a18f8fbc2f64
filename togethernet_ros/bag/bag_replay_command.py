"""`togethernet bag replay`: the bag's images over DDS into a real detector_node, measured."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from togethernet_ros.bag.bag_command import add_topic_arguments, input_from_topics
from togethernet_ros.bag.bag_problems import BagError
from togethernet_ros.bag.bag_writer import check_output_apart_from_input, exists_already
from togethernet_ros.inference.cli_arguments import parse_positive_int, parse_seconds


def _parse_rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(
            f"must be > 0 (× recorded rate) or 0 (as fast as accepted), got {text}"
        )
    return value


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `replay` action to the `bag` subparsers."""
    parser = sub.add_parser(
        "replay", help="replay images over DDS into a real detector_node and measure it"
    )
    # Optional to argparse only, as `bag run`'s: `--topics A B BAG` takes BAG as a topic, and
    # run_replay_command then takes it back as the input (input_from_topics).
    parser.add_argument(
        "input", type=Path, nargs="?", help="rosbag2 directory, .mcap or .db3 (required)"
    )
    add_topic_arguments(parser)
    parser.add_argument(
        "--rate",
        type=_parse_rate,
        default=1.0,
        help="playback speed × recorded rate; 0 = as fast as the node accepts (default 1)",
    )
    parser.add_argument(
        "--max-frames", type=parse_positive_int, default=None, help="replay at most N frames"
    )
    parser.add_argument(
        "--params-file", type=Path, default=None, help="node params (default: config/detect.yaml)"
    )
    parser.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME:=VALUE",
        help="node parameter override, the value read as the node reads -p (rcl), repeatable",
    )
    parser.add_argument("--record", type=Path, default=None, help="record inputs+outputs (mcap)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --record bag")
    parser.add_argument(
        "--record-images", action="store_true", help="also record dehazed and debug images"
    )
    parser.add_argument(
        "--peak-search", action="store_true", help="also find the highest rate with ≤ 5 %% loss"
    )
    parser.add_argument(
        "--report-dir",
        type=Path,
        default=Path("replay_report"),
        help="where replay.json, report.md, the plots and detector_node.log go "
        "(default replay_report)",
    )
    parser.add_argument(
        "--domain-id",
        type=_domain_id,
        default=None,
        help="ROS_DOMAIN_ID of the node and the replay, 0..232 (default: a random one of 1..100, "
        "so that other ROS 2 processes are unlikely to see or disturb them)",
    )
    parser.add_argument(
        "--startup-timeout",
        type=parse_seconds,
        default=180.0,
        help="seconds the node may take to start (default 180)",
    )
    parser.set_defaults(_bag_run=run_replay_command)


def _domain_id(text: str) -> int:
    """A ROS_DOMAIN_ID Fast DDS can use: 0..232 (higher ids overflow its default ports)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not 0 <= value <= 232:
        raise argparse.ArgumentTypeError(f"must be 0..232, got {value}")
    return value


def parse_overrides(items: list[str]) -> dict:
    """``name:=value`` strings -> dict, each value read as rcl reads ``-p`` and then checked.

    Read by ros/params_file.py, so ``1e-2`` is the number the node gets. Checked here because
    the node cannot: rcl keeps the params file's value when a later override has another type,
    so `-p publish_dehazed:=maybe` would run with the file's value.
    """
    from togethernet_ros.ros.node_settings import SPECS_BY_NAME, check_value
    from togethernet_ros.ros.params_file import ParamsFileError, ros_value

    overrides = {}
    for item in items:
        name, separator, value = item.partition(":=")
        if not separator or not name:
            raise ValueError(f"parameter override {item!r} must look like name:=value")
        if name not in SPECS_BY_NAME:
            raise ValueError(f"-p {name}: the node has no parameter {name!r}")
        try:
            parsed = ros_value(value)
        except ParamsFileError as error:
            raise ValueError(f"-p {name}: {error}") from None
        checked = check_value(SPECS_BY_NAME[name], parsed)
        # Lists as lists (check_value gives tuples), the YAML the params file is written as.
        overrides[name] = list(checked) if isinstance(checked, tuple) else checked
    return overrides


def check_output_paths(args: argparse.Namespace) -> None:
    """Refuse --record / --report-dir paths that would lose data or fail after the replay.

    The recorder replaces whatever is at --record, and a recorder or report that cannot be
    written is only noticed after the node has started and the bag was played.
    """
    if args.record is not None:
        check_output_apart_from_input(args.input, args.record, "--record")
        if args.record.exists() and not args.overwrite:
            raise BagError(exists_already(args.record, "--record bag"))
        _check_creatable_parent(args.record, "--record")
    if args.report_dir.exists() and not args.report_dir.is_dir():
        raise BagError(f"--report-dir {args.report_dir} is a file, not a folder")
    _check_creatable_parent(args.report_dir, "--report-dir")


def check_params_file(path: Path | None) -> None:
    """Refuse a --params-file the node could not read, before a node is started for it."""
    from togethernet_ros.ros.params_file import read_sections  # plain Python, no rclpy

    if path is None:
        return
    if not path.is_file():
        problem = "is a folder" if path.is_dir() else "does not exist"
        raise BagError(f"--params-file {path} {problem}")
    read_sections([path])  # ParamsFileError (a ValueError) names the file and its problem


def _check_creatable_parent(path: Path, option: str) -> None:
    from togethernet_ros.inference.cli_arguments import check_parent_writable

    try:
        check_parent_writable(path, f"{option} {path}")
    except ValueError as error:
        raise BagError(str(error)) from None


def run_replay_command(args: argparse.Namespace) -> int:
    """Run `bag replay`."""
    from togethernet_ros.bag.bag_command import input_bag_error

    try:
        input_from_topics(args)
        problem = input_bag_error(args.input)
        if problem:
            raise BagError(problem)
        check_output_paths(args)
        check_params_file(args.params_file)
    except (BagError, ValueError) as error:
        print(f"bag replay: {error}", file=sys.stderr)
        return 2
    try:
        from togethernet_ros.ros.bag_replay import ReplayError, ReplayOptions, run_replay
    except ImportError as error:
        print(
            f"bag replay needs ROS 2 Python packages (rclpy, vision_msgs): {error}. "
            "Use `bag run` for offline processing without ROS.",
            file=sys.stderr,
        )
        return 2
    from tqdm import tqdm

    from togethernet_ros.bag.bag_command import print_problems
    from togethernet_ros.bag.replay_report import marked_tail, write_replay_report

    try:
        overrides = parse_overrides(args.param)
    except ValueError as error:
        print(f"bag replay: {error}", file=sys.stderr)
        return 2
    options = ReplayOptions(
        image_topics=args.topics,
        rate=args.rate,
        max_frames=args.max_frames,
        params_file=args.params_file or _default_params_file(),
        node_parameters=overrides,
        record_bag=args.record,
        record_dehazed=args.record_images,
        record_debug=args.record_images,
        startup_timeout_s=args.startup_timeout,
        domain_id=args.domain_id,
        node_log=args.report_dir / "detector_node.log",
    )
    bar = tqdm(unit="frame", desc="replay", dynamic_ncols=True)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        result = run_replay(
            args.input, options, progress, args.peak_search, log=lambda m: tqdm.write(m)
        )
    except (ReplayError, BagError, OSError) as error:
        # OSError: e.g. the loopback DDS profile missing from an install.
        bar.close()
        print(f"bag replay: {error}", file=sys.stderr)
        return 1
    bar.close()
    written = write_replay_report(result, args.report_dir, {"parameters": overrides})
    overall = result.trials[0].metrics["overall"]
    latency = overall["latency_ms"]
    print(
        f"{overall['received']}/{overall['sent']} frames came back "
        f"({overall['dropped']} dropped), throughput {overall['throughput_fps']} frames/s, "
        f"latency p50 {latency['p50']} ms p95 {marked_tail(latency, 95)} ms "
        f"p99 {marked_tail(latency, 99)} ms"
        + (
            f" (* from {latency['count']} samples: too few for that tail)"
            if "*" in marked_tail(latency, 95) + marked_tail(latency, 99)
            else ""
        )
    )
    for name, path in written.items():
        print(f"  {name}: {path}")
    if args.record:
        print(f"  recording: {args.record}")
    print_problems(result.problems)
    if result.node_exit_code not in (0, None):
        # The measurement stands, but a node that did not stop cleanly is a failed run.
        log_file = args.report_dir / "detector_node.log"
        print(
            f"bag replay: detector_node exited with code {result.node_exit_code} when stopped "
            f"(see {log_file})",
            file=sys.stderr,
        )
        return 1
    return 0


def _default_params_file() -> Path | None:
    from togethernet_ros.ros.node_settings import default_config_path

    try:
        return default_config_path()
    except (ImportError, LookupError, FileNotFoundError):
        return None
