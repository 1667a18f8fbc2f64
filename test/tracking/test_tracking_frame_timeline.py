"""FrameTimeline: the tracker's time of stamped and unstamped frames, and source restarts."""

from __future__ import annotations

import pytest

from togethernet_ros.tracking.frame_timeline import FrameTimeline

SOURCE = ("cam", 720, 1280)
EPOCH = 1_700_000_000.0  # stamps on the system clock; arrivals on a monotonic one near 5000 s


def test_an_unstamped_frame_is_placed_after_the_last_stamp_by_its_arrival():
    timeline = FrameTimeline()
    assert timeline.place(EPOCH, 5000.0, SOURCE) == (EPOCH, False)
    time_s, restart = timeline.place(0.0, 5000.04, SOURCE)
    assert time_s == pytest.approx(EPOCH + 0.04) and not restart
    assert timeline.place(EPOCH + 0.066, 5000.07, SOURCE) == (EPOCH + 0.066, False)


def test_a_stamp_behind_an_overshooting_estimate_is_not_a_step_back():
    timeline = FrameTimeline()
    timeline.place(EPOCH, 5000.0, SOURCE)
    estimate, _ = timeline.place(0.0, 5000.08, SOURCE)  # delivered late: estimate too far
    time_s, _ = timeline.place(EPOCH + 0.066, 5000.09, SOURCE)
    assert time_s == estimate  # no time passed rather than time reversed
    assert timeline.place(EPOCH + 0.1, 5000.12, SOURCE)[0] == EPOCH + 0.1


def test_a_real_step_back_stays_one():
    timeline = FrameTimeline()
    timeline.place(EPOCH + 60.0, 5000.0, SOURCE)
    timeline.place(0.0, 5000.04, SOURCE)
    assert timeline.place(EPOCH, 5000.07, SOURCE)[0] == EPOCH  # a looping bag: tracker resets


def test_a_camera_that_never_stamps_is_timed_by_arrival():
    timeline = FrameTimeline()
    assert timeline.place(0.0, 5000.0, SOURCE)[0] == 5000.0
    assert timeline.place(0.0, 5000.5, SOURCE)[0] == 5000.5


def test_another_frame_id_or_size_restarts_the_tracks():
    timeline = FrameTimeline()
    assert timeline.source is None
    assert not timeline.place(EPOCH, 1.0, SOURCE)[1]
    assert not timeline.place(EPOCH + 0.1, 1.1, SOURCE)[1]
    assert timeline.place(EPOCH + 0.2, 1.2, ("cam", 360, 640))[1]
    assert timeline.place(EPOCH + 0.3, 1.3, ("other", 360, 640))[1]
    assert timeline.source == ("other", 360, 640)
    assert not timeline.place(EPOCH + 0.4, 1.4, ("other", 360, 640))[1]
