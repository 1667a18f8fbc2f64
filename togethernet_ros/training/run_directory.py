"""One run per output directory: a lock while a run writes there, and no new run over an old one.

A training run owns its ``output.dir``: ``last.pt``, ``best.pt`` and ``log.csv`` describe one
line of epochs. A second run writing there at the same time (a job requeued while its first copy
still runs) or a new run started on a finished run's directory would interleave or replace them;
both are refused. Resuming continues the run of the directory the checkpoint lies in, or forks
it into a directory that holds no run yet.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no lock, the other checks still apply
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".togethernet_run.lock"
# What a run leaves in its directory: any of them means the directory holds a run.
RUN_FILES = ("last.pt", "best.pt", "log.csv")
CHECKPOINT_FILES = ("last.pt", "best.pt")


class RunDirectoryError(ValueError):
    """The output directory is in use by another run or holds a run this one must not touch."""


def earlier_run_files(out_dir: str | Path) -> list[str]:
    """The files of an earlier run in ``out_dir`` (empty when it holds none)."""
    out_dir = Path(out_dir)
    return [name for name in RUN_FILES if (out_dir / name).exists()]


def check_run_directory(out_dir: str | Path, resume: str | None) -> None:
    """Refuse a new run over an earlier one, and a resume into another run's directory.

    Cheap and read-only, so commands can call it before slow preparation (distill's labelling);
    :func:`claim_run_directory` checks again under the lock.
    """
    out_dir = Path(out_dir)
    found = earlier_run_files(out_dir)
    if not found:
        return
    if resume and _same_directory(Path(resume).parent, out_dir):
        return
    listed = ", ".join(found)
    if resume:
        raise RunDirectoryError(
            f"output.dir {out_dir} holds an earlier run ({listed}), not the run of {resume}; "
            f"resuming would mix the two: set output.dir to {Path(resume).parent} or to a new "
            "directory"
        )
    raise RunDirectoryError(
        f"output.dir {out_dir} holds an earlier run ({listed}); continue it with "
        f"resume={out_dir / 'last.pt'}, or set output.dir to a new directory (or remove those "
        "files) to start another"
    )


class RunDirectoryLock:
    """Holds an exclusive lock on a run directory until :meth:`release` (or process exit)."""

    def __init__(self, handle: IO[str] | None):
        self._handle = handle

    def release(self) -> None:
        """Let another run use the directory."""
        if self._handle is not None:
            self._handle.close()  # closing drops the flock
            self._handle = None


def claim_run_directory(out_dir: str | Path, resume: str | None) -> RunDirectoryLock:
    """Lock ``out_dir`` for this run (refused while another run holds it), check it as
    :func:`check_run_directory` does, and remove temporary checkpoint files that an earlier
    run killed while saving (SIGKILL, power loss) left behind.

    The lock is an advisory ``flock`` on a file in the directory: the kernel drops it when the
    process ends, however it ends, so a killed run never leaves the directory locked.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    handle = None
    if fcntl is not None:
        handle = open(out_dir / LOCK_FILE, "a+")  # noqa: SIM115 - held for the whole run
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise RunDirectoryError(
                f"output.dir {out_dir} is in use by another run (process {holder}); wait for it "
                "to end or set output.dir to another directory"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
    lock = RunDirectoryLock(handle)
    try:
        check_run_directory(out_dir, resume)
    except RunDirectoryError:
        lock.release()
        raise
    for name in CHECKPOINT_FILES:
        # write_atomically's temporary names; no other run writes here while we hold the lock.
        for debris in out_dir.glob(f".{name}.*.tmp"):
            debris.unlink(missing_ok=True)
    return lock


def _same_directory(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False
