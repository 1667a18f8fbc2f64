"""Temporal box smoothing: a per-camera ByteTrack-style tracker with Kalman-filtered boxes."""

from togethernet_ros.tracking.config import TrackerConfig
from togethernet_ros.tracking.tracked_detections import TrackedDetections
from togethernet_ros.tracking.tracker import Tracker

__all__ = ["TrackedDetections", "Tracker", "TrackerConfig"]
