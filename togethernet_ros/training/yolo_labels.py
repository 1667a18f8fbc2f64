"""YOLO txt labels: one object per line, ``class cx cy w h`` normalised to [0, 1]."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from togethernet_ros.training.annotation import ImageAnnotation, checked_box
from togethernet_ros.training.data_issues import DataIssues


def read_yolo_labels(
    path: str | Path, width: int, height: int, num_classes: int, issues: DataIssues
) -> ImageAnnotation | None:
    """Read a YOLO label file for an image of ``width``×``height`` pixels.

    A missing or undecodable file is reported (the sample is skipped); an empty file is an image
    without objects (the YOLO convention, and what ``data voc2yolo`` writes for one), kept so
    that detections on it count as false positives. Malformed lines, unknown class ids and
    degenerate boxes are reported per line and dropped; boxes are clipped.
    """
    path = Path(path)
    if not path.is_file():
        issues.report(path, "label file missing", "sample skipped")
        return None
    try:
        # utf-8-sig: Windows editors (Notepad) start the file with a byte-order mark, which
        # would otherwise stick to the first class id and cost the first box.
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        issues.report(path, f"not UTF-8 text ({error.reason})", "sample skipped")
        return None
    except OSError as error:
        issues.report(path, f"cannot be read ({error.strerror or error})", "sample skipped")
        return None
    boxes, labels = [], []
    for line_number, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        try:
            if len(tokens) != 5:
                raise ValueError(f"expected 5 fields, got {len(tokens)}")
            class_id = int(tokens[0])
            cx, cy, w, h = (float(token) for token in tokens[1:])
        except ValueError as error:
            issues.report(
                path, f"malformed line '{line.strip()}': {error}", "line dropped", line_number
            )
            continue
        if not 0 <= class_id < num_classes:
            issues.report(
                path,
                f"unknown class id {class_id} (have {num_classes})",
                "line dropped",
                line_number,
            )
            continue
        box = (
            (cx - w / 2) * width,
            (cy - h / 2) * height,
            (cx + w / 2) * width,
            (cy + h / 2) * height,
        )
        checked = checked_box(box, width, height, path, issues, line_number)
        if checked is None:
            continue
        boxes.append(checked)
        labels.append(class_id)
    return ImageAnnotation(
        np.asarray(boxes, np.float32).reshape(-1, 4),
        np.asarray(labels, np.int64),
        np.zeros(len(labels), bool),
        width,
        height,
    )


def format_yolo_labels(annotation: ImageAnnotation) -> str:
    """Render an annotation as YOLO label text (every object: YOLO has no difficult flag)."""
    if annotation.width <= 0 or annotation.height <= 0:
        raise ValueError("format_yolo_labels: the annotation has no image size")
    lines = []
    for (x1, y1, x2, y2), label in zip(annotation.boxes, annotation.labels, strict=True):
        cx = (x1 + x2) / 2 / annotation.width
        cy = (y1 + y2) / 2 / annotation.height
        w = (x2 - x1) / annotation.width
        h = (y2 - y1) / annotation.height
        lines.append(f"{int(label)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    return "\n".join(lines) + ("\n" if lines else "")
