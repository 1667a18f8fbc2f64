"""Bags as they come off robots: split, whole-file compressed, killed mid-write, odd topics.

Each bag is written for real (rosbags, mcap) in the layout `ros2 bag record` leaves, then read
by the reader and run through `bag run` with a small real detector: every camera frame must be
read in order, every skipped message named, and one detections message written per frame.
"""

from __future__ import annotations

import shutil
import sqlite3
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.rosbag2 import CompressionFormat, CompressionMode, Reader, StoragePlugin, Writer
from ruamel.yaml import YAML

from togethernet_ros.bag import bag_problems as kinds
from togethernet_ros.bag.bag_reader import BagReader
from togethernet_ros.bag.bag_run import BagRunOptions, run_bag
from togethernet_ros.bag.bag_writer import BagWriter
from togethernet_ros.bag.image_codec import (
    COMPRESSED_IMAGE_TYPE,
    IMAGE_TYPE,
    decode_compressed_message,
    encode_image_message,
    make_header,
)
from togethernet_ros.bag.vision_msgs_definitions import create_typestore

from .bag_samples import START_NS, scene
from .blob_detector import BlobDetector

CAMERA = "/robot/cam_front/image_raw"
PERIOD_NS = 100_000_000
PLUGINS = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
EXTENSIONS = {"mcap": ".mcap", "sqlite3": ".db3"}
# One offered QoS profile as rosbag2 (Humble and later) stores it: a YAML string.
QOS_YAML = "\n".join(
    [
        "- history: 3",
        "  depth: {depth}",
        "  reliability: 1",
        "  durability: 2",
        "  deadline: {{sec: 2147483647, nsec: 4294967295}}",
        "  lifespan: {{sec: 2147483647, nsec: 4294967295}}",
        "  liveliness: 1",
        "  liveliness_lease_duration: {{sec: 2147483647, nsec: 4294967295}}",
        "  avoid_ros_namespace_conventions: false",
    ]
)


def _image(typestore, index: int, stamp_ns: int | None = None):
    stamp = START_NS + index * PERIOD_NS if stamp_ns is None else stamp_ns
    header = make_header(typestore, stamp, "cam_front")
    return encode_image_message(typestore, scene(index), header, "bgr8")


def _compressed(typestore, index: int, image_format: str, pixels: np.ndarray, codec: str):
    header = make_header(typestore, START_NS + index * PERIOD_NS, "cam")
    data = cv2.imencode(codec, pixels)[1].reshape(-1)
    return typestore.types[COMPRESSED_IMAGE_TYPE](header=header, format=image_format, data=data)


