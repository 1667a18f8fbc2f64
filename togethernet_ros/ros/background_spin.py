"""Spin an rclpy executor in a background thread that stops before its nodes are destroyed.

rclpy's ``Executor.shutdown()`` does not wait for a thread inside ``spin()`` (Jazzy's version
sets its shutdown flag and then skips the wait that checks that same flag), so destroying a node
right after it races a callback still running in the spinning thread: the callback's publisher or
the executor's wait set then raises ``InvalidHandle: cannot use Destroyable because destruction
was requested`` in that thread. ``BackgroundSpinner.stop`` returns only once the thread has left
the executor, after which nodes, executor and context can be torn down in any order.
"""

from __future__ import annotations

import threading

from rclpy.executors import Executor, ExternalShutdownException

# How long one spin_once waits for work: only the delay of a stop, never of a message.
_POLL_S = 0.05


class BackgroundSpinner:
    """An executor spun in a daemon thread until ``stop()``."""

    def __init__(self, executor: Executor, name: str) -> None:
        """Prepare to spin ``executor`` in a thread called ``name`` (``start`` starts it)."""
        self._executor = executor
        self._stop_requested = threading.Event()
        self._thread = threading.Thread(target=self._spin, name=name, daemon=True)

    def start(self) -> None:
        """Start spinning."""
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Let the callback in progress finish and leave the executor; raise if it does not."""
        self._stop_requested.set()
        if self._thread.ident is None:
            return
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise TimeoutError(
                f"{self._thread.name}: a callback still runs after {timeout_s:.0f} s; "
                "its node cannot be destroyed safely"
            )

    def _spin(self) -> None:
        context = self._executor.context
        try:
            while not self._stop_requested.is_set() and context.ok():
                self._executor.spin_once(timeout_sec=_POLL_S)
        except ExternalShutdownException:
            pass  # the context was shut down from elsewhere: nothing left to spin
        except RuntimeError:
            # The same shutdown landing between the check above and the executor's next wait
            # set raises RCLError ("the given context is not valid") instead.
            if context.ok():
                raise
