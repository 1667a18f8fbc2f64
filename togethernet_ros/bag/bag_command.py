"""`togethernet bag run|eval|replay`: evaluate perception on recorded drives."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from togethernet_ros.bag.bag_problems import BagError
from togethernet_ros.bag.bag_writer import check_output_apart_from_input, exists_already
from togethernet_ros.bag.detector_options import (
    add_detector_arguments,
    checked_max_detections,
    class_filter,
    create_detector_from_settings,
    resolve_detector_settings,
)
from togethernet_ros.evaluation.atomic_write import write_text_atomically
from togethernet_ros.inference.cli_arguments import (
    check_output_file,
    check_output_folder,
    parse_positive_int,
)

HELP = "Rosbag2 tools: run the pipeline offline, evaluate detections, replay over DDS."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register run / eval / replay."""
    sub = parser.add_subparsers(dest="bag_command", metavar="ACTION", required=True)

    run_parser = sub.add_parser(
        "run", help="run the node's pipeline offline as fast as possible into an output bag"
    )
    # Optional to argparse only: `--topics A B BAG` takes BAG as a topic, and run_run then
    # takes it back as the input (input_from_topics).
    run_parser.add_argument(
        "input", type=Path, nargs="?", help="rosbag2 directory, .mcap or .db3 (required)"
    )
    run_parser.add_argument("--output", type=Path, required=True, help="output bag directory")
    add_topic_arguments(run_parser)
    run_parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    run_parser.add_argument("--no-dehazed", action="store_true", help="skip dehazed images")
    run_parser.add_argument("--no-raw", action="store_true", help="skip unsmoothed detections")
    run_parser.add_argument("--annotated", action="store_true", help="also write debug images")
    run_parser.add_argument(
        "--no-copy-inputs", action="store_true", help="do not copy the input topics"
    )
    run_parser.add_argument(
        "--max-frames", type=parse_positive_int, default=None, help="stop after N frames"
    )
    run_parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    run_parser.add_argument(
        "--decode-threads",
        type=_parse_decode_threads,
        default=-1,
        metavar="N",
        help="threads decoding compressed frames ahead; 1 = the reader thread alone; -1 = auto "
        "(one per usable CPU, at most 8); each keeps up to two decoded frames ahead",
    )
    run_parser.add_argument("--report", type=Path, default=None, help="write the report as JSON")
    add_detector_arguments(run_parser)
    run_parser.set_defaults(_bag_run=run_run)

    from togethernet_ros.bag import bag_eval_command, bag_replay_command

    bag_eval_command.register(sub)
    bag_replay_command.register(sub)


def _parse_decode_threads(text: str) -> int:
    """argparse type of --decode-threads: -1 (auto) or 1 to 32."""
    from togethernet_ros.bag.decode_ahead import MAX_THREADS

    try:
        count = int(text)
    except ValueError:
        count = 0
    if count != -1 and not 1 <= count <= MAX_THREADS:
        raise argparse.ArgumentTypeError(
            f"must be -1 (auto) or a whole number from 1 to {MAX_THREADS}, got {text!r}"
        )
    return count


