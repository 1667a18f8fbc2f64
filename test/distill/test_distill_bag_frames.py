"""Frames for distillation from real rosbag2 recordings of real footage, in every layout.

The bags are written with rosbags (mcap, sqlite3, split, whole-file zstd) from frames of
OpenCV's vtest.avi; each camera topic must be sampled and split exactly as an image folder of
the same frames is, undecodable messages skipped and named, and memory must stay flat.
"""

from __future__ import annotations

import shutil
import tracemalloc
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer
from ruamel.yaml import YAML
from support.sample_video_frames import sample_video

from togethernet_ros.bag.bag_writer import BagWriter
from togethernet_ros.bag.image_codec import (
    COMPRESSED_IMAGE_TYPE,
    IMAGE_TYPE,
    encode_image_message,
    make_header,
)
from togethernet_ros.bag.vision_msgs_definitions import create_typestore
from togethernet_ros.distill.bag_frames import (
    BagFramesReport,
    bag_file_error,
    choose_cameras,
    is_bag_source,
    iter_bag_frames,
)
from togethernet_ros.distill.frame_sources import iter_source_frames
from togethernet_ros.distill.source_plan import plan_sources

FRONT = "/sensing/camera/front/image_raw"
SIDE = "/sensing/camera/side/image_raw/compressed"
START_NS = 1_700_000_000_000_000_000
PERIOD_NS = 100_000_000  # 10 Hz
EXTENSIONS = {"mcap": ".mcap", "sqlite3": ".db3"}
PLUGINS = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
Message = tuple[str, str, int, object]  # topic, type, log time, message
# An offered QoS profile as rosbag2 (Humble and later) writes it into metadata.yaml.
OTHER_QOS = "\n".join(
    [
        "- history: 3",
        "  depth: 5",
        "  reliability: 1",
        "  durability: 2",
        "  deadline: {sec: 2147483647, nsec: 4294967295}",
        "  lifespan: {sec: 2147483647, nsec: 4294967295}",
        "  liveliness: 1",
        "  liveliness_lease_duration: {sec: 2147483647, nsec: 4294967295}",
        "  avoid_ros_namespace_conventions: false",
    ]
)


def footage(count: int, width: int = 192) -> list[np.ndarray]:
    """The first ``count`` frames of vtest.avi (people walking), scaled to ``width`` pixels."""
    capture = cv2.VideoCapture(str(sample_video()))
    frames = []
    while len(frames) < count:
        ok, frame = capture.read()
        assert ok, "vtest.avi ended early"
        height = round(frame.shape[0] * width / frame.shape[1])
        frames.append(cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA))
    capture.release()
    return frames


def camera_messages(
    typestore,
    frames: Sequence[np.ndarray],
    side_every: int = 1,
    front: str = FRONT,
    side: str | None = SIDE,
) -> list[Message]:
    """A raw bgr8 front camera at 10 Hz and a JPEG side camera on every ``side_every``-th tick."""
    messages: list[Message] = []
    for index, frame in enumerate(frames):
        stamp = START_NS + index * PERIOD_NS
        header = make_header(typestore, stamp, "front")
        messages.append(
            (front, IMAGE_TYPE, stamp + 5_000_000, encode_image_message(typestore, frame, header))
        )
        if side is not None and index % side_every == 0:
            messages.append(
                (side, COMPRESSED_IMAGE_TYPE, stamp + 7_000_000, jpeg(typestore, frame, stamp))
            )
    return messages


def jpeg(typestore, frame: np.ndarray, stamp: int, data: np.ndarray | None = None) -> object:
    """A CompressedImage as image_transport publishes it."""
    if data is None:
        data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].reshape(-1)
    header = make_header(typestore, stamp, "side")
    return typestore.types[COMPRESSED_IMAGE_TYPE](
        header=header, format="bgr8; jpeg compressed bgr8", data=data
    )


