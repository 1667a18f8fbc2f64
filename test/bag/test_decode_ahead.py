"""Compressed frames decoded on threads come out as the reader thread alone decodes them."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from togethernet_ros.bag import decode_ahead
from togethernet_ros.bag.bag_reader import BagReader
from togethernet_ros.bag.bag_run import BagRunOptions, resolve_decode_threads, run_bag
from togethernet_ros.bag.bag_writer import BagWriter
from togethernet_ros.bag.decode_ahead import auto_decode_threads, decode_in_order
from togethernet_ros.bag.image_codec import (
    COMPRESSED_IMAGE_TYPE,
    IMAGE_TYPE,
    encode_compressed_message,
    encode_image_message,
    make_header,
)
from togethernet_ros.bag.vision_msgs_definitions import create_typestore
from togethernet_ros.cli import main as cli_main

from .bag_samples import START_NS, read_messages, scene
from .blob_detector import BlobDetector

CAMERAS = (
    ("/cam_a/image_raw/compressed", "jpeg"),
    ("/cam_b/image_raw/compressed", "png"),
    ("/cam_c/image_raw", "raw"),
)
PERIOD_NS = 100_000_000
# Frame 5 of cam_a is not a JPEG; frame 7 of cam_b is stamped before frame 6.
CORRUPT = ("/cam_a/image_raw/compressed", 5)
STEPPED_BACK = ("/cam_b/image_raw/compressed", 7)


def _mixed_bag(path: Path, frames: int = 12) -> Path:
    """Three cameras (JPEG, PNG, raw), a string topic between them, and two flawed frames."""
    typestore = create_typestore()
    string_type = typestore.types["std_msgs/msg/String"]
    with BagWriter(path, storage="mcap", typestore=typestore) as writer:
        for index in range(frames):
            log_time = START_NS + index * PERIOD_NS
            for topic, kind in CAMERAS:
                stamp = log_time - (2 * PERIOD_NS if (topic, index) == STEPPED_BACK else 0)
                header = make_header(typestore, stamp, topic.split("/")[1])
                pixels = scene(index, 72, 96)
                if kind == "raw":
                    message = encode_image_message(typestore, pixels, header, "bgr8")
                    writer.write(topic, IMAGE_TYPE, log_time, message)
                    continue
                message = encode_compressed_message(typestore, pixels, header, kind)
                if (topic, index) == CORRUPT:
                    message.data = np.frombuffer(b"not a jpeg at all", np.uint8)
                writer.write(topic, COMPRESSED_IMAGE_TYPE, log_time, message)
            writer.write("/notes", "std_msgs/msg/String", log_time, string_type(data=f"{index}"))
    return path


def _decoded(bag: Path, threads: int) -> tuple[list, list]:
    """Every record's (topic, log time, pixels or None) and the problems, in order."""
    with BagReader(bag) as reader:
        wanted = set(reader.image_topics)
        records = ((r, r.topic.topic in wanted) for r in reader.records(None))
        items = [
            (record.topic.topic, record.log_time_ns, None if frame is None else frame.image)
            for record, frame in decode_in_order(reader, records, "bgr", threads)
        ]
        return items, reader.problems.to_dicts()


def test_frames_and_problems_come_out_in_bag_order_whatever_the_thread_count(tmp_path):
    bag = _mixed_bag(tmp_path / "bag")
    serial, serial_problems = _decoded(bag, 1)
    for threads in (2, 5):
        threaded, problems = _decoded(bag, threads)
        assert [(t, n) for t, n, _ in threaded] == [(t, n) for t, n, _ in serial]
        for (topic, _, expected), (_, _, image) in zip(serial, threaded, strict=True):
            if expected is None:
                assert image is None, topic
            else:
                np.testing.assert_array_equal(image, expected)
        assert problems == serial_problems
    # 12 frames × 3 cameras + 12 notes; the corrupt JPEG is the one frame not decoded.
    assert len(serial) == 48
    assert sum(image is None for topic, _, image in serial if topic != "/notes") == 1
    assert [(p["kind"], p["topic"]) for p in serial_problems] == [
        ("decode_error", CORRUPT[0]),
        ("out_of_order", STEPPED_BACK[0]),
    ]


