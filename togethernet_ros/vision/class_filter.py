"""Publishing only some classes: the node's `classes` parameter, as plain functions."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import numpy as np

from togethernet_ros.vision.detections import Detections

if TYPE_CHECKING:
    from togethernet_ros.tracking.tracked_detections import TrackedDetections

# Detections or the tracker's TrackedDetections: anything with class_ids and select().
DetectionsT = TypeVar("DetectionsT", Detections, "TrackedDetections")


def unknown_classes(keep: frozenset[str] | None, class_names: tuple[str, ...]) -> list[str]:
    """Names in `keep` that the model (`class_names`) does not have, sorted.

    A typo would otherwise publish nothing, silently. With no model loaded yet (no names)
    there is nothing to check.
    """
    if keep is None or not class_names:
        return []
    return sorted(keep - set(class_names))


def keep_classes(
    detections: DetectionsT, class_names: tuple[str, ...], keep: frozenset[str] | None
) -> DetectionsT:
    """The detections (or tracks) whose class name is in `keep` (all of them when None)."""
    if keep is None or len(detections) == 0:
        return detections
    allowed = np.array([name in keep for name in class_names], dtype=bool)
    ids = detections.class_ids
    mask = (ids >= 0) & (ids < len(class_names))  # an id outside the names is never kept
    mask[mask] = allowed[ids[mask]]
    return detections.select(mask)
