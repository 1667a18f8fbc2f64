"""An mcap bag written on its own thread, which producers can never wait on forever.

`bag replay --record` hands every sent frame and every received output to a writer thread
through a bounded queue. If that thread dies (disk full, an unwritable path), a plain
`queue.put` blocks for good once the queue is full: the replay hangs. Here a put notices the
dead writer and raises, with the writer's own error.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path

from togethernet_ros.bag.bag_problems import BagError
from togethernet_ros.bag.bag_reader import BagTopic
from togethernet_ros.bag.bag_writer import BagWriter

# How often a blocked put looks whether the writer is still alive.
LIVENESS_POLL_S = 0.2


class BackgroundBagWriter:
    """Write (topic, msgtype, log time, raw CDR) messages to a new mcap bag on a thread."""

    def __init__(self, path: str | Path, capacity: int = 256, overwrite: bool = True) -> None:
        self.path = Path(path)
        self._queue: queue.Queue = queue.Queue(capacity)
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._write, args=(overwrite,), name="bag-recorder", daemon=True
        )
        self._thread.start()

    def _write(self, overwrite: bool) -> None:
        try:
            with BagWriter(self.path, "mcap", overwrite=overwrite) as writer:
                while True:
                    item = self._queue.get()
                    if item is None:
                        return
                    topic, msgtype, log_time_ns, raw = item
                    if not writer.has_topic(topic):
                        writer.copy_topic(BagTopic(topic, msgtype, "", ""))
                    writer.write_raw(topic, log_time_ns, raw)
        except Exception as error:  # reported by put/close on the producer's thread
            self._error = error

    def _failure(self) -> BagError:
        return BagError(f"recording to {self.path} stopped: {self._error}")

    def put(self, topic: str, msgtype: str, log_time_ns: int, raw: bytes) -> None:
        """Queue one message, waiting while the queue is full; BagError once the writer died."""
        item = (topic, msgtype, log_time_ns, raw)
        while True:
            if not self._thread.is_alive():
                raise self._failure()
            try:
                self._queue.put(item, timeout=LIVENESS_POLL_S)
                return
            except queue.Full:
                continue

    def close(self) -> BagError | None:
        """Write what is queued and close the bag; return the writer's failure, if it had one."""
        while self._thread.is_alive():
            try:
                self._queue.put(None, timeout=LIVENESS_POLL_S)
                break
            except queue.Full:
                continue
        self._thread.join()
        return self._failure() if self._error is not None else None
