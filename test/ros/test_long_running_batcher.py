"""Frames at a stop are accounted for: the batcher and worker pieces of a long-running node.

A node deactivated and reactivated many times stops its batcher and inference thread each time;
whatever frame is in the way then must be counted (dropped) or finished, never lost unseen.
Plain Python (no ROS).
"""

from __future__ import annotations

import threading

from support.wait import wait_for

from togethernet_ros.pipeline.frame_batcher import FrameBatcher
from togethernet_ros.pipeline.inference_worker import InferenceWorker


def test_close_hands_back_the_waiting_frames_and_counts_them_dropped():
    batcher = FrameBatcher(max_batch_size=4, max_batch_wait_ms=10_000.0)
    batcher.put("front", "f0")
    batcher.put("rear", "r0")
    assert batcher.close() == [("front", "f0"), ("rear", "r0")]
    assert batcher.pending() == 0
    assert batcher.counters()["front"].dropped == 1
    assert batcher.counters()["rear"].dropped == 1


def test_a_frame_offered_after_close_is_reported_as_dropped():
    batcher = FrameBatcher(max_batch_size=1, max_batch_wait_ms=0.0)
    batcher.close()
    assert batcher.put("front", "late") is True
    assert batcher.pending() == 0
    counters = batcher.counters()["front"]
    assert (counters.received, counters.dropped, counters.batched) == (1, 1, 0)
    assert batcher.next_batch(timeout_s=0.0) == []


class _StopArrivesAfterTheTake(FrameBatcher):
    """Fault injection: the stop request lands right after a batch was taken."""

    stop_event: threading.Event | None = None

    def next_batch(self, timeout_s=None, cancel=None, on_waiting=None):
        batch = super().next_batch(timeout_s, cancel=cancel, on_waiting=on_waiting)
        if batch and cancel is not None:
            self.stop_event = cancel
            cancel.set()
        return batch


def test_a_batch_taken_as_the_stop_arrives_is_finished_not_lost():
    batcher = _StopArrivesAfterTheTake(max_batch_size=1, max_batch_wait_ms=0.0)
    delivered: list[tuple[str, str]] = []
    worker = InferenceWorker(
        lambda frames: list(frames),
        batcher,
        lambda camera, frame, result, info: delivered.append((camera, result)),
    )
    worker.start()
    batcher.put("front", "f0")
    wait_for(lambda: batcher.stop_event is not None, 10.0, "the batch to be taken")
    worker.stop(timeout_s=10.0)
    assert delivered == [("front", "f0")]
    assert worker.batches_processed == 1
