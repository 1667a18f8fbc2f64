"""The node's pipeline (FrameBatcher → Detector → per-camera Tracker) driven by bag time.

The batcher's clock is the bag's log time, so batches form exactly as they would have live
(every active camera has a frame, the batch is full, or the oldest frame waited
``max_batch_wait_ms``) without waiting in real time. Offline nothing may be lost: a camera's
waiting frame is sent to inference before that camera's next frame is put, instead of being
overwritten as the live node would under overload.

Each camera's tracker restarts are counted as the node counts them for /diagnostics (gap,
stamp back, source changed), with the longest run of gap resets on consecutive frames: then the
tracks never outlive a frame (a camera recorded more than ``tracking.max_gap_s`` apart).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from togethernet_ros.bag.bag_reader import ImageFrame
from togethernet_ros.pipeline.frame_batcher import FrameBatcher
from togethernet_ros.tracking.config import TrackerConfig
from togethernet_ros.tracking.frame_timeline import FrameTimeline

# Plain Python (no rclpy): the node's own counting, so `bag run` and /diagnostics agree.
from togethernet_ros.tracking.reset_counts import EVERY_FRAME_RESETS, TrackerResetCounts
from togethernet_ros.tracking.score_gate import scoring_at_least
from togethernet_ros.tracking.tracker import GAP, Tracker, TrackerReset
from togethernet_ros.vision.class_filter import keep_classes


@dataclass
class FrameResult:
    """Everything the pipeline produced for one input frame."""

    frame: ImageFrame
    detections: Any  # inference Detections (raw, after NMS)
    tracked: Any  # tracking TrackedDetections (smoothed, with track ids); None: tracking off
    dehazed: np.ndarray | None
    batch_size: int


class CameraResets:
    """How often one camera's tracks restarted, and why; ``record`` every tracked frame."""

    def __init__(self, config: TrackerConfig) -> None:
        self.config = config
        self._counts = TrackerResetCounts()
        self._previous_gap: TrackerReset | None = None  # the last frame's, if a gap reset
        # Most gap resets on consecutive frames (>= EVERY_FRAME_RESETS: every frame reset).
        self.longest_gap_run = 0
        # The frame intervals of gap resets on consecutive frames: their median is the
        # camera's cadence; the largest may be one hole in the recording (split files).
        self._every_frame_gaps_s: list[float] = []

    def record(self, reset: TrackerReset | None, source_changed: bool) -> None:
        """One frame's outcome: ``Tracker.last_reset``, and whether the source changed."""
        run = self._counts.record(reset, source_changed=source_changed)
        self.longest_gap_run = max(self.longest_gap_run, run)
        if reset is not None and reset.reason == GAP and run >= EVERY_FRAME_RESETS:
            if run == EVERY_FRAME_RESETS and self._previous_gap is not None:
                self._every_frame_gaps_s.append(self._previous_gap.interval_s)  # run's first
            self._every_frame_gaps_s.append(reset.interval_s)
        self._previous_gap = reset if reset is not None and reset.reason == GAP else None

    def to_dict(self) -> dict:
        """JSON-ready counts, with the tracker settings they depend on."""
        counts = self._counts.snapshot()
        gaps = self._every_frame_gaps_s
        return {
            "gap": counts.gap,
            "stamp_back": counts.stamp_back,
            "source_changed": counts.source_changed,
            "longest_consecutive_gap_resets": self.longest_gap_run,
            "every_frame_gap_s": round(statistics.median(gaps), 4) if gaps else None,
            "every_frame_gap_max_s": round(max(gaps), 4) if gaps else None,
            "max_gap_s": self.config.max_gap_s,
            "min_hits": self.config.min_hits,
        }


