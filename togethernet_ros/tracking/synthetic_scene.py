"""Synthetic detector output with known truth, for measuring the tracker (tests and benchmarks).

Objects move at constant velocity (centre and size change linearly with time) and stay inside
the image. The "detector" sees each object with Gaussian jitter on centre and size (std relative
to the box size), misses it at random, sometimes reports it with a fog-like low score, and adds
false low-score boxes at random places.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from togethernet_ros.inference import Detections

_NUM_CLASSES = 5


@dataclass
class SyntheticScene:
    """A generated sequence: per-frame truth and per-frame noisy detections."""

    stamps: np.ndarray
    """(F,) frame times in seconds."""
    gt_boxes: list[np.ndarray]
    """Per frame (M, 4) float64 true xyxy boxes."""
    gt_ids: list[np.ndarray]
    """Per frame (M,) int64 object ids."""
    gt_class_ids: list[np.ndarray]
    """Per frame (M,) int64 object classes."""
    detections: list[Detections]
    """Per frame noisy detector output."""
    detection_gt_ids: list[np.ndarray]
    """Per frame, for every detection, the object it came from (−1 for a false box)."""


def make_jittered_scene(
    *,
    num_objects: int = 10,
    num_frames: int = 300,
    fps: float = 30.0,
    image_size: tuple[int, int] = (720, 1280),
    centre_jitter: float = 0.05,
    size_jitter: float = 0.05,
    miss_rate: float = 0.1,
    low_score_rate: float = 0.2,
    false_boxes_per_frame: float = 2.0,
    dense_fog_frames: tuple[int, int] | None = None,
    seed: int = 0,
) -> SyntheticScene:
    """Generate a scene; jitters are std as a fraction of box width/height, rates per detection.

    True detections score in [0.55, 0.95) or, with ``low_score_rate``, in [0.15, 0.45); false
    boxes score in [0.1, 0.45), so with the tracker's default thresholds (0.5 / 0.1) they land in
    the second association stage only. During ``dense_fog_frames`` (first, end) every true
    detection scores in [0.15, 0.3) instead: a fog bank that hides the objects from a detector cut
    at 0.3 for longer than the tracker coasts.
    """
    if num_objects < 0 or num_frames < 1 or fps <= 0:
        raise ValueError(
            f"need num_objects >= 0, num_frames >= 1, fps > 0; got {num_objects}, "
            f"{num_frames}, {fps}"
        )
    for name, rate in (("miss_rate", miss_rate), ("low_score_rate", low_score_rate)):
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {rate!r}")
    rng = np.random.default_rng(seed)
    height, width = image_size
    duration = (num_frames - 1) / fps
    stamps = np.arange(num_frames) / fps

    start_size = np.stack([rng.uniform(40, 160, num_objects), np.zeros(num_objects)], axis=1)
    start_size[:, 1] = start_size[:, 0] * rng.uniform(0.5, 2.0, num_objects)
    end_size = start_size * rng.uniform(0.8, 1.25, (num_objects, 1))
    limit = np.array([width, height], dtype=np.float64)

    def inside(size: np.ndarray) -> np.ndarray:
        return size / 2 + rng.uniform(0, 1, size.shape) * (limit - size)

    start_centre = inside(start_size)
    end_centre = inside(end_size)
    class_ids = rng.integers(0, _NUM_CLASSES, num_objects).astype(np.int64)
    object_ids = np.arange(1, num_objects + 1, dtype=np.int64)

    gt_boxes, gt_ids, gt_classes, detections, detection_ids = [], [], [], [], []
    fog_start, fog_end = dense_fog_frames if dense_fog_frames is not None else (0, 0)
    for frame_index, stamp in enumerate(stamps):
        progress = stamp / duration if duration > 0 else 0.0
        centre = start_centre + (end_centre - start_centre) * progress
        size = start_size + (end_size - start_size) * progress
        truth = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
        gt_boxes.append(truth)
        gt_ids.append(object_ids.copy())
        gt_classes.append(class_ids.copy())

        seen = rng.random(num_objects) >= miss_rate
        noisy_centre = centre + rng.normal(0, 1, centre.shape) * centre_jitter * size
        noisy_size = size * np.clip(1 + rng.normal(0, size_jitter, size.shape), 0.2, None)
        noisy = np.concatenate([noisy_centre - noisy_size / 2, noisy_centre + noisy_size / 2], 1)
        low = rng.random(num_objects) < low_score_rate
        scores = np.where(
            low, rng.uniform(0.15, 0.45, num_objects), rng.uniform(0.55, 0.95, num_objects)
        )
        if fog_start <= frame_index < fog_end:
            # Rescales the same draws, so frames outside the fog stay as without it.
            scores = 0.15 + (scores - 0.15) * (0.15 / 0.8)

        num_false = rng.poisson(false_boxes_per_frame)
        false_size = rng.uniform(30, 150, (num_false, 2))
        false_centre = inside(false_size)
        false_boxes = np.concatenate(
            [false_centre - false_size / 2, false_centre + false_size / 2], 1
        )

        boxes = np.concatenate([noisy[seen], false_boxes])
        detections.append(
            Detections(
                boxes=boxes.astype(np.float32),
                scores=np.concatenate([scores[seen], rng.uniform(0.1, 0.45, num_false)]).astype(
                    np.float32
                ),
                class_ids=np.concatenate(
                    [class_ids[seen], rng.integers(0, _NUM_CLASSES, num_false)]
                ).astype(np.int64),
            )
        )
        detection_ids.append(
            np.concatenate([object_ids[seen], np.full(num_false, -1, dtype=np.int64)])
        )
    return SyntheticScene(stamps, gt_boxes, gt_ids, gt_classes, detections, detection_ids)
