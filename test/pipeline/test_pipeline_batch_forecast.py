"""FrameBatcher with its arrival forecast: wait only for cameras whose next frame can make it."""

from __future__ import annotations

import time

import pytest

from togethernet_ros.pipeline import FrameBatcher

PERIOD = 1 / 30


class ManualClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def learn_rhythm(batcher, clock, offsets_s: dict[str, float], frames: int = 6) -> None:
    """Feed ``frames`` periods of every camera at its offset within the period, taking batches."""
    start = clock.now
    for k in range(frames):
        for camera, offset in sorted(offsets_s.items(), key=lambda item: item[1]):
            clock.now = start + k * PERIOD + offset
            batcher.put(camera, f"{camera}{k}")
            batcher.take_ready()
    clock.now = start + frames * PERIOD
    # A frame still waiting for the other camera is long past its deadline by now.
    batcher.take_ready()


def make(forecast: bool, max_batch_wait_ms: float = 10.0):
    clock = ManualClock()
    return FrameBatcher(4, max_batch_wait_ms, clock, forecast_arrivals=forecast), clock


@pytest.mark.parametrize("forecast", [True, False])
def test_a_camera_out_of_phase_is_not_waited_for(forecast):
    batcher, clock = make(forecast)
    learn_rhythm(batcher, clock, {"front": 0.0, "rear": PERIOD / 2})  # rear 16.7 ms later
    batcher.put("front", "next")
    # rear's next frame is due 16.7 ms on, after the 10 ms deadline: waiting cannot catch it.
    assert batcher.take_ready() == ([("front", "next")] if forecast else [])
    if not forecast:  # every active camera is waited for, up to the deadline
        clock.now += 0.010
        assert batcher.take_ready() == [("front", "next")]


def test_a_camera_due_before_the_deadline_is_waited_for():
    batcher, clock = make(True)
    learn_rhythm(batcher, clock, {"front": 0.0, "rear": 0.003})  # triggered together
    batcher.put("front", "next")
    assert batcher.take_ready() == []
    clock.now += 0.003
    batcher.put("rear", "next")
    assert batcher.take_ready() == [("front", "next"), ("rear", "next")]


def test_an_overdue_camera_stops_being_waited_for_at_the_end_of_its_window():
    batcher, clock = make(True, max_batch_wait_ms=20.0)
    learn_rhythm(batcher, clock, {"front": 0.0, "rear": 0.003})
    batcher.put("front", "next")
    clock.now += 0.0035  # rear's slot is 3 ms ± 1 ms: not overdue yet
    assert batcher.take_ready() == []
    clock.now += 0.001  # 4.5 ms: its frame is lost; the next is a period away
    assert batcher.take_ready() == [("front", "next")]


def test_a_camera_with_no_rhythm_yet_is_waited_for_up_to_the_deadline():
    batcher, clock = make(True)
    learn_rhythm(batcher, clock, {"front": 0.0}, frames=6)
    batcher.put("rear", "r0")  # a new camera: one frame, no rhythm
    clock.now += 0.011
    assert batcher.take_ready() == [("rear", "r0")]  # front's frame was due and lost
    batcher.put("front", "next")
    assert batcher.take_ready() == []
    clock.now += 0.010
    assert batcher.take_ready() == [("front", "next")]


def test_next_batch_returns_when_the_awaited_frame_is_overdue_not_at_the_deadline():
    # Real time: the worker must wake at the end of the awaited camera's jitter window (~10 ms
    # after the waiting frame), not sleep until the 150 ms deadline. Long periods leave room for
    # a busy machine's sleep jitter.
    period, front_after_rear = 0.2, 0.01
    batcher = FrameBatcher(4, max_batch_wait_ms=150.0)
    start = time.monotonic()
    for k in range(6):
        for camera, offset in (("rear", 0.0), ("front", front_after_rear)):
            time.sleep(max(0.0, start + k * period + offset - time.monotonic()))
            batcher.put(camera, f"{camera}{k}")
            while batcher.take_ready():
                pass
    assert batcher.pending() == 0
    time.sleep(max(0.0, start + 6 * period - time.monotonic()))
    batcher.put("rear", "next")  # front's next frame never comes
    began = time.monotonic()
    assert batcher.next_batch(5.0) == [("rear", "next")]
    assert time.monotonic() - began < 0.12  # the deadline is 150 ms


def test_a_camera_whose_jitter_window_reaches_the_deadline_is_waited_for():
    batcher, clock = make(True, max_batch_wait_ms=10.0)
    # rear's next frame is due 10.5 ms after front's, ± 1 ms: it may still make the deadline.
    learn_rhythm(batcher, clock, {"front": 0.0, "rear": 0.0105})
    batcher.put("front", "next")
    assert batcher.take_ready() == []
    clock.now += 0.0095
    batcher.put("rear", "next")
    assert batcher.take_ready() == [("front", "next"), ("rear", "next")]


def test_one_late_frame_does_not_split_the_next_on_time_batch():
    batcher, clock = make(True, max_batch_wait_ms=1.0)
    start = clock.now
    for k in range(12):
        late = 0.004 if k == 8 else 0.0  # rear's frame 8 is 4 ms late, then on time again
        for camera, offset in (("front", 0.0), ("rear", 0.0005 + late)):
            clock.now = start + k * PERIOD + offset
            batcher.put(camera, f"{camera}{k}")
            batch = batcher.take_ready()
            if k == 9 and camera == "front":
                assert batch == []  # rear's frame 9 is due in 0.5 ms: wait for it
            if k == 9 and camera == "rear":
                assert batch == [("front", "front9"), ("rear", "rear9")]
        clock.now = start + k * PERIOD + 0.010
        batcher.take_ready()  # frame 8 of front went alone at its deadline


def test_the_rhythm_is_reported_only_while_the_camera_is_active():
    batcher, clock = make(True)
    assert batcher.arrival_rhythm("front") is None  # never seen
    learn_rhythm(batcher, clock, {"front": 0.0})
    period, window = batcher.arrival_rhythm("front")
    assert period == pytest.approx(PERIOD) and window == pytest.approx(0.001)
    clock.now += 1.5  # silent for longer than camera_timeout_s: not what it expects any more
    assert batcher.arrival_rhythm("front") is None
    assert make(False)[0].arrival_rhythm("front") is None
