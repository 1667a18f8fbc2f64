"""Publishing only some classes: the node's `classes` parameter, as plain functions."""

from __future__ import annotations

import numpy as np

from togethernet_ros.vision.detections import Detections


def unknown_classes(keep: frozenset[str] | None, class_names: tuple[str, ...]) -> list[str]:
    """Names in `keep` that the model (`class_names`) does not have, sorted.

    A typo would otherwise publish nothing, silently. With no model loaded yet (no names)
    there is nothing to check.
    """
    if keep is None or not class_names:
        return []
    return sorted(keep - set(class_names))


def keep_classes(
    detections: Detections, class_names: tuple[str, ...], keep: frozenset[str] | None
) -> Detections:
    """The detections whose class name is in `keep` (all of them when `keep` is None)."""
    if keep is None or len(detections) == 0:
        return detections
    allowed = np.array([name in keep for name in class_names], dtype=bool)
    ids = detections.class_ids
    mask = (ids >= 0) & (ids < len(class_names))  # an id outside the names is never kept
    mask[mask] = allowed[ids[mask]]
    return detections.select(mask)
