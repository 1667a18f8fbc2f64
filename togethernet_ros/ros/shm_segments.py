"""Fast DDS shared-memory segments: list them and remove the stale ones a run left behind.

Fast DDS keeps its shared-memory transport in files under /dev/shm; a process that dies hard
leaves them there. Only segments created after a snapshot and mapped by no live process are
removed, so other runs' live segments are never touched. Plain Python (no rclpy).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

SHM_DIR = Path("/dev/shm")


def fastdds_segments(shm_dir: Path = SHM_DIR) -> set[str]:
    """Names of the Fast DDS files in `shm_dir` (empty where it does not exist)."""
    if not shm_dir.is_dir():
        return set()
    return {entry.name for entry in shm_dir.iterdir() if "fastrtps" in entry.name}


def mapped_shm_names() -> set[str]:
    """Names of /dev/shm files that some live process still maps."""
    names: set[str] = set()
    for maps in Path("/proc").glob("[0-9]*/maps"):
        try:
            text = maps.read_text()
        except OSError:  # the process ended, or belongs to someone else
            continue
        for line in text.splitlines():
            if "/dev/shm/" in line:
                names.add(line.rsplit("/dev/shm/", 1)[1].split()[0])
    return names


def remove_stale_segments(before: set[str], shm_dir: Path = SHM_DIR) -> int:
    """Remove segments created since `before` that no process maps; returns how many."""
    removed = 0
    for name in fastdds_segments(shm_dir) - before - mapped_shm_names():
        with contextlib.suppress(OSError):
            (shm_dir / name).unlink()
            removed += 1
    return removed
