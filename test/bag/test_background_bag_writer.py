"""BackgroundBagWriter: a recording thread whose failure reaches the producer, never a hang."""

from __future__ import annotations

import pytest

from togethernet_ros.bag.background_bag_writer import BackgroundBagWriter
from togethernet_ros.bag.bag_problems import BagError
from togethernet_ros.bag.bag_reader import BagReader
from togethernet_ros.bag.image_codec import IMAGE_TYPE, encode_image_message, make_header
from togethernet_ros.bag.vision_msgs_definitions import create_typestore

from .bag_samples import scene


def _image_cdr(stamp_ns: int) -> bytes:
    typestore = create_typestore()
    message = encode_image_message(
        typestore, scene(stamp_ns % 7), make_header(typestore, stamp_ns, "cam")
    )
    return bytes(typestore.serialize_cdr(message, IMAGE_TYPE))


def test_messages_put_are_in_the_closed_bag(tmp_path):
    writer = BackgroundBagWriter(tmp_path / "recorded", capacity=2)
    for index in range(6):  # more than the queue holds: put waits for the writer
        writer.put("/cam/image_raw", IMAGE_TYPE, 1_000 + index, _image_cdr(index + 1))
    assert writer.close() is None
    with BagReader(tmp_path / "recorded") as reader:
        records = list(reader.records(reader.image_topics))
    assert [record.log_time_ns for record in records] == [1_000 + i for i in range(6)]
    assert not reader.problems.lines()


@pytest.mark.timeout(20)
def test_a_dead_writer_fails_the_put_instead_of_hanging(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    writer = BackgroundBagWriter(blocker / "recorded", capacity=1)
    raw = _image_cdr(1)
    with pytest.raises(BagError, match=r"recording to .*a_file/recorded stopped"):
        for index in range(10):  # the queue holds 1: without the liveness check, put blocks
            writer.put("/cam/image_raw", IMAGE_TYPE, index, raw)
    failure = writer.close()
    assert isinstance(failure, BagError) and "a_file" in str(failure)
    assert blocker.read_text() == "not a folder"  # the file in the way is left as it was
