"""`togethernet eval`: VOC AP@0.5 per class + mAP and COCO AP/AP50/AP75 for a dataset.

Detections come from weights (run through the inference Detector) or from a saved detections
JSON file. Writes metrics.json, PR-curve PNGs and prints a per-class table.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from togethernet_ros.evaluation.atomic_write import write_text_atomically
from togethernet_ros.evaluation.coco_map import evaluate_coco
from togethernet_ros.evaluation.dataset_truth import scored_ground_truth, truncates_detection_boxes
from togethernet_ros.evaluation.detection_files import load_detections, save_detections
from togethernet_ros.evaluation.pr_curves import plot_pr_curves
from togethernet_ros.evaluation.voc_ground_truth import EvalDataIssues
from togethernet_ros.evaluation.voc_map import evaluate_voc
from togethernet_ros.inference.cli_arguments import (
    check_output_file,
    check_output_folder,
    parse_input_size,
    parse_iou_threshold,
    parse_positive_int,
    parse_unit_interval,
)
from togethernet_ros.training.class_list import parse_class_names
from togethernet_ros.training.data_issues import DataError
from togethernet_ros.training.paired_dataset import RecordDataset, VocFogDataset, YoloFogDataset

if TYPE_CHECKING:
    from togethernet_ros.inference.detector import Detector

LOGGER = logging.getLogger("togethernet_ros")
HELP = "Evaluate detections: VOC AP@0.5 / mAP (published protocol) and COCO AP via pycocotools."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register `eval` options."""
    data = parser.add_argument_group("dataset (ground truth)")
    data.add_argument("--voc-root", type=Path, help="VOC-format dataset root")
    data.add_argument("--image-set", default="test", help="ImageSets/Main/<name>.txt")
    data.add_argument(
        "--hazy-dir", default="FOG", help="foggy images under --voc-root ('' = JPEGImages)"
    )
    data.add_argument("--yolo-images", type=Path, help="images dir of a YOLO-labelled dataset")
    data.add_argument("--yolo-labels", type=Path, help="labels dir of a YOLO-labelled dataset")
    data.add_argument("--classes", default=None, help="class names (comma list or file)")
    data.add_argument("--strict", action="store_true", help="stop at the first bad data file")
    source = parser.add_argument_group("detections (one of)")
    source.add_argument("--weights", help="checkpoint to run (or use --detections)")
    source.add_argument("--detections", type=Path, help="saved detections JSON to score")
    run_group = parser.add_argument_group("running the model (with --weights)")
    run_group.add_argument(
        "--backend", default="torch", choices=("torch", "onnxruntime"), help="default torch"
    )
    run_group.add_argument(
        "--device",
        default="auto",
        help="auto (a CUDA GPU when torch sees one, else the CPU; default), cpu or cuda[:N]",
    )
    # fp32 by default: a score is compared against published figures, so no half precision
    # unless asked for.
    run_group.add_argument(
        "--precision", default="fp32", choices=("fp32", "fp16", "auto"), help="default fp32"
    )
    run_group.add_argument(
        "--input-size",
        type=parse_input_size,
        default=None,
        help="640 or HxW, e.g. 384x640 (default: the size the checkpoint records it was trained "
        "at, else 640 as the published get_map.py)",
    )
    run_group.add_argument(
        "--conf",
        type=parse_unit_interval,
        default=0.001,
        help="score threshold, in [0, 1] (default 0.001, as get_map.py)",
    )
    run_group.add_argument(
        "--nms",
        type=parse_unit_interval,
        default=0.65,
        help="NMS IoU threshold, in [0, 1] (default 0.65, as get_map.py)",
    )
    run_group.add_argument(
        "--batch-size",
        type=parse_positive_int,
        default=8,
        help="images per forward pass (default 8)",
    )
    run_group.add_argument(
        "--allow-untrained",
        action="store_true",
        help="run seeded untrained weights when --weights is '' (plumbing only: scores mean "
        "nothing)",
    )
    run_group.add_argument(
        "--save-detections",
        type=Path,
        help="also write the detections as JSON, with the images left out, so that "
        "`eval --detections` scores them as this run did",
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "--iou", type=parse_iou_threshold, default=0.5, help="VOC IoU threshold, in (0, 1]"
    )
    out.add_argument(
        "--exact-boxes",
        action="store_true",
        help="VOC AP of the detection boxes as they are against --voc-root ground truth "
        "(default: truncated to whole pixels, as get_map.py writes them before scoring its "
        "whole-pixel XML boxes; YOLO labels are sub-pixel and always scored as they are, and "
        "so is COCO AP)",
    )
    out.add_argument(
        "--out-dir",
        type=Path,
        default=Path("eval_out"),
        help="where metrics.json and the PR-curve PNGs go (default eval_out)",
    )
    out.add_argument("--no-coco", action="store_true", help="skip the COCO metrics")
    out.add_argument("--no-plots", action="store_true", help="skip the PR-curve PNGs")


