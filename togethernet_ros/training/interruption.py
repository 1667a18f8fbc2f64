"""SIGTERM stops a long command the way Ctrl-C does, so its clean-up runs.

Python's default for SIGTERM (what `timeout`, batch schedulers and service managers send) ends
the process on the spot: no ``finally`` runs, so a checkpoint being written stays behind as a
temporary file and the data loader's worker processes are left to notice on their own. Raised as
a ``KeyboardInterrupt`` instead, it unwinds like Ctrl-C; the command then ends with the shell's
status for the signal (128 + its number).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the main thread is, as Ctrl-C raises KeyboardInterrupt."""


def _raise_terminated(signum: int, _frame: object) -> None:
    raise Terminated(signum)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block SIGTERM raises :class:`Terminated` in the main thread.

    Not in a torchrun worker: its launcher stops every worker with SIGTERM when one fails,
    and a worker waiting inside a collective would only see the exception once that returns
    (the launcher kills it 30 s later). Such a worker still leaves no lasting debris: the next
    run in the directory removes half-written checkpoints (run_directory.claim_run_directory).
    """
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def stop_status(stop: KeyboardInterrupt) -> tuple[str, int]:
    """The signal's name and the exit status for a run stopped by ``stop``."""
    signum = signal.SIGTERM if isinstance(stop, Terminated) else signal.SIGINT
    return signum.name, 128 + int(signum)
