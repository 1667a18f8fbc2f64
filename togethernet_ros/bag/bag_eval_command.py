"""`togethernet bag eval`: AP per class + mAP against ground truth, and temporal stability."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from togethernet_ros.bag.bag_problems import BagError
from togethernet_ros.bag.output_topics import camera_namespace
from togethernet_ros.evaluation.atomic_write import write_text_atomically
from togethernet_ros.inference.cli_arguments import check_output_file, parse_iou_threshold
from togethernet_ros.training.class_list import parse_class_names

if TYPE_CHECKING:
    from togethernet_ros.bag.bag_eval import BagDetections


# Exact by default: ground truth is expected to copy the frames' stamps, and a mismatch is
# reported with its size (a constant offset is a clock problem no tolerance should hide).
DEFAULT_STAMP_TOLERANCE_MS = 0.0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `eval` action to the `bag` subparsers."""
    parser = sub.add_parser(
        "eval",
        help="AP/mAP against ground truth (if given) and raw-vs-smoothed temporal stability",
    )
    parser.add_argument("input", type=Path, help="bag with <ns>/detections and <ns>/detections_raw")
    parser.add_argument(
        "--gt-topic",
        nargs="+",
        default=None,
        metavar="TOPIC",
        help="Detection2DArray ground-truth topic(s) <ns>/<name>, matched to camera <ns> by stamp",
    )
    parser.add_argument(
        "--voc-dir",
        type=Path,
        default=None,
        help="VOC XML ground truth; boxes as written, as get_map.py and `togethernet eval` read "
        "them (not clipped to the image; zero-width and inverted boxes kept and noted)",
    )
    parser.add_argument(
        "--voc-key",
        choices=("stamp", "index"),
        default="index",
        help="VOC file names are header stamps in ns, or frame indices (default): the n-th "
        "distinct stamp of the camera's frames in the bag",
    )
    parser.add_argument(
        "--voc-camera", default=None, help="camera namespace the VOC files belong to, e.g. /cam"
    )
    parser.add_argument(
        "--classes", default=None, help="class names: comma-separated, or a file with one per line"
    )
    parser.add_argument(
        "--stamp-tolerance-ms",
        type=_parse_tolerance_ms,
        default=DEFAULT_STAMP_TOLERANCE_MS,
        metavar="MS",
        help="pair a ground-truth stamp with no frame of that exact stamp with the nearest frame "
        "at most MS away, one frame per stamp: labels re-stamped through float seconds or "
        "rounded to microseconds (default %(default)s: exact stamps only; 1 is far below any "
        "camera's frame period)",
    )
    parser.add_argument(
        "--iou", type=parse_iou_threshold, default=0.5, help="IoU threshold, in (0, 1]"
    )
    parser.add_argument(
        "--exact-boxes",
        action="store_true",
        help="VOC AP of the boxes as they are against --voc-dir ground truth (default: "
        "truncated to whole pixels, as get_map.py and `togethernet eval` score them against "
        "whole-pixel VOC boxes; --gt-topic ground truth is always scored as it is)",
    )
    parser.add_argument("--output", type=Path, default=None, help="write the metrics as JSON")
    parser.set_defaults(_bag_run=run_eval)


