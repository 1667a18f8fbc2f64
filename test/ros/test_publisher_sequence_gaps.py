"""Frames missed before the node, from gaps in the publisher's sequence numbers."""

from __future__ import annotations

from togethernet_ros.ros.publisher_sequence_gaps import PublisherSequenceGaps


def test_gaps_between_taken_frames_are_the_frames_missed():
    gaps = PublisherSequenceGaps()
    assert [gaps.observe(number) for number in (41, 42, 44, 45, 50)] == [0, 0, 1, 0, 4]
    assert gaps.missed == 5


def test_the_first_frame_seen_counts_nothing_missed_whatever_its_number():
    # The node subscribed after the camera had sent 500 frames: those were never its to miss.
    gaps = PublisherSequenceGaps()
    assert gaps.observe(501) == 0 and gaps.missed == 0


def test_a_restarted_camera_counts_afresh_from_its_new_numbers():
    gaps = PublisherSequenceGaps()
    for number in (900, 901, 903):
        gaps.observe(number)
    assert gaps.observe(1) == 0  # a new writer starts at 1
    assert gaps.observe(3) == 1
    assert gaps.observe(3) == 0  # a repeated number is no gap
    assert gaps.missed == 2


def test_after_a_restart_the_next_frame_counts_nothing_missed():
    # A new subscription, or a camera publisher (re)connecting: its numbers are a new writer's.
    gaps = PublisherSequenceGaps()
    for number in (1, 2, 3):
        gaps.observe(number)
    gaps.restart()
    assert gaps.observe(40) == 0 and gaps.missed == 0 and gaps.numbered
    assert gaps.observe(42) == 1


def test_a_middleware_without_sequence_numbers_counts_nothing():
    gaps = PublisherSequenceGaps()
    assert [gaps.observe(number) for number in (None, 0, None)] == [0, 0, 0]
    assert gaps.missed == 0 and not gaps.numbered
    gaps.observe(7)
    assert gaps.numbered
