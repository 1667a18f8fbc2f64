"""Validated settings of the per-camera tracker (the node exposes each field as a ROS parameter)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class TrackerConfig:
    """Settings of ``Tracker``; invalid values raise ValueError naming the field.

    Frozen so a running tracker never sees a half-changed config: change settings at run time with
    ``dataclasses.replace(config, field=value)`` (validated again) and ``Tracker.config = new``.
    """

    high_score_threshold: float = 0.5
    """Detections at or above this score are matched first and may start new tracks."""
    low_score_threshold: float = 0.1
    """Detections in [low, high) only extend existing confirmed tracks (ByteTrack second stage)."""
    match_iou: float = 0.2
    """Minimum IoU between a track's predicted box and a high-score detection."""
    low_score_match_iou: float = 0.5
    """Minimum IoU for the second stage; stricter because low scores are often clutter."""
    min_hits: int = 3
    """A new track is published only after this many consecutive matched frames."""
    max_misses: int = 5
    """A confirmed track keeps being published (predicted box) for this many unmatched frames."""
    process_noise: float = 0.5
    """Kalman white-acceleration density: velocity change per √s, as a fraction of box size."""
    measurement_noise: float = 0.05
    """Kalman measurement noise: detector box jitter std as a fraction of box size."""
    max_gap_s: float = 1.0
    """A frame gap longer than this (seconds) resets the tracker; so do backward stamps."""

    def __post_init__(self) -> None:
        for name in ("min_hits", "max_misses"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"TrackerConfig.{name} must be an integer, got {value!r}")
        for spec in fields(self):
            if spec.name in ("min_hits", "max_misses"):
                continue
            value = getattr(self, spec.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"TrackerConfig.{spec.name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"TrackerConfig.{spec.name} must be finite, got {value!r}")
        _require(0.0 <= self.low_score_threshold <= 1.0, "low_score_threshold", "in [0, 1]", self)
        _require(
            self.low_score_threshold <= self.high_score_threshold <= 1.0,
            "high_score_threshold",
            f"in [low_score_threshold={self.low_score_threshold}, 1]",
            self,
        )
        _require(0.0 < self.match_iou <= 1.0, "match_iou", "in (0, 1]", self)
        _require(0.0 < self.low_score_match_iou <= 1.0, "low_score_match_iou", "in (0, 1]", self)
        _require(self.min_hits >= 1, "min_hits", ">= 1", self)
        _require(self.max_misses >= 0, "max_misses", ">= 0", self)
        _require(self.process_noise > 0.0, "process_noise", "> 0", self)
        _require(self.measurement_noise > 0.0, "measurement_noise", "> 0", self)
        _require(self.max_gap_s > 0.0, "max_gap_s", "> 0", self)

    def to_dict(self) -> dict[str, Any]:
        """Plain-python dict of every field (e.g. to declare ROS parameters from)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrackerConfig:
        """Build from a dict; unknown keys raise ValueError naming them."""
        known = {spec.name for spec in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown TrackerConfig field(s) {unknown}; known: {sorted(known)}")
        return cls(**values)


def _require(condition: bool, name: str, expectation: str, config: TrackerConfig) -> None:
    if not condition:
        value = getattr(config, name)
        raise ValueError(f"TrackerConfig.{name} must be {expectation}, got {value!r}")
