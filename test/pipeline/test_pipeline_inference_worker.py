"""InferenceWorker with real threads and a real (sleeping, computing) detector function."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np
import pytest
from support.wait import wait_for

from togethernet_ros.pipeline import BatchInfo, FrameBatcher, InferenceWorker


@dataclass
class Frame:
    camera: str
    index: int
    sent_at: float = field(default_factory=time.monotonic)
    image: np.ndarray = field(default_factory=lambda: np.full((8, 8), 3, dtype=np.uint8))


def slow_detector(seconds: float):
    """Sleeps like a model would, then returns one real computed value per frame."""

    def detect(frames: list[Frame]) -> list[int]:
        time.sleep(seconds)
        return [int(frame.image.sum()) + frame.index for frame in frames]

    return detect


class Collector:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.results: list[tuple[str, Frame, int, BatchInfo, float]] = []
        self.errors: list[tuple[BaseException, list]] = []

    def on_result(self, camera: str, frame: Frame, result: int, info: BatchInfo) -> None:
        with self.lock:
            self.results.append((camera, frame, result, info, time.monotonic()))

    def on_error(self, error: BaseException, batch: list) -> None:
        with self.lock:
            self.errors.append((error, batch))

    def for_camera(self, camera: str) -> list:
        with self.lock:
            return [r for r in self.results if r[0] == camera]


@pytest.fixture
def no_leftover_threads():
    before = set(threading.enumerate())
    yield
    leftover = [t for t in threading.enumerate() if t not in before]
    assert leftover == [], f"threads left running: {leftover}"


def test_overload_drops_frames_and_batches_across_cameras(no_leftover_threads):
    batcher = FrameBatcher(max_batch_size=3, max_batch_wait_ms=20.0)
    collector = Collector()
    worker = InferenceWorker(slow_detector(0.05), batcher, collector.on_result, collector.on_error)
    worker.start()
    cameras = ("front", "left", "right")
    # Three cameras at ~100 Hz against a detector that manages ~20 batches per second.
    for index in range(80):
        for camera in cameras:
            batcher.put(camera, Frame(camera, index))
        time.sleep(0.01)
    wait_for(lambda: batcher.pending() == 0, 2.0, "the last frames to be processed")
    worker.stop()
    assert not worker.running and collector.errors == []
    counters = batcher.counters()
    for camera in cameras:
        counts = counters[camera]
        results = collector.for_camera(camera)
        assert counts.received == 80
        assert counts.dropped > 20  # far more frames than the detector can take
        assert counts.received == counts.dropped + counts.batched
        assert len(results) == counts.batched
        assert results[-1][1].index == 79  # the newest frame always gets through
        assert all(result == 3 * 64 + frame.index for _, frame, result, _, _ in results)
    sizes = [info.batch_size for _, _, _, info, _ in collector.results]
    assert max(sizes) == 3 and np.mean(sizes) > 2.0
    infos = {info.batch_index: info for _, _, _, info, _ in collector.results}
    assert all(0.045 <= info.inference_time_s < 0.5 for info in infos.values())
    assert worker.batches_processed == len(infos)


def test_silent_camera_does_not_stall_the_others(no_leftover_threads):
    # The deadline (15 ms) is shorter than front's frame period (25 ms): no front frame is lost.
    batcher = FrameBatcher(max_batch_size=4, max_batch_wait_ms=15.0, camera_timeout_s=0.3)
    collector = Collector()
    worker = InferenceWorker(slow_detector(0.002), batcher, collector.on_result, collector.on_error)
    worker.start()
    batcher.put("rear", Frame("rear", 0))  # rear sends once, then goes silent
    for index in range(30):
        batcher.put("front", Frame("front", index))
        time.sleep(0.025)
    wait_for(lambda: len(collector.for_camera("front")) == 30, 2.0, "front results")
    worker.stop()
    delays = [done - frame.sent_at for _, frame, _, _, done in collector.for_camera("front")]
    # While rear counts as active, front waits for the batch deadline (15 ms), then no longer
    # than that plus scheduling slack on a busy 2-core machine.
    waiting = float(np.median(delays[:8]))
    # The lower bound is the behaviour; the upper one only rules out waiting for rear's
    # timeout (0.3 s), with room for a busy 2-core machine.
    assert 0.012 < waiting < 0.15
    assert max(delays) < 0.5
    # Once rear is stale (after 0.3 s) front no longer waits for it at all.
    assert np.median(delays[-8:]) < waiting / 2
    assert batcher.counters()["front"].dropped == 0


def test_detector_errors_are_reported_and_the_worker_keeps_going(no_leftover_threads):
    def flaky(frames: list[Frame]) -> list[int]:
        if any(frame.index == 2 for frame in frames):
            raise RuntimeError("CUDA out of memory")
        if any(frame.index == 4 for frame in frames):
            return []  # wrong number of results
        return [frame.index for frame in frames]

    batcher = FrameBatcher(max_batch_size=1, max_batch_wait_ms=0.0)
    collector = Collector()
    worker = InferenceWorker(flaky, batcher, collector.on_result, collector.on_error)
    worker.start()
    for index in range(7):
        batcher.put("front", Frame("front", index))
        wait_for(lambda: batcher.pending() == 0, 2.0, f"frame {index} to be taken")
        time.sleep(0.01)
    wait_for(lambda: len(collector.results) + len(collector.errors) == 7, 2.0, "all frames")
    worker.stop()
    assert [r[2] for r in collector.results] == [0, 1, 3, 5, 6]
    messages = [str(error) for error, _ in collector.errors]
    assert messages[0] == "CUDA out of memory"
    assert messages[1] == "detector_fn returned 0 results for a batch of 1"
    assert collector.errors[0][1][0][1].index == 2  # the failed batch is handed over
    assert worker.errors == 2


def test_failing_result_callback_does_not_stop_other_cameras(no_leftover_threads):
    delivered = []
    errors = []

    def on_result(camera: str, frame: Frame, result: int, info: BatchInfo) -> None:
        if camera == "broken":
            raise ValueError("publisher gone")
        delivered.append(camera)

    batcher = FrameBatcher(max_batch_size=2, max_batch_wait_ms=10.0)
    worker = InferenceWorker(
        slow_detector(0.0), batcher, on_result, lambda e, b: errors.append((str(e), b[0][0]))
    )
    worker.start()
    batcher.put("broken", Frame("broken", 0))
    batcher.put("front", Frame("front", 0))
    wait_for(lambda: delivered and errors, 2.0, "one result and one error")
    worker.stop()
    assert delivered == ["front"] and errors == [("publisher gone", "broken")]


def test_stop_is_prompt_waits_for_the_running_batch_and_leaves_no_threads(no_leftover_threads):
    batcher = FrameBatcher(max_batch_size=1, max_batch_wait_ms=0.0)
    collector = Collector()
    worker = InferenceWorker(slow_detector(0.3), batcher, collector.on_result, poll_interval_s=5.0)
    worker.stop()  # before start: no-op
    worker.start()
    assert worker.running
    with pytest.raises(RuntimeError, match="only be started once"):
        worker.start()
    batcher.put("front", Frame("front", 0))
    wait_for(lambda: batcher.pending() == 0, 1.0, "the frame to be taken")
    start = time.monotonic()
    worker.stop()
    # The in-flight batch finishes and is delivered; the idle wait (5 s poll) is interrupted.
    assert time.monotonic() - start < 1.0
    assert len(collector.results) == 1
    assert not worker.running
    worker.stop()  # idempotent


def test_stop_times_out_on_a_hung_detector():
    release = threading.Event()
    batcher = FrameBatcher(max_batch_size=1, max_batch_wait_ms=0.0)
    worker = InferenceWorker(
        lambda frames: [release.wait(5.0) for _ in frames], batcher, lambda *args: None
    )
    worker.start()
    batcher.put("front", Frame("front", 0))
    wait_for(lambda: batcher.pending() == 0, 1.0, "the frame to be taken")
    with pytest.raises(TimeoutError, match=r"did not stop within 0\.1 s"):
        worker.stop(timeout_s=0.1)
    release.set()
    worker.stop()
    assert not worker.running


def _prepared(entries: list[tuple[str, int, str]]) -> list[tuple[str, int]]:
    """(camera, frame index) of each preparation so far, read safely from another thread."""
    return [entry[:2] for entry in list(entries)]


def test_waiting_frames_are_prepared_on_the_worker_thread_and_a_failure_is_harmless(
    no_leftover_threads,
):
    prepared: list[tuple[str, int, str]] = []
    detected: list[list[str]] = []

    def prepare(camera: str, frame: Frame) -> bool:
        prepared.append((camera, frame.index, threading.current_thread().name))
        if camera == "rear":
            raise ValueError("cannot upload")
        return camera != "left"  # a backend that prepares nothing returns False

    def detect(frames: list[Frame]) -> list[int]:
        detected.append([frame.camera for frame in frames])
        return [frame.index for frame in frames]

    batcher = FrameBatcher(max_batch_size=4, max_batch_wait_ms=5000.0)
    collector = Collector()
    worker = InferenceWorker(detect, batcher, collector.on_result, prepare_fn=prepare)
    worker.start()
    for camera in ("front", "left", "rear"):
        batcher.put(camera, Frame(camera, 0))
    wait_for(lambda: len(collector.results) == 3, 30.0, "the first batch")
    # Every camera is active now: the second round waits for all three, preparing the first two.
    # Each next frame only once the worker prepared the previous one: fixed sleeps let a late
    # worker see left and front together on a loaded machine (left then never prepared).
    batcher.put("rear", Frame("rear", 1))
    wait_for(lambda: ("rear", 1) in _prepared(prepared), 30.0, "rear's preparation")
    batcher.put("left", Frame("left", 1))
    wait_for(lambda: ("left", 1) in _prepared(prepared), 30.0, "left's preparation")
    batcher.put("front", Frame("front", 1))
    wait_for(lambda: len(collector.results) == 6, 30.0, "the second batch")
    worker.stop()
    second_round = [entry[:2] for entry in prepared if entry[1] == 1]
    assert second_round == [("rear", 1), ("left", 1)]  # front completed the batch
    assert {entry[2] for entry in prepared} == {"togethernet-inference"}
    assert detected[-1] == ["rear", "left", "front"]  # the failed preparation lost nothing
    # Counted: only the preparations that returned True (front in round one, if it waited).
    assert worker.frames_prepared == sum(
        1 for camera, _, _ in prepared if camera not in ("left", "rear")
    )
    assert collector.errors == []
