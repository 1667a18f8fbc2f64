"""The tracker's per-frame output: smoothed boxes with persistent track ids."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class TrackedDetections:
    """Published tracks of one frame, sorted by track id.

    ``boxes`` (N, 4) float32 xyxy in source pixels (Kalman-smoothed; predicted for a track that
    missed this frame; clipped to the image when ``Tracker.update`` got its size), ``scores``
    (N,) float32 (score of the track's latest matched detection), ``class_ids`` (N,) int64
    (fixed for a track's lifetime), ``track_ids`` (N,) int64 (≥ 1, never reused by the same
    tracker, also not after a reset).
    """

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    track_ids: np.ndarray

    def __len__(self) -> int:
        return len(self.track_ids)

    @classmethod
    def empty(cls) -> TrackedDetections:
        """A frame without published tracks."""
        return cls(
            boxes=np.zeros((0, 4), dtype=np.float32),
            scores=np.zeros(0, dtype=np.float32),
            class_ids=np.zeros(0, dtype=np.int64),
            track_ids=np.zeros(0, dtype=np.int64),
        )

    def select(self, index: np.ndarray | slice) -> TrackedDetections:
        """A subset (boolean mask, index array or slice) as new TrackedDetections."""
        return TrackedDetections(
            boxes=self.boxes[index],
            scores=self.scores[index],
            class_ids=self.class_ids[index],
            track_ids=self.track_ids[index],
        )
