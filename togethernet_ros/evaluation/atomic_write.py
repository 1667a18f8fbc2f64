"""Reports and result files written whole or not at all."""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import IO


def write_text_atomically(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to a temporary file next to ``path``, then rename it into place.

    A run stopped mid-write (SIGKILL, a full disk) leaves the previous file or none, never a
    torn one that a later `eval --detections`, a script or a dashboard reads; the data is on
    the disk before the rename, so a power loss does not leave an empty file either.
    Permissions follow the umask, as for a plain write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(temporary, "x", encoding="utf-8") as handle:
            handle.write(text)
            sync_file(handle)
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    sync_directory(path.parent)
    return path


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