def write_bag(path: Path, messages: Sequence[Message], layout: str = "mcap") -> Path:
    """Write ``messages`` as `ros2 bag record` leaves them; returns what a user would pass.

    layouts: ``mcap``, ``sqlite3`` (bag folders), ``mcap-file`` (the .mcap alone),
    ``zstd`` (``--compression-mode file``), ``split`` and ``split-killed`` (two files, with and
    without metadata.yaml).
    """
    typestore = create_typestore()
    if layout == "zstd":
        writer = Writer(path, version=Writer.VERSION_LATEST, storage_plugin=PLUGINS["mcap"])
        writer.set_compression(CompressionMode.FILE, CompressionFormat.ZSTD)
        writer.open()
        connections = {}
        for topic, msgtype, log_time, message in messages:
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, msgtype, typestore=typestore)
            writer.write(connections[topic], log_time, typestore.serialize_cdr(message, msgtype))
        writer.close()
        assert [p.suffix for p in path.iterdir() if p.name != "metadata.yaml"] == [".zstd"]
        return path
    if layout.startswith("split"):
        return _split_bag(path, messages, with_metadata=layout == "split")
    storage = "sqlite3" if layout == "sqlite3" else "mcap"
    with BagWriter(path, storage, typestore) as writer:
        for topic, msgtype, log_time, message in messages:
            writer.write(topic, msgtype, log_time, message)
    if layout == "mcap-file":
        [file] = path.glob("*.mcap")
        return file
    return path


def _split_bag(path: Path, messages: Sequence[Message], with_metadata: bool) -> Path:
    """A `--max-bag-size` recording in two files, named and listed as rosbag2 does."""
    half = len(messages) // 2
    parts = path.with_name(path.name + "_parts")
    infos, names = [], []
    for number, chunk in enumerate((messages[:half], messages[half:])):
        part = write_bag(parts / str(number), chunk)
        infos.append(YAML(typ="safe").load((part / "metadata.yaml").read_text()))
        names.append(f"{path.name}_{number}.mcap")
        path.mkdir(exist_ok=True)
        shutil.move(next(part.glob("*.mcap")), path / names[-1])
    shutil.rmtree(parts)
    if with_metadata:
        info = infos[0]["rosbag2_bagfile_information"]
        counts: dict[str, int] = {}
        for part in infos:
            for entry in part["rosbag2_bagfile_information"]["topics_with_message_count"]:
                name = entry["topic_metadata"]["name"]
                counts[name] = counts.get(name, 0) + entry["message_count"]
        for entry in info["topics_with_message_count"]:
            entry["message_count"] = counts[entry["topic_metadata"]["name"]]
        info["relative_file_paths"] = names
        info["message_count"] = len(messages)
        info["files"] = [
            {**part["rosbag2_bagfile_information"]["files"][0], "path": name}
            for part, name in zip(infos, names, strict=True)
        ]
        with (path / "metadata.yaml").open("w") as stream:
            YAML().dump({"rosbag2_bagfile_information": info}, stream)
    return path


def image_folder(path: Path, frames: Sequence[np.ndarray]) -> Path:
    """The same frames as an image folder, the reference the bag topics must match."""
    path.mkdir()
    for index, frame in enumerate(frames):
        cv2.imwrite(str(path / f"{index:04d}.png"), frame)
    return path


def _by_topic(frames) -> dict[str, list]:
    result: dict[str, list] = {}
    for frame in frames:
        result.setdefault(frame.origin.topic, []).append(frame)
    return result


@pytest.mark.parametrize(
    "layout", ["mcap", "sqlite3", "mcap-file", "zstd", "split", "split-killed"]
)
def test_every_camera_topic_is_sampled_and_split_like_an_image_folder(tmp_path, layout):
    frames = footage(12)
    typestore = create_typestore()
    # The side camera runs at half the rate: 6 messages, its own held-out tail.
    bag = write_bag(tmp_path / "drive", camera_messages(typestore, frames, side_every=2), layout)
    assert is_bag_source(bag)
    [source] = plan_sources([bag]).sources
    report = BagFramesReport(str(bag))
    got = _by_topic(iter_bag_frames(source.cameras, 2, 0.25, None, source.names, report))
    assert sorted(got) == sorted([FRONT, SIDE])

    front_reference = list(iter_source_frames(image_folder(tmp_path / "front", frames), 2, 0.25))
    side_reference = list(iter_source_frames(image_folder(tmp_path / "side", frames[::2]), 2, 0.25))
    for topic, reference in ((FRONT, front_reference), (SIDE, side_reference)):
        assert [(f.index, f.heldout) for f in got[topic]] == [
            (f.index, f.heldout) for f in reference
        ], topic
    # 12 front frames: 0, 2, ..., 10 used, 9-11 held out; 6 side frames: 0, 2, 4, 5 held out.
    assert [f.index for f in got[FRONT] if f.heldout] == [10]
    assert [f.index for f in got[SIDE] if f.heldout] == [4]
    for frame in got[FRONT]:  # raw bgr8: exactly the recorded pixels, in BGR
        np.testing.assert_array_equal(frame.image, frames[frame.index])
        assert frame.origin.stamp_ns == START_NS + frame.index * PERIOD_NS
        assert frame.origin.log_time_ns == frame.origin.stamp_ns + 5_000_000
    for frame in got[SIDE]:  # JPEG: the recorded frame as OpenCV decodes it, in BGR
        recorded = cv2.imencode(".jpg", frames[2 * frame.index], [cv2.IMWRITE_JPEG_QUALITY, 90])[1]
        np.testing.assert_array_equal(frame.image, cv2.imdecode(recorded, cv2.IMREAD_COLOR))
        assert frame.origin.stamp_ns == START_NS + 2 * frame.index * PERIOD_NS
    assert {f.source for f in got[FRONT]} == {"drive__sensing_camera_front_image_raw"}
    assert report.topics[FRONT].to_json() == {"messages": 12, "used": 6, "heldout": 1, "skipped": 0}
    assert report.topics[SIDE].to_json() == {"messages": 6, "used": 3, "heldout": 1, "skipped": 0}
    assert [p["kind"] for p in report.problems] == (
        ["no_metadata"] if layout == "split-killed" else []
    )


