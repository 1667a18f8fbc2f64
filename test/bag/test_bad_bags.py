"""Broken bags: what can be read is read, the rest is reported with a clear message."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from togethernet_ros.bag import bag_problems as kinds
from togethernet_ros.bag.bag_problems import BagError
from togethernet_ros.bag.bag_reader import BagReader
from togethernet_ros.bag.bag_writer import BagWriter
from togethernet_ros.bag.image_codec import IMAGE_TYPE, encode_image_message, make_header
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
