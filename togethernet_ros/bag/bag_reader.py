"""Read rosbag2 bags (mcap or sqlite3) with rosbags, tolerating the ways real recordings break.

A recording killed mid-write has no metadata.yaml and an mcap without its summary; a disk that
filled up leaves a torn sqlite3 file; a topic may be missing or carry an unexpected type. The
reader processes whatever can be read and records the rest in :class:`BagProblems`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.rosbag2 import Reader
from rosbags.typesys.store import Typestore

from togethernet_ros.bag import bag_problems as kinds
from togethernet_ros.bag.bag_problems import BagError, BagProblems
from togethernet_ros.bag.image_codec import IMAGE_TYPES, decode_any_image, header_stamp_ns
from togethernet_ros.bag.mcap_salvage import (
    SalvagedChannel,
    SalvagedMessage,
    SalvagedSchema,
    SalvageResult,
    salvage_mcap,
)
from togethernet_ros.bag.vision_msgs_definitions import create_typestore

STORAGE_SUFFIXES = {".mcap": "mcap", ".db3": "sqlite3"}


@dataclass(frozen=True)
class BagTopic:
    """A topic as stored in the bag, with what is needed to copy it into another bag."""

    topic: str
    msgtype: str
    msgdef: str
    digest: str
    qos: tuple = ()
    count: int = 0


@dataclass
class BagRecord:
    """One serialized message and the bag's receive (log) time."""

    topic: BagTopic
    log_time_ns: int
    raw: bytes | memoryview


@dataclass
class ImageFrame:
    """A decoded camera frame; ``header`` is the original std_msgs/Header."""

    topic: str
    msgtype: str
    log_time_ns: int
    stamp_ns: int
    frame_id: str
    image: np.ndarray
    header: Any = field(repr=False, default=None)


def _storage_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix in STORAGE_SUFFIXES)


