"""The `togethernet` commands as a user meets them: bad paths and values are refused up front.

Each refusal is exit status 2 and one line naming the option or path, given before a model
loads, a node starts or a benchmark runs, and leaves no output behind. Checkpoints here are
real files that are not checkpoints, so a check that regresses shows up as the wrong message
(the checkpoint's), not as minutes of work.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from bag.bag_samples import write_camera_bag
from support.cli_refusal import refused

from togethernet_ros.cli import main


@pytest.fixture
def not_a_checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "weights.pth"
    path.write_text("not a checkpoint\n")
    return path


@pytest.fixture
def unwritable_dir(tmp_path: Path) -> Path:
    """A folder in which no file can be created (root too: /proc takes no regular files)."""
    candidates = [Path("/proc")]
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        candidates.insert(0, locked)
    for folder in candidates:
        try:
            descriptor, probe = tempfile.mkstemp(dir=folder)
        except OSError:
            return folder
        os.close(descriptor)
        os.unlink(probe)
    pytest.skip("no folder that refuses new files on this system")


@pytest.fixture
def yolo_dataset(tmp_path: Path) -> tuple[Path, Path]:
    """One real JPEG with one YOLO label: a dataset `eval` reads for real."""
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    image = np.full((96, 128, 3), (40, 90, 60), np.uint8)
    cv2.rectangle(image, (30, 20), (90, 80), (10, 200, 240), -1)
    assert cv2.imwrite(str(images / "frame.jpg"), image)
    (labels / "frame.txt").write_text("0 0.47 0.52 0.47 0.62\n")
    return images, labels


def _eval(dataset: tuple[Path, Path], *options: str) -> list[str]:
    images, labels = dataset
    return ["eval", "--yolo-images", str(images), "--yolo-labels", str(labels), *options]


@pytest.mark.parametrize(("option", "value"), [("--conf", "2"), ("--nms", "-1"), ("--conf", "x")])
def test_eval_refuses_thresholds_outside_0_to_1(
    capsys, tmp_path, yolo_dataset, not_a_checkpoint, option, value
):
    # They were accepted, and the detector then stopped the run with a traceback.
    argv = _eval(yolo_dataset, "--weights", str(not_a_checkpoint), option, value)
    refused(capsys, [*argv, "--out-dir", str(tmp_path / "out")], rf"argument {option}: .*\[0, 1\]")


def test_eval_names_weights_that_are_not_a_checkpoint(capsys, tmp_path, yolo_dataset):
    weights = tmp_path / "notes.pth"
    weights.write_bytes(b"\x89PNG not a checkpoint")
    argv = _eval(yolo_dataset, "--weights", str(weights), "--device", "cpu")
    message = refused(capsys, [*argv, "--out-dir", str(tmp_path / "out")], "not a readable")
    assert str(weights) in message and len(message.splitlines()) == 1
    refused(
        capsys,
        _eval(yolo_dataset, "--weights", str(weights), "--device", "gpu"),
        "device must be 'auto', 'cpu' or 'cuda",
    )


def test_eval_refuses_its_output_paths_before_running_the_model(
    capsys, tmp_path, yolo_dataset, not_a_checkpoint, unwritable_dir
):
    # The model never loads here (the checkpoint would be refused): the outputs come first,
    # where they were only written, and failed, after the whole evaluation.
    weights = ["--weights", str(not_a_checkpoint)]
    a_file = tmp_path / "metrics.txt"
    a_file.write_text("")
    refused(capsys, [*_eval(yolo_dataset, *weights), "--out-dir", str(a_file)], "is a file")
    refused(
        capsys,
        [*_eval(yolo_dataset, *weights), "--save-detections", str(tmp_path)],
        rf"--save-detections {tmp_path} is a folder",
    )
    refused(
        capsys,
        [*_eval(yolo_dataset, *weights), "--out-dir", str(unwritable_dir / "eval")],
        rf"--out-dir {unwritable_dir / 'eval'}: cannot write in {unwritable_dir}",
    )


def test_outputs_in_a_folder_that_takes_no_files_are_refused_before_the_work(
    capsys, tmp_path, not_a_checkpoint, unwritable_dir
):
    # They failed after the export or the measurements, naming a hidden temporary file.
    weights = ["--weights", str(not_a_checkpoint)]
    target = unwritable_dir / "togethernet"
    message = refused(
        capsys,
        ["export", *weights, "--output", str(target / "m.onnx")],
        rf"--output {target / 'm.onnx'}: cannot write in {unwritable_dir}",
    )
    assert ".tmp" not in message
    refused(
        capsys,
        ["bench", *weights, "--json", str(target / "r.json"), "--backends", "torch"],
        rf"--json {target / 'r.json'}: cannot write in {unwritable_dir}",
    )
    image = tmp_path / "frame.png"
    assert cv2.imwrite(str(image), np.zeros((64, 64, 3), np.uint8))
    refused(
        capsys,
        ["predict", *weights, "--source", str(image), "--output", str(target), "--device", "cpu"],
        rf"--output {target}: cannot write in {unwritable_dir}",
    )


def test_predict_with_refused_weights_leaves_no_output_folder(capsys, tmp_path, not_a_checkpoint):
    image = tmp_path / "frame.png"
    assert cv2.imwrite(str(image), np.zeros((64, 64, 3), np.uint8))
    output = tmp_path / "out"
    argv = ["predict", "--weights", str(not_a_checkpoint), "--source", str(image)]
    refused(capsys, [*argv, "--output", str(output), "--device", "cpu"], "not a readable")
    assert not output.exists()


@pytest.mark.parametrize("action", ["run", "eval", "replay"])
def test_bag_actions_refuse_a_missing_or_wrong_input_with_status_2(capsys, tmp_path, action):
    # A missing bag was exit status 1, the status of a bag that ran and came out bad.
    extra = ["--output", str(tmp_path / "out")] if action == "run" else []
    missing = tmp_path / "drive.mcap"
    refused(capsys, ["bag", action, str(missing), *extra], rf"input bag {missing} does not exist")
    image = tmp_path / "frame.png"
    assert cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    refused(capsys, ["bag", action, str(image), *extra], rf"{image} is not a rosbag2 folder")
    refused(capsys, ["bag", action, str(tmp_path), *extra], "folder without metadata.yaml")
    assert not (tmp_path / "out").exists()


def test_bag_run_names_bad_thresholds_and_outputs_before_the_model_loads(
    capsys, tmp_path, not_a_checkpoint, unwritable_dir
):
    source = write_camera_bag(tmp_path / "drive", frames=1)
    command = ["bag", "run", str(source), "--weights", str(not_a_checkpoint)]
    output = ["--output", str(tmp_path / "out")]
    # It was blamed on the tracker's derived threshold, which the user never set.
    refused(
        capsys,
        [*command, *output, "--conf-threshold", "5"],
        r"parameter 'conf_threshold' must be <= 1.0, got 5.0",
    )
    refused(capsys, [*command, *output, "--nms-threshold", "-1"], r"'nms_threshold' must be")
    refused(capsys, [*command, *output, "--report", str(tmp_path)], "--report .* is a folder")
    refused(
        capsys,
        [*command, "--output", str(unwritable_dir / "out")],
        rf"--output {unwritable_dir / 'out'}: cannot write in {unwritable_dir}",
    )
    assert not (tmp_path / "out").exists()


def test_export_refuses_a_negative_tolerance_and_no_calibration_frames(capsys, not_a_checkpoint):
    command = ["export", "--weights", str(not_a_checkpoint), "--output", "m.onnx"]
    # A negative tolerance called every export a mismatch, after the whole export.
    refused(capsys, [*command, "--tolerance", "-1"], "argument --tolerance: must be >= 0")
    refused(capsys, [*command, "--int8-frames", "0"], "argument --int8-frames: must be >= 1")
    refused(
        capsys,
        ["export", "--weights", str(not_a_checkpoint), "--output", "m.pt"],
        r"^togethernet export: error: --output must end with \.onnx",
    )


def test_demo_refuses_bad_input_before_building_anything(capsys, tmp_path):
    output = tmp_path / "demo"
    video = tmp_path / "clip.mp4"
    # Found by the node only after the sample bag was built and the node had started (exit 1).
    refused(
        capsys,
        ["demo", "--output", str(output), "--video", str(video), "--input-size", "300"],
        "--input-size: input size 300x300",
    )
    refused(
        capsys,
        ["demo", "--output", str(output), "--input-size", "384", "512", "640"],
        "--input-size takes one side or h w, got 3",
    )
    refused(capsys, ["demo", "--output", str(output), "--video", str(video)], f"{video} does not")
    refused(capsys, ["demo", "--output", str(output), "--video", str(tmp_path)], "is a folder")
    refused(
        capsys,
        ["demo", "--startup-timeout", "0"],
        "argument --startup-timeout: must be a finite number of seconds > 0",
    )
    assert not output.exists()


def test_distill_refuses_a_missing_source_without_leaving_a_run_directory(capsys, tmp_path):
    run = tmp_path / "run"
    missing = tmp_path / "drive.mp4"
    refused(
        capsys,
        ["distill", str(missing), "--output", str(run)],
        rf"frame source {missing} does not exist",
    )
    assert not run.exists()


def test_predict_on_a_mixed_folder_names_the_files_it_does_not_read(tmp_path, caplog):
    folder = tmp_path / "drop"
    folder.mkdir()
    assert cv2.imwrite(str(folder / "frame.jpg"), np.full((64, 96, 3), 90, np.uint8))
    (folder / "notes.txt").write_text("camera log\n")
    (folder / ".hidden").write_text("")
    writer = cv2.VideoWriter(str(folder / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 5, (96, 64))
    assert writer.isOpened()
    for index in range(3):
        writer.write(np.full((64, 96, 3), 40 * index, np.uint8))
    writer.release()
    output = tmp_path / "out"
    argv = ["predict", "--allow-untrained", "--input-size", "128", "--device", "cpu"]
    with caplog.at_level("WARNING", logger="togethernet_ros"):
        assert main([*argv, "--source", str(folder), "--output", str(output)]) == 0
    # The video and the notes got no output: they were dropped without a word.
    warnings = [r.getMessage() for r in caplog.records if "not images" in r.getMessage()]
    assert warnings == [
        f"{folder}: 2 files that are not images are not read (clip.avi, notes.txt); "
        "predict takes a video on its own"
    ]
    detections = json.loads((output / "detections.json").read_text())
    assert [image["source"] for image in detections["images"]] == ["frame"]
