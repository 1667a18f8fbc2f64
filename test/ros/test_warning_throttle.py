"""WarningThrottle: once per period and key, each key on its own."""

from __future__ import annotations

from togethernet_ros.ros.warning_throttle import WarningThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_once_per_period_for_each_key():
    clock = Clock()
    throttle = WarningThrottle(5.0, clock=clock)
    assert throttle.due("/cam_a")
    assert not throttle.due("/cam_a")
    assert throttle.due("/cam_b")  # another camera is named too
    clock.now += 4.9
    assert not throttle.due("/cam_a")
    clock.now += 0.1
    assert throttle.due("/cam_a") and not throttle.due("/cam_a")
    assert throttle.due(("inference error", ("/cam_a", "/cam_b")))
