"""Clear frames from the camera topics of a rosbag2 recording, sampled like a video's.

Each chosen Image / CompressedImage topic is one source: its messages, in the bag's (log-time)
order, are numbered like a video's frames; every ``frame_step``-th one is used and the last
``holdout_fraction`` of them is held out (one camera's neighbouring frames are near-duplicates).
The bag is read with :class:`~togethernet_ros.bag.bag_reader.BagReader` twice: once counting
messages without decoding them (an index may be missing or cut short by a killed recording),
then decoding only the used frames, one at a time, so memory stays flat however long the drive.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from togethernet_ros.bag.bag_problems import BagError
from togethernet_ros.bag.bag_reader import (
    BagReader,
    compressed_file_advice,
    list_topics_from_metadata,
    storage_kind,
)
from togethernet_ros.bag.image_codec import IMAGE_TYPES, is_depth_topic
from togethernet_ros.distill.frame_sources import (
    FrameOrigin,
    SourceFrame,
    check_sampling,
    safe_name,
    sampling,
    source_name,
)
from togethernet_ros.vision.image_file import IMAGE_SUFFIXES

LOGGER = logging.getLogger("togethernet_ros")
ROS1_SUFFIX = ".bag"


def is_bag_source(path: Path) -> bool:
    """Whether ``path`` is a rosbag2 recording rather than a video or an image folder.

    A folder with ``metadata.yaml``, or with storage files (``.mcap``, ``.db3``, also
    ``.zstd``-compressed) and no images (a recording killed before it wrote its metadata); a
    ``.mcap`` / ``.db3`` file (or its ``.zstd`` form, which :func:`bag_file_error` refuses).
    """
    if path.is_dir():
        if (path / "metadata.yaml").is_file():
            return True
        children = [child for child in path.iterdir() if child.is_file()]
        return any(storage_kind(child) for child in children) and not any(
            child.suffix.lower() in IMAGE_SUFFIXES for child in children
        )
    return storage_kind(path) is not None


def bag_file_error(path: Path) -> str | None:
    """Why a file given as a source cannot be read as a bag or video, else None."""
    if path.is_file():
        # Without its metadata.yaml the reader cannot decompress a zstd storage file.
        advice = compressed_file_advice(path)
        if advice:
            return f"frame source {path}: {advice}"
        if path.suffix == ROS1_SUFFIX:
            return (
                f"frame source {path} is a ROS 1 bag: convert it to rosbag2 first "
                f"(`rosbags-convert --src {path} --dst DIR`)"
            )
    return None


def _topic_name(topic: str) -> str:
    """``topic`` with the leading slash a user may leave out restored and a trailing one cut."""
    return "/" + topic.strip().strip("/")


@dataclass(frozen=True)
class BagCameras:
    """A bag and the camera topics to take frames from (checked to exist and be images)."""

    path: Path
    topics: tuple[str, ...]
    image_topics: tuple[str, ...]  # every camera topic the bag has

    def source_names(self) -> list[str]:
        """One file-name-safe source id per topic: ``<bag>__<topic>``."""
        bag = source_name(self.path)
        return [f"{bag}__{safe_name(topic.strip('/'))}" for topic in self.topics]


def choose_cameras(path: str | Path, requested: Sequence[str] | None = None) -> BagCameras:
    """List the topics of ``path`` and pick its camera topics: ``requested``, or every one.

    ValueError names the bag and the problem: not readable, no camera topic, or a requested
    topic it does not have (listing the ones it has) or that is not a camera image.
    """
    path = Path(path)
    try:
        types = _topic_types(path)
    except BagError as error:
        raise ValueError(str(error)) from error
    image_topics = tuple(
        sorted(t for t, kind in types.items() if kind in IMAGE_TYPES and not is_depth_topic(t))
    )
    if not image_topics:
        listing = ", ".join(f"{t} ({kind})" for t, kind in sorted(types.items())) or "none"
        raise ValueError(
            f"bag {path}: no camera image topic (sensor_msgs/Image or CompressedImage; "
            f"its topics: {listing})"
        )
    available = f"its image topics: {', '.join(image_topics)}"
    if not requested:
        _warn_about_twins(path, image_topics)
        return BagCameras(path, image_topics, image_topics)
    chosen: list[str] = []
    for topic in dict.fromkeys(_topic_name(topic) for topic in requested):
        if topic not in types:
            raise ValueError(f"bag {path} has no topic {topic} ({available})")
        if types[topic] not in IMAGE_TYPES:
            raise ValueError(
                f"bag {path}: topic {topic} is {types[topic]}, not a camera image "
                f"(sensor_msgs/Image or CompressedImage; {available})"
            )
        if is_depth_topic(topic):
            raise ValueError(
                f"bag {path}: topic {topic} is a depth image (compressedDepth), not a camera "
                f"({available})"
            )
        chosen.append(topic)
    return BagCameras(path, tuple(chosen), image_topics)


def _topic_types(path: Path) -> dict[str, str]:
    """Each topic of the bag at ``path`` and its message type (BagError when unreadable).

    From its metadata.yaml alone where it has one: opening the storage would decompress a
    zstd bag (minutes and gigabytes for a long drive) only to list it. A storage file, a
    recording killed before its metadata.yaml, or a metadata.yaml that is not rosbag2's are
    opened with BagReader, which reads what the storage says of itself.
    """
    try:
        listed = list_topics_from_metadata(path)
    except BagError:
        listed = None  # BagReader reads the storage files directly and says so
    if listed is not None:
        return {topic: entry.msgtype for topic, entry in listed.items()}
    with BagReader(path, require_images=False) as reader:
        return {topic: info.msgtype for topic, info in reader.topics.items()}


def _warn_about_twins(path: Path, topics: Sequence[str]) -> None:
    # image_transport records one camera twice (raw and .../compressed): labelling both costs
    # twice the teacher time for the same pictures.
    for topic in topics:
        twin = f"{topic}/compressed"
        if twin in topics:
            LOGGER.warning(
                "bag %s: %s and %s are probably one camera, raw and compressed; both are used. "
                "Choose one with --topic",
                path,
                topic,
                twin,
            )


@dataclass
class TopicTally:
    """What became of one topic's messages."""

    messages: int = 0
    used: int = 0
    heldout: int = 0
    skipped: int = 0  # sampled but undecodable

    def to_json(self) -> dict:
        """JSON-ready dict."""
        return {
            "messages": self.messages,
            "used": self.used,
            "heldout": self.heldout,
            "skipped": self.skipped,
        }


