"""`togethernet distill` on rosbag2 recordings: the real teacher labels real footage from a bag.

The teacher is the converted NanoDet (cached; these tests skip with the reason when it cannot be
fetched), the bags are written with rosbags from vtest.avi frames, training is a tiny CPU run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
from support.cli_refusal import refused

from togethernet_ros.bag.vision_msgs_definitions import create_typestore
from togethernet_ros.cli import main
from togethernet_ros.distill.pseudo_labels import load_pseudo_labels

from .real_inputs import real_teacher
from .test_distill_bag_frames import (
    FRONT,
    PERIOD_NS,
    SIDE,
    START_NS,
    camera_messages,
    footage,
    write_bag,
)
from .test_distill_overrides import TINY

FRONT_ID = "drive__sensing_camera_front_image_raw"
SIDE_ID = "drive__sensing_camera_side_image_raw_compressed"


def _teacher() -> str:
    return str(real_teacher().onnx_path)  # skips with the reason when npm cannot fetch it


def _drive(tmp_path: Path, frames: int = 10, layout: str = "mcap") -> Path:
    messages = camera_messages(create_typestore(), footage(frames, width=384))
    return write_bag(tmp_path / "drive", messages, layout)


def test_a_bag_is_labelled_per_camera_and_every_frame_is_traceable(tmp_path, capsys):
    teacher = _teacher()
    bag = _drive(tmp_path, layout="split")
    data = tmp_path / "data"
    argv = ["distill", str(bag), "--frame-step", "1", "--export-dataset", str(data)]
    assert main([*argv, "--teacher-onnx", teacher]) == 0
    out = capsys.readouterr().out
    assert f"bag {bag} {FRONT}: 10 messages, 10 frames used (2 held out)" in out
    assert "pseudo-labelled 20 frames (4 held out)" in out

    label_set = load_pseudo_labels(data)
    entries = json.loads((data / "labels.json").read_text())["frames"]
    assert len(entries) == 20
    for entry in entries:
        topic, source = (FRONT, FRONT_ID) if entry["source"] == FRONT_ID else (SIDE, SIDE_ID)
        stamp = START_NS + entry["frame_index"] * PERIOD_NS
        assert entry["origin"]["bag"] == str(bag) and entry["origin"]["topic"] == topic
        assert entry["origin"]["stamp_ns"] == stamp
        assert entry["image"] == f"images/{source}_{entry['frame_index']:06d}_{stamp}.jpg"
        assert (data / entry["image"]).is_file()
        assert entry["split"] == ("heldout" if entry["frame_index"] >= 8 else "train")
    # The teacher found the people of the footage in both cameras' frames.
    for source in (FRONT_ID, SIDE_ID):
        people = [len(f.labels) for f in label_set.frames if f.source == source]
        assert min(people) >= 1 and sum(people) >= 20, (source, people)
    assert label_set.info["sources"] == [f"drive (rosbag2: {FRONT}, {SIDE})"]
    [record] = label_set.info["bags"]
    assert record["topics"][SIDE] == {
        "source": SIDE_ID,
        "messages": 10,
        "used": 10,
        "heldout": 2,
        "skipped": 0,
    }
    # A frame read back from the dataset is the recorded frame (raw bgr8, stored as JPEG 95).
    first = next(f for f in label_set.frames if f.source == FRONT_ID and f.frame_index == 3)
    jpeg = cv2.imencode(".jpg", footage(4, width=384)[3], [cv2.IMWRITE_JPEG_QUALITY, 95])[1]
    np.testing.assert_array_equal(label_set.read_clear_bgr(first), cv2.imdecode(jpeg, 1))


def test_topic_chooses_the_cameras_and_max_frames_caps_each(tmp_path, capsys):
    teacher = _teacher()
    bag = _drive(tmp_path, frames=12, layout="zstd")
    data = tmp_path / "data"
    argv = ["distill", str(bag), "--topic", SIDE, "--max-frames", "4", "--holdout", "0.25"]
    assert main([*argv, "--export-dataset", str(data), "--teacher-onnx", teacher]) == 0
    label_set = load_pseudo_labels(data)
    assert [(f.source, f.frame_index, f.heldout) for f in label_set.frames] == [
        (SIDE_ID, 0, False),
        (SIDE_ID, 3, False),
        (SIDE_ID, 6, False),
        (SIDE_ID, 9, True),
    ]
    assert label_set.info["settings"]["topics"] == [SIDE]


def test_a_topic_a_bag_lacks_is_refused_before_anything_is_written(tmp_path, capsys):
    bag = _drive(tmp_path, frames=2)
    output = tmp_path / "run"
    message = refused(
        capsys,
        ["distill", str(bag), "--topic", "/camera/front", "--output", str(output)],
        re.escape(
            f"togethernet distill: error: bag {bag} has no topic /camera/front "
            f"(its image topics: {FRONT}, {SIDE})"
        ),
    )
    assert len(message.splitlines()) == 1
    assert not output.exists()


def test_topic_without_a_bag_and_a_zstd_part_are_refused_by_name(tmp_path, capsys):
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 72))
    for frame in footage(3, width=96):
        writer.write(frame)
    writer.release()
    output = tmp_path / "run"
    refused(
        capsys,
        ["distill", str(video), "--topic", FRONT, "--output", str(output)],
        "--topic chooses camera topics of rosbag2 sources, and none of the sources is a rosbag2",
    )
    bag = _drive(tmp_path, frames=2, layout="zstd")
    [part] = bag.glob("*.zstd")
    refused(
        capsys,
        ["distill", str(part), "--output", str(output)],
        re.escape(
            f"{part.name} is one zstd-compressed storage file of the bag {bag}: "
            f"pass the bag folder {bag} instead"
        ),
    )
    assert not output.exists()


def test_two_sources_of_one_name_keep_their_own_frames(tmp_path, capsys):
    # day1/front.avi and day2/front.avi were both "front": the second wrote its frames over the
    # first one's images/front_000000.jpg ..., leaving labels that describe other pixels.
    teacher = _teacher()
    frames = footage(6, width=192)
    videos = []
    for day, shift in (("day1", 0), ("day2", 3)):
        (tmp_path / day).mkdir()
        videos.append(tmp_path / day / "front.avi")
        writer = cv2.VideoWriter(str(videos[-1]), cv2.VideoWriter_fourcc(*"MJPG"), 10, (192, 144))
        for frame in frames[shift : shift + 3]:
            writer.write(frame)
        writer.release()
    data = tmp_path / "data"
    argv = ["distill", *map(str, videos), "--frame-step", "1", "--holdout", "0.4"]
    assert main([*argv, "--export-dataset", str(data), "--teacher-onnx", teacher]) == 0
    label_set = load_pseudo_labels(data)
    assert sorted({f.source for f in label_set.frames}) == ["front", "front_2"]
    assert len({f.image for f in label_set.frames}) == len(label_set.frames) == 6
    for frame in label_set.frames:
        shift = 0 if frame.source == "front" else 3
        expected = frames[shift + frame.frame_index].astype(int)
        assert np.abs(label_set.read_clear_bgr(frame).astype(int) - expected).mean() < 8


def test_distilling_from_a_bag_trains_and_reports_on_each_cameras_held_out_tail(tmp_path):
    teacher = _teacher()
    bag = _drive(tmp_path, frames=10, layout="sqlite3")
    run_dir, weights = tmp_path / "run", tmp_path / "w.pt"
    argv = ["distill", str(bag), "--frame-step", "2", "--output", str(run_dir), *TINY]
    argv += ["--input-size", "128", "--epochs", "1", "--batch-size", "4", "--workers", "0"]
    argv += ["--fog-variants", "1", "--eval-betas", "0,0.1", "--teacher-onnx", teacher]
    assert main([*argv, "--weights-out", str(weights)]) == 0
    report = json.loads((run_dir / "heldout_report.json").read_text())
    # 10 messages per camera, every 2nd: index 8 is each camera's held-out frame.
    assert report["heldout_frames"] == 2 and sum(report["num_gt"].values()) >= 2
    assert report["rows"][0]["teacher_map"] >= 0.9  # the teacher against its own clear labels
    card = weights.with_suffix(".md").read_text()
    assert f"drive (rosbag2: {FRONT}, {SIDE})" in card
