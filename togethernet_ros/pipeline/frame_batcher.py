"""Cross-camera frame batching: newest frame per camera wins, batches form by deadline.

Subscription callbacks call ``put`` (never blocks on inference); the inference worker calls
``next_batch``. Each camera has one waiting slot, so latency stays bounded under overload and
every overwritten frame is counted as dropped. A batch is released as soon as

- every *active* camera (one that delivered a frame within ``camera_timeout_s``) whose next
  frame is due before the deadline has a frame waiting, or
- ``max_batch_size`` frames are waiting, or
- the oldest waiting frame has waited ``max_batch_wait_ms`` (the deadline),

so a camera that went silent stops being waited for after ``camera_timeout_s`` and, before that,
delays the others by at most ``max_batch_wait_ms``. When a camera's next frame is due is learned
from its rhythm (pipeline/arrival_forecast.py): a camera out of phase with the waiting frames,
whose next frame cannot arrive before the deadline, is not waited for, and one whose frame is
overdue (lost on the way) stops being waited for at the end of its jitter window. With
``forecast_arrivals=False``, or while a camera's rhythm is unknown, every active camera is waited
for up to the deadline. Frames leave oldest first (by when their camera's slot started waiting).

While ``next_batch`` waits, it can hand each newly waiting frame to ``on_waiting`` once, so the
caller pre-processes it (e.g. uploads and letterboxes it on the GPU) instead of sitting idle
until the batch is due.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from togethernet_ros.pipeline.arrival_forecast import ArrivalForecast


@dataclass(frozen=True)
class CameraCounters:
    """Per-camera frame counts since the batcher was created."""

    received: int
    dropped: int
    """Frames that never reached inference: overwritten by a newer one, still waiting when the
    batcher was closed, or offered after it was closed."""
    batched: int


@dataclass
class _Slot:
    frame: Any
    arrived_at: float
    handed_out: bool = False
    """Whether ``frame`` went to ``next_batch``'s ``on_waiting`` already."""