def dataset_from_args(args: argparse.Namespace, class_names: tuple[str, ...]) -> RecordDataset:
    """Open the ground-truth dataset named on the command line."""
    if args.voc_root is not None:
        hazy_dir = args.hazy_dir or None
        return VocFogDataset(
            args.voc_root,
            args.image_set,
            class_names,
            hazy_dir=hazy_dir,
            # Scoring reads only the images detected on: a foggy set needs no clean originals
            # (RTTS has none), and one missing must not drop its foggy image from the score.
            clean_dir=None if hazy_dir else "JPEGImages",
            strict=args.strict,
            # Boxes are judged by the get_map.py reader (see voc_ground_truth), not clipped.
            issues=EvalDataIssues(strict=args.strict),
        )
    if args.yolo_images is not None and args.yolo_labels is not None:
        return YoloFogDataset(args.yolo_images, args.yolo_labels, class_names, strict=args.strict)
    raise SystemExit(_NO_DATASET)


_NO_DATASET = "eval: give --voc-root, or --yolo-images with --yolo-labels"


def check_dataset_folders(args: argparse.Namespace) -> None:
    """SystemExit naming a dataset option that is missing or names no folder.

    Checked before the model is opened (seconds; minutes for a TensorRT engine), which with
    --weights comes before the dataset is read: the model's classes are needed to read it.
    """
    if args.voc_root is not None:
        folders = (("--voc-root", args.voc_root),)
    elif args.yolo_images is not None and args.yolo_labels is not None:
        folders = (("--yolo-images", args.yolo_images), ("--yolo-labels", args.yolo_labels))
    else:
        raise SystemExit(_NO_DATASET)
    for option, folder in folders:
        if not Path(folder).is_dir():
            raise SystemExit(f"eval: {option} {folder} is not a folder")


def open_detector(args: argparse.Namespace) -> Detector:
    """The Detector of ``--weights``; SystemExit with one line when it cannot be built."""
    try:
        return _create_detector(args)
    except (ValueError, RuntimeError) as error:
        # A checkpoint that does not load, untrained weights without --allow-untrained, an
        # unknown --device: the user's input, one line (CheckpointError is a ValueError).
        raise SystemExit(f"eval: {error}") from None


