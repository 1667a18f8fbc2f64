"""Pseudo-labels: the teacher's detections on clear frames, written as a self-contained dataset.

Layout of a prepared dataset (what ``--export-dataset`` writes and a GPU machine trains from
without the teacher)::

    DIR/labels.json            format, class names, teacher, settings, sources, one entry per frame
    DIR/images/<source>_<index>.jpg   the clear frames (JPEG quality 95)

A frame of a rosbag2 camera topic is ``<bag>__<topic>_<index>_<stamp ns>.jpg`` (index = the
message's position on its topic) and its entry names the bag, topic, header stamp and receive
time under ``origin``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from togethernet_ros.distill.coco_classes import CocoClassMapping
from togethernet_ros.distill.frame_sources import SourceFrame
from togethernet_ros.evaluation.atomic_write import write_text_atomically
from togethernet_ros.tracking.box_geometry import pairwise_iou
from togethernet_ros.vision.detections import Detections
from togethernet_ros.vision.image_file import read_image_file

LABELS_FORMAT = "togethernet_ros.distill.pseudo_labels/1"
LABELS_FILE = "labels.json"


class TeacherDetector(Protocol):
    """What pseudo-labelling needs of a teacher (e.g. ``NanoDetTeacher``)."""

    def detect(self, images_bgr: Sequence[np.ndarray], /) -> list[Detections]:
        """Detections (source pixels, COCO class ids) for each BGR image."""


@dataclass(frozen=True)
class PseudoLabelSettings:
    """Which teacher detections become labels."""

    conf_threshold: float = 0.4
    class_thresholds: Mapping[str, float] = field(default_factory=dict)  # model class → threshold
    min_box_size: float = 4.0  # pixels; tinier boxes are noise at TogetherNet's input sizes
    # Boxes of different classes overlapping this much are one object named twice (the teacher's
    # NMS is per class): only the higher-scoring one stays. 0 keeps both.
    duplicate_iou: float = 0.8

    def threshold_of(self, class_name: str) -> float:
        """The score a detection of ``class_name`` needs to become a label."""
        return float(self.class_thresholds.get(class_name, self.conf_threshold))


@dataclass
class LabelledFrame:
    """One clear frame's pseudo-labels (model class ids, xyxy source pixels)."""

    image: str  # path relative to the dataset directory
    source: str
    frame_index: int
    heldout: bool
    boxes: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    origin: dict | None = None  # bag, topic, stamp_ns, log_time_ns of a frame from a bag

    def to_json(self) -> dict:
        """JSON-ready dict."""
        entry = {
            "image": self.image,
            "source": self.source,
            "frame_index": self.frame_index,
            "split": "heldout" if self.heldout else "train",
            "boxes": [[round(float(v), 2) for v in box] for box in self.boxes],
            "labels": [int(v) for v in self.labels],
            "scores": [round(float(v), 4) for v in self.scores],
        }
        if self.origin is not None:
            entry["origin"] = dict(self.origin)
        return entry

    @staticmethod
    def from_json(entry: dict) -> LabelledFrame:
        """Inverse of :meth:`to_json` (ValueError on inconsistent lengths)."""
        boxes = np.asarray(entry["boxes"], np.float32).reshape(-1, 4)
        labels = np.asarray(entry["labels"], np.int64).reshape(-1)
        scores = np.asarray(entry.get("scores", [1.0] * len(labels)), np.float32).reshape(-1)
        if not len(boxes) == len(labels) == len(scores):
            raise ValueError(f"{entry.get('image')}: boxes, labels and scores differ in length")
        split = entry.get("split", "train")
        if split not in ("train", "heldout"):
            raise ValueError(f"{entry.get('image')}: split must be train or heldout, got {split!r}")
        return LabelledFrame(
            entry["image"],
            entry["source"],
            int(entry["frame_index"]),
            split == "heldout",
            boxes,
            labels,
            scores,
            entry.get("origin"),
        )


@dataclass
class PseudoLabelSet:
    """A prepared dataset: its directory, class names, frames and provenance."""

    root: Path
    class_names: tuple[str, ...]
    frames: list[LabelledFrame]
    info: dict = field(default_factory=dict)

    def split(self, heldout: bool) -> list[LabelledFrame]:
        """Training (False) or held-out (True) frames."""
        return [frame for frame in self.frames if frame.heldout == heldout]

    def read_clear_bgr(self, frame: LabelledFrame) -> np.ndarray:
        """The clear frame as BGR uint8 (ValueError naming the file when unreadable)."""
        path = self.root / frame.image
        image = read_image_file(path)
        if image is None:
            raise ValueError(f"cannot read pseudo-labelled frame {path}")
        return image

    def save(self) -> Path:
        """Write labels.json (atomically) and return its path."""
        payload = {
            "format": LABELS_FORMAT,
            "class_names": list(self.class_names),
            **self.info,
            "frames": [frame.to_json() for frame in self.frames],
        }
        path = self.root / LABELS_FILE
        return write_text_atomically(path, json.dumps(payload, indent=1))

    def label_counts(self) -> dict[str, int]:
        """Number of pseudo boxes per class over all frames."""
        counts = dict.fromkeys(self.class_names, 0)
        for frame in self.frames:
            for label in frame.labels:
                counts[self.class_names[int(label)]] += 1
        return counts


