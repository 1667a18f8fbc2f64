"""`togethernet bag eval`: AP per class + mAP against ground truth, and temporal stability."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from togethernet_ros.bag.bag_problems import BagError
from togethernet_ros.inference.cli_arguments import parse_unit_interval


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
    parser.add_argument("--voc-dir", type=Path, default=None, help="VOC XML ground truth")
    parser.add_argument(
        "--voc-key",
        choices=("stamp", "index"),
        default="index",
        help="VOC file names are header stamps in ns, or frame indices (default)",
    )
    parser.add_argument(
        "--voc-camera", default=None, help="camera namespace the VOC files belong to, e.g. /cam"
    )
    parser.add_argument("--classes", default=None, help="comma-separated class names")
    parser.add_argument("--iou", type=parse_unit_interval, default=0.5, help="IoU threshold")
    parser.add_argument("--output", type=Path, default=None, help="write the metrics as JSON")
    parser.set_defaults(_bag_run=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    """Run `bag eval`."""
    from togethernet_ros.bag.bag_command import print_problems
    from togethernet_ros.bag.bag_eval import (
        evaluate_camera,
        format_eval_table,
        load_bag_detections,
        load_voc_ground_truth,
        unmatched_ground_truth,
    )

    class_names = tuple(args.classes.split(",")) if args.classes else None
    try:
        loaded = load_bag_detections(args.input, class_names, args.gt_topic)
        truth = dict(loaded.ground_truth)
        notes: list[str] = []
        if args.voc_dir is not None:
            camera = args.voc_camera or (
                next(iter(loaded.cameras)) if len(loaded.cameras) == 1 else None
            )
            if camera not in loaded.cameras:
                raise BagError(
                    f"--voc-camera must name one of {sorted(loaded.cameras)} (got {camera!r})"
                )
            detections = loaded.cameras[camera]
            stamps = sorted(set(detections.smoothed) | set(detections.raw))
            truth[camera], notes = load_voc_ground_truth(
                args.voc_dir, args.voc_key, stamps, loaded.class_names
            )
    except (BagError, ValueError) as error:
        print(f"bag eval: {error}", file=sys.stderr)
        return 1
    results = {
        camera: evaluate_camera(detections, loaded.class_names, truth.get(camera), args.iou)
        for camera, detections in sorted(loaded.cameras.items())
    }
    print(format_eval_table(results))
    if not truth:
        print("(no ground truth given: accuracy and GT-based stability skipped)")
    for note in notes:
        print(f"  ground truth: {note}", file=sys.stderr)
    for camera, camera_truth in sorted(truth.items()):
        missing = unmatched_ground_truth(loaded.cameras[camera], camera_truth)
        if missing:
            # Usually stamps from another clock or a shifted recording, not a blind detector.
            print(
                f"warning: ground truth of {camera}: {len(missing)} of {len(camera_truth)} frames "
                f"have no detections message with the same header stamp (first: {missing[0]} ns) "
                "and count as missed; ground-truth stamps must copy the camera frames' stamps",
                file=sys.stderr,
            )
    print_problems(loaded.problems)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        payload = {"class_names": list(loaded.class_names), "cameras": results}
        args.output.write_text(json.dumps(payload, indent=2))
        print(f"wrote {args.output}")
    return 0
