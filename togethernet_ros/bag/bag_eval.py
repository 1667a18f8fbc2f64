"""`bag eval`: accuracy (VOC AP) and temporal stability of the detections stored in a bag.

Detections are the ``<ns>/detections`` (smoothed) and ``<ns>/detections_raw`` topics written
by `bag run` or recorded from the node. Ground truth, when given, is a Detection2DArray topic
(``<ns>/<name>``, matched to camera ``<ns>`` by header stamp) or VOC XML files named by stamp
(nanoseconds) or by frame index. Without ground truth only the label-free consistency figures
are computed.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from togethernet_ros.bag import bag_problems as problem_kinds
from togethernet_ros.bag.bag_problems import BagError
from togethernet_ros.bag.bag_reader import BagReader
from togethernet_ros.bag.detection_messages import DecodedDetections, message_to_detections
from togethernet_ros.bag.frame_consistency import frame_consistency
from togethernet_ros.bag.vision_msgs_definitions import DETECTION2D_ARRAY, LABEL_INFO
from togethernet_ros.evaluation.records import ImageGroundTruth
from togethernet_ros.evaluation.stability import evaluate_stability
from togethernet_ros.evaluation.voc_map import evaluate_voc


@dataclass
class CameraDetections:
    """Detections of one camera namespace keyed by header stamp (ns)."""

    smoothed: dict[int, DecodedDetections] = field(default_factory=dict)
    raw: dict[int, DecodedDetections] = field(default_factory=dict)


@dataclass
class BagDetections:
    """All detection topics of a bag plus class names (from label_info when present)."""

    cameras: dict[str, CameraDetections]
    class_names: tuple[str, ...]
    ground_truth: dict[str, dict[int, DecodedDetections]]
    problems: list[dict] = field(default_factory=list)


def _namespace(topic: str) -> str:
    return topic.rsplit("/", 1)[0]


def load_bag_detections(
    path: str | Path, class_names: tuple[str, ...] | None, gt_topics: list[str] | None = None
) -> BagDetections:
    """Read detection, label_info and ground-truth topics from a bag.

    A recording that was not closed cleanly (no metadata.yaml, torn mcap) is read as far as it
    goes, like `bag run` does; what was lost is listed in ``problems``.
    """
    gt_topics = list(gt_topics or [])
    path = Path(path)
    if not path.exists():
        raise BagError(f"bag {path} does not exist")
    reader = BagReader(path, require_images=False)
    try:
        reader.open()
    except BagError as error:
        raise BagError(f"{path} is not a readable rosbag2 bag: {error}") from None
    with contextlib.closing(reader):
        names, raw_messages = _read_detection_messages(reader, path, class_names, gt_topics)
    if names is None:
        from togethernet_ros.model.config import DEFAULT_CLASS_NAMES

        names = tuple(DEFAULT_CLASS_NAMES)
    cameras: dict[str, CameraDetections] = {}
    ground_truth: dict[str, dict[int, DecodedDetections]] = {}
    for topic, message in raw_messages:
        decoded = message_to_detections(message, names)
        if topic in gt_topics:
            ground_truth.setdefault(_namespace(topic), {})[decoded.stamp_ns] = decoded
            continue
        camera = cameras.setdefault(_namespace(topic), CameraDetections())
        target = camera.raw if topic.endswith("/detections_raw") else camera.smoothed
        target[decoded.stamp_ns] = decoded
    if not cameras:
        raise BagError(f"bag {path} has no <ns>/detections or <ns>/detections_raw messages")
    for topic in gt_topics:
        if _namespace(topic) not in cameras:
            # Ground truth is matched to the camera of its namespace; any other is never used.
            raise BagError(
                f"ground-truth topic {topic} is in namespace {_namespace(topic) or '/'}, which "
                f"has no detections; name it <ns>/<name> for a camera <ns> of {sorted(cameras)}"
            )
    return BagDetections(cameras, names, ground_truth, reader.problems.to_dicts())


def _read_detection_messages(
    reader: BagReader, path: Path, class_names: tuple[str, ...] | None, gt_topics: list[str]
) -> tuple[tuple[str, ...] | None, list[tuple[str, Any]]]:
    """(class names from label_info or `class_names`, [(topic, Detection2DArray)])."""
    typestore = reader.typestore
    topics = {topic: info.msgtype for topic, info in reader.topics.items()}
    for topic in gt_topics:
        if topics.get(topic) != DETECTION2D_ARRAY:
            found = topics.get(topic, "missing")
            raise BagError(
                f"ground-truth topic {topic} is {found} in {path}; it must be a {DETECTION2D_ARRAY}"
            )
    wanted = [
        topic
        for topic, msgtype in topics.items()
        if msgtype in (DETECTION2D_ARRAY, LABEL_INFO)
        and (
            topic.endswith(("/detections", "/detections_raw", "/label_info")) or topic in gt_topics
        )
    ]
    if not any(topics[topic] == DETECTION2D_ARRAY for topic in wanted):
        problems = "; ".join(reader.problems.lines())
        raise BagError(
            f"bag {path} has no <ns>/detections or <ns>/detections_raw topics (record the "
            "node's outputs, or make them with `togethernet bag run`)"
            + (f" ({problems})" if problems else "")
        )
    names = class_names
    raw_messages = []
    for record in reader.records(wanted):
        msgtype = record.topic.msgtype
        try:
            message = typestore.deserialize_cdr(record.raw, msgtype)
        except Exception as error:
            # One damaged message must not cost the evaluation of the rest.
            reader.problems.add(
                problem_kinds.DECODE_ERROR, record.topic.topic, f"message skipped: {error}"
            )
            continue
        if msgtype == LABEL_INFO:
            if names is None:
                ordered = sorted(message.class_map, key=lambda c: c.class_id)
                names = tuple(c.class_name for c in ordered)
            continue
        raw_messages.append((record.topic.topic, message))
    return names, raw_messages


def load_voc_ground_truth(
    directory: str | Path, key: str, stamps: list[int], class_names: tuple[str, ...]
) -> tuple[dict[int, DecodedDetections], list[str]]:
    """VOC XML ground truth keyed by stamp; ``key`` 'stamp' (file stem = ns) or 'index'."""
    from togethernet_ros.training.data_issues import DataIssues
    from togethernet_ros.training.voc_xml import parse_voc_xml

    if key not in ("stamp", "index"):
        raise ValueError(f"VOC key must be 'stamp' or 'index', got {key!r}")
    directory = Path(directory)
    files = sorted(directory.glob("*.xml"))
    if not files:
        raise BagError(f"no VOC .xml files in {directory}")
    issues = DataIssues()
    ordered = sorted(stamps)
    truth: dict[int, DecodedDetections] = {}
    unmatched = []
    for file in files:
        if not file.stem.isdigit():
            unmatched.append(f"{file.name}: name is not a number")
            continue
        number = int(file.stem)
        if key == "index":
            if number >= len(ordered):
                unmatched.append(f"{file.name}: frame index beyond the {len(ordered)} frames")
                continue
            stamp = ordered[number]
        else:
            stamp = number
        annotation = parse_voc_xml(file, class_names, issues)
        if annotation is None:
            continue
        truth[stamp] = DecodedDetections(
            stamp_ns=stamp,
            frame_id="",
            boxes=annotation.boxes,
            scores=np.ones(len(annotation.labels), np.float32),
            class_ids=annotation.labels,
            track_ids=np.full(len(annotation.labels), -1, np.int64),
        )
    notes = unmatched + [issue.describe() for issue in issues.issues]
    return truth, notes


def unmatched_ground_truth(
    camera: CameraDetections, truth: dict[int, DecodedDetections]
) -> list[int]:
    """Ground-truth stamps without a detections message of the same header stamp."""
    seen = set(camera.smoothed) | set(camera.raw)
    return sorted(stamp for stamp in truth if stamp not in seen)


def _clean(value: object) -> object:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


def evaluate_camera(
    camera: CameraDetections,
    class_names: tuple[str, ...],
    truth: dict[int, DecodedDetections] | None,
    iou_threshold: float = 0.5,
) -> dict:
    """Metrics of one camera: consistency always, AP and stability with ground truth."""
    result: dict = {}
    for kind in ("raw", "smoothed"):
        frames = getattr(camera, kind)
        if not frames:
            continue
        ordered = [frames[s] for s in sorted(frames)]
        ids = [d.track_ids for d in ordered] if kind == "smoothed" else None
        entry: dict = {
            "frames": len(ordered),
            "consistency": frame_consistency([d.boxes for d in ordered], ids).to_dict(),
        }
        if truth:
            stamps = sorted(truth)
            empty = DecodedDetections(
                0,
                "",
                np.zeros((0, 4), np.float32),
                np.zeros(0, np.float32),
                np.zeros(0, np.int64),
                np.zeros(0, np.int64),
            )
            predictions = {str(s): frames.get(s, empty) for s in stamps}
            gt = {
                str(s): ImageGroundTruth(boxes=truth[s].boxes, class_ids=truth[s].class_ids)
                for s in stamps
            }
            voc = evaluate_voc(predictions, gt, class_names, iou_threshold)
            entry["voc"] = {"mAP": voc["mAP"], "ap": voc["ap"], "num_gt": voc["num_gt"]}
            entry["frames_without_detections_message"] = sum(1 for s in stamps if s not in frames)
            gt_ids = [truth[s].track_ids for s in stamps]
            have_gt_ids = all((ids_ >= 0).all() for ids_ in gt_ids)
            stability = evaluate_stability(
                [truth[s].boxes for s in stamps],
                [predictions[str(s)].boxes for s in stamps],
                gt_ids=gt_ids if have_gt_ids else None,
                pred_ids=[predictions[str(s)].track_ids for s in stamps]
                if kind == "smoothed"
                else None,
                iou_threshold=iou_threshold,
            )
            entry["stability"] = {
                "fragment_error": stability.fragment_error,
                "centre_error": stability.centre_error,
                "scale_ratio_error": stability.scale_ratio_error,
                "stability_error": stability.stability_error,
                "id_switches": stability.id_switches if have_gt_ids else None,
                "recall": stability.recall,
                "num_trajectories": stability.num_trajectories,
            }
        result[kind] = _clean(entry)
    return result


def format_eval_table(results: dict[str, dict]) -> str:
    """A short plain-text table of the headline numbers."""
    lines = [
        f"{'camera':<16}{'kind':<10}{'frames':>7}{'mAP':>8}{'stab.err':>10}"
        f"{'flicker':>9}{'c.jitter':>10}{'s.jitter':>10}"
    ]

    def number(value: float | None, width: int, digits: int = 4) -> str:
        return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"

    for camera, kinds in results.items():
        for kind, entry in kinds.items():
            consistency = entry["consistency"]
            voc = entry.get("voc", {})
            stability = entry.get("stability", {})
            lines.append(
                f"{camera:<16}{kind:<10}{entry['frames']:>7}{number(voc.get('mAP'), 8)}"
                f"{number(stability.get('stability_error'), 10)}"
                f"{number(consistency['flicker_rate'], 9, 3)}{number(consistency['centre_jitter'], 10)}"
                f"{number(consistency['scale_jitter'], 10)}"
            )
    return "\n".join(lines)
