"""Stale Fast DDS shared-memory segments are removed; live ones and older ones are kept."""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import pytest

from togethernet_ros.ros.shm_segments import SHM_DIR, fastdds_segments, remove_stale_segments


def test_removes_only_new_unmapped_fastdds_files(tmp_path):
    (tmp_path / "fastrtps_old").write_bytes(b"x")
    before = fastdds_segments(tmp_path)
    for name in ("fastrtps_new_a", "fastrtps_new_b", "unrelated"):
        (tmp_path / name).write_bytes(b"x")
    assert remove_stale_segments(before, tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fastrtps_old", "unrelated"]


def test_missing_directory_has_no_segments(tmp_path):
    assert fastdds_segments(tmp_path / "absent") == set()


@pytest.mark.skipif(not SHM_DIR.is_dir(), reason="no /dev/shm on this machine")
def test_a_segment_mapped_by_a_live_process_is_kept():
    before = fastdds_segments()
    path = Path(SHM_DIR) / f"fastrtps_togethernet_test_{os.getpid()}"
    path.write_bytes(bytes(4096))
    try:
        with path.open("r+b") as stream, mmap.mmap(stream.fileno(), 4096):
            remove_stale_segments(before)
            assert path.exists()  # mapped by this process: never removed
        remove_stale_segments(before)
        assert not path.exists()  # unmapped and created after the snapshot: removed
    finally:
        path.unlink(missing_ok=True)