@dataclass
class PipelineStats:
    """Counters and timings of one run."""

    frames: int = 0
    batches: int = 0
    batch_sizes: dict[int, int] = field(default_factory=dict)
    inference_s: float = 0.0
    tracking_s: float = 0.0
    frames_per_topic: dict[str, int] = field(default_factory=dict)
    # Per camera topic, with tracking on (see CameraResets).
    tracker_resets: dict[str, CameraResets] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready copy."""
        return {
            "frames": self.frames,
            "batches": self.batches,
            "batch_sizes": {str(k): v for k, v in sorted(self.batch_sizes.items())},
            "inference_s": round(self.inference_s, 4),
            "tracking_s": round(self.tracking_s, 4),
            "frames_per_topic": dict(sorted(self.frames_per_topic.items())),
            "tracker_resets": {
                topic: resets.to_dict() for topic, resets in sorted(self.tracker_resets.items())
            },
        }


class _BagClock:
    """A settable clock (seconds) for the batcher."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class OfflinePipeline:
    """Push frames in bag order with :meth:`push`; results come out in batch order."""

    def __init__(
        self,
        detector: Any,
        max_batch_size: int = 4,
        max_batch_wait_ms: float = 20.0,
        restore: bool = True,
        tracker_config: TrackerConfig | None = None,
        detect_fn: Callable[[list[np.ndarray]], list[Any]] | None = None,
        publish_threshold: float | None = None,
        class_filter: frozenset[str] | None = None,
        tracking: bool = True,
        max_detections: int | None = None,
    ) -> None:
        self.detector = detector
        # The node's `tracking.enabled`: off, no tracker runs and FrameResult.tracked is None.
        self.tracking = tracking
        # The detector may keep lower scores for the tracker's low stage (tracking/score_gate.py);
        # the raw detections are cut back to this. None: keep what the detector returns.
        self.publish_threshold = publish_threshold
        # As the node's `classes`: other classes reach neither the tracker nor the raw output.
        self.class_filter = class_filter
        # As the node's `max_detections`, applied after the class filter; None: all.
        self.max_detections = max_detections
        self.restore = restore
        self.stats = PipelineStats()
        self._clock = _BagClock()
        self._batcher = FrameBatcher(max_batch_size, max_batch_wait_ms, clock=self._clock)
        self._tracker_config = tracker_config or TrackerConfig()
        self._trackers: dict[str, Tracker] = {}
        self._timelines: dict[str, FrameTimeline] = {}
        self._waiting: set[str] = set()
        self._detect_fn = detect_fn or (lambda images: detector.detect(images, restore=restore))

    def push(self, frame: ImageFrame) -> Iterator[FrameResult]:
        """Offer one frame; yields the results of every batch that became due."""
        # Never backwards (bags merged out of order, a recorder's clock step): a frame waiting
        # since a later time would otherwise never reach its deadline, and finish() would spin.
        self._clock.now = max(self._clock.now, frame.log_time_ns / 1e9)
        yield from self._run_batch(self._batcher.take_ready())
        if frame.topic in self._waiting:
            yield from self._flush()
        self._batcher.put(frame.topic, frame)
        self._waiting.add(frame.topic)
        yield from self._run_batch(self._batcher.take_ready())

    def finish(self) -> Iterator[FrameResult]:
        """Process whatever is still waiting (end of the bag)."""
        while self._waiting:
            yield from self._flush()

    def _flush(self) -> Iterator[FrameResult]:
        # Pretend the batch deadline passed, so the waiting frames go now (offline: no drops).
        real_now = self._clock.now
        self._clock.now = real_now + self._batcher.max_batch_wait_ms / 1000.0 + 1e-6
        batch = self._batcher.take_ready()
        self._clock.now = real_now
        yield from self._run_batch(batch)

    def _run_batch(self, batch: list[tuple[str, ImageFrame]]) -> Iterator[FrameResult]:
        if not batch:
            return
        frames = [frame for _, frame in batch]
        for camera, _ in batch:
            self._waiting.discard(camera)
        started = time.perf_counter()
        results = self._detect_fn([frame.image for frame in frames])
        self.stats.inference_s += time.perf_counter() - started
        if len(results) != len(frames):
            raise RuntimeError(f"detector returned {len(results)} results for {len(frames)} frames")
        self.stats.batches += 1
        self.stats.batch_sizes[len(frames)] = self.stats.batch_sizes.get(len(frames), 0) + 1
        for frame, result in zip(frames, results, strict=True):
            started = time.perf_counter()
            detections = result.detections
            if self.class_filter is not None:
                names = tuple(self.detector.class_names)
                detections = keep_classes(detections, names, self.class_filter)
            detections = detections.strongest(self.max_detections)
            tracked = self._track(frame, detections) if self.tracking else None
            if self.publish_threshold is not None:
                detections = scoring_at_least(detections, self.publish_threshold)
            self.stats.tracking_s += time.perf_counter() - started
            self.stats.frames += 1
            self.stats.frames_per_topic[frame.topic] = (
                self.stats.frames_per_topic.get(frame.topic, 0) + 1
            )
            yield FrameResult(frame, detections, tracked, result.dehazed, len(frames))

    def _track(self, frame: ImageFrame, detections: Any) -> Any:
        """Smooth one frame's detections with its camera's tracker."""
        tracker = self._trackers.get(frame.topic)
        if tracker is None:
            tracker = self._trackers[frame.topic] = Tracker(self._tracker_config)
            self._timelines[frame.topic] = FrameTimeline()
            self.stats.tracker_resets[frame.topic] = CameraResets(self._tracker_config)
        # As the node: an unstamped frame (stamp 0) is timed by its arrival (the log time),
        # so the tracker still predicts motion and resets after max_gap_s; a frame of
        # another frame_id or size restarts the tracks (tracking/frame_timeline.py).
        height, width = frame.image.shape[:2]
        track_time_s, restart = self._timelines[frame.topic].place(
            frame.stamp_ns / 1e9, frame.log_time_ns / 1e9, (frame.frame_id, height, width)
        )
        if restart:
            tracker.reset()
        tracked = tracker.update(detections, track_time_s, image_size=(height, width))
        self.stats.tracker_resets[frame.topic].record(tracker.last_reset, source_changed=restart)
        return tracked