@pytest.mark.parametrize(("frame_step", "max_frames"), [(1, 4), (3, None), (1, 100)])
def test_max_frames_and_frame_step_mean_per_topic_what_they_mean_per_video(
    tmp_path, frame_step, max_frames
):
    frames = footage(10, width=96)
    bag = write_bag(tmp_path / "drive", camera_messages(create_typestore(), frames, side=None))
    cameras = choose_cameras(bag)
    got = list(iter_bag_frames(cameras, frame_step, 0.3, max_frames))
    reference = list(
        iter_source_frames(image_folder(tmp_path / "f", frames), frame_step, 0.3, max_frames)
    )
    assert [(f.index, f.heldout) for f in got] == [(f.index, f.heldout) for f in reference]
    assert len(got) == {(1, 4): 4, (3, None): 4, (1, 100): 10}[(frame_step, max_frames)]


def test_a_chosen_topic_only_and_names_without_the_leading_slash(tmp_path):
    bag = write_bag(tmp_path / "drive", camera_messages(create_typestore(), footage(4, 96)))
    cameras = choose_cameras(bag, ["sensing/camera/side/image_raw/compressed/"])
    assert cameras.topics == (SIDE,)
    assert {f.origin.topic for f in iter_bag_frames(cameras, 1, 0.5)} == {SIDE}


def test_a_topic_the_bag_lacks_is_named_with_the_bag_and_its_camera_topics(tmp_path):
    typestore = create_typestore()
    messages = camera_messages(typestore, footage(2, 96))
    text = typestore.types["std_msgs/msg/String"](data="gear: D")
    messages.append(("/vehicle/status", "std_msgs/msg/String", START_NS, text))
    depth = jpeg(typestore, footage(1, 96)[0], START_NS)
    messages.append(
        ("/sensing/depth/image/compressedDepth", COMPRESSED_IMAGE_TYPE, START_NS, depth)
    )
    bag = write_bag(tmp_path / "drive", messages)
    listing = f"its image topics: {FRONT}, {SIDE}"
    with pytest.raises(
        ValueError, match=f"^bag {bag} has no topic /cam_front/image_raw \\({listing}\\)$"
    ):
        choose_cameras(bag, [FRONT, "/cam_front/image_raw"])
    with pytest.raises(
        ValueError, match="topic /vehicle/status is std_msgs/msg/String, not a camera"
    ):
        choose_cameras(bag, ["/vehicle/status"])
    with pytest.raises(ValueError, match="is a depth image \\(compressedDepth\\), not a camera"):
        choose_cameras(bag, ["/sensing/depth/image/compressedDepth"])
    # By default every camera, not the depth topic.
    assert choose_cameras(bag).topics == (FRONT, SIDE)


