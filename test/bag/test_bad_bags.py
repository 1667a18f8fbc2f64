"""Broken bags: what can be read is read, the rest is reported with a clear message."""

from __future__ import annotations

import shutil
import struct

import numpy as np
import pytest

from togethernet_ros.bag import bag_problems as kinds
from togethernet_ros.bag.bag_problems import BagError
from togethernet_ros.bag.bag_reader import BagReader
from togethernet_ros.bag.bag_writer import BagWriter
from togethernet_ros.bag.image_codec import (
    COMPRESSED_IMAGE_TYPE,
    IMAGE_TYPE,
    encode_compressed_message,
    encode_image_message,
    make_header,
)
from togethernet_ros.bag.mcap_salvage import MAGIC, OP_CHANNEL, OP_CHUNK, OP_MESSAGE, OP_SCHEMA
from togethernet_ros.bag.vision_msgs_definitions import create_typestore

from .bag_samples import scene


def test_missing_topic_is_reported_and_others_processed(camera_bag):
    path = camera_bag(frames=2)
    with BagReader(path, image_topics=["/cam_front/image_raw", "/cam_rear/image_raw"]) as reader:
        frames = list(reader.frames())
    assert len(frames) == 2
    [problem] = reader.problems.of_kind(kinds.MISSING_TOPIC)
    assert problem.topic == "/cam_rear/image_raw"
    assert "/cam_front/image_raw" in problem.detail  # lists what is there


def test_only_missing_topics_is_an_error_naming_the_bag(camera_bag):
    path = camera_bag(frames=1)
    with pytest.raises(BagError, match=r"no readable image topic.*/nope.*not in the bag"):
        BagReader(path, image_topics=["/nope"]).open()


def test_non_image_type_on_requested_topic(tmp_path):
    typestore = create_typestore()
    path = tmp_path / "mixed"
    with BagWriter(path, typestore=typestore) as writer:
        string_type = typestore.types["std_msgs/msg/String"]
        writer.write("/chatter", "std_msgs/msg/String", 1, string_type(data="hi"))
        header = make_header(typestore, 5, "cam")
        writer.write(
            "/cam/image_raw", IMAGE_TYPE, 2, encode_image_message(typestore, scene(0), header)
        )
    with BagReader(path, image_topics=["/chatter", "/cam/image_raw"]) as reader:
        frames = list(reader.frames())
    assert len(frames) == 1
    [problem] = reader.problems.of_kind(kinds.UNKNOWN_TYPE)
    assert problem.topic == "/chatter"
    assert "std_msgs/msg/String" in problem.detail
    # Without a selection the non-image topic is simply not an image topic.
    with BagReader(path) as reader:
        assert reader.image_topics == ["/cam/image_raw"]


def test_unsupported_encoding_skips_those_messages(tmp_path):
    typestore = create_typestore()
    path = tmp_path / "enc"
    with BagWriter(path, typestore=typestore) as writer:
        for index in range(3):
            message = encode_image_message(
                typestore, scene(index), make_header(typestore, index, "")
            )
            if index == 1:
                message.encoding = "32FC1"
            writer.write("/cam/image_raw", IMAGE_TYPE, index, message)
    with BagReader(path) as reader:
        frames = list(reader.frames())
    assert [f.stamp_ns for f in frames] == [0, 2]
    [problem] = reader.problems.of_kind(kinds.DECODE_ERROR)
    assert "32FC1" in problem.detail


def test_out_of_order_stamps_are_processed_and_reported(camera_bag):
    path = camera_bag(frames=4, stamps=[0, 200, 100, 300])
    with BagReader(path, image_topics=["/cam_front/image_raw"]) as reader:
        frames = list(reader.frames())
    assert [f.stamp_ns % 1000 for f in frames] == [0, 200, 100, 300]
    [problem] = reader.problems.of_kind(kinds.OUT_OF_ORDER)
    assert problem.count == 1 and "before the previous" in problem.detail


def _truncate(path, keep_fraction: float) -> None:
    [storage_file] = [p for p in path.iterdir() if p.suffix in (".mcap", ".db3")]
    data = storage_file.read_bytes()
    storage_file.write_bytes(data[: int(len(data) * keep_fraction)])


def test_truncated_mcap_without_metadata_yields_the_readable_prefix(camera_bag):
    # A recorder killed mid-write: no metadata.yaml and an mcap without summary/footer.
    path = camera_bag(frames=40, topics=(("/cam_front/image_raw", IMAGE_TYPE),))
    (path / "metadata.yaml").unlink()
    _truncate(path, 0.6)
    with BagReader(path) as reader:
        frames = list(reader.frames())
    assert 5 <= len(frames) < 40
    for index, frame in enumerate(frames):
        np.testing.assert_array_equal(frame.image, scene(index))
    assert reader.problems.of_kind(kinds.NO_METADATA)
    truncated = reader.problems.of_kind(kinds.TRUNCATED)
    assert truncated and any("ends early" in p.detail for p in truncated)


def test_truncated_mcap_with_metadata(camera_bag):
    path = camera_bag(frames=40, topics=(("/cam_front/image_raw", IMAGE_TYPE),))
    _truncate(path, 0.7)
    with BagReader(path) as reader:
        frames = list(reader.frames())
    assert 5 <= len(frames) < 40
    assert reader.problems.of_kind(kinds.TRUNCATED)


