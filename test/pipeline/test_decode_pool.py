"""DecodePool: per-camera order, newest frame wins, errors reported, several cameras at once."""

from __future__ import annotations

import threading
import time

import pytest

from togethernet_ros.pipeline.decode_pool import DecodePool, resolve_decode_threads


class Recorder:
    """What the pool did: finished work per key, replaced items, errors."""

    def __init__(self, work=None) -> None:
        self.lock = threading.Lock()
        self.done: list[tuple[str, int]] = []
        self.replaced: list[tuple[str, int]] = []
        self.errors: list[tuple[str, str]] = []
        self._work = work

    def work(self, key, item) -> None:
        if self._work is not None:
            self._work(key, item)
        with self.lock:
            self.done.append((key, item))

    def on_replaced(self, key, item) -> None:
        with self.lock:
            self.replaced.append((key, item))

    def on_error(self, key, error) -> None:
        with self.lock:
            self.errors.append((key, str(error)))


def wait_until(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_a_newer_frame_replaces_the_one_waiting_and_each_camera_keeps_its_order():
    release = threading.Event()
    recorder = Recorder(work=lambda key, item: release.wait(10) if item == 0 else None)
    pool = DecodePool(2, recorder.work, recorder.on_replaced, recorder.on_error)
    pool.submit("front", 0)  # runs, and blocks until released
    wait_until(lambda: not pool._ready and "front" in pool._running)
    for item in (1, 2, 3):  # 1 and 2 wait in turn and are replaced by the newest
        pool.submit("front", item)
    assert recorder.replaced == [("front", 1), ("front", 2)]
    release.set()
    wait_until(lambda: len(recorder.done) == 2)
    assert recorder.done == [("front", 0), ("front", 3)]
    assert pool.stop() == []


def test_one_camera_never_decodes_on_two_threads_at_once():
    active: dict[str, int] = {"front": 0}
    overlaps = []
    lock = threading.Lock()

    def work(key, item):
        with lock:
            active[key] += 1
            overlaps.append(active[key])
        time.sleep(0.002)
        with lock:
            active[key] -= 1

    recorder = Recorder(work=work)
    pool = DecodePool(4, recorder.work, recorder.on_replaced, recorder.on_error)
    for item in range(40):
        pool.submit("front", item)
        time.sleep(0.0005)
    wait_until(lambda: len(recorder.done) + len(recorder.replaced) == 40)
    pool.stop()
    assert max(overlaps) == 1
    finished = [item for _, item in recorder.done]
    assert finished == sorted(finished) and finished[-1] == 39


def test_two_cameras_decode_at_the_same_time_each_in_its_own_order():
    both_running = threading.Barrier(2, timeout=10.0)

    def work(key, item):
        if item == 0:
            both_running.wait()  # returns only once the other camera's first decode runs too

    recorder = Recorder(work=work)
    pool = DecodePool(2, recorder.work, recorder.on_replaced, recorder.on_error)
    for item in range(3):
        pool.submit("front", item)
        pool.submit("rear", item)
        wait_until(lambda: not pool._waiting)  # each frame started: none replaced
    wait_until(lambda: len(recorder.done) == 6)
    pool.stop()
    assert recorder.errors == [] and recorder.replaced == []
    for camera in ("front", "rear"):
        assert [item for key, item in recorder.done if key == camera] == [0, 1, 2]


def test_an_error_is_reported_and_the_thread_goes_on():
    def work(key, item):
        if item == "corrupt":
            raise ValueError("not a JPEG")

    recorder = Recorder(work=work)
    pool = DecodePool(1, recorder.work, recorder.on_replaced, recorder.on_error)
    pool.submit("rear", "corrupt")
    wait_until(lambda: recorder.errors)
    pool.submit("rear", "good")
    wait_until(lambda: recorder.done)
    pool.stop()
    assert recorder.errors == [("rear", "not a JPEG")]
    assert recorder.done == [("rear", "good")]


def test_a_report_that_fails_costs_neither_the_thread_nor_the_camera(caplog):
    def work(key, item):
        if item == "corrupt":
            raise ValueError("not a JPEG")

    def failing_report(key, error):
        raise RuntimeError("diagnostics gone")

    recorder = Recorder(work=work)
    pool = DecodePool(1, recorder.work, recorder.on_replaced, failing_report)
    pool.submit("rear", "corrupt")
    wait_until(lambda: "reporting a decode failure" in caplog.text)
    pool.submit("rear", "good")  # the camera still decodes, on the same one thread
    wait_until(lambda: recorder.done)
    pool.stop()
    assert recorder.done == [("rear", "good")]


def test_stop_returns_frames_never_started_and_later_ones_are_reported_replaced():
    release = threading.Event()
    recorder = Recorder(work=lambda key, item: release.wait(10))
    pool = DecodePool(1, recorder.work, recorder.on_replaced, recorder.on_error)
    pool.submit("a", 1)
    wait_until(lambda: "a" in pool._running)
    pool.submit("b", 2)  # waits: the only thread is busy
    threading.Timer(0.05, release.set).start()
    assert pool.stop() == [("b", 2)]
    assert recorder.done == [("a", 1)]  # the decode under way finished
    pool.submit("a", 3)
    assert recorder.replaced == [("a", 3)]
    assert not any(thread.is_alive() for thread in pool._threads)


def test_stop_returns_waiting_frames_and_names_a_thread_stuck_in_its_work():
    release = threading.Event()
    recorder = Recorder(work=lambda key, item: release.wait(10))
    pool = DecodePool(1, recorder.work, recorder.on_replaced, recorder.on_error, name="jpeg")
    pool.submit("a", 1)
    wait_until(lambda: "a" in pool._running)
    pool.submit("b", 2)
    began = time.monotonic()
    assert pool.stop(timeout_s=0.05) == [("b", 2)]  # returned, not lost in an exception
    assert time.monotonic() - began < 1.0
    assert pool.stuck_threads == ["jpeg_0"]
    release.set()
    wait_until(lambda: not pool.stuck_threads)
    assert recorder.done == [("a", 1)]


def test_zero_threads_is_refused():
    with pytest.raises(ValueError, match="threads must be at least 1, got 0"):
        DecodePool(0, print, print, print)


@pytest.mark.parametrize(
    ("requested", "compressed", "cpus", "expected"),
    [
        (-1, 4, 16, 4),  # auto: one per compressed camera
        (-1, 4, 2, 2),  # ... at most one per core
        (-1, 1, 1, 1),
        (-1, 2, None, 1),  # os.cpu_count() may not know
        (-1, 0, 16, 0),  # raw cameras only: no thread
        (3, 0, 16, 0),
        (0, 4, 16, 0),  # 0: decode in the subscription callback
        (6, 2, 4, 6),  # as asked
    ],
)
def test_decode_threads_resolve(requested, compressed, cpus, expected):
    assert resolve_decode_threads(requested, compressed, cpus) == expected


def test_decode_threads_below_auto_are_refused():
    with pytest.raises(
        ValueError, match=r"decode_threads must be -1 \(auto\) or at least 0, got -2"
    ):
        resolve_decode_threads(-2, 1, 4)
