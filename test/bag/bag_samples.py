"""Writes real rosbag2 files (both storage formats) with real image messages for the bag tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from rosbags.rosbag2 import Reader

from togethernet_ros.bag.bag_writer import BagWriter
from togethernet_ros.bag.image_codec import (
    COMPRESSED_IMAGE_TYPE,
    IMAGE_TYPE,
    encode_compressed_message,
    encode_image_message,
    make_header,
)
from togethernet_ros.bag.vision_msgs_definitions import create_typestore

START_NS = 1_700_000_000_000_000_000


def scene(index: int, height: int = 96, width: int = 128) -> np.ndarray:
    """A BGR frame with a bright rectangle moving right by 4 px per frame."""
    image = np.full((height, width, 3), (40, 90, 60), np.uint8)
    cv2.rectangle(image, (8 + 4 * index, 20), (40 + 4 * index, 70), (10, 200, 240), -1)
    return image


def write_camera_bag(
    path: Path,
    storage: str = "mcap",
    frames: int = 6,
    topics: Sequence[tuple[str, str]] = (
        ("/cam_front/image_raw", IMAGE_TYPE),
        ("/cam_side/image_raw/compressed", COMPRESSED_IMAGE_TYPE),
    ),
    period_ns: int = 100_000_000,
    stamps: Sequence[int] | None = None,
) -> Path:
    """Write a bag with ``frames`` frames per topic (interleaved) and return its path."""
    typestore = create_typestore()
    with BagWriter(path, storage=storage, typestore=typestore) as writer:
        for index in range(frames):
            stamp = START_NS + (stamps[index] if stamps is not None else index * period_ns)
            for topic, msgtype in topics:
                header = make_header(typestore, stamp, topic.split("/")[1])
                if msgtype == IMAGE_TYPE:
                    message = encode_image_message(typestore, scene(index), header, "bgr8")
                else:
                    message = encode_compressed_message(typestore, scene(index), header, "png")
                writer.write(topic, msgtype, START_NS + index * period_ns, message)
    return path


def read_messages(path: Path) -> dict[str, list]:
    """Every message of the bag at ``path`` by topic, as (log time, deserialized message)."""
    typestore = create_typestore()
    by_topic: dict[str, list] = {}
    with Reader(path) as reader:
        for connection, log_time, raw in reader.messages():
            message = typestore.deserialize_cdr(raw, connection.msgtype)
            by_topic.setdefault(connection.topic, []).append((log_time, message))
    return by_topic