def add_topic_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``--topic T`` (repeatable) and ``--topics T …`` into ``args.topics``.

    A command whose input bag is positional makes it ``nargs="?"`` and calls
    :func:`input_from_topics`: ``--topics A B BAG`` would otherwise take BAG as a topic.
    """
    # --topic (repeatable, as distill's) never swallows the input bag; --topics A B stays.
    parser.add_argument(
        "--topic",
        dest="topics",
        action="append",
        default=None,
        metavar="TOPIC",
        help="image topic to process (repeatable; default: every Image/CompressedImage topic)",
    )
    parser.add_argument(
        "--topics",
        dest="topics",
        nargs="+",
        action="extend",
        metavar="TOPIC",
        help="image topics to process (as --topic; put the input bag before it)",
    )


def check_topics_recorded(bag: Path, topics: list[str] | None) -> None:
    """ValueError when the bag's metadata.yaml lists none of the requested ``topics``.

    A typo in ``--topic`` is then refused before the model loads, not after (one topic of
    several missing is reported by the run, which processes the others). Bags without a
    metadata.yaml are left to the run, which reads what their storage holds.
    """
    from togethernet_ros.bag.bag_reader import list_topics_from_metadata
    from togethernet_ros.bag.image_codec import IMAGE_TYPES

    listed = list_topics_from_metadata(bag) if topics else None
    if listed is None or any(topic in listed for topic in topics or ()):
        return
    images = sorted(name for name, topic in listed.items() if topic.msgtype in IMAGE_TYPES)
    raise ValueError(
        f"--topic: {', '.join(topics or ())} not in {bag} "
        f"(image topics recorded: {', '.join(images) or 'none'})"
    )


def input_from_topics(args: argparse.Namespace) -> None:
    """Give ``args.input`` back when ``--topics A B BAG`` took the input bag as a topic.

    argparse gives a ``nargs="+"`` option every word up to the next option, the positional
    input bag too. With no input left, the last topic is the input when it names an existing
    path; ValueError (naming --topic) otherwise.
    """
    if args.input is not None:
        return
    topics = args.topics or []
    if len(topics) > 1 and Path(topics[-1]).exists():
        args.input = Path(topics.pop())
        return
    taken = f" (--topics took {topics[-1]!r} as a topic)" if topics else ""
    raise ValueError(
        f"no input bag given{taken}: give the input bag first, or choose topics with "
        "--topic TOPIC, once per topic"
    )


def run(args: argparse.Namespace) -> int:
    """Dispatch to the chosen action."""
    return int(args._bag_run(args) or 0)


def print_tracker_resets(resets: dict[str, dict]) -> None:
    """Print, per tracked camera whose tracks restarted, how often and why."""
    for topic, counts in sorted(resets.items()):
        total = counts["gap"] + counts["stamp_back"] + counts["source_changed"]
        if not total:
            continue
        print(
            f"  tracks restarted on {topic}: {total} time(s) (gap > tracking.max_gap_s "
            f"{counts['max_gap_s']:g} s: {counts['gap']}, stamp back: {counts['stamp_back']}, "
            f"frame_id or size changed: {counts['source_changed']})"
        )


def print_problems(problems: list[dict]) -> None:
    """Print reader problems to stderr as a short list."""
    if not problems:
        return
    print(f"{len(problems)} problem(s) in the input bag:", file=sys.stderr)
    for problem in problems:
        where = f"{problem['topic']}: " if problem["topic"] else ""
        times = f" (x{problem['count']})" if problem["count"] > 1 else ""
        print(f"  [{problem['kind']}] {where}{problem['detail']}{times}", file=sys.stderr)


def input_bag_error(path: Path) -> str | None:
    """Why ``path`` cannot be an input bag at all (missing, or no rosbag2 storage), else None.

    Checked before a model loads or a node starts: it is the user's input, so exit status 2,
    not the 1 of a bag that is damaged or holds nothing to process.
    """
    from togethernet_ros.bag.bag_reader import (
        STORAGE_SUFFIXES,
        compressed_file_advice,
        storage_kind,
    )

    if not path.exists():
        return f"input bag {path} does not exist"
    storage = "/".join(STORAGE_SUFFIXES)
    if path.is_file() and path.suffix not in STORAGE_SUFFIXES:
        advice = compressed_file_advice(path)
        if advice:
            return f"input bag {path}: {advice}"
        return f"input bag {path} is not a rosbag2 folder or a {storage} file"
    if path.is_dir() and not (path / "metadata.yaml").exists():
        stored = [child for child in path.iterdir() if child.is_file() and storage_kind(child)]
        if not stored:
            return f"input bag {path} is a folder without metadata.yaml or {storage} files"
        if all(compressed_file_advice(child) for child in stored):
            # Only metadata.yaml says how they are compressed: nothing here can be read.
            return (
                f"input bag {path} has no metadata.yaml and only zstd-compressed storage "
                f"files ({', '.join(sorted(c.name for c in stored))}): decompress them with "
                "`zstd -d` and pass the folder again"
            )
    return None


def run_run(args: argparse.Namespace) -> int:
    """`bag run`."""
    from tqdm import tqdm

    from togethernet_ros.bag.bag_run import BagRunOptions, run_bag
    from togethernet_ros.pipeline.batch_wait import resolve_batch_wait_ms
    from togethernet_ros.ros.node_settings import named_classes  # plain Python, no rclpy
    from togethernet_ros.tracking.config import TrackerConfig
    from togethernet_ros.tracking.score_gate import detector_threshold, tracker_config_behind
    from togethernet_ros.vision.class_filter import unknown_classes
    from togethernet_ros.vision.draw import draw_detections

    try:
        # Refuse bad options before the model loads (seconds) rather than after it.
        input_from_topics(args)
        problem = input_bag_error(args.input)
        if problem:
            raise ValueError(problem)
        check_output_apart_from_input(args.input, args.output)
        if args.output.exists() and not args.overwrite:
            raise BagError(exists_already(args.output))
        if not args.output.exists():
            check_output_folder(args.output, "--output")
        if args.report is not None:  # written after the whole bag was processed
            check_output_file(args.report, "--report")
        check_topics_recorded(args.input, args.topics)
        settings = resolve_detector_settings(args)
        tracker = settings.get("tracker")
        wait_ms = float(settings["max_batch_wait_ms"])
        # The node's range checks ran in resolve_detector_settings; this is the one rule
        # spanning values (-1 is auto, between -1 and 0 nothing).
        resolve_batch_wait_ms(wait_ms, on_gpu=False)
        publish_threshold = float(settings["conf_threshold"])
        keep = class_filter(settings)
        max_detections = checked_max_detections(settings["max_detections"])
        tracking = bool(settings["tracking_enabled"])
        # As the node: with tracking off no tracker follows, so the detector keeps no
        # low-score boxes for one (tracking/score_gate.py).
        # Checked also with tracking off, as the node checks every tracking.* value.
        configured_tracker = TrackerConfig.from_dict(tracker) if tracker else TrackerConfig()
        tracker_config = (
            tracker_config_behind(publish_threshold, configured_tracker) if tracking else None
        )
        # The detector keeps the tracker's low-score boxes too; raw detections are cut back.
        detector = create_detector_from_settings(
            dict(settings, conf_threshold=detector_threshold(publish_threshold, tracker_config))
        )
        # As the node checks them: every name, also beside 'all'.
        unknown = unknown_classes(named_classes(settings["classes"]), tuple(detector.class_names))
        if unknown:
            detector.close()
            # As the node refuses it: a typo would otherwise write no detections at all.
            raise ValueError(
                f"parameter 'classes' names {unknown}, which the model does not have; its "
                f"classes are {list(detector.class_names)} (or use ['all'])"
            )
        options = BagRunOptions(
            image_topics=args.topics,
            storage=args.storage,
            max_batch_size=int(settings["max_batch_size"]),
            # "auto" (-1) depends on where the model runs.
            max_batch_wait_ms=resolve_batch_wait_ms(wait_ms, detector.runs_on_gpu),
            dehazed=not args.no_dehazed,
            raw_detections=not args.no_raw,
            annotated=args.annotated,
            copy_inputs=not args.no_copy_inputs,
            overwrite=args.overwrite,
            max_frames=args.max_frames,
            tracking=tracking,
            tracker_config=tracker_config,
            publish_threshold=publish_threshold,
            class_filter=keep,
            max_detections=max_detections,
            decode_threads=args.decode_threads,
        )
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        # BagError is a RuntimeError.
        print(f"bag run: {error}", file=sys.stderr)
        return 2
    bar = tqdm(unit="frame", desc="bag run", dynamic_ncols=True)

    def progress(done: int, total: int) -> None:
        if total and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    try:
        report = run_bag(args.input, args.output, detector, options, draw_detections, progress)
    except BagError as error:
        bar.close()
        print(f"bag run: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        if type(error) is not OSError:
            raise  # a path problem (PermissionError & co.): the CLI's one line, exit 2
        # E.g. the disk filled up under the output bag.
        bar.close()
        print(f"bag run: {error}; the output bag {args.output} is incomplete", file=sys.stderr)
        return 1
    finally:
        detector.close()
    bar.close()
    summary = report.to_dict()
    summary["backend"] = getattr(detector, "backend", "?")
    if args.report:
        write_text_atomically(args.report, json.dumps(summary, indent=2))
    print(
        f"wrote {report.output}: {report.frames_processed} frames from "
        f"{', '.join(report.image_topics)} in {report.wall_s:.1f} s "
        f"({summary['fps']} frames/s; inference {report.inference_s:.1f} s, "
        f"bag I/O + pipeline overhead {100 * report.overhead_fraction:.1f} %)"
    )
    for topic, count in sorted(report.written.items()):
        print(f"  {topic}: {count}")
    print_tracker_resets(report.tracker_resets)
    for warning in report.tracker_warnings():
        print(f"bag run: warning: {warning}", file=sys.stderr)
    print_problems(report.problems)
    if report.frames_processed == 0:
        # An output without a single frame is a failed run for scripts that chain on it.
        print(
            f"bag run: no frame of {', '.join(report.image_topics)} could be processed "
            "(the topics hold no messages, or every frame was bad: see the problems above)",
            file=sys.stderr,
        )
        return 1
    return 0