def test_compressed_frames_decode_on_the_pool_and_raw_frames_on_the_reader(tmp_path, monkeypatch):
    bag = _mixed_bag(tmp_path / "bag", frames=4)
    decoded_on: dict[str, set[str]] = {}
    original = BagReader.decode_pixels

    def noting_thread(self, record, color_order="bgr"):
        decoded_on.setdefault(record.topic.topic, set()).add(threading.current_thread().name)
        return original(self, record, color_order)

    monkeypatch.setattr(BagReader, "decode_pixels", noting_thread)
    _decoded(bag, 3)
    caller = threading.current_thread().name
    assert decoded_on["/cam_c/image_raw"] == {caller}
    for topic, _kind in CAMERAS[:2]:
        assert decoded_on[topic], topic
        assert all(name.startswith("bag-decode_") for name in decoded_on[topic]), decoded_on


def test_closing_early_leaves_no_decode_threads_running(tmp_path):
    bag = _mixed_bag(tmp_path / "bag")
    with BagReader(bag) as reader:
        wanted = set(reader.image_topics)
        records = ((r, r.topic.topic in wanted) for r in reader.records(None))
        frames = decode_in_order(reader, records, "bgr", 4)
        first_record, _first_frame = next(frames)
        frames.close()
    assert first_record.topic.topic == CAMERAS[0][0]
    assert not [t.name for t in threading.enumerate() if t.name.startswith("bag-decode")]


def test_bag_run_writes_the_same_bag_with_decode_threads(tmp_path):
    bag = _mixed_bag(tmp_path / "bag")
    reports, outputs = [], []
    for threads in (1, 3):
        output = tmp_path / f"out{threads}"
        reports.append(run_bag(bag, output, BlobDetector(), BagRunOptions(decode_threads=threads)))
        outputs.append(read_messages(output))
    serial, threaded = reports
    assert (serial.decode_threads, threaded.decode_threads) == (1, 3)
    assert threaded.to_dict()["decode_threads"] == 3
    assert serial.frames_processed == threaded.frames_processed == 35
    assert threaded.problems == serial.problems
    assert threaded.pipeline["batch_sizes"] == serial.pipeline["batch_sizes"]
    assert sorted(outputs[1]) == sorted(outputs[0])
    for topic, messages in outputs[0].items():
        assert [t for t, _ in outputs[1][topic]] == [t for t, _ in messages], topic
    for topic in ("/cam_a/detections_raw", "/cam_b/detections_raw"):
        boxes = [[d.bbox.center.position.x for d in m.detections] for _, m in outputs[0][topic]]
        assert [[d.bbox.center.position.x for d in m.detections] for _, m in outputs[1][topic]] == (
            boxes
        )
        assert sum(len(b) for b in boxes) >= 10, topic  # the blob was found in the frames


@pytest.mark.parametrize(("cpus", "expected"), [(None, 1), (1, 1), (2, 2), (5, 5), (64, 8)])
def test_auto_takes_a_thread_per_cpu_up_to_eight(monkeypatch, cpus, expected):
    monkeypatch.setattr(decode_ahead, "usable_cpus", lambda: cpus)
    assert auto_decode_threads() == expected
    assert resolve_decode_threads(-1) == expected
    assert resolve_decode_threads(3) == 3


def test_a_bad_thread_count_is_refused_before_the_model_loads(tmp_path, capsys):
    bag = _mixed_bag(tmp_path / "bag", frames=2)
    with pytest.raises(ValueError, match=r"--decode-threads .* at least 1, got 0"):
        resolve_decode_threads(0)
    with pytest.raises(ValueError, match="decode threads must be >= 1"):
        next(decode_in_order(None, iter(()), "bgr", 0))
    code = cli_main(
        ["bag", "run", str(bag), "--output", str(tmp_path / "out"), "--decode-threads", "-2"]
    )
    assert code == 2
    assert "--decode-threads (decode_threads) must be -1 (auto) or at least 1, got -2" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "out").exists()
