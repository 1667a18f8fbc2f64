"""The receive delay's parts (driver, DDS transport, executor) from the middleware's timestamps."""

from __future__ import annotations

import pytest

from togethernet_ros.ros.camera_stats import CameraStats
from togethernet_ros.ros.receive_timing import ReceiveSplit, split_receive_delay

STAMP = 1_795_000_000_000_000_000


def test_the_parts_are_the_differences_of_stamp_write_reception_and_callback():
    info = {"source_timestamp": STAMP + 1_500_000, "received_timestamp": STAMP + 4_000_000}
    split = split_receive_delay(STAMP, info, callback_ns=STAMP + 4_250_000)
    assert split == ReceiveSplit(driver_ms=1.5, transport_ms=2.5, executor_ms=0.25)
    assert split.driver_ms + split.transport_ms + split.executor_ms == pytest.approx(4.25)


def test_a_missing_stamp_leaves_only_the_parts_after_the_write():
    info = {"source_timestamp": STAMP, "received_timestamp": STAMP + 2_000_000}
    for stamp in (None, 0):
        split = split_receive_delay(stamp, info, callback_ns=STAMP + 3_000_000)
        assert split == ReceiveSplit(driver_ms=None, transport_ms=2.0, executor_ms=1.0)


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        # A middleware without a reception time: the driver part is still known.
        ({"source_timestamp": STAMP + 1_000_000, "received_timestamp": 0}, (1.0, None, None)),
        ({"source_timestamp": None, "received_timestamp": STAMP + 1_000_000}, (None, None, 1.0)),
        ({}, (None, None, None)),
        (None, (None, None, None)),
    ],
)
def test_a_timestamp_the_middleware_left_at_zero_gives_no_value_for_its_parts(info, expected):
    split = split_receive_delay(STAMP, info, callback_ns=STAMP + 2_000_000)
    assert (split.driver_ms, split.transport_ms, split.executor_ms) == expected


def test_clocks_of_two_hosts_can_make_a_part_negative_and_it_is_kept():
    # The reader's clock 3 ms behind the writer's: the transport reads -1 ms, as measured.
    info = {"source_timestamp": STAMP, "received_timestamp": STAMP - 1_000_000}
    assert split_receive_delay(STAMP, info, STAMP).transport_ms == -1.0


def test_camera_stats_record_each_known_part_in_its_own_window():
    stats = CameraStats()
    stats.record_input(4.0, ReceiveSplit(driver_ms=1.0, transport_ms=2.0, executor_ms=1.0))
    stats.record_input(5.0, ReceiveSplit(driver_ms=None, transport_ms=3.0, executor_ms=2.0))
    stats.record_input()
    assert stats.received == 3
    assert stats.receive_delay_ms.summary().count == 2
    assert stats.driver_delay_ms.summary().count == 1
    assert stats.transport_delay_ms.summary().p50 == pytest.approx(2.5)
    assert stats.executor_delay_ms.summary().count == 2
