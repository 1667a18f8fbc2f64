"""Where a frame's time before the node's callback goes: camera driver, DDS, the node's executor.

A subscription callback that takes two arguments gets the middleware's message info from rclpy:
``source_timestamp`` (when the publisher wrote the sample) and ``received_timestamp`` (when the
node's DDS reader received it), nanoseconds on the system clock. With the image's header stamp
and the callback's own system time they split the receive delay (stamp → callback) into

- driver: stamp → write (the camera driver stamping, converting and serialising its frame),
- transport: write → reception (DDS: shared memory or the network),
- executor: reception → callback (the node's executor thread and the GIL it shares with the
  inference thread, and the take of the bytes).

A middleware that leaves a timestamp at 0 gives no split for the parts it bounds; Humble's
rclpy hands callbacks no message info at all. Across hosts
the parts carry the clocks' offset, and can read negative. Plain Python (no rclpy).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

_NS_PER_MS = 1e6


@dataclass(frozen=True)
class ReceiveSplit:
    """One frame's receive delay in parts, milliseconds; None where a timestamp was missing."""

    driver_ms: float | None
    transport_ms: float | None
    executor_ms: float | None


def split_receive_delay(
    stamp_ns: int | None, message_info: Mapping[str, int | None] | None, callback_ns: int
) -> ReceiveSplit:
    """The parts of one frame's way from its stamp to the callback.

    ``stamp_ns`` is the header stamp on the system clock, or None where it is not (no stamp,
    or a simulated clock): then only the parts after the write are known. ``callback_ns`` is
    the system time when the callback started.
    """
    info = message_info or {}
    written_ns = info.get("source_timestamp") or None
    received_ns = info.get("received_timestamp") or None
    return ReceiveSplit(
        driver_ms=_difference_ms(stamp_ns or None, written_ns),
        transport_ms=_difference_ms(written_ns, received_ns),
        executor_ms=_difference_ms(received_ns, callback_ns),
    )


def _difference_ms(earlier_ns: int | None, later_ns: int | None) -> float | None:
    if earlier_ns is None or later_ns is None:
        return None
    return (later_ns - earlier_ns) / _NS_PER_MS
