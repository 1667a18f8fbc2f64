"""`bag eval`: accuracy (VOC AP) and temporal stability of the detections stored in a bag.

Detections are the ``<ns>/detections`` (smoothed) and ``<ns>/detections_raw`` topics written
by `bag run` or recorded from the node. Ground truth, when given, is a Detection2DArray topic
(``<ns>/<name>``, matched to camera ``<ns>`` by header stamp) or VOC XML files named by stamp
(nanoseconds) or by frame index (the camera's n-th distinct stamp among its frames in the bag).
Stamps must be equal unless a tolerance is given (:func:`align_truth_stamps`: each ground-truth
stamp without an equal frame stamp goes to the nearest frame within it, one per frame).
Without ground truth only the label-free consistency figures are computed.

Every message is a frame, also when its stamp repeats (a looping recording, a camera without a
clock): frames are keyed by (stamp, occurrence), the k-th message of a topic with that stamp
being occurrence k. Ground truth given once per stamp (VOC files, a topic that never repeats a
stamp) labels every occurrence; a ground-truth topic that repeats stamps is paired in order.
Only frames with ground truth are scored: detections of unlabelled frames are not counted
(labels are often sparse), while a labelled frame without a detections message counts as
missed. VOC ``difficult`` objects are neither required nor penalised, and boxes are truncated to
whole pixels (get_map.py), as in `togethernet eval`.
"""

from __future__ import annotations

import contextlib
import math
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from togethernet_ros.bag import bag_problems as problem_kinds
from togethernet_ros.bag.bag_problems import BagError
from togethernet_ros.bag.bag_reader import BagReader
from togethernet_ros.bag.detection_cdr import header_stamp_from_cdr
from togethernet_ros.bag.detection_messages import DecodedDetections, message_to_detections
from togethernet_ros.bag.frame_consistency import frame_consistency
from togethernet_ros.bag.image_codec import IMAGE_TYPES
from togethernet_ros.bag.output_topics import camera_namespace
from togethernet_ros.bag.vision_msgs_definitions import DETECTION2D_ARRAY, LABEL_INFO
from togethernet_ros.evaluation.records import ImageGroundTruth
from togethernet_ros.evaluation.stability import evaluate_stability
from togethernet_ros.evaluation.voc_map import evaluate_voc

# (header stamp ns, occurrence): the k-th message of a topic with that stamp is occurrence k.
FrameKey = tuple[int, int]


@dataclass
class CameraDetections:
    """Detections of one camera namespace keyed by (header stamp ns, occurrence)."""

    smoothed: dict[FrameKey, DecodedDetections] = field(default_factory=dict)
    raw: dict[FrameKey, DecodedDetections] = field(default_factory=dict)

    @property
    def keys(self) -> set[FrameKey]:
        """Every frame with a detections message on either topic."""
        return set(self.smoothed) | set(self.raw)


@dataclass
class BagDetections:
    """All detection topics of a bag plus class names (from label_info when present).

    ``frame_stamps``: per camera namespace, how many of its camera frames (image topics
    ``<ns>/<name>``) in the bag carry each header stamp; absent for a camera without them.
    ``unknown_classes``: per topic, class labels not among ``class_names`` (those ground-truth
    objects are left out; detections of them cannot be scored).
    """

    cameras: dict[str, CameraDetections]
    class_names: tuple[str, ...]
    ground_truth: dict[str, dict[FrameKey, DecodedDetections]]
    problems: list[dict] = field(default_factory=list)
    frame_stamps: dict[str, dict[int, int]] = field(default_factory=dict)
    unknown_classes: dict[str, dict[str, int]] = field(default_factory=dict)


def _kind(topic: str) -> str:
    """The last name of a topic: ``/cam/detections_raw`` (or relative ``detections_raw``)."""
    return topic.rsplit("/", 1)[-1]


