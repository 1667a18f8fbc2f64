"""Checkpoint entries that load but mean nonsense are refused; writes are atomic, real files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch

from togethernet_ros.model import (
    DEFAULT_CLASS_NAMES,
    CheckpointError,
    build_model,
    load_checkpoint,
    save_checkpoint,
)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_checkpoint(
        tmp_path_factory.mktemp("ckpt") / "good.pt", build_model(), DEFAULT_CLASS_NAMES
    )


@pytest.mark.parametrize(
    ("class_names", "problem"),
    [
        ([0, 1, 2, 3, 4], "must be non-empty strings"),  # was loaded as "0" .. "4"
        ("abcde", "not a list of class names"),  # was split into its letters
        (torch.arange(5), "not a list of class names"),  # was loaded as "tensor(0)" ..
        (["person", "person", "car", "motorbike", "bus"], "repeats class name"),
        (["person", " ", "car", "motorbike", "bus"], "must be non-empty strings"),
    ],
)
def test_class_names_that_are_not_distinct_strings_are_refused(
    saved: Path, tmp_path: Path, class_names: object, problem: str
) -> None:
    raw = torch.load(saved, weights_only=True)
    raw["class_names"] = class_names
    path = tmp_path / "names.pt"
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match=problem) as caught:
        load_checkpoint(path)
    assert str(path) in str(caught.value)


def test_metadata_that_is_not_a_dict_is_a_checkpoint_error(saved: Path, tmp_path: Path) -> None:
    raw = torch.load(saved, weights_only=True)
    raw["metadata"] = [1, 2]
    path = tmp_path / "meta.pt"
    torch.save(raw, path)
    # Was a bare TypeError ("cannot convert dictionary update sequence ...") naming no file.
    with pytest.raises(CheckpointError, match=r"meta\.pt: 'metadata' entry is list"):
        load_checkpoint(path)


def test_saving_refuses_duplicate_class_names(tmp_path: Path) -> None:
    names = ("a", "b", "a", "c", "d")
    with pytest.raises(CheckpointError, match="repeats"):
        save_checkpoint(tmp_path / "dup.pt", build_model(), names)
    assert not list(tmp_path.iterdir())


def test_saved_checkpoint_has_umask_permissions(saved: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    # mkstemp made every checkpoint 0600: unreadable to a node running as another user.
    assert stat.S_IMODE(saved.stat().st_mode) == 0o666 & ~umask


def test_interrupted_write_keeps_the_previous_file(tmp_path: Path) -> None:
    from togethernet_ros.evaluation.atomic_write import write_atomically

    path = tmp_path / "model.onnx"
    path.write_bytes(b"previous complete file")

    def write_half_then_fail(handle) -> None:
        handle.write(b"half of the new")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomically(path, write_half_then_fail)
    assert path.read_bytes() == b"previous complete file"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]  # no temp file left behind


def test_a_new_file_reaches_the_disk_before_it_replaces_the_old_one(tmp_path, monkeypatch):
    # Renamed over last.pt before its data was flushed, a power loss could leave last.pt empty
    # or partly written on file systems that reorder data and metadata writes (XFS, btrfs, ext4
    # with data=writeback): the previous checkpoint was gone too. The directory entry is
    # flushed after the rename, or the rename itself may be lost.
    from togethernet_ros.evaluation import atomic_write

    events: list[str] = []
    fsync, replace = os.fsync, os.replace

    def recording_fsync(fd: int) -> None:
        kind = "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file"
        events.append(f"fsync {kind}")
        fsync(fd)

    def recording_replace(source, target) -> None:
        events.append("replace")
        replace(source, target)

    monkeypatch.setattr(atomic_write.os, "fsync", recording_fsync)
    monkeypatch.setattr(atomic_write.os, "replace", recording_replace)
    path = tmp_path / "last.pt"
    path.write_bytes(b"previous")
    atomic_write.write_atomically(path, lambda handle: handle.write(b"new complete file"))
    assert path.read_bytes() == b"new complete file"
    assert events == ["fsync file", "replace", "fsync dir"]