class FrameBatcher:
    """Thread-safe depth-1-per-camera frame store that releases cross-camera batches.

    ``clock`` (seconds, monotonic) decides frame ages and camera activity, so tests can drive
    time by hand; ``next_batch``'s own timeout is always real time.
    """

    def __init__(
        self,
        max_batch_size: int,
        max_batch_wait_ms: float,
        clock: Callable[[], float] = time.monotonic,
        camera_timeout_s: float = 1.0,
        forecast_arrivals: bool = True,
    ) -> None:
        if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int):
            raise ValueError(f"max_batch_size must be an integer, got {max_batch_size!r}")
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if not (math.isfinite(max_batch_wait_ms) and max_batch_wait_ms >= 0):
            raise ValueError(
                f"max_batch_wait_ms must be finite and >= 0, got {max_batch_wait_ms!r}"
            )
        if not (math.isfinite(camera_timeout_s) and camera_timeout_s > 0):
            raise ValueError(f"camera_timeout_s must be finite and > 0, got {camera_timeout_s!r}")
        self._max_batch_size = max_batch_size
        self._max_wait_s = max_batch_wait_ms / 1000.0
        self._camera_timeout_s = float(camera_timeout_s)
        self._clock = clock
        self._condition = threading.Condition()
        self._slots: dict[str, _Slot] = {}
        self._last_seen: dict[str, float] = {}
        self._received: dict[str, int] = {}
        self._dropped: dict[str, int] = {}
        self._batched: dict[str, int] = {}
        self._closed = False
        self._forecast = (
            ArrivalForecast(max_interval_s=self._camera_timeout_s) if forecast_arrivals else None
        )

    @property
    def max_batch_size(self) -> int:
        """Most frames per batch."""
        return self._max_batch_size

    @property
    def max_batch_wait_ms(self) -> float:
        """Longest time a waiting frame holds back a batch for other cameras."""
        return self._max_wait_s * 1000.0

    def put(self, camera_id: str, frame: Any) -> bool:
        """Offer a camera's newest frame; True when a frame was dropped by it.

        That is the waiting frame it overwrote, or, once the batcher is closed, the offered frame
        itself (a subscription callback may still deliver one while the node deactivates).
        An overwrite keeps the slot's place and age: the deadline counts from when the camera
        started waiting, so a fast camera cannot postpone its own batch forever.
        """
        with self._condition:
            if self._closed:
                self._received[camera_id] = self._received.get(camera_id, 0) + 1
                self._dropped[camera_id] = self._dropped.get(camera_id, 0) + 1
                return True
            now = self._clock()
            slot = self._slots.get(camera_id)
            if slot is None:
                self._slots[camera_id] = _Slot(frame, now)
            else:
                slot.frame = frame
                slot.handed_out = False
                self._dropped[camera_id] = self._dropped.get(camera_id, 0) + 1
            self._last_seen[camera_id] = now
            if self._forecast is not None:
                self._forecast.record(camera_id, now)
            self._received[camera_id] = self._received.get(camera_id, 0) + 1
            self._condition.notify_all()
            return slot is not None

    def next_batch(
        self,
        timeout_s: float | None = None,
        cancel: threading.Event | None = None,
        on_waiting: Callable[[str, Any], None] | None = None,
    ) -> list[tuple[str, Any]]:
        """Wait up to ``timeout_s`` real seconds (None: forever) for a batch.

        Returns [] on timeout, after ``close``, or once ``cancel`` is set (call ``wake`` after
        setting it so a waiting call notices at once). While the batch is not due, each frame
        that starts waiting (or replaces a waiting one) is passed once to
        ``on_waiting(camera_id, frame)``, called without the lock held so cameras keep
        delivering; its exceptions propagate to the caller.
        """
        give_up_at = None if timeout_s is None else time.monotonic() + max(0.0, timeout_s)
        with self._condition:
            while not self._closed and not (cancel is not None and cancel.is_set()):
                now = self._clock()
                due_at = self._due_at(now)
                if due_at is not None and due_at <= now:
                    return self._take()
                if on_waiting is not None and self._hand_out_waiting(on_waiting):
                    continue  # that took time: the batch may be due now
                wait = None if due_at is None else due_at - now
                if give_up_at is not None:
                    remaining = give_up_at - time.monotonic()
                    if remaining <= 0:
                        return []
                    wait = remaining if wait is None else min(wait, remaining)
                # A wake-up without a batch just re-checks: the deadline may have passed.
                self._condition.wait(wait)
            return []

    def _hand_out_waiting(self, on_waiting: Callable[[str, Any], None]) -> bool:
        """Call ``on_waiting`` for the frames not handed out yet; False if there were none.

        Called with the lock held; releases it during the calls.
        """
        fresh = [(camera, slot) for camera, slot in self._slots.items() if not slot.handed_out]
        if not fresh:
            return False
        for _, slot in fresh:
            slot.handed_out = True
        frames = [(camera, slot.frame) for camera, slot in fresh]
        self._condition.release()
        try:
            for camera, frame in frames:
                on_waiting(camera, frame)
        finally:
            self._condition.acquire()
        return True

    def take_ready(self) -> list[tuple[str, Any]]:
        """The batch that is due right now without waiting, or []."""
        with self._condition:
            now = self._clock()
            return self._take() if self._is_ready(now) else []

    def wake(self) -> None:
        """Make waiting ``next_batch`` calls re-check their ``cancel`` event now."""
        with self._condition:
            self._condition.notify_all()

    def close(self) -> list[tuple[str, Any]]:
        """Wake every waiter; ``next_batch`` returns [] from now on.

        Returns the frames that were still waiting, counted as dropped: the caller learns what
        never reached inference instead of losing it without a trace.
        """
        with self._condition:
            self._closed = True
            left = [(camera, slot.frame) for camera, slot in self._slots.items()]
            self._slots.clear()
            for camera, _ in left:
                self._dropped[camera] = self._dropped.get(camera, 0) + 1
            self._condition.notify_all()
            return left

    @property
    def closed(self) -> bool:
        """Whether ``close`` was called."""
        return self._closed

    def pending(self) -> int:
        """Frames waiting now (at most one per camera)."""
        with self._condition:
            return len(self._slots)

    def active_cameras(self) -> list[str]:
        """Cameras that delivered a frame within ``camera_timeout_s``."""
        with self._condition:
            return sorted(self._active(self._clock()))

    def arrival_rhythm(self, camera_id: str) -> tuple[float, float] | None:
        """``(period_s, jitter_window_s)`` the batcher has learned for a camera, or None (no
        forecast, a camera silent for ``camera_timeout_s``, too few frames since it started or
        paused, or too irregular to forecast)."""
        with self._condition:
            if self._forecast is None or camera_id not in self._active(self._clock()):
                return None
            return self._forecast.rhythm(camera_id)

    def counters(self) -> dict[str, CameraCounters]:
        """Snapshot of every camera's received / dropped / batched counts."""
        with self._condition:
            return {
                camera: CameraCounters(
                    received=self._received.get(camera, 0),
                    dropped=self._dropped.get(camera, 0),
                    batched=self._batched.get(camera, 0),
                )
                for camera in sorted(self._received)
            }

    def _active(self, now: float) -> set[str]:
        return {c for c, seen in self._last_seen.items() if now - seen <= self._camera_timeout_s}

    def _is_ready(self, now: float) -> bool:
        due_at = self._due_at(now)
        return due_at is not None and due_at <= now

    def _due_at(self, now: float) -> float | None:
        """When the waiting frames' batch is due unless another frame comes first: ``now`` or
        earlier once it is due, None while no frame waits. That is the deadline, or an awaited
        camera's frame turning overdue before it, or now when no camera is worth waiting for."""
        if not self._slots:
            return None
        if len(self._slots) >= self._max_batch_size:
            return now
        deadline = next(iter(self._slots.values())).arrived_at + self._max_wait_s
        if now >= deadline:
            return deadline
        awaited = self._awaited(now, deadline)
        return min([deadline, *awaited.values()]) if awaited else now

    def _awaited(self, now: float, deadline: float) -> dict[str, float]:
        """Active cameras without a waiting frame worth waiting for, each with the time after
        which its frame counts as lost (``inf`` while its rhythm is unknown)."""
        awaited = {}
        for camera in self._active(now) - self._slots.keys():
            slot = None if self._forecast is None else self._forecast.next_slot(camera, now)
            if slot is None:
                awaited[camera] = math.inf
            elif slot[0] <= deadline:
                awaited[camera] = slot[1]
        return awaited

    def _take(self) -> list[tuple[str, Any]]:
        cameras = list(self._slots)[: self._max_batch_size]
        batch = []
        for camera in cameras:
            batch.append((camera, self._slots.pop(camera).frame))
            self._batched[camera] = self._batched.get(camera, 0) + 1
        return batch
