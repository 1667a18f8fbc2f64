"""Per-camera multi-object tracker: ByteTrack-style two-stage IoU association + Kalman smoothing.

Stage 1 matches high-score detections to every live track; stage 2 lets the remaining confirmed
tracks pick up low-score detections (in fog a real object's score often dips below the publish
threshold), while low-score boxes never start tracks, so clutter stays out. Detections only match
tracks of their own class. New tracks are published after ``min_hits`` consecutive matches and
coast on their prediction for up to ``max_misses`` unmatched frames, which removes detect/miss
flicker. A backward stamp (a looping bag) or a gap longer than ``max_gap_s`` starts afresh;
``last_reset`` says which, and by how much, so a caller can tell a camera whose frames always
come too far apart (every frame restarts the tracks, and with ``min_hits`` >= 2 none is ever
published) from an occasional gap.

A detection with a NaN or infinite box coordinate or score, or with zero or negative width or
height, is ignored (as if the detector had not reported it): one NaN in a Kalman state would
poison its track for good, raising would lose the frame's other detections (and stop an offline
bag run), and a degenerate box has IoU 0 with everything, so it would start a new, duplicate
track on every frame.

Given the frame's ``image_size``, published boxes are clipped to the image like the detector's,
and a coasting track whose box covers no image pixel ends: its prediction carried an object that
had left the frame on outside the image, published for up to ``max_misses`` frames, and no
detection (always inside the image) could match it again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from togethernet_ros.tracking.assignment import match_by_iou
from togethernet_ros.tracking.box_geometry import cxcywh_to_xyxy, pairwise_iou, xyxy_to_cxcywh
from togethernet_ros.tracking.config import TrackerConfig
from togethernet_ros.tracking.kalman import MIN_BOX_SIDE_PX, BoxKalmanFilter, KalmanStates
from togethernet_ros.tracking.tracked_detections import TrackedDetections

if TYPE_CHECKING:
    from togethernet_ros.inference import Detections

# IoU given to track/detection pairs of different classes: below any valid match threshold.
_CLASS_MISMATCH_IOU = -1.0

STAMP_BACK = "stamp_back"
GAP = "gap"


@dataclass(frozen=True)
class TrackerReset:
    """Why an ``update`` started afresh: its frame's time against the previous frame's."""

    reason: str
    """``STAMP_BACK`` (the stamp went back in time) or ``GAP`` (more than ``max_gap_s``)."""
    interval_s: float
    """This frame's time minus the previous frame's (negative for ``STAMP_BACK``)."""
    max_gap_s: float
    """The ``max_gap_s`` in force when it happened."""


class Tracker:
    """Tracks the detections of one camera; call ``update`` once per frame in stamp order."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self._config = TrackerConfig() if config is None else config
        self._filter = self._make_filter(self._config)
        self._next_id = 1
        self._last_stamp: float | None = None
        self._last_reset: TrackerReset | None = None
        self._clear_tracks()

    @property
    def config(self) -> TrackerConfig:
        """Current settings; assign a new ``TrackerConfig`` to change them between frames."""
        return self._config

    @config.setter
    def config(self, config: TrackerConfig) -> None:
        if not isinstance(config, TrackerConfig):
            raise TypeError(f"Tracker.config must be a TrackerConfig, got {type(config).__name__}")
        self._filter = self._make_filter(config)
        self._config = config

    @property
    def num_tracks(self) -> int:
        """Live tracks, including unconfirmed and coasting ones (for diagnostics)."""
        return len(self._track_ids)

    @property
    def last_reset(self) -> TrackerReset | None:
        """The reset the latest ``update`` did by its stamp (None: the tracks went on).

        ``reset()`` is not one: its caller knows why it asked.
        """
        return self._last_reset

    def reset(self) -> None:
        """Forget every track; new tracks get fresh ids (ids are never reused)."""
        self._clear_tracks()
        self._last_stamp = None
        self._last_reset = None

    def update(
        self,
        detections: Detections,
        stamp_s: float,
        image_size: tuple[int, int] | None = None,
    ) -> TrackedDetections:
        """Associate one frame's detections and return the published, smoothed tracks.

        ``image_size`` (height, width) of the frame, when given, keeps the published boxes
        inside the image (see the module docstring).
        """
        self._last_reset = None
        bounds = None if image_size is None else _image_bounds(image_size)
        boxes, scores, class_ids = _validated_arrays(detections)
        stamp_s = float(stamp_s)
        if not math.isfinite(stamp_s):
            raise ValueError(f"tracker stamp must be finite, got {stamp_s!r}")
        config = self._config
        dt = 0.0
        if self._last_stamp is not None:
            dt = stamp_s - self._last_stamp
            if dt < 0.0 or dt > config.max_gap_s:
                self._last_reset = TrackerReset(
                    STAMP_BACK if dt < 0.0 else GAP, dt, config.max_gap_s
                )
                self._clear_tracks()
                dt = 0.0
        self._last_stamp = stamp_s
        self._filter.predict(self._states, dt)

        candidates = np.nonzero(scores >= config.low_score_threshold)[0]
        is_high = scores[candidates] >= config.high_score_threshold
        high = candidates[is_high]
        low = candidates[~is_high]
        # One IoU matrix for both stages (each call costs more in numpy overhead than in size).
        iou = self._class_gated_iou(
            cxcywh_to_xyxy(self._states.position), boxes[candidates], class_ids[candidates]
        )

        first = match_by_iou(iou[:, is_high], config.match_iou)
        matched_tracks = [first.pairs[:, 0]]
        matched_dets = [high[first.pairs[:, 1]]]

        leftover = first.unmatched_rows[self._confirmed[first.unmatched_rows]]
        if len(leftover) and len(low):
            second = match_by_iou(iou[np.ix_(leftover, ~is_high)], config.low_score_match_iou)
            matched_tracks.append(leftover[second.pairs[:, 0]])
            matched_dets.append(low[second.pairs[:, 1]])

        track_index = np.concatenate(matched_tracks)
        det_index = np.concatenate(matched_dets)
        self._filter.update(self._states, track_index, xyxy_to_cxcywh(boxes[det_index]))
        self._scores[track_index] = scores[det_index]

        matched = np.zeros(len(self._track_ids), dtype=bool)
        matched[track_index] = True
        self._hits = np.where(matched, self._hits + 1, 0)
        self._misses = np.where(matched, 0, self._misses + 1)
        self._confirmed |= self._hits >= config.min_hits
        # Unconfirmed tracks die on their first miss; confirmed ones after max_misses.
        alive = np.where(self._confirmed, self._misses <= config.max_misses, self._misses == 0)
        if not alive.all():
            self._keep(alive)

        new_dets = high[first.unmatched_cols]
        if len(new_dets):
            self._start_tracks(boxes[new_dets], scores[new_dets], class_ids[new_dets])
        if bounds is None:
            return self._published(None)
        clipped = np.minimum(np.maximum(cxcywh_to_xyxy(self._states.position), 0.0), bounds)
        # The detector's rule (vision/postprocess.py): a box must cover a pixel each way. Only
        # coasting tracks end by it; a track that matched this frame follows a detection.
        covers_pixels = ((clipped[:, 2:] - clipped[:, :2]) >= 1.0).all(axis=1)
        alive = covers_pixels | (self._misses == 0)
        if not alive.all():
            self._keep(alive)
            clipped = clipped[alive]
        return self._published(clipped)

    def _class_gated_iou(
        self, track_boxes: np.ndarray, det_boxes: np.ndarray, det_classes: np.ndarray
    ) -> np.ndarray:
        iou = pairwise_iou(track_boxes, det_boxes)
        np.putmask(iou, self._class_ids[:, None] != det_classes[None, :], _CLASS_MISMATCH_IOU)
        return iou

    def _start_tracks(self, boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray) -> None:
        count = len(boxes)
        new_ids = np.arange(self._next_id, self._next_id + count, dtype=np.int64)
        self._next_id += count
        self._states = self._states.append(self._filter.initiate(xyxy_to_cxcywh(boxes)))
        self._track_ids = np.concatenate([self._track_ids, new_ids])
        self._class_ids = np.concatenate([self._class_ids, class_ids])
        self._scores = np.concatenate([self._scores, scores])
        self._hits = np.concatenate([self._hits, np.ones(count, dtype=np.int64)])
        self._misses = np.concatenate([self._misses, np.zeros(count, dtype=np.int64)])
        confirmed_now = np.full(count, self._config.min_hits <= 1)
        self._confirmed = np.concatenate([self._confirmed, confirmed_now])

    def _keep(self, mask: np.ndarray) -> None:
        self._states = self._states.select(mask)
        self._track_ids = self._track_ids[mask]
        self._class_ids = self._class_ids[mask]
        self._scores = self._scores[mask]
        self._hits = self._hits[mask]
        self._misses = self._misses[mask]
        self._confirmed = self._confirmed[mask]

    def _clear_tracks(self) -> None:
        self._states = KalmanStates.empty()
        self._track_ids = np.zeros(0, dtype=np.int64)
        self._class_ids = np.zeros(0, dtype=np.int64)
        self._scores = np.zeros(0, dtype=np.float32)
        self._hits = np.zeros(0, dtype=np.int64)
        self._misses = np.zeros(0, dtype=np.int64)
        self._confirmed = np.zeros(0, dtype=bool)

    def _published(self, clipped: np.ndarray | None) -> TrackedDetections:
        # Every surviving confirmed track is published; new tracks are always appended with
        # larger ids, so the arrays are already sorted by id. `clipped`: every track's box
        # clipped to the image, or None to publish the filter's boxes as they are.
        shown = self._confirmed
        boxes = cxcywh_to_xyxy(self._states.position[shown]) if clipped is None else clipped[shown]
        return TrackedDetections(
            boxes=boxes.astype(np.float32),
            scores=self._scores[shown].astype(np.float32),
            class_ids=self._class_ids[shown].copy(),
            track_ids=self._track_ids[shown].copy(),
        )

    @staticmethod
    def _make_filter(config: TrackerConfig) -> BoxKalmanFilter:
        return BoxKalmanFilter(config.process_noise, config.measurement_noise)


