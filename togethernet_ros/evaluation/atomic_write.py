"""Reports and result files written whole or not at all."""

from __future__ import annotations

import contextlib
import glob
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, BinaryIO


def write_atomically(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write`` on a temporary file next to ``path``, then rename it into place.

    Readers (another process, a cache lookup after an interrupted run, a later `eval
    --detections`, a dashboard) see the old file or the complete new one, never a torn one
    (SIGKILL, a full disk). The data is on the disk before the rename and the rename is flushed
    after it, so a power loss, too, leaves the old file or the new one (a rename over data still
    in the page cache can leave an empty file on file systems that reorder the two). The file
    gets the usual umask permissions (mkstemp's 0600 would lock out e.g. a node running as
    another user).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(path)
    try:
        with open(temporary, "xb") as handle:
            write(handle)
            sync_file(handle)
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    sync_directory(path.parent)
    return path


def write_text_atomically(path: str | Path, text: str) -> Path:
    """:func:`write_atomically` of ``text`` as UTF-8."""
    return write_atomically(path, lambda handle: handle.write(text.encode("utf-8")))


def sync_file(handle: IO) -> None:
    """Flush ``handle`` to the disk: before a rename, so a power loss cannot leave it empty."""
    handle.flush()
    os.fsync(handle.fileno())


def sync_directory(directory: Path) -> None:
    """Flush a rename in ``directory`` to the disk (where the platform allows it)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def temporary_path(path: Path, suffix: str = ".tmp") -> Path:
    """A hidden name next to ``path`` for writing it: ``.NAME.PID.RANDOM<suffix>``.

    The writer's pid in the name lets :func:`remove_dead_temporaries` tell the files of killed
    writers from those of writers still at work.
    """
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{suffix}")


def process_is_gone(pid: int) -> bool:
    """True when no process ``pid`` exists (one of another user's still counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # EPERM: alive, someone else's
        return False
    return False


def write_files_together(files: dict[Path, bytes]) -> None:
    """Write every file to a temporary name first, then rename them all into place.

    A pair whose first file lands seconds before the second (each ONNX export takes that long)
    is left half made by an interruption in between, and a later run takes the one file for
    the whole export (without its detection-only file every frame runs the restoration
    decoder too). Here both names appear together, or neither (the old ones stay).
    Temporaries of killed earlier writers are removed first (see remove_dead_temporaries).
    """
    for path in files:
        remove_dead_temporaries(path)
    temporary = {path: temporary_path(path) for path in files}
    try:
        for path, data in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(temporary[path], "xb") as handle:
                handle.write(data)
                sync_file(handle)
        for path, tmp_name in temporary.items():
            os.replace(tmp_name, path)
    finally:
        for tmp_name in temporary.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
    for folder in {path.parent for path in files}:
        sync_directory(folder)


def remove_dead_temporaries(path: Path) -> None:
    """Delete temporary files for ``path`` (see temporary_path) left by killed writers.

    Each may be a whole model (tens of MB): a node that is killed while exporting at every start
    (a start-up timeout) would otherwise fill the disk. Files of live processes are kept.
    """
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        pid = leftover.name[len(path.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and process_is_gone(int(pid)):
            with contextlib.suppress(OSError):
                leftover.unlink()
