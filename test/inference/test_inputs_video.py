"""`togethernet predict` on videos with damaged frames (dashcam files, recordings cut short)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from togethernet_ros.cli import main
from togethernet_ros.inference.media import MediaSource

from .conftest import scene

FRAMES = 10
JPEG_START = b"\xff\xd8"


def _video_with_damaged_frames(path: Path, damaged: list[int]) -> Path:
    """An MJPG AVI of ``FRAMES`` frames whose frames ``damaged`` have their JPEG data zeroed."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for index in range(FRAMES):
        writer.write(scene(120, 160, seed=index))
    writer.release()
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 1) if data[i : i + 2] == JPEG_START]
    assert len(starts) == FRAMES
    for index in damaged:
        data[starts[index] : starts[index] + 300] = bytes(300)
    path.write_bytes(bytes(data))
    return path


def _predict(checkpoint: Path, source: Path, output: Path) -> dict:
    common = ["--weights", str(checkpoint), "--input-size", "128", "--device", "cpu"]
    args = ["predict", *common, "--no-dehazed", "--source", str(source), "--output", str(output)]
    assert main(args) == 0
    return json.loads((output / "detections.json").read_text())


def _decoded(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    for _ in range(FRAMES):
        ok, image = capture.read()
        frames.append(image if ok else None)
    capture.release()
    return frames


def test_a_damaged_frame_midway_does_not_end_the_video(tmp_path, checkpoint_path, capsys):
    video = _video_with_damaged_frames(tmp_path / "drive.avi", [4])
    report = _predict(checkpoint_path, video, tmp_path / "out")
    done = [record["frame"] for record in report["images"]]
    assert done == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    assert [record["source"] for record in report["images"]][4] == "drive_000005"
    assert report["skipped"] == [{"source": str(video), "problem": "frame 4 could not be decoded"}]
    assert "9 images, 1 unreadable skipped" in capsys.readouterr().out


def test_a_video_whose_first_frames_are_damaged_is_read_from_the_first_good_one(
    tmp_path, checkpoint_path
):
    video = _video_with_damaged_frames(tmp_path / "cut.avi", [0, 1, 2])
    report = _predict(checkpoint_path, video, tmp_path / "out")
    assert [record["frame"] for record in report["images"]] == list(range(3, FRAMES))
    assert [entry["problem"] for entry in report["skipped"]] == [
        f"frame {index} could not be decoded" for index in range(3)
    ]
    # Frame numbers stay positions in the video: frame 3 is the video's fourth frame.
    decoded = _decoded(video)
    source = MediaSource(video)
    frames = list(source)
    assert frames[0].index == 3
    np.testing.assert_array_equal(frames[0].image, decoded[3])
    assert len(source.skipped) == 3


def test_max_frames_counts_positions_and_an_intact_video_skips_nothing(tmp_path):
    intact = _video_with_damaged_frames(tmp_path / "intact.avi", [])
    source = MediaSource(intact)
    assert [frame.index for frame in source] == list(range(FRAMES))
    assert source.skipped == []
    damaged = _video_with_damaged_frames(tmp_path / "damaged.avi", [1])
    source = MediaSource(damaged, max_frames=3)
    assert [frame.index for frame in source] == [0, 2]
    assert [entry.problem for entry in source.skipped] == ["frame 1 could not be decoded"]


def test_an_odd_sized_video_keeps_its_last_row_and_column(tmp_path):
    from togethernet_ros.inference.media import VideoSink

    frame = np.zeros((75, 101, 3), np.uint8)
    frame[-1, :] = frame[:, -1] = 255  # a box edge drawn on the last row and column
    sink = VideoSink(tmp_path / "odd.mp4", fps=10)
    for _ in range(3):
        sink.write(frame)
    sink.close()
    capture = cv2.VideoCapture(str(tmp_path / "odd.mp4"))
    ok, read = capture.read()
    capture.release()
    assert ok and read.shape == (76, 102, 3)  # padded by one black row and column, not cropped
    assert read[74, 10:90].mean() > 200 and read[10:60, 100].mean() > 200
