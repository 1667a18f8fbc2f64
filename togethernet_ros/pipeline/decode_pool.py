"""Decoding camera frames off the executor thread: a few threads, newest frame per camera.

A 1280×720 JPEG takes ~5 ms to decode (2-core Xeon). Decoded in the subscription callback, four
compressed cameras at 30 Hz would hold the node's one executor thread for 20 of every 33 ms,
and each frame would wait for the other cameras' decodes before its own. OpenCV releases the
GIL while it decodes, so a few threads decode several cameras at once on a multi-core host, and
the executor thread stays free to take the next frames.

Per camera one decode runs at a time, so a camera's frames reach the batcher in order, and at
most one frame waits behind it: a newer frame replaces it (newest wins, as in the batcher),
and the replaced one is reported. Plain Python (no rclpy).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

_LOGGER = logging.getLogger("togethernet_ros")


class DecodePool:
    """Runs ``work(key, item)`` on ``threads`` threads: one at a time per key, newest item wins.

    ``on_replaced(key, item)`` is called for an item that a newer one for the same key replaced
    before its turn; ``on_error(key, error)`` for an exception ``work`` raised (the thread goes
    on). Both run without the pool's lock held.
    """

    def __init__(
        self,
        threads: int,
        work: Callable[[Hashable, Any], None],
        on_replaced: Callable[[Hashable, Any], None],
        on_error: Callable[[Hashable, Exception], None],
        name: str = "togethernet-decode",
    ) -> None:
        if threads < 1:
            raise ValueError(f"DecodePool: threads must be at least 1, got {threads}")
        self._work, self._on_replaced, self._on_error = work, on_replaced, on_error
        self._condition = threading.Condition()
        self._waiting: dict[Hashable, Any] = {}  # one item per key, not yet started
        self._ready: deque[Hashable] = deque()  # keys with a waiting item and none running
        self._running: set[Hashable] = set()
        self._stopping = False
        self._threads = [
            threading.Thread(target=self._run, name=f"{name}_{index}", daemon=True)
            for index in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, key: Hashable, item: Any) -> None:
        """Queue ``item`` for ``key``; it replaces an item of that key still waiting.

        After :meth:`stop` the item is reported replaced at once: nothing is lost unseen.
        """
        with self._condition:
            if self._stopping:
                replaced, item_left = item, True
            else:
                item_left = key in self._waiting
                replaced = self._waiting.get(key)
                self._waiting[key] = item
                if not item_left and key not in self._running:
                    self._ready.append(key)
                    self._condition.notify()
        if item_left:
            self._on_replaced(key, replaced)

    def stop(self, timeout_s: float = 5.0) -> list[tuple[Hashable, Any]]:
        """Finish the decodes under way and end the threads; return the items never started.

        Waits up to ``timeout_s`` in all; a thread still decoding then is named by
        :attr:`stuck_threads` (it exits when its decode returns). Never raises, so a caller
        can count the items and stop what comes after the pool either way.
        """
        with self._condition:
            self._stopping = True
            left = list(self._waiting.items())
            self._waiting.clear()
            self._ready.clear()
            self._condition.notify_all()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return left

    @property
    def stuck_threads(self) -> list[str]:
        """Names of the threads still running after :meth:`stop` (a decode that hangs)."""
        return [thread.name for thread in self._threads if thread.is_alive()]

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._ready and not self._stopping:
                    self._condition.wait()
                if self._stopping:
                    return
                key = self._ready.popleft()
                item = self._waiting.pop(key)
                self._running.add(key)
            try:
                self._work(key, item)
            except Exception as error:  # a decode thread must not die with one bad frame
                self._report(key, error)
            finally:
                # Even if reporting failed: a key left "running" would never decode again.
                with self._condition:
                    self._running.discard(key)
                    if key in self._waiting and not self._stopping:
                        self._ready.append(key)
                        self._condition.notify()

    def _report(self, key: Hashable, error: Exception) -> None:
        try:
            self._on_error(key, error)
        except Exception:  # the report's own failure must not take the thread with it
            _LOGGER.exception("reporting a decode failure of %r failed (%r)", key, error)


AUTO_DECODE_THREADS = -1


def resolve_decode_threads(requested: int, compressed_cameras: int, cpu_count: int | None) -> int:
    """Threads to decode compressed frames with; 0: decode in the subscription callback.

    ``requested`` -1 (auto): one per compressed camera, at most ``cpu_count``, the CPUs this
    process may use (decoding
    releases the GIL; on the 2-core Xeon two threads beat one for four JPEG cameras, see
    docs/benchmarks.md). No compressed camera, no thread.
    """
    if requested < AUTO_DECODE_THREADS:
        raise ValueError(f"decode_threads must be -1 (auto) or at least 0, got {requested}")
    if compressed_cameras == 0:
        return 0
    if requested == AUTO_DECODE_THREADS:
        return max(1, min(compressed_cameras, cpu_count or 1))
    return requested
