"""`togethernet distill` interrupted, run again, or continued: what it leaves on disk.

A stand-in teacher (no npm download) and a small prepared dataset of synthetic frames keep every
run to seconds on a CPU.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
from support.stopped_runs import stop_during_second_save

from togethernet_ros.cli import main
from togethernet_ros.distill import distill_command
from togethernet_ros.distill.coco_classes import map_coco_classes
from togethernet_ros.distill.frame_sources import SourceFrame
from togethernet_ros.distill.pseudo_labels import (
    PseudoLabelSettings,
    label_frames,
    load_pseudo_labels,
)
from togethernet_ros.distill.teacher_package import TeacherUnavailableError
from togethernet_ros.model import load_checkpoint
from togethernet_ros.model.config import DEFAULT_CLASS_NAMES
from togethernet_ros.vision.detections import Detections

from .test_distill_overrides import TINY, _prepared_dataset

TRAIN = ["--input-size", "128", "--batch-size", "2", "--workers", "0", "--eval-betas", "0.1"]


class PersonTeacher:
    """Sees one COCO person (class 0) in every frame; optionally stops after some batches."""

    conf_threshold = 0.05

    def __init__(self, onnx_path: Path | None = None, stop_after_batches: int | None = None):
        self.onnx_path = onnx_path
        self.stop_after_batches = stop_after_batches
        self.batches = 0

    def detect(self, images_bgr):
        if self.stop_after_batches is not None and self.batches == self.stop_after_batches:
            raise KeyboardInterrupt  # Ctrl-C while the teacher labels
        self.batches += 1
        box = np.array([[30, 20, 70, 80]], np.float32)
        return [Detections(box, np.array([0.9], np.float32), np.array([0])) for _ in images_bgr]


def _frames(brightness: int, count: int = 8):
    for index in range(count):
        image = np.full((96, 128, 3), brightness, np.uint8)
        yield SourceFrame("clip", index, image, index >= count - 2)


def _label(root: Path, teacher: PersonTeacher, brightness: int):
    mapping = map_coco_classes(DEFAULT_CLASS_NAMES)
    return label_frames(
        _frames(brightness), teacher, mapping, PseudoLabelSettings(), root, batch_size=2
    )


def test_relabelling_a_dataset_stopped_midway_leaves_no_complete_looking_dataset(tmp_path):
    # Labelling into a folder that holds an earlier export wrote the new frames over the old
    # ones under its labels.json: stopped midway, the folder still loaded as a complete dataset
    # whose labels described other frames than its images (here: bright frames, labels of the
    # dark ones).
    root = tmp_path / "dataset"
    _label(root, PersonTeacher(), brightness=30)
    assert len(load_pseudo_labels(root).frames) == 8
    with pytest.raises(KeyboardInterrupt):
        _label(root, PersonTeacher(stop_after_batches=2), brightness=220)
    try:
        label_set = load_pseudo_labels(root)
    except FileNotFoundError:
        return  # clearly incomplete: no labels.json until the labelling is done
    frames = [label_set.read_clear_bgr(frame) for frame in label_set.frames]
    assert len({int(frame.mean()) for frame in frames}) == 1, "labels.json of other frames"


FULL_DISK_EXPORT = textwrap.dedent(
    """
    import resource, signal, sys
    from pathlib import Path
    import numpy as np

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), resource.RLIM_INFINITY))
    from togethernet_ros.distill import distill_command
    from togethernet_ros.vision.detections import Detections

    class Teacher:
        onnx_path = Path(sys.argv[2])
        conf_threshold = 0.05

        def detect(self, images):
            box = np.array([[30, 20, 70, 80]], np.float32)
            return [Detections(box, np.array([0.9], np.float32), np.array([0])) for _ in images]

    distill_command._open_teacher = lambda *args: Teacher()
    from togethernet_ros.cli import main

    sys.exit(main(["distill", sys.argv[3], "--export-dataset", sys.argv[4]]))
    """
)


def test_an_export_that_cannot_be_finished_is_not_a_dataset(tmp_path):
    # The teacher ONNX was copied into the export after its labels.json, in place: a disk that
    # filled up (or a kill) during the copy left a complete-looking dataset with a truncated
    # teacher.onnx, which a later --dataset run takes as its teacher.
    frames = tmp_path / "frames"
    frames.mkdir()
    for index in range(6):
        cv2.imwrite(str(frames / f"{index:02d}.png"), np.full((72, 96, 3), 40 * index, np.uint8))
    teacher = tmp_path / "teacher.onnx"
    teacher.write_bytes(os.urandom(3_000_000))
    script, export = tmp_path / "export.py", tmp_path / "export"
    script.write_text(FULL_DISK_EXPORT)
    completed = subprocess.run(
        [sys.executable, str(script), "1000000", str(teacher), str(frames), str(export)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode != 0, completed.stdout[-2000:]
    copy = export / "teacher.onnx"
    if (export / "labels.json").exists():
        assert copy.is_file() and copy.read_bytes() == teacher.read_bytes()
    assert not copy.exists() or copy.read_bytes() == teacher.read_bytes()


def _no_teacher(monkeypatch):
    def unavailable(*_args, **_kwargs):
        raise TeacherUnavailableError("not used in this test")

    monkeypatch.setattr(distill_command, "_open_teacher", unavailable)


def test_distilling_again_into_a_finished_run_is_refused_before_labelling(
    tmp_path, capsys, monkeypatch
):
    # The second run trained into the first one's train/ folder: its log.csv rows followed the
    # first run's and its last.pt replaced the first one's, after minutes of labelling again.
    _no_teacher(monkeypatch)
    dataset = _prepared_dataset(tmp_path / "data")
    run_dir = tmp_path / "run"
    argv = ["distill", "--dataset", str(dataset), "--output", str(run_dir), *TINY, *TRAIN]
    assert main([*argv, "--epochs", "2", "--train-override", "train.stop_after_epochs=1"]) == 0
    before = (run_dir / "train" / "last.pt").read_bytes()

    def labelling(*_args):
        raise AssertionError("labelled although the run is refused")

    monkeypatch.setattr(distill_command, "_prepare", labelling)
    capsys.readouterr()
    again = ["distill", str(tmp_path / "frames"), "--output", str(run_dir), *TINY, *TRAIN]
    assert main([*again, "--epochs", "2"]) == 2
    message = capsys.readouterr().err
    assert "holds an earlier run" in message and "Traceback" not in message
    assert (run_dir / "train" / "last.pt").read_bytes() == before
    # The way out the message offers: continue the run.
    last = run_dir / "train" / "last.pt"
    resume = ["--epochs", "2", "--train-override", f"resume={last}"]
    assert main([*argv, *resume]) == 0
    assert load_checkpoint(last).metadata["epoch"] == 2
    rows = (run_dir / "train" / "log.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["1", "2"]
    report = json.loads((run_dir / "heldout_report.json").read_text())
    assert report["recipe"]["final_epoch"]["epoch"] == 2


NO_TEACHER = """
from togethernet_ros.distill import distill_command
from togethernet_ros.distill.teacher_package import TeacherUnavailableError

