"""Saved detections: one JSON file mapping image id → boxes, scores, class ids."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from togethernet_ros.evaluation.atomic_write import write_text_atomically
from togethernet_ros.evaluation.records import ImageDetections

DETECTIONS_FORMAT = "togethernet_ros.detections/1"


class DetectionsFile(NamedTuple):
    """What :func:`load_detections` read."""

    detections: dict[str, ImageDetections]
    class_names: tuple[str, ...]
    images_left_out: tuple[str, ...]
    """Images of the dataset the run that saved the file could not read: scored by neither."""


def save_detections(
    path: str | Path,
    detections_by_image: Mapping[str, object],
    class_names: Sequence[str],
    images_left_out: Sequence[str] = (),
) -> None:
    """Write detections (xyxy source pixels) as JSON in :data:`DETECTIONS_FORMAT`.

    ``images_left_out``: the dataset's images the run could not read, so that the file scores
    as the run did (an image merely absent from the file is one without detections).
    """
    images = {}
    for image_id, found in detections_by_image.items():
        found = ImageDetections.from_any(found)
        # Full precision: eval truncates boxes to whole pixels (a box at 12.9996 rounded to
        # 13.0 would score as 13, not 12) and ranks by score (rounding would make new ties),
        # so a saved file must score as the run that saved it.
        images[image_id] = {
            "boxes": [[float(v) for v in box] for box in found.boxes],
            "scores": [float(s) for s in found.scores],
            "class_ids": [int(c) for c in found.class_ids],
        }
    payload = {
        "format": DETECTIONS_FORMAT,
        "class_names": list(class_names),
        "images": images,
        "images_left_out": sorted(images_left_out),
    }
    write_text_atomically(path, json.dumps(payload))


def load_detections(path: str | Path) -> DetectionsFile:
    """Read a file written by :func:`save_detections` (or by hand, without left-out images).

    Anything else (other JSON, a missing field, ragged boxes, class ids outside the file's
    class list) is a :class:`ValueError` naming the file, the image and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"detections file not found: {path}")
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error
    except RecursionError:  # "[[[[..." nested past the parser's depth: not our format
        raise ValueError(f"{path}: JSON nested too deeply to be a detections file") from None
    if not isinstance(payload, dict) or payload.get("format") != DETECTIONS_FORMAT:
        raise ValueError(f"{path}: not a detections file (expected format {DETECTIONS_FORMAT!r})")
    class_names = payload.get("class_names")
    if (
        not isinstance(class_names, list)
        or not class_names
        or not all(isinstance(name, str) for name in class_names)
    ):
        raise ValueError(f"{path}: 'class_names' must be a non-empty list of names")
    images = payload.get("images")
    if not isinstance(images, dict):
        raise ValueError(f"{path}: 'images' must map image ids to detections")
    left_out = payload.get("images_left_out", [])
    if not isinstance(left_out, list) or not all(isinstance(image, str) for image in left_out):
        raise ValueError(f"{path}: 'images_left_out' must be a list of image ids")
    detections = {}
    for image_id, entry in images.items():
        where = f"{path}: image '{image_id}'"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected {{boxes, scores, class_ids}}, got {entry!r:.60}")
        missing = [key for key in ("boxes", "scores", "class_ids") if key not in entry]
        if missing:
            raise ValueError(f"{where}: missing field(s) {', '.join(missing)}")
        try:
            raw_ids = np.asarray(entry["class_ids"], np.float64)
            if not np.array_equal(raw_ids, np.round(raw_ids)):
                raise ValueError(f"class ids must be integers, got {entry['class_ids']!r:.60}")
            boxes = np.asarray(entry["boxes"], np.float64)
            if boxes.size and (boxes.ndim != 2 or boxes.shape[1] != 4):
                raise ValueError(f"boxes must be [x1, y1, x2, y2] lists, got shape {boxes.shape}")
            found = ImageDetections(boxes, entry["scores"], entry["class_ids"])
        except (TypeError, ValueError) as error:
            raise ValueError(f"{where}: {error}") from error
        if not (np.isfinite(found.boxes).all() and np.isfinite(found.scores).all()):
            raise ValueError(f"{where}: non-finite box coordinates or scores")
        outside = sorted({int(c) for c in found.class_ids if not 0 <= c < len(class_names)})
        if outside:
            raise ValueError(
                f"{where}: class ids {outside} outside the file's {len(class_names)} classes"
            )
        detections[image_id] = found
    both = sorted(set(left_out) & set(detections))
    if both:
        raise ValueError(f"{path}: images {both[:5]} are both left out and detected")
    return DetectionsFile(detections, tuple(class_names), tuple(left_out))