def test_truncated_sqlite3_is_a_clear_error(camera_bag):
    path = camera_bag(frames=40, storage="sqlite3", topics=(("/cam_front/image_raw", IMAGE_TYPE),))
    _truncate(path, 0.5)
    with pytest.raises(
        BagError, match=r"cannot open sqlite3 storage.*damaged or truncated"
    ) as info:
        BagReader(path).open()
    assert str(path) in str(info.value)


def test_not_a_bag(tmp_path):
    with pytest.raises(BagError, match="does not exist"):
        BagReader(tmp_path / "nothing").open()
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagError, match=r"no metadata\.yaml and no \.mcap/\.db3"):
        BagReader(tmp_path / "empty").open()
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "x.mcap").write_bytes(b"not an mcap at all")
    with pytest.raises(BagError, match="no readable image topic"):
        BagReader(garbage).open()


def test_existing_output_needs_overwrite(camera_bag, tmp_path):
    path = camera_bag(frames=1)
    with pytest.raises(BagError, match="exists already"):
        BagWriter(path)
    BagWriter(path, overwrite=True)
    assert not path.exists()
    shutil.rmtree(path, ignore_errors=True)


def _mcap_record(opcode: int, body: bytes) -> bytes:
    return bytes([opcode]) + struct.pack("<Q", len(body)) + body


def _mcap_string(text: str) -> bytes:
    return struct.pack("<I", len(text.encode())) + text.encode()


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        # A whole Message record, but shorter than a Message's fixed fields.
        (_mcap_record(OP_MESSAGE, b"\x01\x00\x00"), "damaged record (opcode 0x05)"),
        # A zstd chunk whose data is not zstd.
        (
            _mcap_record(
                OP_CHUNK,
                struct.pack("<QQQI", 0, 0, 64, 0)
                + _mcap_string("zstd")
                + struct.pack("<Q", 16)
                + b"not zstd at all!",
            ),
            "zstd chunk damaged",
        ),
    ],
)
def test_a_damaged_record_in_an_unindexed_mcap_ends_reading_with_a_report(tmp_path, damage, reason):
    """A recorder killed mid-write leaves no index; salvage reads on until the damage."""
    typestore = create_typestore()
    frames = []
    for index in range(3):
        header = make_header(typestore, 10**18 + index * 10**8, "cam")
        message = encode_image_message(typestore, scene(index), header)
        data = typestore.serialize_cdr(message, IMAGE_TYPE)
        frames.append(_mcap_record(OP_MESSAGE, struct.pack("<HIQQ", 1, index, 10**18, 0) + data))
    schema = struct.pack("<H", 1) + _mcap_string(IMAGE_TYPE) + _mcap_string("ros2msg")
    channel = struct.pack("<HH", 1, 1) + _mcap_string("/cam/image_raw") + _mcap_string("cdr")
    path = tmp_path / "killed.mcap"
    path.write_bytes(
        MAGIC
        + _mcap_record(0x01, _mcap_string("ros2") + _mcap_string(""))
        + _mcap_record(OP_SCHEMA, schema + struct.pack("<I", 0))
        + _mcap_record(OP_CHANNEL, channel + struct.pack("<I", 0))
        + b"".join(frames[:2])
        + damage
        + frames[2]
    )
    with BagReader(path) as reader:
        decoded = list(reader.frames())
    assert len(decoded) == 2
    np.testing.assert_array_equal(decoded[1].image, scene(1))
    assert any(reason in problem.detail for problem in reader.problems.of_kind(kinds.TRUNCATED))


def test_a_topic_recorded_with_two_types_reads_its_first_and_reports_the_other(tmp_path):
    # e.g. a driver restarted with image_transport's compressed output on the same name.
    from rosbags.rosbag2 import Writer

    typestore = create_typestore()
    path = tmp_path / "two_types"
    with Writer(path, version=8) as writer:
        raw = writer.add_connection("/cam/image_raw", IMAGE_TYPE, typestore=typestore)
        jpeg = writer.add_connection("/cam/image_raw", COMPRESSED_IMAGE_TYPE, typestore=typestore)
        for index in range(3):
            header = make_header(typestore, 10**18 + index * 10**8, "cam")
            image, stamp = scene(index), 10**18 + index * 10**8
            writer.write(
                raw,
                stamp,
                typestore.serialize_cdr(encode_image_message(typestore, image, header), IMAGE_TYPE),
            )
            writer.write(
                jpeg,
                stamp + 1,
                typestore.serialize_cdr(
                    encode_compressed_message(typestore, image, header), COMPRESSED_IMAGE_TYPE
                ),
            )
    with BagReader(path) as reader:
        frames = list(reader.frames())
    assert [frame.msgtype for frame in frames] == [IMAGE_TYPE] * 3
    np.testing.assert_array_equal(frames[2].image, scene(2))
    assert not reader.problems.of_kind(kinds.DECODE_ERROR)
    (problem,) = reader.problems.of_kind(kinds.UNKNOWN_TYPE)
    assert problem.detail == (
        f"recorded as {IMAGE_TYPE} and also as {COMPRESSED_IMAGE_TYPE}: "
        f"3 {COMPRESSED_IMAGE_TYPE} messages are skipped"
    )
