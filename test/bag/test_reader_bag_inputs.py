"""Bag inputs as users pass them: one zstd storage file, topics listed cheaply, --topic(s)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer
from support.cli_refusal import refused

from togethernet_ros.bag.bag_problems import BagError
from togethernet_ros.bag.bag_reader import BagReader, ListedTopic, list_topics_from_metadata
from togethernet_ros.bag.image_codec import (
    COMPRESSED_IMAGE_TYPE,
    IMAGE_TYPE,
    encode_image_message,
    make_header,
)
from togethernet_ros.bag.vision_msgs_definitions import create_typestore
from togethernet_ros.cli import main

from .bag_samples import START_NS, scene, write_camera_bag

FRONT, SIDE = "/cam_front/image_raw", "/cam_side/image_raw/compressed"
CHATTER = "/chatter"


def _compressed_bag(path: Path, frames: int = 4) -> Path:
    """A bag as `ros2 bag record --compression-mode file` leaves it: bag_0.mcap.zstd + yaml."""
    typestore = create_typestore()
    writer = Writer(path, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP)
    writer.set_compression(CompressionMode.FILE, CompressionFormat.ZSTD)
    writer.open()
    camera = writer.add_connection(FRONT, IMAGE_TYPE, typestore=typestore)
    chatter = writer.add_connection(CHATTER, "std_msgs/msg/String", typestore=typestore)
    text_type = typestore.types["std_msgs/msg/String"]
    for index in range(frames):
        header = make_header(typestore, START_NS + index, "cam")
        image = encode_image_message(typestore, scene(index), header)
        writer.write(camera, START_NS + index, typestore.serialize_cdr(image, IMAGE_TYPE))
        raw = typestore.serialize_cdr(text_type(data=f"hi {index}"), "std_msgs/msg/String")
        writer.write(chatter, START_NS + index, raw)
    writer.write(chatter, START_NS + frames, raw)
    writer.close()
    return path


def test_one_zstd_storage_file_says_what_to_pass_instead(tmp_path, capsys):
    bag = _compressed_bag(tmp_path / "drive")
    [storage_file] = bag.glob("*.mcap.zstd")
    # It was "unknown file type (expected a directory, .mcap or .db3)".
    with pytest.raises(BagError, match=rf"one zstd-compressed storage file of the bag {bag}: "
                       rf"pass the bag folder {bag} instead"):  # fmt: skip
        BagReader(storage_file).open()
    alone = tmp_path / "copied" / storage_file.name
    alone.parent.mkdir()
    shutil.copy(storage_file, alone)
    advice = rf"decompress it with `zstd -d {alone}` and pass the resulting {alone.stem}"
    with pytest.raises(BagError, match=advice):
        BagReader(alone).open()
    # The commands refuse it before a model loads, with the same advice and status 2.
    output = ["--output", str(tmp_path / "out")]
    refused(capsys, ["bag", "run", str(storage_file), *output], f"pass the bag folder {bag}")
    refused(capsys, ["bag", "eval", str(alone)], advice)
    # A folder of zstd files whose metadata.yaml is lost: nothing in it can be read.
    (bag / "metadata.yaml").unlink()
    refused(capsys, ["bag", "run", str(bag), *output], r"only zstd-compressed .*`zstd -d`")
    assert not (tmp_path / "out").exists()


def test_topics_are_listed_from_metadata_without_touching_the_storage(tmp_path):
    bag = _compressed_bag(tmp_path / "drive", frames=4)
    with BagReader(bag, require_images=False) as reader:
        opened = {t: (i.msgtype, i.count) for t, i in reader.topics.items()}
    assert opened == {FRONT: (IMAGE_TYPE, 4), CHATTER: ("std_msgs/msg/String", 5)}
    # The storage is never opened: listing works with it unreadable (BagReader cannot).
    [storage_file] = bag.glob("*.mcap.zstd")
    storage_file.write_bytes(b"not zstd at all")
    with pytest.raises(BagError, match="cannot read its zstd-compressed storage"):
        BagReader(bag).open()
    listed = list_topics_from_metadata(bag)
    assert listed == {
        FRONT: ListedTopic(FRONT, IMAGE_TYPE, 4),
        CHATTER: ListedTopic(CHATTER, "std_msgs/msg/String", 5),
    }
    assert {t: (i.msgtype, i.count) for t, i in listed.items()} == opened


def test_listing_from_metadata_of_bags_that_have_none_or_a_bad_one(tmp_path):
    bag = write_camera_bag(tmp_path / "plain", frames=2)
    assert list_topics_from_metadata(bag) == {
        FRONT: ListedTopic(FRONT, IMAGE_TYPE, 2),
        SIDE: ListedTopic(SIDE, COMPRESSED_IMAGE_TYPE, 2),
    }
    [storage_file] = bag.glob("*.mcap")
    assert list_topics_from_metadata(storage_file) is None  # a file: open a BagReader
    (bag / "metadata.yaml").unlink()
    assert list_topics_from_metadata(bag) is None  # killed recording: open a BagReader
    (bag / "metadata.yaml").write_text("rosbag2_bagfile_information: {version: 9}\n")
    with pytest.raises(BagError, match=r"metadata.yaml is not a rosbag2 metadata.yaml"):
        list_topics_from_metadata(bag)
    (bag / "metadata.yaml").write_text(
        "rosbag2_bagfile_information:\n  topics_with_message_count:\n"
        "    - {topic_metadata: {name: /a}, message_count: 3}\n"
    )
    with pytest.raises(BagError, match=r"entry 0 has no topic name, type or message count"):
        list_topics_from_metadata(bag)
    (bag / "metadata.yaml").write_text("{{{ not yaml")
    with pytest.raises(BagError, match=r"metadata.yaml cannot be read"):
        list_topics_from_metadata(bag)


def _run(tmp_path: Path, name: str, *words: str) -> dict:
    report = tmp_path / f"{name}.json"
    output = ["--output", str(tmp_path / name), "--report", str(report)]
    detector = ["--allow-untrained-weights", "--input-size", "128", "--no-copy-inputs"]
    assert main(["bag", "run", *words, *output, *detector]) == 0
    return json.loads(report.read_text())


def test_bag_run_topics_never_swallow_the_input_bag(tmp_path, capsys):
    bag = str(write_camera_bag(tmp_path / "drive", frames=2))
    # `--topics A BAG` gave argparse's "the following arguments are required: input".
    swallowed = _run(tmp_path, "swallowed", "--topics", FRONT, bag)
    assert (swallowed["image_topics"], swallowed["frames_processed"]) == ([FRONT], 2)
    both = _run(tmp_path, "both", "--topics", SIDE, FRONT, bag)
    assert (sorted(both["image_topics"]), both["frames_processed"]) == ([FRONT, SIDE], 4)
    # Repeatable --topic, as distill takes it, and the forms that worked before.
    repeated = _run(tmp_path, "repeated", "--topic", SIDE, bag, "--topic", FRONT)
    assert sorted(repeated["image_topics"]) == [FRONT, SIDE]
    assert _run(tmp_path, "before", bag, "--topics", SIDE)["image_topics"] == [SIDE]
    everything = _run(tmp_path, "all", bag)
    assert (sorted(everything["image_topics"]), everything["frames_processed"]) == (
        [FRONT, SIDE],
        4,
    )
    # No input left to take back: named, status 2, before the model loads.
    refused(
        capsys,
        ["bag", "run", "--topics", bag, "--output", str(tmp_path / "x")],
        rf"no input bag given \(--topics took '{bag}' as a topic\).*--topic TOPIC",
    )
    refused(capsys, ["bag", "run", "--output", str(tmp_path / "x")], r"no input bag given:")
    assert not (tmp_path / "x").exists()
    # A topic the bag does not have: refused before the model loads (here a missing one).
    recorded = ", ".join(sorted([FRONT, SIDE]))
    typo = ["bag", "run", bag, "--topic", "/cam_frnt/image_raw", "--output", str(tmp_path / "x")]
    refused(
        capsys,
        [*typo, "--weights", str(tmp_path / "no_such.pt")],
        re.escape(f"--topic: /cam_frnt/image_raw not in {bag} (image topics recorded: {recorded})"),
    )
    assert not (tmp_path / "x").exists()