@dataclass
class BagFramesReport:
    """Per-topic counts and the reader's problems for one bag, filled while its frames are read."""

    bag: str
    topics: dict[str, TopicTally] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # topic -> source id
    problems: list[dict] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        """Sampled frames that could not be decoded."""
        return sum(tally.skipped for tally in self.topics.values())

    def to_json(self) -> dict:
        """JSON-ready dict (for labels.json)."""
        return {
            "bag": self.bag,
            "topics": {
                topic: {"source": self.sources.get(topic), **tally.to_json()}
                for topic, tally in self.topics.items()
            },
            "problems": self.problems,
        }

    def lines(self) -> list[str]:
        """Printable summary: one line per topic, then the problems."""
        lines = []
        for topic, tally in self.topics.items():
            skipped = f", {tally.skipped} undecodable skipped" if tally.skipped else ""
            lines.append(
                f"bag {self.bag} {topic}: {tally.messages} messages, {tally.used} frames used "
                f"({tally.heldout} held out){skipped}"
            )
        for problem in self.problems:
            where = f"{problem['topic']}: " if problem["topic"] else ""
            times = f" (x{problem['count']})" if problem["count"] > 1 else ""
            lines.append(f"  [{problem['kind']}] {where}{problem['detail']}{times}")
        return lines


def iter_bag_frames(
    cameras: BagCameras,
    frame_step: int = 1,
    holdout_fraction: float = 0.2,
    max_frames: int | None = None,
    names: Sequence[str] | None = None,
    report: BagFramesReport | None = None,
) -> Iterator[SourceFrame]:
    """BGR frames of the chosen topics, each topic sampled and split like a video.

    ``max_frames`` caps each topic as it caps a video; ``names`` (default
    :meth:`BagCameras.source_names`) are the topics' source ids. Undecodable sampled frames
    are skipped; ``report`` (when given) receives the counts and the reader's problems.
    """
    check_sampling(frame_step, holdout_fraction)
    names = list(names) if names is not None else cameras.source_names()
    report = report if report is not None else BagFramesReport(str(cameras.path))
    report.sources = dict(zip(cameras.topics, names, strict=True))
    report.topics = {topic: TopicTally() for topic in cameras.topics}
    try:
        reader = BagReader(cameras.path).open()
    except BagError as error:
        raise ValueError(str(error)) from error
    try:
        yield from _sampled_frames(
            reader, cameras, frame_step, holdout_fraction, max_frames, report
        )
    finally:
        reader.close()
        report.problems = _said_once(reader.problems.to_dicts())


def _said_once(problems: list[dict]) -> list[dict]:
    unique: dict[tuple, dict] = {}
    for problem in problems:
        unique.setdefault((problem["kind"], problem["topic"], problem["detail"]), problem)
    return list(unique.values())


def _sampled_frames(
    reader: BagReader,
    cameras: BagCameras,
    frame_step: int,
    holdout_fraction: float,
    max_frames: int | None,
    report: BagFramesReport,
) -> Iterator[SourceFrame]:
    LOGGER.info("counting the messages of %s in %s", ", ".join(cameras.topics), cameras.path)
    for record in reader.records(cameras.topics):
        report.topics[record.topic.topic].messages += 1
    if not any(tally.messages for tally in report.topics.values()):
        raise ValueError(
            f"bag {cameras.path}: no readable message on {', '.join(cameras.topics)}"
            + "".join(f"; {line}" for line in reader.problems.lines())
        )
    plans: Mapping[str, tuple[int, int]] = {
        topic: sampling(tally.messages, frame_step, holdout_fraction, max_frames)
        for topic, tally in report.topics.items()
    }
    names = dict(report.sources)
    # The second pass meets the storage's problems (a tear, an unread topic) again, worded
    # alike when counted alike: _said_once drops the repeats.
    reader.messages_read = 0
    positions = dict.fromkeys(cameras.topics, 0)
    for record in reader.records(cameras.topics):
        topic = record.topic.topic
        index = positions[topic]
        positions[topic] += 1
        holdout_start, step = plans[topic]
        if index % step:
            continue  # never decoded: the thinning costs no decoding
        tally = report.topics[topic]
        frame = reader.decode_frame(record, "bgr")
        if frame is None:
            tally.skipped += 1  # the reader names the reason among its problems
            continue
        heldout = index >= holdout_start
        tally.used += 1
        tally.heldout += heldout
        origin = FrameOrigin(str(cameras.path), topic, frame.stamp_ns, frame.log_time_ns)
        yield SourceFrame(names[topic], index, frame.image, heldout, origin)