def detect_dataset(args: argparse.Namespace, dataset: RecordDataset, detector: Detector) -> dict:
    """Run ``detector`` over every image of ``dataset`` (RGB input).

    Boxes are not clipped to the image, as get_map.py scores them: upstream's get_map_txt
    writes the boxes of yolo_correct_boxes as they are, only detect_image (drawing) clips.
    """
    from togethernet_ros.training.paired_dataset import read_rgb

    model_classes = tuple(detector.class_names)
    if len(model_classes) != len(dataset.class_names):
        raise SystemExit(
            f"eval: the model has {len(model_classes)} classes {list(model_classes)}, the dataset "
            f"is read with {len(dataset.class_names)}: {list(dataset.class_names)}; pass "
            "--classes in the model's order"
        )
    if model_classes != dataset.class_names:
        LOGGER.warning(
            "the model's class names %s differ from the dataset's %s; matching them by index",
            list(model_classes),
            list(dataset.class_names),
        )
    # Our detectors have the switch; a stand-in without it is scored as it returns boxes.
    detector.clip_boxes = False
    detector.upstream_box_rounding = True
    found = {}
    records = dataset.records
    for start in range(0, len(records), args.batch_size):
        batch = records[start : start + args.batch_size]
        readable = []
        for record in batch:
            image = read_rgb(record.hazy_path)
            if image is not None:
                readable.append((record, image))
            elif args.strict:
                raise SystemExit(f"eval: {record.hazy_path}: unreadable image")
            else:
                # Left out, with its ground truth (see run): scored as missed, one bad
                # file would look like a detector failure.
                dataset.issues.report(
                    record.hazy_path, "unreadable image", "left out of the evaluation"
                )
        if not readable:
            continue
        results = detector.detect([image for _, image in readable])
        for (record, _), result in zip(readable, results, strict=True):
            found[record.hazy_path.stem] = result.detections
    return found


def _create_detector(args: argparse.Namespace) -> Detector:
    from togethernet_ros.inference import create_detector

    return create_detector(
        args.weights,
        backend=args.backend,
        device=args.device,
        precision=args.precision,
        input_size=args.input_size,
        conf_threshold=args.conf,
        nms_threshold=args.nms,
        color_order="rgb",
        allow_untrained=args.allow_untrained,
        max_batch_size=args.batch_size,  # one --batch-size chunk is one forward pass
        # No cap: mAP is computed over every detection, as get_map.py does (the node's default
        # cap of 300 would drop low-score boxes and change the AP of a crowded image).
        max_detections=None,
    )


def _dataset_name(args: argparse.Namespace) -> str:
    if args.voc_root is not None:
        return f"{args.voc_root} (image set {args.image_set!r})"
    return str(args.yolo_images)


