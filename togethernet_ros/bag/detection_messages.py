"""Detections <-> vision_msgs/Detection2DArray (rosbags dataclasses).

``ObjectHypothesis.class_id`` carries the class *name* (what rviz/foxglove show and what
LabelInfo maps ids to); reading also accepts numeric ids, as other publishers use them.
Track ids go into ``Detection2D.id`` (empty for raw detections).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from togethernet_ros.bag.vision_msgs_definitions import DETECTION2D_ARRAY, LABEL_INFO

# ASCII digits only: str.isdigit also takes "²", which int() refuses.
_CLASS_INDEX = re.compile(r"[0-9]+")
_TRACK_ID = re.compile(r"-?[0-9]+")


@dataclass
class DecodedDetections:
    """Detections read back from a Detection2DArray; ``track_ids`` is -1 where ``id`` is empty."""

    stamp_ns: int
    frame_id: str
    boxes: np.ndarray  # (N, 4) float32 xyxy
    scores: np.ndarray  # (N,) float32
    class_ids: np.ndarray  # (N,) int64, -1 for names not in class_names
    track_ids: np.ndarray  # (N,) int64
    # Ground truth read from VOC files only: (N,) bool, objects AP neither requires nor penalises.
    difficult: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.scores)


def class_labels(class_ids: np.ndarray, class_names: tuple[str, ...] | list[str]) -> list[str]:
    """The ``class_id`` string of each detection: its class name, or the number if unnamed."""
    return [
        class_names[class_id] if 0 <= class_id < len(class_names) else str(class_id)
        for class_id in np.asarray(class_ids, dtype=np.int64).tolist()
    ]


def detections_to_message(
    typestore: Any,
    header: Any,
    boxes: np.ndarray,
    scores: np.ndarray,
    class_ids: np.ndarray,
    class_names: tuple[str, ...] | list[str],
    track_ids: np.ndarray | None = None,
) -> Any:
    """Build a Detection2DArray; boxes are xyxy in source pixels."""
    types = typestore.types
    point2d = types["vision_msgs/msg/Point2D"]
    pose2d = types["vision_msgs/msg/Pose2D"]
    bbox_type = types["vision_msgs/msg/BoundingBox2D"]
    hypothesis_type = types["vision_msgs/msg/ObjectHypothesis"]
    with_pose_type = types["vision_msgs/msg/ObjectHypothesisWithPose"]
    detection_type = types["vision_msgs/msg/Detection2D"]
    pose_cov = types["geometry_msgs/msg/PoseWithCovariance"]
    pose = types["geometry_msgs/msg/Pose"]
    point = types["geometry_msgs/msg/Point"]
    quaternion = types["geometry_msgs/msg/Quaternion"]
    # The hypotheses carry no pose; one shared all-zero PoseWithCovariance (messages are only read
    # while serialising) saves constructing ~6 nested messages per detection.
    no_pose = pose_cov(
        pose=pose(
            position=point(x=0.0, y=0.0, z=0.0),
            orientation=quaternion(x=0.0, y=0.0, z=0.0, w=1.0),
        ),
        covariance=np.zeros(36, dtype=np.float64),
    )
    detections = []
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    labels = class_labels(class_ids, class_names)
    score_values = np.asarray(scores, dtype=np.float64).tolist()
    tracks = None if track_ids is None else np.asarray(track_ids, dtype=np.int64).tolist()
    for index, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        hypothesis = with_pose_type(
            hypothesis=hypothesis_type(class_id=labels[index], score=score_values[index]),
            pose=no_pose,
        )
        bbox = bbox_type(
            center=pose2d(position=point2d(x=(x1 + x2) / 2.0, y=(y1 + y2) / 2.0), theta=0.0),
            size_x=x2 - x1,
            size_y=y2 - y1,
        )
        track = "" if tracks is None else str(tracks[index])
        detections.append(detection_type(header=header, results=[hypothesis], bbox=bbox, id=track))
    return types[DETECTION2D_ARRAY](header=header, detections=detections)


def message_to_detections(
    message: Any, class_names: tuple[str, ...] | list[str]
) -> DecodedDetections:
    """Read a Detection2DArray back into arrays (best hypothesis per detection)."""
    boxes, scores, class_ids, track_ids = [], [], [], []
    lookup = {name: index for index, name in enumerate(class_names)}
    for detection in message.detections:
        cx, cy = detection.bbox.center.position.x, detection.bbox.center.position.y
        half_w, half_h = detection.bbox.size_x / 2.0, detection.bbox.size_y / 2.0
        boxes.append((cx - half_w, cy - half_h, cx + half_w, cy + half_h))
        if detection.results:
            best = max(detection.results, key=lambda r: r.hypothesis.score).hypothesis
            name, score = best.class_id, best.score
        else:
            name, score = "", 1.0
        if name in lookup:
            class_ids.append(lookup[name])
        elif _CLASS_INDEX.fullmatch(name):
            class_ids.append(int(name))
        else:
            class_ids.append(-1)
        scores.append(score)
        track_ids.append(int(detection.id) if _TRACK_ID.fullmatch(detection.id) else -1)
    stamp = int(message.header.stamp.sec) * 1_000_000_000 + int(message.header.stamp.nanosec)
    return DecodedDetections(
        stamp_ns=stamp,
        frame_id=message.header.frame_id,
        boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        scores=np.asarray(scores, dtype=np.float32),
        class_ids=np.asarray(class_ids, dtype=np.int64),
        track_ids=np.asarray(track_ids, dtype=np.int64),
    )


def label_info_message(
    typestore: Any, header: Any, class_names: tuple[str, ...] | list[str], threshold: float
) -> Any:
    """Build a vision_msgs/LabelInfo mapping class indices to names."""
    vision_class = typestore.types["vision_msgs/msg/VisionClass"]
    return typestore.types[LABEL_INFO](
        header=header,
        class_map=[vision_class(class_id=i, class_name=n) for i, n in enumerate(class_names)],
        threshold=float(threshold),
    )
