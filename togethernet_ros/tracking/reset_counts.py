"""Counting one camera's tracker resets, and telling when they make smoothing useless.

The tracker starts afresh when a camera's stamps go back or its processed frames lie more than
``tracking.max_gap_s`` apart. On a CPU with several cameras (4 at 640x640 on 2 cores take ~1 s
a batch) every frame of a camera can be that far from the last: the tracks restart on every
frame, and with ``tracking.min_hits`` >= 2 ``<ns>/detections`` never holds a box while
``detections_raw`` does. These counts go to /diagnostics, and gap resets on consecutive frames
are what the node warns about. Plain Python (no rclpy).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from togethernet_ros.tracking.tracker import GAP, STAMP_BACK, TrackerReset

# Gap resets on this many processed frames in a row: the tracks never outlive one frame.
EVERY_FRAME_RESETS = 2


@dataclass(frozen=True)
class ResetSnapshot:
    """One camera's reset counts as read for /diagnostics."""

    stamp_back: int
    gap: int
    source_changed: int
    consecutive_gaps: int
    """Processed frames in a row, up to the latest, that each reset by gap."""
    last_gap_s: float | None
    """The interval between processed frames at the latest gap reset (None: none yet)."""
    max_gap_s: float | None
    """``tracking.max_gap_s`` at the latest gap reset."""

    @property
    def every_frame(self) -> bool:
        """Whether gap resets hit consecutive frames, up to the latest one."""
        return self.consecutive_gaps >= EVERY_FRAME_RESETS

    def values(self) -> dict[str, str]:
        """The /diagnostics key-values."""
        return {
            "tracker_resets_gap": str(self.gap),
            "tracker_resets_stamp_back": str(self.stamp_back),
            "tracker_resets_source_changed": str(self.source_changed),
            "tracker_consecutive_gap_resets": str(self.consecutive_gaps),
            "tracker_last_gap_s": "nan" if self.last_gap_s is None else f"{self.last_gap_s:.3f}",
        }

    def status_message(self) -> str:
        """A short /diagnostics message while every frame resets (empty otherwise)."""
        if not self.every_frame or self.last_gap_s is None or self.max_gap_s is None:
            return ""
        return (
            f"tracks restart every frame: frames {self.last_gap_s:.2f} s apart > "
            f"tracking.max_gap_s {self.max_gap_s:g} s"
        )


class TrackerResetCounts:
    """Per camera; ``record`` the outcome of every frame the tracker took (inference thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # recorded on the inference thread, read on the executor's
        self._stamp_back = 0
        self._gap = 0
        self._source_changed = 0
        self._consecutive_gaps = 0
        self._last_gap: TrackerReset | None = None

    def record(self, reset: TrackerReset | None, source_changed: bool = False) -> int:
        """Count one frame's reset (``Tracker.last_reset``); returns the consecutive gap resets.

        ``source_changed``: the node restarted the tracks itself before this frame (another
        frame_id or size), so the tracker saw no previous stamp.
        """
        with self._lock:
            if source_changed:
                self._source_changed += 1
            if reset is not None and reset.reason == GAP:
                self._gap += 1
                self._consecutive_gaps += 1
                self._last_gap = reset
            else:
                self._consecutive_gaps = 0
                if reset is not None and reset.reason == STAMP_BACK:
                    self._stamp_back += 1
            return self._consecutive_gaps

    def snapshot(self) -> ResetSnapshot:
        """The counts now, consistent with each other."""
        with self._lock:
            last = self._last_gap
            return ResetSnapshot(
                stamp_back=self._stamp_back,
                gap=self._gap,
                source_changed=self._source_changed,
                consecutive_gaps=self._consecutive_gaps,
                last_gap_s=None if last is None else last.interval_s,
                max_gap_s=None if last is None else last.max_gap_s,
            )


def every_frame_reset_consequence(detections_topic: str, min_hits: int) -> str:
    """What tracks restarting on every frame do to ``detections_topic`` (node and `bag run`)."""
    if min_hits >= 2:
        return (
            f"so {detections_topic} holds no box while they do (tracking.min_hits={min_hits} "
            "needs that many frames in a row; detections_raw has the boxes)"
        )
    return "so box smoothing does nothing and every box gets a new track id"


def every_frame_reset_warning(
    camera_topic: str,
    reset: TrackerReset,
    min_hits: int,
    detections_topic: str,
    dropped_frames: int,
) -> str:
    """The warning for gap resets on consecutive frames of ``camera_topic``: why, and what to do."""
    consequence = every_frame_reset_consequence(detections_topic, min_hits)
    why = (
        # Drops counted since start-up may be old (warm-up): name them as one possible cause.
        f"the camera publishes that seldom, or the node does not keep up (it dropped "
        f"{dropped_frames} of its frames so far)"
        if dropped_frames
        else "the camera publishes that seldom, or the node takes that long per batch"
    )
    return (
        f"tracks on {camera_topic} restart on every frame: its processed frames are "
        f"{reset.interval_s:.2f} s apart, more than tracking.max_gap_s={reset.max_gap_s:g} s, "
        f"{consequence}. {why[0].upper()}{why[1:]}: raise tracking.max_gap_s above "
        f"{reset.interval_s:.2f}, or process this camera's frames more often (fewer cameras, "
        "a smaller input_size, a GPU)"
    )
