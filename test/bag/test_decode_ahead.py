"""Compressed frames decoded on threads come out as the reader thread alone decodes them."""

from __future__ import annotations

import threading
import time
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

from .bag_samples import START_NS, read_messages, scene, write_camera_bag
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


def _slowing_first_frames(monkeypatch, seconds: float = 0.05) -> None:
    """The first two sets of frames decode slowest: later ones finish before them."""
    original = BagReader.decode_pixels

    def slow_for_the_first(self, record, color_order="bgr"):
        if record.log_time_ns < START_NS + 2 * PERIOD_NS:
            time.sleep(seconds)
        return original(self, record, color_order)

    monkeypatch.setattr(BagReader, "decode_pixels", slow_for_the_first)


def test_frames_and_problems_come_out_in_bag_order_whatever_the_thread_count(tmp_path, monkeypatch):
    bag = _mixed_bag(tmp_path / "bag")
    serial, serial_problems = _decoded(bag, 1)
    _slowing_first_frames(monkeypatch)
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


def test_closing_early_cancels_the_decodes_not_started(tmp_path, monkeypatch):
    bag = _mixed_bag(tmp_path / "bag")
    started: list[tuple[str, int]] = []
    gate = threading.Event()
    original = BagReader.decode_pixels

    def held(self, record, color_order="bgr"):
        started.append((record.topic.topic, record.log_time_ns))
        if len(started) > 1:  # both threads stay busy until the gate opens
            assert gate.wait(30.0)
        return original(self, record, color_order)

    monkeypatch.setattr(BagReader, "decode_pixels", held)
    with BagReader(bag) as reader:
        wanted = set(reader.image_topics)
        records = ((r, r.topic.topic in wanted) for r in reader.records(None))
        frames = decode_in_order(reader, records, "bgr", 2)
        first_record, _first_frame = next(frames)
        # Five compressed frames were handed to the two threads; the two after the first
        # wait behind them. Closing cancels those; the gate opens for the two under way.
        threading.Timer(0.3, gate.set).start()
        frames.close()
    assert first_record.topic.topic == CAMERAS[0][0]
    jpeg, png = CAMERAS[0][0], CAMERAS[1][0]
    first_three = {(jpeg, START_NS), (png, START_NS), (jpeg, START_NS + PERIOD_NS)}
    assert set(started) <= first_three, started
    assert not [t.name for t in threading.enumerate() if t.name.startswith("bag-decode")]


def test_frames_among_many_other_records_still_decode_side_by_side(tmp_path, monkeypatch):
    """An IMU or tf topic between camera frames must not hold the decoding to one at a time."""
    typestore = create_typestore()
    string_type = typestore.types["std_msgs/msg/String"]
    topic = CAMERAS[0][0]
    with BagWriter(tmp_path / "bag", storage="mcap", typestore=typestore) as writer:
        for index in range(8):
            log_time = START_NS + index * PERIOD_NS
            header = make_header(typestore, log_time, "cam_a")
            message = encode_compressed_message(typestore, scene(index, 72, 96), header, "jpeg")
            writer.write(topic, COMPRESSED_IMAGE_TYPE, log_time, message)
            for sample in range(20):  # a 200 Hz IMU
                writer.write("/imu", "std_msgs/msg/String", log_time + sample, string_type("i"))
    running, most_at_once, lock = [0], [0], threading.Lock()
    original = BagReader.decode_pixels

    def counting(self, record, color_order="bgr"):
        with lock:
            running[0] += 1
            most_at_once[0] = max(most_at_once[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return original(self, record, color_order)

    monkeypatch.setattr(BagReader, "decode_pixels", counting)
    items, problems = _decoded(tmp_path / "bag", 3)
    assert len(items) == 8 * 21 and problems == []
    assert sum(image is not None for *_, image in items) == 8
    assert most_at_once[0] >= 2


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


@pytest.mark.parametrize("count", ["0", "-2", "33", "two"])
def test_a_bad_thread_count_is_refused_before_the_model_loads(tmp_path, capsys, count):
    bag = _mixed_bag(tmp_path / "bag", frames=2)
    with pytest.raises(SystemExit) as stopped:
        cli_main(
            ["bag", "run", str(bag), "--output", str(tmp_path / "out"), "--decode-threads", count]
        )
    assert stopped.value.code == 2
    assert (
        f"argument --decode-threads: must be -1 (auto) or a whole number from 1 to 32, "
        f"got {count!r}"
    ) in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_library_refuses_bad_thread_counts_too():
    with pytest.raises(ValueError, match=r"--decode-threads .* 1 to 32, got 0"):
        resolve_decode_threads(0)
    with pytest.raises(ValueError, match="decode threads must be 1 to 32, got 33"):
        next(decode_in_order(None, iter(()), "bgr", 33))


def test_a_bag_without_compressed_cameras_starts_no_decode_threads(tmp_path):
    source = write_camera_bag(tmp_path / "raw", frames=3, topics=[(CAMERAS[2][0], IMAGE_TYPE)])
    report = run_bag(source, tmp_path / "out", BlobDetector(), BagRunOptions(decode_threads=4))
    assert report.decode_threads == 1 and report.frames_processed == 3