def _unknown_labels(message: Any, decoded: DecodedDetections, count: int) -> list[str]:
    """Labels of the detections whose class is not one of the ``count`` class names."""
    unknown = (decoded.class_ids < 0) | (decoded.class_ids >= count)
    if not unknown.any():
        return []
    labels = []
    for detection, flag in zip(message.detections, unknown.tolist(), strict=True):
        if flag:
            results = detection.results
            best = max(results, key=lambda r: r.hypothesis.score).hypothesis if results else None
            labels.append(best.class_id if best is not None else "")
    return labels


def load_bag_detections(
    path: str | Path,
    class_names: tuple[str, ...] | None,
    gt_topics: list[str] | None = None,
    frame_stamps: bool = False,
) -> BagDetections:
    """Read detection, label_info and ground-truth topics from a bag.

    With ``frame_stamps`` the cameras' image topics are read too (headers only): ground truth
    can then name frames that have no detections message. A recording that was not closed
    cleanly (no metadata.yaml, torn mcap) is read as far as it goes, like `bag run` does; what
    was lost is listed in ``problems``.
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
    collector = _FrameCollector(gt_topics)
    with contextlib.closing(reader):
        names, image_stamps = _read_detection_messages(
            reader, path, class_names, gt_topics, frame_stamps, collector
        )
    cameras, ground_truth = collector.cameras, collector.ground_truth
    unknown_classes = collector.unknown_classes
    if not cameras:
        raise BagError(f"bag {path} has no <ns>/detections or <ns>/detections_raw messages")
    for topic in gt_topics:
        namespace = camera_namespace(topic)
        if namespace not in cameras:
            # Ground truth is matched to the camera of its namespace; any other is never used.
            raise BagError(
                f"ground-truth topic {topic} is in namespace {namespace or '/'}, which has no "
                f"detections; name it <ns>/<name> for a camera <ns> of {sorted(cameras)}"
            )
    stamps_by_camera: dict[str, dict[int, int]] = {}
    for topic, counts in image_stamps.items():
        if camera_namespace(topic) not in cameras:
            continue
        # The same camera raw and compressed: frames, not messages, are counted.
        merged = stamps_by_camera.setdefault(camera_namespace(topic), {})
        for stamp, count in counts.items():
            merged[stamp] = max(merged.get(stamp, 0), count)
    return BagDetections(
        cameras,
        names,
        ground_truth,
        reader.problems.to_dicts(),
        stamps_by_camera,
        unknown_classes,
    )


def _read_detection_messages(
    reader: BagReader,
    path: Path,
    class_names: tuple[str, ...] | None,
    gt_topics: list[str],
    frame_stamps: bool,
    collector: _FrameCollector,
) -> tuple[tuple[str, ...], dict[str, dict[int, int]]]:
    """Feed every detections message to ``collector``; return (class names: `class_names`, else
    label_info's, else the default ones; camera {image topic: {header stamp: messages}} (read
    only with ``frame_stamps``)).

    A message is decoded as soon as the class names are known: holding every deserialized
    message until the end of the bag took ~25 KB per frame (GBs for an hour of cameras). Only
    messages logged before the first label_info wait, as CDR bytes.
    """
    topics = {topic: info.msgtype for topic, info in reader.topics.items()}
    # A camera's frames: its image topics, not the node's debug image in the same namespace.
    image_topics = (
        [
            topic
            for topic, msgtype in topics.items()
            if msgtype in IMAGE_TYPES and not topic.endswith("/debug_image")
        ]
        if frame_stamps
        else []
    )
    image_stamps: dict[str, dict[int, int]] = {}
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
        and (_kind(topic) in ("detections", "detections_raw", "label_info") or topic in gt_topics)
    ]
    if not any(topics[topic] == DETECTION2D_ARRAY for topic in wanted):
        problems = "; ".join(reader.problems.lines())
        raise BagError(
            f"bag {path} has no <ns>/detections or <ns>/detections_raw topics (record the "
            "node's outputs, or make them with `togethernet bag run`)"
            + (f" ({problems})" if problems else "")
        )
    names = class_names
    waiting: list[tuple[str, str, bytes]] = []  # (topic, msgtype, CDR) until names are known
    for record in reader.records(wanted + image_topics):
        msgtype = record.topic.msgtype
        if msgtype in IMAGE_TYPES:
            with contextlib.suppress(struct.error):
                stamp = header_stamp_from_cdr(record.raw)
                counts = image_stamps.setdefault(record.topic.topic, {})
                counts[stamp] = counts.get(stamp, 0) + 1
            continue
        if msgtype != LABEL_INFO and names is None:
            waiting.append((record.topic.topic, msgtype, bytes(record.raw)))
            continue
        message = _deserialize(reader, record.topic.topic, msgtype, record.raw)
        if message is None:
            continue
        if msgtype == LABEL_INFO:
            if names is None:
                ordered = sorted(message.class_map, key=lambda c: c.class_id)
                names = tuple(c.class_name for c in ordered)
                _decode_waiting(reader, waiting, names, collector)
            continue
        collector.add(record.topic.topic, message, names)
    if names is None:
        from togethernet_ros.model.config import DEFAULT_CLASS_NAMES

        names = tuple(DEFAULT_CLASS_NAMES)
        _decode_waiting(reader, waiting, names, collector)
    return names, image_stamps


def _deserialize(reader: BagReader, topic: str, msgtype: str, raw: bytes | memoryview) -> Any:
    try:
        return reader.typestore.deserialize_cdr(raw, msgtype)
    except Exception as error:
        # One damaged message must not cost the evaluation of the rest.
        reader.problems.add(problem_kinds.DECODE_ERROR, topic, f"message skipped: {error}")
        return None


def _decode_waiting(
    reader: BagReader,
    waiting: list[tuple[str, str, bytes]],
    names: tuple[str, ...],
    collector: _FrameCollector,
) -> None:
    for topic, msgtype, raw in waiting:
        message = _deserialize(reader, topic, msgtype, raw)
        if message is not None:
            collector.add(topic, message, names)
    waiting.clear()


class _FrameCollector:
    """Decoded detections and ground truth per camera, keyed by (stamp, occurrence)."""

    def __init__(self, gt_topics: list[str]) -> None:
        self.gt_topics = set(gt_topics)
        self.cameras: dict[str, CameraDetections] = {}
        self.ground_truth: dict[str, dict[FrameKey, DecodedDetections]] = {}
        self.unknown_classes: dict[str, dict[str, int]] = {}
        self._occurrences: dict[tuple[str, int], int] = {}

    def add(self, topic: str, message: Any, names: tuple[str, ...]) -> None:
        """One Detection2DArray of ``topic`` (each topic's messages in log order)."""
        decoded = message_to_detections(message, names)
        for label in _unknown_labels(message, decoded, len(names)):
            counts = self.unknown_classes.setdefault(topic, {})
            counts[label] = counts.get(label, 0) + 1
        occurrence = self._occurrences.get((topic, decoded.stamp_ns), 0)
        self._occurrences[(topic, decoded.stamp_ns)] = occurrence + 1
        key = (decoded.stamp_ns, occurrence)
        if topic in self.gt_topics:
            self.ground_truth.setdefault(camera_namespace(topic), {})[key] = decoded
            return
        camera = self.cameras.setdefault(camera_namespace(topic), CameraDetections())
        target = camera.raw if _kind(topic) == "detections_raw" else camera.smoothed
        target[key] = decoded


def load_voc_ground_truth(
    directory: str | Path, key: str, stamps: list[int], class_names: tuple[str, ...]
) -> tuple[dict[FrameKey, DecodedDetections], list[str]]:
    """VOC XML ground truth keyed by (stamp, 0): it labels every frame of that stamp.

    ``key`` 'stamp' (file stem = ns) or 'index' (file stem = position in ``stamps``, the
    camera's distinct frame stamps). Boxes are read as get_map.py and `togethernet eval` read
    them (evaluation/voc_ground_truth.py): as written, not clipped to the image, and a
    zero-width box is a one-pixel object, not dropped; such boxes are noted.
    """
    from togethernet_ros.evaluation.voc_ground_truth import EvalDataIssues, read_get_map_boxes
    from togethernet_ros.training.voc_xml import parse_voc_xml

    if key not in ("stamp", "index"):
        raise ValueError(f"VOC key must be 'stamp' or 'index', got {key!r}")
    directory = Path(directory)
    files = sorted(directory.glob("*.xml"))
    if not files:
        raise BagError(f"no VOC .xml files in {directory}")
    # The training reader checks the file and its objects (class, <bndbox>, <difficult>); its
    # verdicts on box geometry (clipped, dropped) are not eval's and are left out.
    issues = EvalDataIssues()
    ordered = sorted(set(stamps))
    truth: dict[FrameKey, DecodedDetections] = {}
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
        boxes, labels, difficult = read_get_map_boxes(
            file, class_names, annotation.width, annotation.height, issues
        )
        truth[(stamp, 0)] = DecodedDetections(
            stamp_ns=stamp,
            frame_id="",
            boxes=boxes,  # float64, as written in the XML
            scores=np.ones(len(labels), np.float32),
            class_ids=labels,
            track_ids=np.full(len(labels), -1, np.int64),
            difficult=difficult,
        )
    notes = unmatched + [issue.describe() for issue in issues.issues]
    return truth, notes


@dataclass
class StampAlignment:
    """How a camera's ground-truth stamps were paired with its frame stamps.

    ``exact``/``within_tolerance``/``unmatched`` count distinct ground-truth stamps;
    ``max_offset_ns`` is the largest |ground truth − frame| among the tolerant pairs;
    ``unmatched_stamps`` the first stamps that found no frame and ``nearest_offset_ns`` the
    nearest frame's stamp minus each (one value throughout: a clock offset, not a tolerance).
    """

    tolerance_ns: int
    exact: int = 0
    within_tolerance: int = 0
    max_offset_ns: int = 0
    unmatched: int = 0
    unmatched_stamps: list[int] = field(default_factory=list)
    nearest_offset_ns: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON form, offsets in milliseconds."""
        return {
            "tolerance_ms": self.tolerance_ns / 1e6,
            "exact": self.exact,
            "within_tolerance": self.within_tolerance,
            "max_offset_ms": self.max_offset_ns / 1e6,
            "unmatched": self.unmatched,
            "unmatched_stamps": self.unmatched_stamps,
            "unmatched_nearest_frame_offset_ms": [v / 1e6 for v in self.nearest_offset_ns],
        }


# Unmatched stamps listed (with their nearest-frame offsets) in the report.
_LISTED_UNMATCHED = 20


def align_truth_stamps(
    camera: CameraDetections,
    truth: dict[FrameKey, DecodedDetections],
    frame_stamps: dict[int, int] | None,
    tolerance_ns: int,
) -> tuple[dict[FrameKey, DecodedDetections], StampAlignment]:
    """Move each ground-truth stamp with no frame of that exact stamp to the nearest frame stamp
    at most ``tolerance_ns`` away (labels re-stamped through float seconds, or rounded to µs).

    Frames are the camera's detections messages and, where given, its ``frame_stamps``. A
    frame takes at most one ground-truth stamp, the nearest (an exact one always wins); what
    finds none keeps its stamp and is scored as a missed frame, as before.
    """
    if tolerance_ns < 0:
        raise ValueError(f"stamp tolerance must be >= 0 ns, got {tolerance_ns}")
    frames = np.array(
        sorted({stamp for stamp, _ in camera.keys} | set(frame_stamps or {})), np.int64
    )
    labelled = sorted({stamp for stamp, _ in truth})
    report = StampAlignment(tolerance_ns)
    frame_set = set(frames.tolist())
    taken = {stamp for stamp in labelled if stamp in frame_set}
    report.exact = len(taken)
    candidates = []  # (distance, ground-truth stamp, frame stamp)
    for stamp in labelled:
        if stamp in frame_set or len(frames) == 0:
            continue
        low = int(np.searchsorted(frames, stamp - tolerance_ns, side="left"))
        high = int(np.searchsorted(frames, stamp + tolerance_ns, side="right"))
        candidates += [(abs(int(f) - stamp), stamp, int(f)) for f in frames[low:high]]
    moved: dict[int, int] = {}
    for distance, stamp, frame in sorted(candidates):
        if stamp in moved or frame in taken:
            continue
        moved[stamp] = frame
        taken.add(frame)
        report.max_offset_ns = max(report.max_offset_ns, distance)
    report.within_tolerance = len(moved)
    for stamp in labelled:
        if stamp in frame_set or stamp in moved:
            continue
        report.unmatched += 1
        if len(report.unmatched_stamps) < _LISTED_UNMATCHED:
            report.unmatched_stamps.append(stamp)
            if len(frames):
                at = int(np.searchsorted(frames, stamp))
                near = [int(frames[i]) for i in (at - 1, at) if 0 <= i < len(frames)]
                report.nearest_offset_ns.append(min((f - stamp for f in near), key=abs))
    aligned = {
        (moved.get(stamp, stamp), occurrence): labels
        for (stamp, occurrence), labels in truth.items()
    }
    return aligned, report


def truth_for_frames(
    camera: CameraDetections,
    truth: dict[FrameKey, DecodedDetections],
    frame_stamps: dict[int, int] | None = None,
) -> dict[FrameKey, DecodedDetections]:
    """Ground truth per frame key: a stamp labelled once labels every frame of that stamp.

    Those frames are the detections messages' and, where given, the camera's ``frame_stamps``
    ({stamp: frames}), so that a frame the node published nothing for is still labelled.
    """
    frames_of: dict[int, set[int]] = {}
    for stamp, occurrence in camera.keys:
        frames_of.setdefault(stamp, set()).add(occurrence)
    for stamp, count in (frame_stamps or {}).items():
        frames_of.setdefault(stamp, set()).update(range(count))
    labelled_of: dict[int, int] = {}
    for stamp, _ in truth:
        labelled_of[stamp] = labelled_of.get(stamp, 0) + 1
    paired: dict[FrameKey, DecodedDetections] = {}
    for (stamp, occurrence), labels in truth.items():
        if labelled_of[stamp] == 1:
            for other in frames_of.get(stamp, {occurrence}):
                paired[(stamp, other)] = labels
        else:
            paired[(stamp, occurrence)] = labels
    return paired


def unmatched_ground_truth(
    camera: CameraDetections,
    truth: dict[FrameKey, DecodedDetections],
    frame_stamps: dict[int, int] | None = None,
) -> list[FrameKey]:
    """Labelled frames without a detections message of the same header stamp."""
    seen = camera.keys
    paired = truth_for_frames(camera, truth, frame_stamps)
    return sorted(key for key in paired if key not in seen)


def repeated_stamp_frames(frames: dict[FrameKey, DecodedDetections]) -> int:
    """Frames whose header stamp an earlier frame of the same topic had."""
    return sum(1 for _, occurrence in frames if occurrence > 0)


def _in_order(keys: Iterable[FrameKey]) -> list[FrameKey]:
    # Pass by pass (a looping recording plays its stamps again), by stamp within a pass.
    return sorted(keys, key=lambda key: (key[1], key[0]))


def _has_area(boxes: np.ndarray) -> np.ndarray:
    """Which xyxy boxes have a positive width and height."""
    boxes = np.asarray(boxes).reshape(-1, 4)
    return (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])


def _clean(value: object) -> object:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


def evaluate_camera(
    camera: CameraDetections,
    class_names: tuple[str, ...],
    truth: dict[FrameKey, DecodedDetections] | None,
    iou_threshold: float = 0.5,
    frame_stamps: dict[int, int] | None = None,
    whole_pixel_boxes: bool = False,
) -> dict:
    """Metrics of one camera: consistency always, AP and stability with ground truth.

    ``frame_stamps``: the camera's frames in the bag ({stamp: count}; see
    :func:`truth_for_frames`). ``whole_pixel_boxes``: VOC AP as get_map.py scores boxes
    (see :func:`evaluate_voc`).
    """
    result: dict = {}
    paired = truth_for_frames(camera, truth, frame_stamps) if truth else {}
    for kind in ("raw", "smoothed"):
        frames = getattr(camera, kind)
        if not frames:
            continue
        ordered = [frames[key] for key in _in_order(frames)]
        # A node with tracking off publishes `detections` without track ids (-1): chained by
        # IoU as the raw ones, not lumped into one track -1, and no ID switches to count.
        tracked = kind == "smoothed" and _usable_ids([d.track_ids for d in ordered])
        ids = [d.track_ids for d in ordered] if tracked else None
        entry: dict = {
            "frames": len(ordered),
            "repeated_stamp_frames": repeated_stamp_frames(frames),
            "consistency": frame_consistency([d.boxes for d in ordered], ids).to_dict(),
        }
        if paired:
            stamps = _in_order(paired)
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
                str(s): ImageGroundTruth(
                    boxes=paired[s].boxes,
                    class_ids=paired[s].class_ids,
                    difficult=paired[s].difficult
                    if paired[s].difficult is not None
                    else np.zeros(0, bool),
                )
                for s in stamps
            }
            voc = evaluate_voc(
                predictions, gt, class_names, iou_threshold, whole_pixel_boxes=whole_pixel_boxes
            )
            entry["voc"] = {"mAP": voc["mAP"], "ap": voc["ap"], "num_gt": voc["num_gt"]}
            entry["frames_without_detections_message"] = sum(1 for s in stamps if s not in frames)
            entry["frames_without_ground_truth"] = sum(1 for s in frames if s not in paired)
            # Ground-truth ids name a trajectory within one pass of a looping recording: the
            # node's tracks restart when the stamp goes back, so each pass is its own trajectory.
            top = max((int(paired[s].track_ids.max(initial=-1)) for s in stamps), default=-1) + 1
            # Stability measures boxes against the objects' widths and heights: objects a VOC
            # file draws without area (xmin == xmax, scored by AP as one pixel) are left out,
            # and so are boxes without area in the recording (they overlap nothing anyway).
            kept = {s: ~gt[str(s)].difficult & _has_area(gt[str(s)].boxes) for s in stamps}
            found = {s: _has_area(predictions[str(s)].boxes) for s in stamps}
            gt_ids = [(paired[s].track_ids + s[1] * top)[kept[s]] for s in stamps]
            truth_ids = [paired[s].track_ids[kept[s]] for s in stamps]
            have_gt_ids = _usable_ids(truth_ids)
            if not have_gt_ids and all((ids >= 0).all() for ids in truth_ids):
                entry["ground_truth_ids_ignored"] = (
                    "ground-truth ids repeat within a frame (a class index or a constant, not "
                    "a track id): trajectories linked by IoU, no ID switches counted"
                )
            stability = evaluate_stability(
                [gt[str(s)].boxes[kept[s]] for s in stamps],
                [predictions[str(s)].boxes[found[s]] for s in stamps],
                gt_ids=gt_ids if have_gt_ids else None,
                pred_ids=(
                    [predictions[str(s)].track_ids[found[s]] for s in stamps] if tracked else None
                ),
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


def _usable_ids(ids_per_frame: list[np.ndarray]) -> bool:
    """Whether ids name tracks: every one set (>= 0) and none repeated within a frame."""
    return all((ids >= 0).all() and np.unique(ids).size == ids.size for ids in ids_per_frame)


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
