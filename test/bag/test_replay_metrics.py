"""Replay figures from plain send/receive records: matching, loss and rates, checked by hand."""

from __future__ import annotations

import pytest

from togethernet_ros.bag.replay_metrics import (
    ReceivedOutput,
    SentFrame,
    latency_series,
    replay_metrics,
)

CAM = "/cam_front/image_raw"
OUT = "/cam_front/detections"


def test_repeated_stamps_count_every_frame_and_match_the_latest_send():
    # A looping bag (stamps 1, 2, 1, 2) at 10 Hz, 5 ms latency, every frame back.
    sent = [SentFrame(CAM, s, 0.1 * i) for i, s in enumerate([1, 2, 1, 2])]
    received = [ReceivedOutput(OUT, s, 0.1 * i + 0.005) for i, s in enumerate([1, 2, 1, 2])]
    camera = replay_metrics(sent, received)["cameras"][CAM]
    assert (camera["sent"], camera["received"], camera["dropped"]) == (4, 4, 0)
    assert camera["latency_ms"]["count"] == 4
    assert camera["latency_ms"]["max"] == pytest.approx(5.0)
    assert camera["repeated_stamp_frames"] == 2
    _, latencies = latency_series(sent, received)[CAM]
    assert latencies == pytest.approx([5.0] * 4)  # not 105 / 205 ms for the second loop


def test_zero_stamps_with_newest_frame_wins_drops():
    # Stamp 0 throughout; the node dropped frames 0 and 1 (frame 2 superseded them) and frame 3.
    sent = [SentFrame(CAM, 0, 0.1 * i) for i in range(5)]
    received = [ReceivedOutput(OUT, 0, 0.207), ReceivedOutput(OUT, 0, 0.409)]
    overall = replay_metrics(sent, received)["overall"]
    assert (overall["sent"], overall["received"], overall["dropped"]) == (5, 2, 3)
    assert overall["latency_ms"]["p50"] == pytest.approx(8.0)  # 7 and 9 ms, not 207 / 409


def test_outputs_of_an_earlier_trial_are_not_matched():
    sent = [SentFrame(CAM, 5, 1.0)]
    stale = ReceivedOutput(OUT, 5, 0.9)  # arrived before this frame was sent
    metrics = replay_metrics(sent, [stale, ReceivedOutput(OUT, 5, 1.01)])
    assert metrics["cameras"][CAM]["latency_ms"]["max"] == pytest.approx(10.0)
    assert replay_metrics(sent, [stale])["overall"]["received"] == 0


def test_throughput_is_the_output_rate_of_each_camera_added():
    # Two 10 Hz cameras sharing stamps, 6 frames each, 4 ms latency: 20 frames/s.
    side = "/cam_side/image_raw"
    sent = [SentFrame(t, i, 0.1 * i) for i in range(6) for t in (CAM, side)]
    received = [
        ReceivedOutput(f"/{t.split('/')[1]}/detections", i, 0.1 * i + 0.004)
        for i in range(6)
        for t in (CAM, side)
    ]
    metrics = replay_metrics(sent, received)
    assert metrics["overall"]["throughput_fps"] == pytest.approx(20.0)  # not 12 / 0.504 = 23.8
    assert metrics["overall"]["send_rate_fps"] == pytest.approx(20.0)
    for camera in metrics["cameras"].values():
        assert camera["latency_ms"]["max"] == pytest.approx(4.0)
        assert camera["received"] == 6


def test_zero_stamps_with_latency_above_the_frame_period_match_their_own_frames():
    # Stamp 0 at 10 Hz, every frame back 150 ms later: each output arrives after the next frame
    # was sent, which a forward match took, shifting every pair by one frame and losing one.
    sent = [SentFrame(CAM, 0, 0.1 * i) for i in range(6)]
    received = [ReceivedOutput(OUT, 0, 0.1 * i + 0.15) for i in range(6)]
    overall = replay_metrics(sent, received)["overall"]
    assert (overall["sent"], overall["received"], overall["dropped"]) == (6, 6, 0)
    assert overall["latency_ms"]["min"] == pytest.approx(150.0)  # not 50 ms
    assert overall["latency_ms"]["max"] == pytest.approx(150.0)
