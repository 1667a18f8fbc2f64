"""Read rosbag2 bags (mcap or sqlite3) with rosbags, tolerating the ways real recordings break.

A recording killed mid-write has no metadata.yaml and an mcap without its summary; a disk that
filled up leaves a torn sqlite3 file; a topic may be missing or carry an unexpected type. The
reader processes whatever can be read and records the rest in :class:`BagProblems`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import yaml
from rosbags.rosbag2 import Reader
from rosbags.typesys.store import Typestore

from togethernet_ros.bag import bag_problems as kinds
from togethernet_ros.bag.bag_problems import BagError, BagProblems
from togethernet_ros.bag.image_codec import (
    COMPRESSED_IMAGE_TYPE,
    IMAGE_TYPES,
    SensorBitDepth,
    decode_any_image,
    decode_compressed_message,
    finish_16_bit_frame,
    header_stamp_ns,
    is_depth_topic,
)
from togethernet_ros.bag.mcap_salvage import (
    SalvagedChannel,
    SalvagedMessage,
    SalvagedSchema,
    SalvageResult,
    salvage_mcap,
)
from togethernet_ros.bag.vision_msgs_definitions import create_typestore

STORAGE_SUFFIXES = {".mcap": "mcap", ".db3": "sqlite3"}
# `ros2 bag record --compression-mode file` stores bag_0.mcap.zstd (listed in metadata.yaml).
FILE_COMPRESSION_SUFFIX = ".zstd"


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


class DecodedPixels(NamedTuple):
    """An image record deserialized, and its pixels decoded."""

    message: Any
    image: np.ndarray


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


def storage_kind(path: Path) -> str | None:
    """The storage ("mcap" or "sqlite3") of a file, also when zstd-compressed; else None."""
    name = path.name
    if name.endswith(FILE_COMPRESSION_SUFFIX):
        name = name[: -len(FILE_COMPRESSION_SUFFIX)]
    return STORAGE_SUFFIXES.get(Path(name).suffix)


def _is_file_compressed(path: Path) -> bool:
    return path.name.endswith(FILE_COMPRESSION_SUFFIX)


def compressed_file_advice(path: Path) -> str | None:
    """What to give instead of one zstd-compressed storage file (``bag_0.mcap.zstd``), else None.

    Only the bag's metadata.yaml says how its files are compressed, so such a file is read
    through its bag folder; without a metadata.yaml next to it, it must be decompressed first.
    """
    kind = storage_kind(path)
    if kind is None or not _is_file_compressed(path):
        return None
    folder = path.parent
    if (folder / "metadata.yaml").is_file():
        return (
            f"{path.name} is one zstd-compressed storage file of the bag {folder}: "
            f"pass the bag folder {folder} instead"
        )
    plain = path.name[: -len(FILE_COMPRESSION_SUFFIX)]
    return (
        f"{path.name} is a zstd-compressed storage file without the bag's metadata.yaml: "
        f"decompress it with `zstd -d {path}` and pass the resulting {plain}"
    )


@dataclass(frozen=True)
class ListedTopic:
    """A topic as a bag's metadata.yaml lists it: name, type and recorded message count."""

    topic: str
    msgtype: str
    count: int


def list_topics_from_metadata(path: str | Path) -> dict[str, ListedTopic] | None:
    """A bag folder's topics read from its metadata.yaml alone, storage left unopened.

    Cheap whatever the bag's size: no storage file is opened, so a zstd-compressed bag is not
    decompressed. The counts are what the recorder wrote; a damaged storage file may hold
    fewer messages (:class:`BagReader` reads and reports that). None when ``path`` is not a
    folder with a metadata.yaml (a storage file, or a recording killed before it wrote one):
    open a :class:`BagReader` then. BagError names the file when its content is not a
    rosbag2 metadata.yaml.
    """
    metadata = Path(path) / "metadata.yaml"
    if not metadata.is_file():
        return None
    try:
        document = yaml.safe_load(metadata.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise BagError(f"{metadata} cannot be read: {error}") from error
    information = (
        document.get("rosbag2_bagfile_information") if isinstance(document, dict) else None
    )
    entries = (
        information.get("topics_with_message_count") if isinstance(information, dict) else None
    )
    if not isinstance(entries, list):
        raise BagError(
            f"{metadata} is not a rosbag2 metadata.yaml "
            "(no rosbag2_bagfile_information.topics_with_message_count list)"
        )
    topics: dict[str, ListedTopic] = {}
    for index, entry in enumerate(entries):
        described = entry.get("topic_metadata") if isinstance(entry, dict) else None
        name = described.get("name") if isinstance(described, dict) else None
        msgtype = described.get("type") if isinstance(described, dict) else None
        count = entry.get("message_count", 0) if isinstance(entry, dict) else None
        if not isinstance(name, str) or not isinstance(msgtype, str) or not isinstance(count, int):
            raise BagError(
                f"{metadata}: topics_with_message_count entry {index} has no topic name, "
                "type or message count"
            )
        known = topics.get(name)
        # One topic listed twice (e.g. offered with two QoS): one topic, counts added up.
        total = count + (known.count if known is not None and known.msgtype == msgtype else 0)
        topics[name] = ListedTopic(name, msgtype, total)
    return topics


def _split_order(path: Path) -> tuple:
    # A split recording names its files bag_0, bag_1, ..., bag_10: compare numbers as numbers,
    # or bag_10 would be read before bag_2.
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in re.split(r"(\d+)", path.name)
    )


