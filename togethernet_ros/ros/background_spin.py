"""Spin an rclpy executor in a background thread that stops before its nodes are destroyed.

rclpy's ``Executor.shutdown()`` does not wait for a thread inside ``spin()`` (Jazzy's version
sets its shutdown flag and then skips the wait that checks that same flag), so destroying a node
right after it races a callback still running in the spinning thread: the callback's publisher or
the executor's wait set then raises ``InvalidHandle: cannot use Destroyable because destruction
was requested`` in that thread. ``BackgroundSpinner.stop`` returns only once the thread has left
the executor, after which nodes, executor and context can be torn down in any order.

The same holds for entities a lifecycle transition destroys when it is triggered from another
thread (``trigger_deactivate`` in a test, not through the lifecycle service, whose callback runs
in the spinning thread): the executor building its wait set meanwhile raised ``InvalidHandle``
from a destroyed subscription's event handler and its thread died. ``BackgroundSpinner.paused``
holds the thread outside the executor for such a block.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from rclpy.executors import Executor, ExternalShutdownException

# How long one spin_once waits for work: only the delay of a stop, never of a message.
_POLL_S = 0.05


class BackgroundSpinner:
    """An executor spun in a daemon thread until ``stop()``."""

    def __init__(self, executor: Executor, name: str) -> None:
        """Prepare to spin ``executor`` in a thread called ``name`` (``start`` starts it)."""
        self._executor = executor
        self._stop_requested = threading.Event()
        self._pause = threading.Condition()
        self._pause_requests = 0
        self._paused = False
        self._thread = threading.Thread(target=self._spin, name=name, daemon=True)

    def start(self) -> None:
        """Start spinning."""
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Let the callback in progress finish and leave the executor; raise if it does not."""
        self._stop_requested.set()
        with self._pause:
            self._pause.notify_all()  # a paused thread leaves too
        if self._thread.ident is None:
            return
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise TimeoutError(
                f"{self._thread.name}: a callback still runs after {timeout_s:.0f} s; "
                "its node cannot be destroyed safely"
            )

    @contextlib.contextmanager
    def paused(self, timeout_s: float = 30.0) -> Iterator[None]:
        """Inside the block no callback runs and no wait set is built: entities can be
        destroyed from this thread. Raises TimeoutError if a callback does not finish."""
        with self._pause:
            self._pause_requests += 1
            self._pause.notify_all()
            spinning = self._thread.is_alive() and not self._stop_requested.is_set()
            if spinning and not self._pause.wait_for(lambda: self._paused, timeout_s):
                self._pause_requests -= 1
                raise TimeoutError(
                    f"{self._thread.name}: a callback still runs after {timeout_s:.0f} s"
                )
        try:
            yield
        finally:
            with self._pause:
                self._pause_requests -= 1
                self._pause.notify_all()

    def _wait_while_paused(self) -> None:
        with self._pause:
            if not self._pause_requests:
                return
            self._paused = True
            self._pause.notify_all()
            self._pause.wait_for(lambda: not self._pause_requests or self._stop_requested.is_set())
            self._paused = False

    def _spin(self) -> None:
        context = self._executor.context
        try:
            while not self._stop_requested.is_set() and context.ok():
                self._wait_while_paused()
                self._executor.spin_once(timeout_sec=_POLL_S)
        except ExternalShutdownException:
            pass  # the context was shut down from elsewhere: nothing left to spin
        except RuntimeError:
            # The same shutdown landing between the check above and the executor's next wait
            # set raises RCLError ("the given context is not valid") instead.
            if context.ok():
                raise