def test_cameras_are_chosen_from_metadata_without_decompressing_the_bag(tmp_path):
    # Listing a zstd bag's topics through BagReader decompressed its storage first (minutes
    # and gigabytes for a long drive); its metadata.yaml lists them. A torn storage file shows
    # that it is left unopened: choosing works, reading the frames names the damage.
    messages = camera_messages(create_typestore(), footage(2, 96))
    bag = write_bag(tmp_path / "zipped", messages, "zstd")
    [part] = bag.glob("*.zstd")
    part.write_bytes(part.read_bytes()[:64])
    cameras = choose_cameras(bag, [FRONT])
    assert cameras.topics == (FRONT,) and cameras.image_topics == (FRONT, SIDE)
    with pytest.raises(ValueError) as refused:
        list(iter_bag_frames(cameras, 1, 0.5))
    assert str(refused.value).startswith(f"bag {bag}: cannot read its zstd-compressed storage")


def test_a_metadata_yaml_that_is_not_rosbag2s_leaves_the_listing_to_the_storage(tmp_path):
    bag = write_bag(tmp_path / "drive", camera_messages(create_typestore(), footage(2, 96)))
    (bag / "metadata.yaml").write_text("edited: by hand\n")
    assert choose_cameras(bag).topics == (FRONT, SIDE)


def test_a_bag_without_a_camera_topic_is_named_with_its_topics(tmp_path):
    typestore = create_typestore()
    text = typestore.types["std_msgs/msg/String"](data="gear: D")
    bag = write_bag(
        tmp_path / "drive", [("/vehicle/status", "std_msgs/msg/String", START_NS, text)]
    )
    with pytest.raises(ValueError) as refused:
        choose_cameras(bag)
    assert str(refused.value) == (
        f"bag {bag}: no camera image topic (sensor_msgs/Image or CompressedImage; its topics: "
        "/vehicle/status (std_msgs/msg/String))"
    )


def test_undecodable_frames_are_skipped_counted_and_named_without_moving_the_split(tmp_path):
    typestore = create_typestore()
    frames = footage(10, 96)
    messages = camera_messages(typestore, frames)
    # A depth frame (32FC1: not a camera image) and a torn JPEG.
    depth_at = next(
        i
        for i, m in enumerate(messages)
        if m[0] == FRONT and m[3].header.stamp.nanosec == 400_000_000
    )
    depth = messages[depth_at][3]
    depth.encoding = "32FC1"
    torn = cv2.imencode(".jpg", frames[2])[1].reshape(-1)[:600]
    torn_at = next(
        i
        for i, m in enumerate(messages)
        if m[0] == SIDE and m[3].header.stamp.nanosec == 200_000_000
    )
    messages[torn_at] = (
        SIDE,
        COMPRESSED_IMAGE_TYPE,
        messages[torn_at][2],
        jpeg(typestore, frames[2], START_NS, torn),
    )
    bag = write_bag(tmp_path / "drive", messages)
    report = BagFramesReport(str(bag))
    got = _by_topic(iter_bag_frames(choose_cameras(bag), 1, 0.2, None, report=report))
    assert [f.index for f in got[FRONT]] == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    assert [f.index for f in got[SIDE]] == [0, 1, 3, 4, 5, 6, 7, 8, 9]
    for topic in (FRONT, SIDE):
        assert [f.index for f in got[topic] if f.heldout] == [8, 9]
        assert report.topics[topic].to_json() == {
            "messages": 10,
            "used": 9,
            "heldout": 2,
            "skipped": 1,
        }
    lines = "\n".join(report.lines())
    assert f"[decode_error] {FRONT}: message skipped: unsupported Image encoding '32FC1'" in lines
    assert f"[decode_error] {SIDE}: message skipped: CompressedImage" in lines
    assert "truncated JPEG" in lines
    assert (
        f"bag {bag} {FRONT}: 10 messages, 9 frames used (2 held out), 1 undecodable skipped"
        in lines
    )