def _parse_tolerance_ms(text: str) -> float:
    """A stamp tolerance in milliseconds, finite and >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected milliseconds, got {text!r}") from None
    if not 0.0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number of ms >= 0, got {text}")
    return value


def _option_error(args: argparse.Namespace) -> str | None:
    """What is wrong with the paths given, before the bag is read (exit status 2), or None."""
    if args.voc_dir is not None:
        if not args.voc_dir.is_dir():
            return f"--voc-dir {args.voc_dir} is not a folder"
        if not any(args.voc_dir.glob("*.xml")):
            return f"--voc-dir {args.voc_dir} holds no VOC .xml files"
    if args.output is not None:
        try:
            # Written after the whole bag was scored: a bad path is refused now.
            check_output_file(args.output, "--output")
        except ValueError as error:
            return str(error)
    return None


def run_eval(args: argparse.Namespace) -> int:
    """Run `bag eval`."""
    from togethernet_ros.bag.bag_command import input_bag_error, print_problems
    from togethernet_ros.bag.bag_eval import (
        align_truth_stamps,
        evaluate_camera,
        format_eval_table,
        load_bag_detections,
        load_voc_ground_truth,
        repeated_stamp_frames,
        truth_for_frames,
        unmatched_ground_truth,
    )

    problem = input_bag_error(args.input) or _option_error(args)
    if problem:
        print(f"bag eval: {problem}", file=sys.stderr)
        return 2
    try:
        # As `eval --classes`: a comma list (spaces around names dropped) or a file of lines.
        class_names = parse_class_names(args.classes) if args.classes else None
    except ValueError as error:
        print(f"bag eval: --classes: {error}", file=sys.stderr)
        return 2
    try:
        with_truth = args.voc_dir is not None or bool(args.gt_topic)
        loaded = load_bag_detections(args.input, class_names, args.gt_topic, with_truth)
        truth = dict(loaded.ground_truth)
        notes: list[str] = []
        whole_pixel_cameras: set[str] = set()
        if args.voc_dir is not None:
            camera = args.voc_camera or (
                next(iter(loaded.cameras)) if len(loaded.cameras) == 1 else None
            )
            if camera not in loaded.cameras:
                # A usage error, found only now that the bag's cameras are known.
                print(
                    f"bag eval: --voc-camera must name one of {sorted(loaded.cameras)} "
                    f"(got {camera!r})",
                    file=sys.stderr,
                )
                return 2
            stamps = list(loaded.frame_stamps.get(camera, ()))
            if not stamps:
                stamps = [stamp for stamp, _ in loaded.cameras[camera].keys]
                if args.voc_key == "index":
                    notes.append(
                        f"no camera frames of {camera or '/'} in the bag: frame indices count its "
                        "detections messages, so a frame without one shifts every later file"
                    )
            truth[camera], voc_notes = load_voc_ground_truth(
                args.voc_dir, args.voc_key, stamps, loaded.class_names
            )
            # Truncating only pays against whole-pixel boxes: sub-pixel ground truth from a
            # topic would see every detection shifted up-left by up to a pixel.
            if not args.exact_boxes:
                whole_pixel_cameras.add(camera)
            notes += voc_notes
        _check_classes(loaded, truth, class_names is not None)
    except (BagError, ValueError) as error:
        print(f"bag eval: {error}", file=sys.stderr)
        return 1
    alignments = {}
    for camera in sorted(truth):
        truth[camera], alignments[camera] = align_truth_stamps(
            loaded.cameras[camera],
            truth[camera],
            loaded.frame_stamps.get(camera),
            round(args.stamp_tolerance_ms * 1e6),
        )
    try:
        results = {
            camera: evaluate_camera(
                detections,
                loaded.class_names,
                truth.get(camera),
                args.iou,
                loaded.frame_stamps.get(camera),
                whole_pixel_boxes=camera in whole_pixel_cameras,
            )
            for camera, detections in sorted(loaded.cameras.items())
        }
    except ValueError as error:
        print(f"bag eval: {error}", file=sys.stderr)
        return 1
    print(format_eval_table(results))
    for camera, kinds in sorted(results.items()):
        for kind, entry in sorted(kinds.items()):
            if "ground_truth_ids_ignored" in entry:
                print(f"  {camera} ({kind}): {entry['ground_truth_ids_ignored']}", file=sys.stderr)
    if not truth:
        print("(no ground truth given: accuracy and GT-based stability skipped)")
    for note in notes:
        print(f"  ground truth: {note}", file=sys.stderr)
    for topic, counts in sorted(loaded.unknown_classes.items()):
        if camera_namespace(topic) in truth and topic in (args.gt_topic or []):
            print(
                f"  ground truth: {topic}: {sum(counts.values())} objects of classes "
                f"{sorted(counts)} not among the class names {list(loaded.class_names)}; "
                "left out",
                file=sys.stderr,
            )
    for camera, detections in sorted(loaded.cameras.items()):
        repeated = max(
            repeated_stamp_frames(detections.raw), repeated_stamp_frames(detections.smoothed)
        )
        if repeated:
            print(
                f"note: {camera}: {repeated} detections messages repeat an earlier header stamp "
                "(a looping recording, or frames without a stamp); each is scored as its own "
                "frame, with the ground truth of its stamp",
                file=sys.stderr,
            )
    for camera, camera_truth in sorted(truth.items()):
        frame_stamps = loaded.frame_stamps.get(camera)
        alignment = alignments[camera]
        if alignment.within_tolerance:
            print(
                f"note: ground truth of {camera}: {alignment.within_tolerance} stamps paired with "
                f"the nearest frame, at most {alignment.max_offset_ns / 1e6:.3f} ms away "
                f"(--stamp-tolerance-ms {args.stamp_tolerance_ms:g})",
                file=sys.stderr,
            )
        if alignment.unmatched:
            offsets = ", ".join(f"{v / 1e6:+.3f}" for v in alignment.nearest_offset_ns[:5])
            print(
                f"warning: ground truth of {camera}: {alignment.unmatched} stamps match no frame "
                f"of the camera within {args.stamp_tolerance_ms:g} ms (first: "
                f"{alignment.unmatched_stamps[0]} ns; nearest frame {offsets} ms away; "
                "--stamp-tolerance-ms pairs labels that are a little off)",
                file=sys.stderr,
            )
        labelled = truth_for_frames(loaded.cameras[camera], camera_truth, frame_stamps)
        missing = unmatched_ground_truth(loaded.cameras[camera], camera_truth, frame_stamps)
        if missing:
            # All of them: usually stamps from another clock or a shifted recording, not a blind
            # detector. Some: frames the node dropped or could not decode.
            print(
                f"warning: ground truth of {camera}: {len(missing)} of {len(labelled)} frames "
                "have no detections message with the same header stamp (first: "
                f"{missing[0][0]} ns) and count as missed; ground-truth stamps must copy the "
                "camera frames' stamps",
                file=sys.stderr,
            )
    print_problems(loaded.problems)
    if args.output:
        payload = {
            "class_names": list(loaded.class_names),
            "cameras": results,
            "ground_truth_stamps": {
                camera: alignment.to_dict() for camera, alignment in alignments.items()
            },
        }
        write_text_atomically(args.output, json.dumps(payload, indent=2))
        print(f"wrote {args.output}")
    return 0


def _check_classes(loaded: BagDetections, truth: dict, names_given: bool) -> None:
    """BagError when detections to be scored name classes outside the class names."""
    for topic, counts in sorted(loaded.unknown_classes.items()):
        kind = topic.rsplit("/", 1)[-1]
        if kind in ("detections", "detections_raw") and camera_namespace(topic) in truth:
            source = (
                "--classes" if names_given else "the bag's label_info, else the default classes"
            )
            raise BagError(
                f"{topic}: {sum(counts.values())} detections of classes {sorted(counts)} not "
                f"among the class names {list(loaded.class_names)} (from {source}); give "
                "--classes with every class the model publishes, in its order"
            )
