"""Saved detections: one JSON file mapping image id → boxes, scores, class ids."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from togethernet_ros.evaluation.records import ImageDetections

DETECTIONS_FORMAT = "togethernet_ros.detections/1"


def save_detections(
    path: str | Path, detections_by_image: Mapping[str, object], class_names: Sequence[str]
) -> None:
    """Write detections (xyxy source pixels) as JSON in :data:`DETECTIONS_FORMAT`."""
    images = {}
    for image_id, found in detections_by_image.items():
        found = ImageDetections.from_any(found)
        images[image_id] = {
            "boxes": [[round(float(v), 3) for v in box] for box in found.boxes],
            "scores": [round(float(s), 6) for s in found.scores],
            "class_ids": [int(c) for c in found.class_ids],
        }
    payload = {"format": DETECTIONS_FORMAT, "class_names": list(class_names), "images": images}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(payload))


def load_detections(path: str | Path) -> tuple[dict[str, ImageDetections], tuple[str, ...]]:
    """Read a file written by :func:`save_detections`; returns (detections, class names)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"detections file not found: {path}")
    try:
        payload = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error
    if not isinstance(payload, dict) or payload.get("format") != DETECTIONS_FORMAT:
        raise ValueError(f"{path}: not a detections file (expected format {DETECTIONS_FORMAT!r})")
    detections = {}
    for image_id, entry in payload["images"].items():
        try:
            detections[image_id] = ImageDetections(
                entry["boxes"], entry["scores"], entry["class_ids"]
            )
        except (KeyError, ValueError) as error:
            raise ValueError(f"{path}: image '{image_id}': {error}") from error
    return detections, tuple(payload["class_names"])