def test_a_recording_cut_short_is_split_by_what_can_be_read(tmp_path):
    typestore = create_typestore()
    frames = footage(40, 96)
    bag = write_bag(tmp_path / "drive", camera_messages(typestore, frames, side=None), "mcap-file")
    data = bag.read_bytes()
    bag.write_bytes(data[: len(data) // 2])  # the recorder's disk filled up mid-drive
    report = BagFramesReport(str(bag))
    got = list(iter_bag_frames(choose_cameras(bag), 1, 0.25, None, report=report))
    readable = report.topics[FRONT].messages
    assert 5 < readable < 40 and [f.index for f in got] == list(range(readable))
    assert [f.index for f in got if f.heldout] == list(range(round(readable * 0.75), readable))
    assert "truncated" in [problem["kind"] for problem in report.problems]


def test_a_camera_the_storage_does_not_give_is_named_once_and_the_others_are_used(tmp_path):
    # metadata.yaml rewritten with other QoS for the side camera: rosbags then yields none of
    # its messages. Counting and reading both meet it; the report must say it once.
    typestore = create_typestore()
    bag = write_bag(tmp_path / "drive", camera_messages(typestore, footage(4, 96)), "sqlite3")
    metadata = bag / "metadata.yaml"
    document = YAML(typ="safe").load(metadata.read_text())
    for topic in document["rosbag2_bagfile_information"]["topics_with_message_count"]:
        if topic["topic_metadata"]["name"] == SIDE:
            topic["topic_metadata"]["offered_qos_profiles"] = OTHER_QOS
    with metadata.open("w") as stream:
        YAML().dump(document, stream)
    report = BagFramesReport(str(bag))
    got = list(iter_bag_frames(choose_cameras(bag), 1, 0.5, None, report=report))
    assert [(f.origin.topic, f.index) for f in got] == [(FRONT, i) for i in range(4)]
    assert report.topics[SIDE].messages == 0
    assert [(p["kind"], p["topic"]) for p in report.problems] == [("unread_topic", SIDE)]


def test_frames_are_read_one_at_a_time_on_a_long_bag(tmp_path):
    # 60 full-size JPEG frames: ~80 MB decoded, a few MB in the bag.
    typestore = create_typestore()
    frames = footage(60, width=768)
    messages = [
        (
            SIDE,
            COMPRESSED_IMAGE_TYPE,
            START_NS + i * PERIOD_NS,
            jpeg(typestore, f, START_NS + i * PERIOD_NS),
        )
        for i, f in enumerate(frames)
    ]
    bag = write_bag(tmp_path / "drive", messages)
    del messages, frames
    decoded_size = 576 * 768 * 3
    cameras = choose_cameras(bag)
    tracemalloc.start()
    try:
        count = 0
        for frame in iter_bag_frames(cameras, 1, 0.2):
            assert frame.image.nbytes == decoded_size
            count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 60
    assert peak < 8 * decoded_size, f"peak {peak / 1e6:.0f} MB while reading frame by frame"


def test_bag_sources_are_told_apart_from_videos_and_folders(tmp_path):
    typestore = create_typestore()
    bag = write_bag(tmp_path / "drive", camera_messages(typestore, footage(2, 96)))
    assert is_bag_source(bag) and is_bag_source(next(bag.glob("*.mcap")))
    killed = tmp_path / "killed"
    killed.mkdir()
    shutil.copy(next(bag.glob("*.mcap")), killed / "killed_0.mcap")
    assert is_bag_source(killed)  # no metadata.yaml: a recording that was not closed
    assert not is_bag_source(image_folder(tmp_path / "frames", footage(2, 96)))
    compressed = write_bag(tmp_path / "zipped", camera_messages(typestore, footage(2, 96)), "zstd")
    [part] = compressed.glob("*.zstd")
    # Worded by bag_reader.compressed_file_advice, as the bag commands word it.
    assert bag_file_error(part) == (
        f"frame source {part}: {part.name} is one zstd-compressed storage file of the bag "
        f"{compressed}: pass the bag folder {compressed} instead"
    )
    alone = tmp_path / "alone" / part.name
    alone.parent.mkdir()
    shutil.copy(part, alone)
    assert bag_file_error(alone) == (
        f"frame source {alone}: {alone.name} is a zstd-compressed storage file without the "
        f"bag's metadata.yaml: decompress it with `zstd -d {alone}` and pass the resulting "
        f"{alone.name.removesuffix('.zstd')}"
    )
    ros1 = tmp_path / "old.bag"
    ros1.write_bytes(b"#ROSBAG V2.0\n")
    assert "is a ROS 1 bag: convert it to rosbag2 first" in bag_file_error(ros1)


def test_sources_of_one_name_get_distinct_names(tmp_path):
    typestore = create_typestore()
    first = write_bag(tmp_path / "monday" / "drive", camera_messages(typestore, footage(2, 96)))
    second = write_bag(tmp_path / "tuesday" / "drive", camera_messages(typestore, footage(2, 96)))
    names = [source.names for source in plan_sources([first, second]).sources]
    assert names == [
        (
            "drive__sensing_camera_front_image_raw",
            "drive__sensing_camera_side_image_raw_compressed",
        ),
        (
            "drive__sensing_camera_front_image_raw_2",
            "drive__sensing_camera_side_image_raw_compressed_2",
        ),
    ]