class BagReader:
    """Open a bag, pick its image topics and iterate messages in log-time order.

    ``image_topics`` None selects every Image / CompressedImage topic. Use as a context manager.
    ``require_images`` False opens bags without image topics too (e.g. recorded detections).
    """

    def __init__(
        self,
        path: str | Path,
        image_topics: Sequence[str] | None = None,
        typestore: Typestore | None = None,
        require_images: bool = True,
    ) -> None:
        self.path = Path(path)
        self.typestore = typestore or create_typestore()
        self.problems = BagProblems()
        self.topics: dict[str, BagTopic] = {}
        self.image_topics: list[str] = []
        self.storage = ""
        self.messages_read = 0
        self._requested = list(image_topics) if image_topics else None
        self._require_images = require_images
        self._reader: Reader | None = None
        self._scan_files: list[Path] = []
        self._last_stamp: dict[str, int] = {}

    # -- opening -------------------------------------------------------------------------
    def open(self) -> BagReader:
        """Open the bag; raises BagError when nothing in it is readable."""
        if not self.path.exists():
            raise BagError(f"bag {self.path} does not exist")
        files = [self.path] if self.path.is_file() else _storage_files(self.path)
        if self.path.is_file() and self.path.suffix not in STORAGE_SUFFIXES:
            raise BagError(
                f"bag {self.path}: unknown file type (expected a directory, .mcap or .db3)"
            )
        if not files:
            raise BagError(f"bag {self.path}: no metadata.yaml and no .mcap/.db3 file inside")
        self.storage = STORAGE_SUFFIXES[files[0].suffix]
        target: Path = self.path
        if self.path.is_dir() and not (self.path / "metadata.yaml").exists():
            self.problems.add(
                kinds.NO_METADATA,
                None,
                f"{self.path} has no metadata.yaml (recording not closed cleanly?); "
                f"reading {files[0].name} directly",
            )
            target = files[0]
            if len(files) > 1:
                self.problems.add(
                    kinds.NO_METADATA, None, f"only the first of {len(files)} storage files is read"
                )
        try:
            self._reader = Reader(target)
            self._reader.open()
            self._load_connections()
        except Exception as error:
            self._reader = None
            if self.storage != "mcap":
                raise BagError(
                    f"bag {self.path}: cannot open sqlite3 storage ({error}); the file is damaged "
                    "or truncated. Try `sqlite3 FILE .recover | sqlite3 FIXED.db3`, or record mcap, "
                    "which this reader can read up to a tear"
                ) from error
            self.problems.add(
                kinds.TRUNCATED,
                None,
                f"mcap index unreadable ({error}); scanning records sequentially",
            )
            self._scan_files = files
            self._scan_connections()
        self._select_image_topics()
        return self

    def _load_connections(self) -> None:
        assert self._reader is not None
        for connection in self._reader.connections:
            digest = connection.digest or self._known_digest(connection.msgtype)
            self.topics[connection.topic] = BagTopic(
                topic=connection.topic,
                msgtype=connection.msgtype,
                msgdef=connection.msgdef.data,
                digest=digest,
                qos=tuple(getattr(connection.ext, "offered_qos_profiles", ())),
                count=connection.msgcount,
            )

    def _known_digest(self, msgtype: str) -> str:
        if msgtype in self.typestore.fielddefs:
            return self.typestore.hash_rihs01(msgtype)
        return ""

    def _scan_connections(self) -> None:
        # Schemas and channels precede their messages in an mcap, so a first pass finds every
        # topic that has readable messages.
        schemas: dict[int, SalvagedSchema] = {}
        for record in self._scan_records(report=True):
            if isinstance(record, SalvagedSchema):
                schemas[record.id] = record
            elif isinstance(record, SalvagedChannel) and record.topic not in self.topics:
                schema = schemas.get(record.schema_id)
                msgtype = schema.name if schema else ""
                self.topics[record.topic] = BagTopic(
                    topic=record.topic,
                    msgtype=msgtype,
                    msgdef=schema.data.decode() if schema else "",
                    digest=self._known_digest(msgtype),
                )

    def _scan_records(self, report: bool) -> Iterator[object]:
        for file in self._scan_files:
            result = SalvageResult()
            try:
                yield from salvage_mcap(file, result)
            except ValueError as error:
                if report:
                    self.problems.add(kinds.TRUNCATED, None, str(error))
                continue
            if report and result.stop_reason:
                self.problems.add(
                    kinds.TRUNCATED,
                    None,
                    f"{file.name} ends early at byte {result.stop_offset} ({result.stop_reason}); "
                    "messages after that point are lost",
                )

    def _select_image_topics(self) -> None:
        available = sorted(t for t, info in self.topics.items() if info.msgtype in IMAGE_TYPES)
        if self._requested is None:
            self.image_topics = available
        else:
            for topic in self._requested:
                info = self.topics.get(topic)
                if info is None:
                    self.problems.add(
                        kinds.MISSING_TOPIC,
                        topic,
                        f"not in the bag (image topics present: {', '.join(available) or 'none'})",
                    )
                elif info.msgtype not in IMAGE_TYPES:
                    self.problems.add(
                        kinds.UNKNOWN_TYPE,
                        topic,
                        f"has type {info.msgtype!r}, not sensor_msgs/Image or CompressedImage",
                    )
                else:
                    self.image_topics.append(topic)
        for topic in self.image_topics:
            if self.topics[topic].msgtype not in self.typestore.fielddefs:
                self.problems.add(kinds.UNKNOWN_TYPE, topic, "type unknown to the typestore")
        if not self.image_topics and self._require_images:
            details = "; ".join(self.problems.lines()) or "the bag has no image topics"
            raise BagError(f"bag {self.path}: no readable image topic ({details})")

    def close(self) -> None:
        """Close the underlying storage."""
        if self._reader is not None:
            with contextlib.suppress(Exception):
                self._reader.close()
            self._reader = None

    def __enter__(self) -> BagReader:
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- reading -------------------------------------------------------------------------
    @property
    def image_message_count(self) -> int:
        """Number of messages on the selected image topics (0 when the bag has no index)."""
        return sum(self.topics[t].count for t in self.image_topics)

    def records(self, topics: Sequence[str] | None = None) -> Iterator[BagRecord]:
        """Serialized messages of ``topics`` (default: all) in log-time order.

        Stops (and records a TRUNCATED problem) at the first unreadable part of the file.
        """
        wanted = set(topics) if topics is not None else set(self.topics)
        if self._reader is None:
            yield from self._scanned_records(wanted)
            return
        connections = [c for c in self._reader.connections if c.topic in wanted]
        if not connections:
            return
        iterator = self._reader.messages(connections=connections)
        while True:
            try:
                connection, timestamp, raw = next(iterator)
            except StopIteration:
                return
            except Exception as error:
                self.problems.add(
                    kinds.TRUNCATED,
                    None,
                    f"reading stopped after {self.messages_read} messages: {error}",
                )
                return
            self.messages_read += 1
            yield BagRecord(self.topics[connection.topic], timestamp, raw)

    def _scanned_records(self, wanted: set[str]) -> Iterator[BagRecord]:
        channels: dict[int, str] = {}
        for record in self._scan_records(report=False):
            if isinstance(record, SalvagedChannel):
                channels[record.id] = record.topic
            elif isinstance(record, SalvagedMessage):
                topic = channels.get(record.channel_id)
                if topic in wanted:
                    self.messages_read += 1
                    yield BagRecord(self.topics[topic], record.log_time, record.data)

    def decode_frame(self, record: BagRecord, color_order: str = "bgr") -> ImageFrame | None:
        """Deserialize and decode an image record; None (and a problem recorded) if impossible."""
        topic = record.topic.topic
        try:
            message = self.typestore.deserialize_cdr(record.raw, record.topic.msgtype)
            image = decode_any_image(message, record.topic.msgtype, color_order)
        except Exception as error:
            self.problems.add(kinds.DECODE_ERROR, topic, f"message skipped: {error}")
            return None
        stamp = header_stamp_ns(message.header)
        previous = self._last_stamp.get(topic)
        if previous is not None and stamp < previous:
            self.problems.add(
                kinds.OUT_OF_ORDER,
                topic,
                f"header stamp {stamp} ns is before the previous {previous} ns "
                "(processed in bag order; the tracker restarts)",
            )
        self._last_stamp[topic] = stamp
        return ImageFrame(
            topic=topic,
            msgtype=record.topic.msgtype,
            log_time_ns=record.log_time_ns,
            stamp_ns=stamp,
            frame_id=message.header.frame_id,
            image=image,
            header=message.header,
        )

    def frames(self, color_order: str = "bgr") -> Iterator[ImageFrame]:
        """Decoded frames of the selected image topics, undecodable ones skipped and reported."""
        for record in self.records(self.image_topics):
            frame = self.decode_frame(record, color_order)
            if frame is not None:
                yield frame