def _output_counts(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    with Reader(path) as reader:
        for connection, _, _ in reader.messages():
            counts[connection.topic] = counts.get(connection.topic, 0) + 1
    return counts


def _split_recording(path: Path, storage: str, files: int, with_metadata: bool) -> Path:
    """A `--max-bag-size` recording: one frame per file, bag_0 … bag_N, as rosbag2 names them."""
    typestore = create_typestore()
    parts = path.with_name(path.name + "_parts")
    infos = []
    for index in range(files):
        with BagWriter(parts / str(index), storage, typestore) as writer:
            writer.write(CAMERA, IMAGE_TYPE, START_NS + index * PERIOD_NS, _image(typestore, index))
        yaml_text = (parts / str(index) / "metadata.yaml").read_text()
        infos.append(YAML(typ="safe").load(yaml_text)["rosbag2_bagfile_information"])
    path.mkdir()
    names = [f"{path.name}_{index}{EXTENSIONS[storage]}" for index in range(files)]
    for index, name in enumerate(names):
        [storage_file] = (parts / str(index)).glob(f"*{EXTENSIONS[storage]}")
        shutil.move(storage_file, path / name)
    shutil.rmtree(parts)
    if with_metadata:
        info = infos[0]
        info["relative_file_paths"] = names
        info["message_count"] = files
        info["topics_with_message_count"][0]["message_count"] = files
        info["files"] = [{**i["files"][0], "path": n} for i, n in zip(infos, names, strict=True)]
        with (path / "metadata.yaml").open("w") as stream:
            YAML().dump({"rosbag2_bagfile_information": info}, stream)
    return path


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_file_compressed_bag_is_read_and_run(tmp_path, storage):
    # `ros2 bag record --compression-mode file` leaves bag_0.mcap.zstd and a metadata.yaml;
    # such bags were refused as "no metadata.yaml and no .mcap/.db3 file inside".
    typestore = create_typestore()
    path = tmp_path / "compressed"
    writer = Writer(path, version=Writer.VERSION_LATEST, storage_plugin=PLUGINS[storage])
    writer.set_compression(CompressionMode.FILE, CompressionFormat.ZSTD)
    writer.open()
    connection = writer.add_connection(CAMERA, IMAGE_TYPE, typestore=typestore)
    for index in range(5):
        raw = typestore.serialize_cdr(_image(typestore, index), IMAGE_TYPE)
        writer.write(connection, START_NS + index * PERIOD_NS, raw)
    writer.close()
    assert not list(path.glob(f"*{EXTENSIONS[storage]}"))  # only the .zstd file is there
    with BagReader(path) as reader:
        frames = list(reader.frames())
    assert [f.stamp_ns - START_NS for f in frames] == [i * PERIOD_NS for i in range(5)]
    assert reader.storage == storage and not reader.problems
    report = run_bag(path, tmp_path / "out", BlobDetector(), BagRunOptions())
    assert report.frames_processed == 5
    assert _output_counts(tmp_path / "out")["/robot/cam_front/detections"] == 5


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
@pytest.mark.parametrize("with_metadata", [True, False])
def test_split_recording_is_read_whole_and_in_order(tmp_path, storage, with_metadata):
    # Twelve files: a recorder killed mid-run leaves no metadata.yaml, and bag_10/bag_11
    # sort before bag_2 by name. Without metadata only the first file was read (1 of 12).
    path = _split_recording(tmp_path / "split", storage, files=12, with_metadata=with_metadata)
    with BagReader(path) as reader:
        frames = list(reader.frames())
    assert [f.stamp_ns - START_NS for f in frames] == [i * PERIOD_NS for i in range(12)]
    for index, frame in enumerate(frames):
        np.testing.assert_array_equal(frame.image, scene(index))
    assert bool(reader.problems.of_kind(kinds.NO_METADATA)) is not with_metadata
    assert reader.image_message_count == 12
    report = run_bag(path, tmp_path / "out", BlobDetector(), BagRunOptions())
    counts = _output_counts(tmp_path / "out")
    assert report.frames_processed == counts["/robot/cam_front/detections"] == 12
    assert counts[CAMERA] == 12  # inputs copied from every file


def test_split_recording_killed_mid_write_keeps_earlier_files_and_the_torn_prefix(tmp_path):
    path = _split_recording(tmp_path / "split", "mcap", files=3, with_metadata=False)
    # The file being written when the recorder died: grow it, then cut it mid-way.
    last = path / "split_2.mcap"
    typestore = create_typestore()
    last.unlink()
    with BagWriter(tmp_path / "long", "mcap", typestore) as writer:
        for index in range(2, 40):
            writer.write(CAMERA, IMAGE_TYPE, START_NS + index * PERIOD_NS, _image(typestore, index))
    data = next((tmp_path / "long").glob("*.mcap")).read_bytes()
    last.write_bytes(data[: len(data) // 2])
    with BagReader(path) as reader:
        stamps = [(f.stamp_ns - START_NS) // PERIOD_NS for f in reader.frames()]
    assert stamps[:3] == [0, 1, 2] and stamps == list(range(len(stamps))) and len(stamps) > 10
    lines = "\n".join(reader.problems.lines())
    assert "split_2.mcap: mcap index unreadable" in lines and "split_2.mcap ends early" in lines


def test_compressed_formats_of_image_transport_keep_their_colours(tmp_path):
    # "compressed rgb8": the publisher compressed RGB pixels unconverted, and image_transport
    # decodes them as RGB. Read as BGR, red and blue swapped and the blob (red) was not found.
    typestore = create_typestore()
    topics = {
        "/a/image_raw/compressed": ("bgr8; jpeg compressed bgr8", ".jpg", False),
        "/b/image_raw/compressed": ("rgb8; png compressed rgb8", ".png", True),
        "/c/image_raw/compressed": ("rgb8; jpeg compressed bgr8", ".jpg", False),
        "/d/image_raw/compressed": ("png", ".png", False),
    }
    path = tmp_path / "bag"
    with BagWriter(path, "mcap", typestore) as writer:
        for index in range(4):
            for topic, (image_format, codec, rgb_inside) in topics.items():
                pixels = scene(index)[:, :, ::-1].copy() if rgb_inside else scene(index)
                message = _compressed(typestore, index, image_format, pixels, codec)
                writer.write(topic, COMPRESSED_IMAGE_TYPE, START_NS + index * PERIOD_NS, message)
    with BagReader(path) as reader:
        for frame in reader.frames():
            expected = scene(int((frame.stamp_ns - START_NS) // PERIOD_NS))
            # Mean, not max: JPEG rings at the block's edges; swapped colours differ by ~50.
            difference = np.abs(frame.image.astype(int) - expected).mean()
            assert difference < 5, (frame.topic, difference)
    report = run_bag(path, tmp_path / "out", BlobDetector(), BagRunOptions(dehazed=False))
    assert report.frames_processed == 16 and report.problems == []
    with Reader(tmp_path / "out") as reader:
        for connection, _, raw in reader.messages():
            if connection.topic.endswith("/detections_raw"):
                message = typestore.deserialize_cdr(raw, connection.msgtype)
                assert len(message.detections) == 1, connection.topic


def test_rgb_order_is_read_from_the_format_string():
    # As image_transport's subscriber: colour data not stored as "compressed bgr…" is RGB.
    typestore = create_typestore()
    pixels = scene(0)
    for image_format, stored in (
        ("rgb8; png compressed rgb8", pixels[:, :, ::-1].copy()),
        ("bgr8; png compressed rgb8", pixels[:, :, ::-1].copy()),
        ("rgb8; png compressed bgr8", pixels),
        ("bgr8; png compressed bgr8", pixels),
        ("png", pixels),
    ):
        message = _compressed(typestore, 0, image_format, stored, ".png")
        bgr = decode_compressed_message(message, "bgr")
        rgb = decode_compressed_message(message, "rgb")
        np.testing.assert_array_equal(bgr, pixels, err_msg=image_format)
        np.testing.assert_array_equal(rgb, pixels[:, :, ::-1], err_msg=image_format)


def test_depth_topic_in_a_camera_folder_is_not_a_camera(tmp_path):
    typestore = create_typestore()
    depth_topic = "/robot/cam_front/depth/image_raw/compressedDepth"
    path = tmp_path / "bag"
    with BagWriter(path, "mcap", typestore) as writer:
        for index in range(3):
            log_time = START_NS + index * PERIOD_NS
            writer.write(CAMERA, IMAGE_TYPE, log_time, _image(typestore, index))
            depth = np.full((96, 128), 1000 + index, np.uint16)
            # compressedDepth: a 12-byte ConfigHeader (format, depth quantisation) then a PNG.
            data = struct.pack("<iff", 0, 0.0, 0.0) + cv2.imencode(".png", depth)[1].tobytes()
            message = typestore.types[COMPRESSED_IMAGE_TYPE](
                header=make_header(typestore, log_time, "depth"),
                format="16UC1; compressedDepth",
                data=np.frombuffer(data, np.uint8),
            )
            writer.write(depth_topic, COMPRESSED_IMAGE_TYPE, log_time, message)
    with BagReader(path) as reader:
        assert reader.image_topics == [CAMERA]
    [problem] = reader.problems.of_kind(kinds.NOT_A_CAMERA)
    assert problem.topic == depth_topic and "depth" in problem.detail
    with BagReader(path, [depth_topic, CAMERA]) as reader:
        assert reader.image_topics == [CAMERA]
    report = run_bag(path, tmp_path / "out", BlobDetector(), BagRunOptions())
    counts = _output_counts(tmp_path / "out")
    assert report.frames_processed == counts["/robot/cam_front/detections"] == 3
    assert counts[depth_topic] == 3  # copied as it is, not processed
    assert not [t for t in counts if t.startswith("/robot/cam_front/depth/") and t != depth_topic]
    with pytest.raises(ValueError, match=r"compressedDepth.*not a camera image"):
        decode_compressed_message(message)


def test_unsupported_encodings_are_named_and_the_run_goes_on(tmp_path):
    typestore = create_typestore()
    image_type = typestore.types[IMAGE_TYPE]
    good = {"bgr8": 3, "rgb8": 3, "mono8": 1, "bgra8": 4, "rgba8": 4}
    bad = {"16UC1": 2, "32FC1": 4, "64FC1": 8}
    path = tmp_path / "bag"
    with BagWriter(path, "mcap", typestore) as writer:
        for index in range(3):
            log_time = START_NS + index * PERIOD_NS
            header = make_header(typestore, log_time, "cam")
            bgr = scene(index)
            pixels = {
                "bgr8": bgr,
                "rgb8": bgr[:, :, ::-1],
                "mono8": cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY),
                "bgra8": cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA),
                "rgba8": cv2.cvtColor(bgr, cv2.COLOR_BGR2RGBA),
            }
            for encoding, array in pixels.items():
                message = encode_image_message(
                    typestore, np.ascontiguousarray(array), header, encoding
                )
                writer.write(f"/{encoding}/image_raw", IMAGE_TYPE, log_time, message)
            for encoding, bytes_per_pixel in bad.items():
                message = image_type(
                    header=header,
                    height=96,
                    width=128,
                    encoding=encoding,
                    is_bigendian=0,
                    step=128 * bytes_per_pixel,
                    data=np.zeros(96 * 128 * bytes_per_pixel, np.uint8),
                )
                writer.write(f"/{encoding.lower()}/image_raw", IMAGE_TYPE, log_time, message)
    report = run_bag(path, tmp_path / "out", BlobDetector(), BagRunOptions())
    counts = _output_counts(tmp_path / "out")
    assert report.frames_processed == 3 * len(good)
    for encoding in good:
        assert counts[f"/{encoding}/detections"] == 3, encoding
    problems = {p["topic"]: p for p in report.problems}
    assert set(problems) == {f"/{encoding.lower()}/image_raw" for encoding in bad}
    for encoding in bad:
        problem = problems[f"/{encoding.lower()}/image_raw"]
        assert problem["kind"] == kinds.DECODE_ERROR and problem["count"] == 3
        assert repr(encoding) in problem["detail"]


def test_zero_stamps_are_unstamped_not_a_step_back(tmp_path):
    # A driver that sometimes leaves the stamp at zero: that is no reversal of time, and the
    # stamp after it must still be compared with the last real stamp.
    typestore = create_typestore()
    stamps = [START_NS + 100, 0, START_NS + 50, START_NS + 200]
    path = tmp_path / "bag"
    with BagWriter(path, "mcap", typestore) as writer:
        for index, stamp in enumerate(stamps):
            message = _image(typestore, index, stamp_ns=stamp)
            writer.write(CAMERA, IMAGE_TYPE, START_NS + index * PERIOD_NS, message)
    with BagReader(path) as reader:
        assert [f.stamp_ns for f in reader.frames()] == stamps
    [unstamped] = reader.problems.of_kind(kinds.UNSTAMPED)
    assert unstamped.topic == CAMERA and unstamped.count == 1
    [backwards] = reader.problems.of_kind(kinds.OUT_OF_ORDER)
    assert backwards.count == 1 and f"{START_NS + 50} ns is before" in backwards.detail


def test_metadata_that_does_not_match_its_storage_is_reported_not_silent(tmp_path):
    # rosbags pairs metadata.yaml's topics with the storage's by type and QoS: a metadata.yaml
    # edited or rewritten with other QoS yields no message at all, which read as an empty bag.
    typestore = create_typestore()
    path = tmp_path / "bag"
    with BagWriter(path, "sqlite3", typestore) as writer:
        for index in range(3):
            writer.write(CAMERA, IMAGE_TYPE, START_NS + index * PERIOD_NS, _image(typestore, index))
    metadata = path / "metadata.yaml"
    document = YAML(typ="safe").load(metadata.read_text())
    [topic] = document["rosbag2_bagfile_information"]["topics_with_message_count"]
    topic["topic_metadata"]["offered_qos_profiles"] = QOS_YAML.format(depth=5)
    with metadata.open("w") as stream:
        YAML().dump(document, stream)
    with BagReader(path) as reader:
        assert list(reader.frames()) == []
    [problem] = reader.problems.of_kind(kinds.UNREAD_TOPIC)
    assert problem.topic == CAMERA and "lists 3 messages but none could be read" in problem.detail


def test_humble_metadata_version_5(tmp_path):
    # Humble writes version 5: QoS as a YAML string, no type hash, no custom_data / ros_distro.
    typestore = create_typestore()
    path = tmp_path / "bag"
    with BagWriter(path, "sqlite3", typestore) as writer:
        for index in range(4):
            writer.write(CAMERA, IMAGE_TYPE, START_NS + index * PERIOD_NS, _image(typestore, index))
    qos = QOS_YAML.format(depth=0)
    [database] = path.glob("*.db3")
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE topics SET offered_qos_profiles = ?", (qos,))
    connection.close()
    metadata = path / "metadata.yaml"
    document = YAML(typ="safe").load(metadata.read_text())
    info = document["rosbag2_bagfile_information"]
    info["version"] = 5
    for key in ("custom_data", "ros_distro"):
        info.pop(key, None)
    for topic in info["topics_with_message_count"]:
        topic["topic_metadata"].pop("type_description_hash", None)
        topic["topic_metadata"]["offered_qos_profiles"] = qos
    with metadata.open("w") as stream:
        YAML().dump(document, stream)
    report = run_bag(path, tmp_path / "out", BlobDetector(), BagRunOptions())
    assert report.frames_processed == 4 and report.problems == []
    assert _output_counts(tmp_path / "out")["/robot/cam_front/detections"] == 4


def test_namespace_depths_and_a_heavy_topic_that_is_never_deserialized(tmp_path):
    typestore = create_typestore()
    cloud_type = "sensor_msgs/msg/PointCloud2"
    path = tmp_path / "bag"
    with BagWriter(path, "mcap", typestore) as writer:
        for index in range(4):
            log_time = START_NS + index * PERIOD_NS
            writer.write("/image_raw", IMAGE_TYPE, log_time, _image(typestore, index))
            writer.write(CAMERA, IMAGE_TYPE, log_time + 1, _image(typestore, index))
            cloud = typestore.types[cloud_type](
                header=make_header(typestore, log_time, "lidar"),
                height=1,
                width=50_000,
                fields=[],
                is_bigendian=False,
                point_step=16,
                row_step=800_000,
                data=np.zeros(800_000, np.uint8),
                is_dense=True,
            )
            writer.write("/lidar/points", cloud_type, log_time + 2, cloud)
    deserialized: list[str] = []
    original = typestore.deserialize_cdr

    def watching(raw, msgtype):
        deserialized.append(msgtype)
        return original(raw, msgtype)

    with BagReader(path, typestore=typestore) as reader:
        reader.typestore.deserialize_cdr = watching
        frames = [(f.topic, f.stamp_ns) for f in reader.frames()]
    assert frames == [
        (topic, START_NS + i * PERIOD_NS) for i in range(4) for topic in ("/image_raw", CAMERA)
    ]
    assert set(deserialized) == {IMAGE_TYPE}
    report = run_bag(path, tmp_path / "out", BlobDetector(), BagRunOptions())
    counts = _output_counts(tmp_path / "out")
    assert report.frames_processed == 8
    assert counts["/detections"] == counts["/robot/cam_front/detections"] == 4
    assert counts["/lidar/points"] == 4


def test_metadata_of_a_newer_rosbag2_falls_back_to_the_storage_file(tmp_path):
    # rosbags refuses metadata versions it does not know; the .db3 still describes itself.
    # This was "cannot open sqlite3 storage ...: the file is damaged or truncated".
    typestore = create_typestore()
    path = tmp_path / "bag"
    with BagWriter(path, "sqlite3", typestore) as writer:
        for index in range(3):
            writer.write(CAMERA, IMAGE_TYPE, START_NS + index * PERIOD_NS, _image(typestore, index))
    metadata = path / "metadata.yaml"
    document = YAML(typ="safe").load(metadata.read_text())
    document["rosbag2_bagfile_information"]["version"] = 99
    with metadata.open("w") as stream:
        YAML().dump(document, stream)
    with BagReader(path) as reader:
        assert len(list(reader.frames())) == 3
    [problem] = reader.problems.of_kind(kinds.BAD_METADATA)
    assert "version 99" in problem.detail and "storage file(s) directly" in problem.detail
