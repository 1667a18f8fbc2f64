"""What one camera's tracker is told about each frame: its time, and whether old tracks apply.

A camera's stream changes under a running tracker, as live drivers and bags do:

- A frame without a header stamp (0) in a stamped stream is timed by its arrival, carried onto
  the stamps' clock from the last stamped frame (that stamp plus the arrival time elapsed since).
  Timing it by the arrival clock alone (monotonic, or the system clock where a camera stamps
  with its own or simulated time) made the tracker's time jump by years and back, which reset
  every track twice. Where such an estimate ran past the next stamp (by delivery jitter), that
  stamp is not taken for a step back in time. A camera that never stamps is timed by arrival.
- A frame of another source (its frame_id or pixel size differs from the previous frame's:
  a driver reconfigured to another resolution, or two publishers on one topic) restarts the
  tracker: tracks in another image's pixels would otherwise coast on for ``max_misses`` frames
  in the wrong place (outside a smaller image), or swallow the new boxes with a bogus velocity.
"""

from __future__ import annotations

from collections.abc import Hashable


class FrameTimeline:
    """Per camera; ``place`` every frame in the order it goes to the tracker."""

    def __init__(self) -> None:
        self._anchor: tuple[float, float] | None = None  # (stamp, arrival) of the last stamped
        self._last_time: float | None = None
        self._last_estimated = False
        self._source: Hashable | None = None

    @property
    def source(self) -> Hashable | None:
        """The source of the last frame placed (None before the first)."""
        return self._source

    def place(self, stamp_s: float, arrival_s: float, source: Hashable) -> tuple[float, bool]:
        """(time to give the tracker, whether the tracker must restart) for one frame.

        ``stamp_s`` is the header stamp (0: none), ``arrival_s`` when the frame arrived on a
        steady clock, ``source`` what its pixels are in (e.g. frame_id, height, width).
        """
        restart = self._source is not None and source != self._source
        self._source = source
        if stamp_s:
            time_s = stamp_s
            if (
                self._last_estimated
                and self._anchor is not None
                and self._last_time is not None
                and self._anchor[0] <= stamp_s < self._last_time
            ):
                time_s = self._last_time  # the estimate overshot: no time passed, none reversed
            self._anchor = (stamp_s, arrival_s)
            self._last_estimated = False
        elif self._anchor is not None:
            time_s = self._anchor[0] + (arrival_s - self._anchor[1])
            self._last_estimated = True
        else:
            time_s = arrival_s
            self._last_estimated = False
        self._last_time = time_s
        return time_s, restart