def unavailable(*args):
    raise TeacherUnavailableError("not used")

distill_command._open_teacher = unavailable
"""


def test_sigterm_while_distilling_stops_like_ctrl_c_and_says_how_to_go_on(tmp_path):
    # SIGTERM ended the process on the spot: the checkpoint being written stayed behind as a
    # temporary file, and nothing said how to continue.
    dataset = _prepared_dataset(tmp_path / "data")
    run_dir = tmp_path / "run"
    argv = ["distill", "--dataset", str(dataset), "--output", str(run_dir), *TINY, *TRAIN]
    status, stderr = stop_during_second_save(tmp_path, [*argv, "--epochs", "3"], setup=NO_TEACHER)
    train_dir = run_dir / "train"
    assert status in (143, -signal.SIGTERM), (status, stderr[-3000:])
    assert [path.name for path in train_dir.iterdir() if path.name.endswith(".tmp")] == []
    assert load_checkpoint(train_dir / "last.pt").metadata["epoch"] == 1
    assert "Traceback" not in stderr and f"resume={train_dir / 'last.pt'}" in stderr, stderr


def test_relabelling_with_sources_that_cannot_be_read_keeps_the_earlier_export(
    tmp_path, capsys, monkeypatch
):
    # Only frames that are being written replace an export: a mistyped source stops the run
    # before the earlier labels.json is touched.
    frames = tmp_path / "frames"
    frames.mkdir()
    for index in range(6):
        cv2.imwrite(str(frames / f"{index:02d}.png"), np.full((72, 96, 3), 40 * index, np.uint8))
    teacher_file = tmp_path / "teacher.onnx"
    teacher_file.write_bytes(b"stand-in")
    monkeypatch.setattr(
        distill_command, "_open_teacher", lambda *_args: PersonTeacher(teacher_file)
    )
    export = tmp_path / "export"
    assert main(["distill", str(frames), "--frame-step", "1", "--export-dataset", str(export)]) == 0
    assert (export / "teacher.onnx").read_bytes() == b"stand-in"
    before = (export / "labels.json").read_text()
    missing = tmp_path / "no_such_clip.avi"
    assert main(["distill", str(missing), "--export-dataset", str(export)]) == 2
    assert "no_such_clip.avi" in capsys.readouterr().err
    assert (export / "labels.json").read_text() == before