def _storage_files(directory: Path) -> list[Path]:
    files = [p for p in directory.iterdir() if p.is_file() and storage_kind(p) is not None]
    return sorted(files, key=_split_order)


@dataclass
class _ScannedFiles:
    """Storage files read record by record (no usable index), in order."""

    files: list[Path]


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
        # Read one after another: a Reader per bag (or per storage file without metadata.yaml).
        self._sources: list[Reader | _ScannedFiles] = []
        self._last_stamp: dict[str, int] = {}
        # One 16-bit scale per camera topic, so its frames' brightness stays steady; decoding
        # restarts it when the topic's frame_id or size changes (SensorBitDepth.follow).
        self._bit_depths: dict[str, SensorBitDepth] = {}

    # -- opening -------------------------------------------------------------------------
    def open(self) -> BagReader:
        """Open the bag; raises BagError when nothing in it is readable."""
        if not self.path.exists():
            raise BagError(f"bag {self.path} does not exist")
        if self.path.is_file() and self.path.suffix not in STORAGE_SUFFIXES:
            advice = compressed_file_advice(self.path)
            raise BagError(
                f"bag {self.path}: "
                + (advice or "unknown file type (expected a directory, .mcap or .db3)")
            )
        files = [self.path] if self.path.is_file() else _storage_files(self.path)
        if not files:
            raise BagError(f"bag {self.path}: no metadata.yaml and no .mcap/.db3 file inside")
        self.storage = storage_kind(files[0]) or ""
        if self.path.is_file():
            self._open_files(files)
        elif not (self.path / "metadata.yaml").exists():
            self._open_files(self._readable_without_metadata(files))
        else:
            self._open_directory(files)
        self._select_image_topics()
        return self

    def _open_directory(self, files: list[Path]) -> None:
        # metadata.yaml lists the split files and says how they are compressed.
        try:
            reader = Reader(self.path)
            reader.open()
        except Exception as error:
            plain = [f for f in files if not _is_file_compressed(f)]
            if not plain:
                raise BagError(
                    f"bag {self.path}: cannot read its zstd-compressed storage ({error}); the "
                    "file is damaged or truncated. Try `zstd -d` on it and read the result"
                ) from error
            # A torn storage file, or a metadata.yaml this reader cannot use (hand-edited, a
            # newer rosbag2): the storage files describe themselves.
            self.problems.add(
                kinds.BAD_METADATA,
                None,
                f"cannot open the bag through its metadata.yaml ({error}); "
                f"reading its {len(plain)} storage file(s) directly",
            )
            self._open_files(plain)
            return
        self._sources.append(reader)
        self._load_connections(reader)

    def _readable_without_metadata(self, files: list[Path]) -> list[Path]:
        plain = [f for f in files if not _is_file_compressed(f)]
        compressed = [f.name for f in files if _is_file_compressed(f)]
        if not plain:
            raise BagError(
                f"bag {self.path}: no metadata.yaml and only zstd-compressed storage files "
                f"({', '.join(compressed)}); decompress them with `zstd -d` first"
            )
        self.problems.add(
            kinds.NO_METADATA,
            None,
            f"{self.path} has no metadata.yaml (recording not closed cleanly?); reading "
            + (
                f"its {len(plain)} storage files in name order"
                if len(plain) > 1
                else f"{plain[0].name} directly"
            ),
        )
        if compressed:
            self.problems.add(
                kinds.NO_METADATA,
                None,
                f"skipped {len(compressed)} zstd-compressed storage file(s) "
                f"({', '.join(compressed)}): without metadata.yaml they cannot be read here; "
                "decompress them with `zstd -d` next to the others",
            )
        return plain

    def _open_files(self, files: list[Path]) -> None:
        for file in files:
            self._open_file(file, only=len(files) == 1)

    def _open_file(self, file: Path, only: bool) -> None:
        try:
            reader = Reader(file)
            reader.open()
        except Exception as error:
            self._unreadable_index(file, error, only)
            return
        self._sources.append(reader)
        self._load_connections(reader)

    def _unreadable_index(self, file: Path, error: Exception, only: bool) -> None:
        where = f"{file.name}: " if not only else ""
        if self.storage != "mcap":
            if only:
                raise BagError(
                    f"bag {self.path}: cannot open sqlite3 storage ({error}); the file is damaged "
                    "or truncated. Try `sqlite3 FILE .recover | sqlite3 FIXED.db3`, or record "
                    "mcap, which this reader can read up to a tear"
                ) from error
            self.problems.add(
                kinds.TRUNCATED,
                None,
                f"{where}cannot open sqlite3 storage ({error}); its messages are lost",
            )
            return
        self.problems.add(
            kinds.TRUNCATED,
            None,
            f"{where}mcap index unreadable ({error}); scanning records sequentially",
        )
        scanned = _ScannedFiles([file])
        self._sources.append(scanned)
        self._scan_connections(scanned)

    def _load_connections(self, reader: Reader) -> None:
        for connection in reader.connections:
            known = self.topics.get(connection.topic)
            if known is not None and known.msgtype != connection.msgtype:
                self._report_second_type(known, connection.msgtype, connection.msgcount)
                continue
            if known is not None:
                # The same topic in another split file: one topic, counts added up.
                self.topics[connection.topic] = replace(
                    known, count=known.count + connection.msgcount
                )
                continue
            digest = connection.digest or self._known_digest(connection.msgtype)
            self.topics[connection.topic] = BagTopic(
                topic=connection.topic,
                msgtype=connection.msgtype,
                msgdef=connection.msgdef.data,
                digest=digest,
                qos=tuple(getattr(connection.ext, "offered_qos_profiles", ())),
                count=connection.msgcount,
            )

    def _report_second_type(self, known: BagTopic, msgtype: str, count: int | None) -> None:
        """A topic recorded with another type too: only its first type is read."""
        self.problems.add(
            kinds.UNKNOWN_TYPE,
            known.topic,
            f"recorded as {known.msgtype} and also as {msgtype}: "
            f"{'the' if count is None else count} {msgtype} messages are skipped",
        )

    def _known_digest(self, msgtype: str) -> str:
        if msgtype in self.typestore.fielddefs:
            return self.typestore.hash_rihs01(msgtype)
        return ""

    def _scan_connections(self, scanned: _ScannedFiles) -> None:
        # Schemas and channels precede their messages in an mcap, so a first pass finds every
        # topic that has readable messages.
        schemas: dict[int, SalvagedSchema] = {}
        for record in self._scan_records(scanned.files, report=True):
            if isinstance(record, SalvagedSchema):
                schemas[record.id] = record
            elif isinstance(record, SalvagedChannel) and record.topic in self.topics:
                schema = schemas.get(record.schema_id)
                known = self.topics[record.topic]
                if schema is not None and schema.name != known.msgtype:
                    self._report_second_type(known, schema.name, None)
            elif isinstance(record, SalvagedChannel):
                schema = schemas.get(record.schema_id)
                msgtype = schema.name if schema else ""
                self.topics[record.topic] = BagTopic(
                    topic=record.topic,
                    msgtype=msgtype,
                    msgdef=schema.data.decode() if schema else "",
                    digest=self._known_digest(msgtype),
                )

    def _scan_records(self, files: list[Path], report: bool) -> Iterator[object]:
        for file in files:
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
        images = sorted(t for t, info in self.topics.items() if info.msgtype in IMAGE_TYPES)
        available = [t for t in images if not is_depth_topic(t)]
        if self._requested is None:
            self.image_topics = available
            for topic in images:
                if is_depth_topic(topic):
                    self._skip_depth(topic)
        else:
            for topic in self._requested:
                info = self.topics.get(topic)
                if info is not None and is_depth_topic(topic):
                    self._skip_depth(topic)
                elif info is None:
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

    def _skip_depth(self, topic: str) -> None:
        self.problems.add(
            kinds.NOT_A_CAMERA,
            topic,
            "depth image (image_transport compressedDepth), not a camera: not processed",
        )

    def close(self) -> None:
        """Close the underlying storage."""
        for source in self._sources:
            if isinstance(source, Reader):
                with contextlib.suppress(Exception):
                    source.close()
        self._sources = []

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
        read: dict[str, int] = dict.fromkeys(wanted, 0)
        for source in self._sources:
            if isinstance(source, _ScannedFiles):
                records = self._scanned_records(source, wanted)
            else:
                records = self._indexed_records(source, wanted)
            for record in records:
                read[record.topic.topic] += 1
                yield record
        for topic, count in sorted(read.items()):
            recorded = self.topics[topic].count if topic in self.topics else 0
            if count == 0 and recorded > 0:
                # rosbags matches a topic's connection in metadata.yaml to the storage's by
                # type and QoS; a mismatch yields nothing rather than an error.
                self.problems.add(
                    kinds.UNREAD_TOPIC,
                    topic,
                    f"the bag index lists {recorded} messages but none could be read "
                    "(metadata.yaml does not match the storage file?)",
                )

    def _indexed_records(self, reader: Reader, wanted: set[str]) -> Iterator[BagRecord]:
        connections = [
            c
            for c in reader.connections
            if c.topic in wanted and c.msgtype == self.topics[c.topic].msgtype
        ]
        if not connections:
            return
        iterator = reader.messages(connections=connections)
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

    def _scanned_records(self, scanned: _ScannedFiles, wanted: set[str]) -> Iterator[BagRecord]:
        channels: dict[int, str] = {}
        schema_names: dict[int, str] = {}
        for record in self._scan_records(scanned.files, report=False):
            if isinstance(record, SalvagedSchema):
                schema_names[record.id] = record.name
            elif isinstance(record, SalvagedChannel):
                known = self.topics.get(record.topic)
                # A channel of the topic's other type (reported when scanned) is not read.
                if known is not None and schema_names.get(record.schema_id, "") == known.msgtype:
                    channels[record.id] = record.topic
            elif isinstance(record, SalvagedMessage):
                topic = channels.get(record.channel_id)
                if topic in wanted:
                    self.messages_read += 1
                    yield BagRecord(self.topics[topic], record.log_time, record.data)

    def decode_pixels(self, record: BagRecord, color_order: str = "bgr") -> DecodedPixels:
        """Deserialize an image record and decode its pixels; raises what decoding raised.

        A CompressedImage's decoding keeps no state between frames, so its records may be
        decoded on any thread in any order (bag/decode_ahead.py); a 16-bit one comes back as
        uint16, for :meth:`decode_frame` to scale in bag order. An Image's 16-bit scale
        follows its camera from frame to frame: decode those in bag order, on one thread.
        """
        message = self.typestore.deserialize_cdr(record.raw, record.topic.msgtype)
        if record.topic.msgtype == COMPRESSED_IMAGE_TYPE:
            image = decode_compressed_message(message, color_order, scale_16_bits=False)
        else:
            depth = self._bit_depths.setdefault(record.topic.topic, SensorBitDepth())
            image = decode_any_image(message, record.topic.msgtype, color_order, depth)
        return DecodedPixels(message, image)

    def decode_frame(
        self,
        record: BagRecord,
        color_order: str = "bgr",
        decoded: Future[DecodedPixels] | None = None,
    ) -> ImageFrame | None:
        """Deserialize and decode an image record; None (and a problem recorded) if impossible.

        ``decoded``: its pixels, already being decoded on another thread (:meth:`decode_pixels`);
        the checks that compare a frame with the one before it still run here, in bag order.
        """
        topic = record.topic.topic
        try:
            pixels = decoded.result() if decoded is not None else None
            message, image = pixels or self.decode_pixels(record, color_order)
            if image.dtype == np.uint16:  # a 16-bit CompressedImage: its scale, in bag order
                depth = self._bit_depths.setdefault(topic, SensorBitDepth())
                image = finish_16_bit_frame(message, image, depth)
        except Exception as error:
            self.problems.add(kinds.DECODE_ERROR, topic, f"message skipped: {error}")
            return None
        stamp = header_stamp_ns(message.header)
        previous = self._last_stamp.get(topic)
        if stamp == 0:
            # Not a step back in time: the pipeline times an unstamped frame by its log time,
            # and the next stamped frame is compared with the last stamp seen.
            self.problems.add(
                kinds.UNSTAMPED,
                topic,
                "header stamp is zero (the driver did not stamp it); timed by the bag's "
                "receive time, outputs keep the zero stamp",
            )
        elif previous is not None and stamp < previous:
            self.problems.add(
                kinds.OUT_OF_ORDER,
                topic,
                f"header stamp {stamp} ns is before the previous {previous} ns "
                "(processed in bag order; the tracker restarts)",
            )
        if stamp:
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