def filter_pseudo_labels(
    detections: Detections, class_names: tuple[str, ...], settings: PseudoLabelSettings
) -> Detections:
    """Keep detections (model class ids) above their class threshold and the minimum size,
    and one label per object: of boxes of different classes overlapping by IoU ≥
    ``settings.duplicate_iou`` only the higher-scoring one.

    On vtest.avi every "bus" box of the teacher (a parked van, scores 0.40–0.43) sits on its own
    "car" box (0.51–0.59, IoU 0.90–0.95): training on both teaches contradictory targets.
    """
    if len(detections) == 0:
        return detections
    thresholds = np.array([settings.threshold_of(name) for name in class_names], np.float32)
    sizes = detections.boxes[:, 2:] - detections.boxes[:, :2]
    keep = (detections.scores >= thresholds[detections.class_ids]) & (
        sizes.min(axis=1) >= settings.min_box_size
    )
    detections = detections.select(keep)
    if settings.duplicate_iou > 0 and len(detections) > 1:
        detections = detections.select(_cross_class_survivors(detections, settings.duplicate_iou))
    return detections


def _cross_class_survivors(detections: Detections, iou_threshold: float) -> np.ndarray:
    """Mask of boxes not covered (IoU ≥ threshold) by a higher-scoring box of another class."""
    iou = pairwise_iou(detections.boxes, detections.boxes)
    order = np.argsort(-detections.scores, kind="stable")
    survivors = np.ones(len(detections), bool)
    for rank, index in enumerate(order):
        stronger = order[:rank][survivors[order[:rank]]]
        rivals = stronger[detections.class_ids[stronger] != detections.class_ids[index]]
        if len(rivals) and iou[index, rivals].max() >= iou_threshold:
            survivors[index] = False
    return survivors


def label_frames(
    frames: Iterable[SourceFrame],
    teacher: TeacherDetector,
    mapping: CocoClassMapping,
    settings: PseudoLabelSettings,
    root: str | Path,
    info: dict | None = None,
    batch_size: int = 4,
    progress: Callable[[int], object] | None = None,
    save: bool = True,
) -> PseudoLabelSet:
    """Run the teacher on clear frames, keep confident mapped boxes, write images + labels.json.

    ``teacher`` needs ``detect(list_of_bgr) -> list[Detections]`` with COCO class ids; its
    ``conf_threshold`` should be at or below every class threshold. ``labels.json`` is written
    last (by the caller with ``save=False``, after what else it adds): a folder without it is
    an unfinished export.
    """
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    labelled: list[LabelledFrame] = []
    pending: list[SourceFrame] = []

    def flush() -> None:
        if not labelled:
            # Relabelling an earlier export writes new frames over its images: until the new
            # labels.json is written the folder is no dataset, rather than one whose labels
            # describe other frames. (Sources that cannot be read fail before this point.)
            (root / LABELS_FILE).unlink(missing_ok=True)
        for frame, found in zip(pending, teacher.detect([f.image for f in pending]), strict=True):
            kept = filter_pseudo_labels(mapping.apply(found), mapping.target_names, settings)
            relative = f"images/{frame.file_stem()}.jpg"
            if not cv2.imwrite(str(root / relative), frame.image, [cv2.IMWRITE_JPEG_QUALITY, 95]):
                # Listed anyway, it would fail training much later, inside a loader worker.
                raise OSError(
                    f"cannot write pseudo-labelled frame {root / relative} (disk full, no "
                    "permission, or a frame wider than JPEG's 65500 px)"
                )
            labelled.append(
                LabelledFrame(
                    relative,
                    frame.source,
                    frame.index,
                    frame.heldout,
                    kept.boxes,
                    kept.class_ids,
                    kept.scores,
                    frame.origin.to_json() if frame.origin is not None else None,
                )
            )
            if progress is not None:
                progress(len(labelled))
        pending.clear()

    for frame in frames:
        pending.append(frame)
        if len(pending) == batch_size:
            flush()
    if pending:
        flush()
    label_set = PseudoLabelSet(root, mapping.target_names, labelled, dict(info or {}))
    if save:
        label_set.save()
    return label_set


def load_pseudo_labels(root: str | Path) -> PseudoLabelSet:
    """Read a prepared dataset directory (clear errors for a missing or foreign labels.json)."""
    root = Path(root)
    path = root / LABELS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{root} is not a prepared distillation dataset: no {LABELS_FILE}")
    try:
        payload = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
    if payload.get("format") != LABELS_FORMAT:
        raise ValueError(f"{path}: format {payload.get('format')!r}, expected {LABELS_FORMAT!r}")
    class_names = tuple(payload["class_names"])
    frames = [LabelledFrame.from_json(entry) for entry in payload["frames"]]
    for frame in frames:
        if len(frame.labels) and (frame.labels.min() < 0 or frame.labels.max() >= len(class_names)):
            raise ValueError(
                f"{path}: {frame.image} has a label outside {len(class_names)} classes"
            )
    info = {k: v for k, v in payload.items() if k not in ("format", "class_names", "frames")}
    return PseudoLabelSet(root, class_names, frames, info)