def format_table(metrics: dict, class_names: tuple[str, ...]) -> str:
    """Per-class AP table plus mAP (and COCO numbers when present)."""
    voc = metrics["voc"]
    lines = [f"{'class':<16}{'AP@' + str(voc['iou_threshold']):>10}{'#gt':>8}"]
    for name in class_names:
        ap = voc["ap"][name]
        lines.append(f"{name:<16}{'-' if ap is None else f'{ap:.4f}':>10}{voc['num_gt'][name]:>8}")
    lines.append(f"{'mAP':<16}{voc['mAP']:>10.4f}")
    if "coco" in metrics:
        coco = metrics["coco"]
        lines.append(f"COCO  AP {coco['AP']:.4f}  AP50 {coco['AP50']:.4f}  AP75 {coco['AP75']:.4f}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Score detections against the dataset and write the report.

    Bad input (a malformed detections file, bad class list, strict-mode data error, nothing to
    evaluate) exits with one line naming it.
    """
    try:
        return _evaluate(args)
    except DataError as error:
        raise SystemExit(f"eval: {error}") from error


def _evaluate(args: argparse.Namespace) -> int:
    if (args.weights is None) == (args.detections is None):
        raise SystemExit("eval: give exactly one of --weights and --detections")
    try:
        # The outputs are written after the whole evaluation: a bad path is refused now.
        check_output_folder(args.out_dir, "--out-dir")
        if args.save_detections is not None:
            check_output_file(args.save_detections, "--save-detections")
    except ValueError as error:
        raise SystemExit(f"eval: {error}") from None
    try:
        class_names = parse_class_names(args.classes)
    except ValueError as error:
        raise SystemExit(f"eval: --classes: {error}") from error
    detector = None
    detections = None
    left_out_by_file: tuple[str, ...] = ()
    if args.detections is not None:
        try:
            detections, file_classes, left_out_by_file = load_detections(args.detections)
        except ValueError as error:
            raise SystemExit(f"eval: {error}") from error
        if args.classes is None:
            class_names = file_classes
        elif file_classes != class_names:
            raise SystemExit(
                f"eval: {args.detections} has classes {file_classes}, not {class_names}"
            )
    else:
        check_dataset_folders(args)
        detector = open_detector(args)
        if args.classes is None:
            # The model's own classes, as --detections takes the file's: a model trained on
            # other classes would otherwise read the dataset with the default VOC names.
            class_names = tuple(detector.class_names)
    try:
        return _score(args, class_names, detector, detections, left_out_by_file)
    finally:
        if detector is not None:
            detector.close()


def _score(
    args: argparse.Namespace,
    class_names: tuple[str, ...],
    detector: Detector | None,
    detections: dict | None,
    left_out_by_file: Sequence[str] = (),
) -> int:
    """Read the dataset, detect (with ``detector``) or take ``detections``, and report.

    ``left_out_by_file``: images the run that saved ``detections`` could not read; they are
    left out here too, with their ground truth, so the file scores as that run did.
    """
    dataset = dataset_from_args(args, class_names)
    truth = scored_ground_truth(dataset)
    dataset.issues.log_summary()
    if not truth:
        # Scores over no images would read as a real (zero or undefined) result.
        raise SystemExit(
            f"eval: no images to evaluate in {_dataset_name(args)}"
            + (
                " (every sample was skipped; see the data check above)"
                if dataset.issues.issues
                else ""
            )
        )
    left_out = sorted(set(left_out_by_file) & set(truth))
    if args.weights is not None:
        detections = detect_dataset(args, dataset, detector)
        left_out = sorted(set(truth) - set(detections))
        if left_out:
            dataset.issues.log_summary()
        if args.save_detections:
            save_detections(args.save_detections, detections, class_names, left_out)
    elif left_out:
        print(f"{len(left_out)} images left out, as by the run that saved {args.detections}")
    unread = set(left_out)
    truth = {stem: gt for stem, gt in truth.items() if stem not in unread}
    if not truth:
        raise SystemExit("eval: no readable images to evaluate (all were left out)")
    missing = sorted(set(detections) - set(truth))
    if missing:
        raise SystemExit(
            f"eval: detections for {len(missing)} images not in the dataset: {missing[:5]}"
        )
    voc = evaluate_voc(
        detections,
        truth,
        class_names,
        args.iou,
        return_curves=True,
        # Truncating only pays against whole-pixel ground truth: against YOLO labels'
        # sub-pixel boxes it would shift every detection up-left by up to a pixel.
        whole_pixel_boxes=truncates_detection_boxes(dataset) and not args.exact_boxes,
    )
    curves = voc.pop("curves")
    metrics = {"voc": voc, "num_images": len(truth), "images_left_out": left_out}
    if not args.no_coco:
        metrics["coco"] = evaluate_coco(detections, truth, class_names)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if not args.no_plots:
        metrics["pr_curves"] = [
            path.name for path in plot_pr_curves(curves, args.out_dir, args.iou)
        ]
    write_text_atomically(args.out_dir / "metrics.json", json.dumps(_json_safe(metrics), indent=2))
    print(format_table(metrics, class_names))
    if not any(voc["num_gt"].values()):
        print(
            f"note: the {len(truth)} images hold no (non-difficult) ground-truth objects of these "
            "classes, so AP is undefined (null in metrics.json)"
        )
    if left_out:
        print(f"{len(left_out)} unreadable images left out of the evaluation: {left_out[:5]}")
    print(f"wrote {args.out_dir / 'metrics.json'}")
    return 0


def _json_safe(value: object) -> object:
    # NaN is not valid JSON; an undefined metric becomes null.
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if isinstance(value, float | np.floating) and math.isnan(value):
        return None
    return value