def _image_bounds(image_size: tuple[int, int]) -> np.ndarray:
    """(w, h, w, h) clip bounds of an image of (height, width); ValueError unless both are > 0."""
    try:
        height, width = (float(side) for side in image_size)
    except (TypeError, ValueError):
        raise ValueError(
            f"tracker image_size must be (height, width), got {image_size!r}"
        ) from None
    if not (math.isfinite(height) and math.isfinite(width) and height > 0 and width > 0):
        raise ValueError(f"tracker image_size must be two sizes > 0, got {image_size!r}")
    return np.array([width, height, width, height])


def _validated_arrays(detections: Detections) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The usable detections' arrays as float64/float64/int64; ValueError for a bad shape.

    Usable: finite, and at least MIN_BOX_SIDE_PX wide and high (a track cannot follow less).
    """
    boxes = np.asarray(detections.boxes, dtype=np.float64)
    scores = np.asarray(detections.scores, dtype=np.float64)
    class_ids = np.asarray(detections.class_ids)
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"tracker input boxes must have shape (N, 4), got {boxes.shape}")
    count = len(boxes)
    if scores.shape != (count,) or class_ids.shape != (count,):
        raise ValueError(
            f"tracker input needs one score and class id per box: boxes {boxes.shape}, "
            f"scores {scores.shape}, class_ids {class_ids.shape}"
        )
    class_ids = class_ids.astype(np.int64, copy=False)
    usable = np.isfinite(boxes).all(axis=1) & np.isfinite(scores)
    usable &= boxes[:, 2] - boxes[:, 0] >= MIN_BOX_SIDE_PX
    usable &= boxes[:, 3] - boxes[:, 1] >= MIN_BOX_SIDE_PX
    if not usable.all():
        boxes, scores, class_ids = boxes[usable], scores[usable], class_ids[usable]
    return boxes, scores, class_ids
