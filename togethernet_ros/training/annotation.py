"""Per-image box annotations and the checks every label reader applies to them."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from togethernet_ros.training.data_issues import DataIssues

# What `checked_box` did, as reported: readers with their own box rule (eval's get_map.py-style
# ground truth) recognise these reports by them.
BOX_CLIPPED = "box clipped"
BOX_DROPPED = "box dropped"


@dataclass
class ImageAnnotation:
    """Boxes of one image: xyxy float32 source pixels, class ids, VOC difficult flags."""

    boxes: np.ndarray
    labels: np.ndarray
    difficult: np.ndarray
    width: int
    height: int

    @staticmethod
    def empty(width: int = 0, height: int = 0) -> ImageAnnotation:
        """An annotation with no objects."""
        return ImageAnnotation(
            np.zeros((0, 4), np.float32),
            np.zeros((0,), np.int64),
            np.zeros((0,), bool),
            width,
            height,
        )

    def without_difficult(self) -> ImageAnnotation:
        """The same annotation without the objects marked difficult."""
        keep = ~np.asarray(self.difficult, bool)
        return replace(
            self, boxes=self.boxes[keep], labels=self.labels[keep], difficult=self.difficult[keep]
        )


def checked_box(
    box: tuple[float, float, float, float],
    width: int,
    height: int,
    path: str | Path,
    issues: DataIssues,
    line: int | None = None,
) -> tuple[float, float, float, float] | None:
    """Validate one xyxy box against the image size.

    A box reaching outside the image is clipped (reported); a degenerate box (no area, or
    non-finite numbers) is dropped (reported). Returns the usable box or None.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    if not all(np.isfinite(v) for v in (x1, y1, x2, y2)):
        issues.report(path, f"non-finite box {box}", BOX_DROPPED, line)
        return None
    if width > 0 and height > 0:
        clipped = (
            min(max(x1, 0.0), width),
            min(max(y1, 0.0), height),
            min(max(x2, 0.0), width),
            min(max(y2, 0.0), height),
        )
        if clipped != (x1, y1, x2, y2):
            issues.report(
                path,
                f"box {[x1, y1, x2, y2]} outside the {width}x{height} image",
                BOX_CLIPPED,
                line,
            )
            x1, y1, x2, y2 = clipped
    if x2 <= x1 or y2 <= y1:
        issues.report(path, f"degenerate box {[x1, y1, x2, y2]} (no area)", BOX_DROPPED, line)
        return None
    return x1, y1, x2, y2
