"""Reports and result files written whole or not at all."""

from __future__ import annotations

import contextlib
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
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
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
