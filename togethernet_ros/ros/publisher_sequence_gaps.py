"""Frames a camera published that never reached the node, from its publisher's sequence numbers.

Every sample a DDS writer sends carries the writer's sequence number, 1, 2, 3, ...; rclpy hands
it to a subscription callback as ``publication_sequence_number`` in the message info (not on
Humble). A jump from 41 to 44 means frames 42 and 43 were sent and never taken by the node:
lost by a best-effort transport, or replaced in the subscription's queue (depth ``input_depth``,
1 by default) while the executor thread was busy. The node's own newest-frame-wins drops come
after the callback and are counted apart.

The node restarts the count (:meth:`restart`) for each new subscription and whenever a
publisher connects or leaves (the matched event, Iron and newer), because a restarted camera is
a new writer whose numbers begin at 1 again; a number at or below the last one also starts
afresh. Where the new writer's first frame is taken before its matched event, its number
counts as one gap once. With two publishers on one camera topic the numbers interleave and the
count means nothing; one publisher per camera topic, as camera drivers do, is assumed.
Plain Python (no rclpy).
"""

from __future__ import annotations


class PublisherSequenceGaps:
    """Counts the sequence numbers a camera's publisher skipped between frames the node took."""

    def __init__(self) -> None:
        self._last: int | None = None
        self._numbered = False
        self.missed = 0

    def restart(self) -> None:
        """Forget the last number: the next frame starts counting afresh (a new writer)."""
        self._last = None

    @property
    def numbered(self) -> bool:
        """Whether any frame came with a sequence number (else ``missed`` says nothing)."""
        return self._numbered

    def observe(self, sequence_number: int | None) -> int:
        """Note a taken frame's sequence number; return how many frames were missed before it.

        None or 0 (a middleware without sequence numbers) counts nothing.
        """
        if not sequence_number:
            return 0
        self._numbered = True
        last, self._last = self._last, sequence_number
        if last is None or sequence_number <= last:
            return 0
        gap = sequence_number - last - 1
        self.missed += gap
        return gap
