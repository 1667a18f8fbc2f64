"""`bag run`: a bag through the node's pipeline offline, as fast as possible, into a new bag.

Three threads keep the model busy: one reads and decodes ahead, the calling thread runs the
pipeline, one serializes and writes. Decoding, CDR and file writes release the GIL for most of
their time, so on a 2-core CPU they mostly hide behind inference. Compressed frames are
decoded on ``decode_threads`` threads (bag/decode_ahead.py): with the model on a GPU, one
thread decoding four JPEG cameras would set the pace.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from togethernet_ros.bag.bag_problems import BagError
from togethernet_ros.bag.bag_reader import BagReader, BagRecord, ImageFrame
from togethernet_ros.bag.bag_writer import BagWriter, check_output_apart_from_input
from togethernet_ros.bag.decode_ahead import MAX_THREADS, auto_decode_threads, decode_in_order
from togethernet_ros.bag.image_codec import COMPRESSED_IMAGE_TYPE
from togethernet_ros.bag.offline_pipeline import FrameResult, OfflinePipeline
from togethernet_ros.bag.output_bag_sink import Annotator, OutputBagSink, SinkOptions
from togethernet_ros.bag.output_topics import check_distinct_outputs, output_topics
from togethernet_ros.tracking.config import TrackerConfig
from togethernet_ros.tracking.reset_counts import (
    EVERY_FRAME_RESETS,
    every_frame_reset_consequence,
)

_END = object()
QUEUE_DEPTH = 16


@dataclass
class BagRunOptions:
    """What to read, how to batch and what to write."""

    image_topics: list[str] | None = None
    storage: str = "mcap"
    max_batch_size: int = 4
    max_batch_wait_ms: float = 20.0
    dehazed: bool = True
    raw_detections: bool = True
    annotated: bool = False
    copy_inputs: bool = True
    overwrite: bool = False
    max_frames: int | None = None
    # The node's `tracking.enabled`: off, `detections` holds the unsmoothed detections.
    tracking: bool = True
    tracker_config: TrackerConfig | None = None
    # Score of the published raw detections when the detector keeps lower ones for the tracker
    # (tracking/score_gate.py); None: the detector's own threshold.
    publish_threshold: float | None = None
    # The node's `classes` parameter: class names to write (raw and smoothed); None: all.
    class_filter: frozenset[str] | None = None
    # The node's `max_detections`: the highest-scoring boxes kept per frame after the class
    # filter (tracker's low-score boxes included); None: all.
    max_detections: int | None = None
    # Threads decoding compressed frames ahead; 1: the reader thread alone; -1: auto
    # (decode_ahead.auto_decode_threads).
    decode_threads: int = -1


@dataclass
class BagRunReport:
    """What happened, JSON-ready through :meth:`to_dict`."""

    input: str
    output: str
    storage: str
    image_topics: list[str]
    decode_threads: int = 1
    frames_processed: int = 0
    wall_s: float = 0.0
    inference_s: float = 0.0
    pipeline: dict = field(default_factory=dict)
    written: dict[str, int] = field(default_factory=dict)
    problems: list[dict] = field(default_factory=list)

    @property
    def tracker_resets(self) -> dict[str, dict]:
        """Per camera topic, how often its tracks restarted and why (tracking on)."""
        return self.pipeline.get("tracker_resets", {})

    def tracker_warnings(self) -> list[str]:
        """One warning per camera whose tracks restarted by gap on consecutive frames."""
        return [
            every_frame_reset_advice(topic, resets)
            for topic, resets in sorted(self.tracker_resets.items())
            if resets["longest_consecutive_gap_resets"] >= EVERY_FRAME_RESETS
        ]

    @property
    def overhead_fraction(self) -> float:
        """Share of wall time not spent inside the detector (bag I/O + pipeline)."""
        return 0.0 if self.wall_s <= 0 else max(0.0, 1.0 - self.inference_s / self.wall_s)

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return {
            "input": self.input,
            "output": self.output,
            "storage": self.storage,
            "image_topics": self.image_topics,
            "decode_threads": self.decode_threads,
            "frames_processed": self.frames_processed,
            "wall_s": round(self.wall_s, 4),
            "inference_s": round(self.inference_s, 4),
            "overhead_fraction": round(self.overhead_fraction, 4),
            "fps": round(self.frames_processed / self.wall_s, 3) if self.wall_s else 0.0,
            "pipeline": self.pipeline,
            "written": self.written,
            "problems": self.problems,
            "tracker_warnings": self.tracker_warnings(),
        }


def every_frame_reset_advice(camera_topic: str, resets: dict) -> str:
    """The warning for a camera whose tracks restarted on every frame for a while: why, and
    what to do (the node's advice, for frames that lie that far apart in the bag itself).

    ``resets`` is one camera's ``CameraResets.to_dict()``.
    """
    gap_s = resets["every_frame_gap_s"]  # the median: one hole in the recording is no cadence
    longest_s = resets["every_frame_gap_max_s"]
    max_gap_s = resets["max_gap_s"]
    min_hits = resets["min_hits"]
    consequence = every_frame_reset_consequence(output_topics(camera_topic).detections, min_hits)
    return (
        f"tracks on {camera_topic} restarted on every frame "
        f"({resets['longest_consecutive_gap_resets']} frames in a row): its frames are "
        f"{gap_s:.2f} s apart in the bag (median; up to {longest_s:.2f} s), more than "
        f"tracking.max_gap_s={max_gap_s:g} s, "
        f"{consequence}. The camera was recorded that seldom: raise tracking.max_gap_s above "
        f"{gap_s:.2f} (tracking: {{max_gap_s: ...}} in a --params-file)"
    )


class _Worker(threading.Thread):
    """A thread that remembers its exception for the caller to re-raise."""

    def __init__(self, target: Callable[[], None], name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._work = target
        self.error: BaseException | None = None

    def run(self) -> None:
        """Thread body: do the work, keeping any error for the caller to re-raise."""
        try:
            self._work()
        except BaseException as error:
            self.error = error


def run_bag(
    input_path: str | Path,
    output_path: str | Path,
    detector: Any,
    options: BagRunOptions | None = None,
    annotate: Annotator | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> BagRunReport:
    """Process ``input_path`` with ``detector`` and write ``output_path``; returns the report."""
    options = options or BagRunOptions()
    decode_threads = resolve_decode_threads(options.decode_threads)
    check_output_apart_from_input(input_path, output_path)
    color_order = getattr(detector, "color_order", "bgr")
    started = time.perf_counter()
    with BagReader(input_path, options.image_topics) as reader:
        try:
            check_distinct_outputs(reader.image_topics)
        except ValueError as error:
            raise BagError(f"{input_path}: {error} (choose topics with --topics)") from None
        if all(reader.topics[t].msgtype != COMPRESSED_IMAGE_TYPE for t in reader.image_topics):
            decode_threads = 1  # raw Image frames are decoded in order on the reader thread
        report = BagRunReport(
            input=str(input_path),
            output=str(output_path),
            storage=options.storage,
            image_topics=list(reader.image_topics),
            decode_threads=decode_threads,
        )
        total = reader.image_message_count
        if options.max_frames is not None:
            total = min(total, options.max_frames) if total else options.max_frames
        pipeline = OfflinePipeline(
            detector,
            max_batch_size=options.max_batch_size,
            max_batch_wait_ms=options.max_batch_wait_ms,
            restore=options.dehazed,
            tracking=options.tracking,
            tracker_config=options.tracker_config,
            publish_threshold=options.publish_threshold,
            class_filter=options.class_filter,
            max_detections=options.max_detections,
        )
        # Opened and closed inside the writer thread: sqlite3 connections are thread-bound.
        writer = BagWriter(output_path, options.storage, reader.typestore, options.overwrite)
        sink = OutputBagSink(
            writer,
            tuple(detector.class_names),
            color_order,
            SinkOptions(
                raw_detections=options.raw_detections,
                dehazed=options.dehazed,
                annotated=options.annotated,
                conf_threshold=(
                    float(getattr(detector, "conf_threshold", 0.0))
                    if options.publish_threshold is None
                    else options.publish_threshold
                ),
            ),
            annotate,
        )
        _process(
            reader, pipeline, writer, sink, options, color_order, decode_threads, total, progress
        )
        report.written = dict(writer.counts)
        report.problems = reader.problems.to_dicts()
    report.wall_s = time.perf_counter() - started
    report.inference_s = pipeline.stats.inference_s
    report.frames_processed = pipeline.stats.frames
    report.pipeline = pipeline.stats.to_dict()
    return report


def resolve_decode_threads(requested: int) -> int:
    """``decode_threads`` as a thread count: -1 is auto, else 1 to MAX_THREADS (32)."""
    if requested == -1:
        return auto_decode_threads()
    if not 1 <= requested <= MAX_THREADS:
        raise ValueError(
            f"--decode-threads (decode_threads) must be -1 (auto) or 1 to {MAX_THREADS}, "
            f"got {requested}"
        )
    return requested


def _put(target: queue.Queue, item: object, consumer: threading.Thread) -> None:
    # A consumer that died would leave a plain put() blocked forever on a full queue.
    while consumer.is_alive():
        try:
            target.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def _process(
    reader: BagReader,
    pipeline: OfflinePipeline,
    writer: BagWriter,
    sink: OutputBagSink,
    options: BagRunOptions,
    color_order: str,
    decode_threads: int,
    total: int,
    progress: Callable[[int, int], None] | None,
) -> None:
    decoded: queue.Queue = queue.Queue(QUEUE_DEPTH)
    to_write: queue.Queue = queue.Queue(QUEUE_DEPTH)
    stop = threading.Event()
    image_topics = set(reader.image_topics)
    uncopyable: set[str] = set()

    def selected() -> Iterator[tuple[BagRecord, bool]]:
        """The records to pass on, each with whether it is a frame to decode."""
        topics = None if options.copy_inputs else reader.image_topics
        frames = 0
        for record in reader.records(topics):
            if stop.is_set():
                return
            is_frame = record.topic.topic in image_topics
            if is_frame:
                if options.max_frames is not None and frames >= options.max_frames:
                    return
                frames += 1
            yield record, is_frame

    def read() -> None:
        try:
            for item in decode_in_order(reader, selected(), color_order, decode_threads):
                decoded.put(item)
        finally:
            decoded.put(_END)

    def write() -> None:
        writer.open()
        try:
            write_items()
        finally:
            writer.close()

    def write_items() -> None:
        while True:
            item = to_write.get()
            if item is _END:
                return
            if isinstance(item, FrameResult):
                sink.write(item)
                continue
            record: BagRecord = item
            topic = record.topic.topic
            if topic in uncopyable:
                continue
            if not writer.has_topic(topic) and not writer.copy_topic(record.topic):
                uncopyable.add(topic)
                reader.problems.add(
                    "unknown_type",
                    topic,
                    f"type {record.topic.msgtype!r} has no definition; not copied to the output",
                )
                continue
            writer.write_raw(topic, record.log_time_ns, record.raw)

    reader_thread = _Worker(read, "bag-reader")
    writer_thread = _Worker(write, "bag-writer")
    reader_thread.start()
    writer_thread.start()
    done = 0
    try:
        while True:
            item = decoded.get()
            if item is _END:
                break
            record, frame = item
            if options.copy_inputs:
                _put(to_write, record, writer_thread)
            if isinstance(frame, ImageFrame):
                for result in pipeline.push(frame):
                    _put(to_write, result, writer_thread)
                    done += 1
                    if progress is not None:
                        progress(done, total)
            if writer_thread.error is not None:
                break
        if reader_thread.error is None and writer_thread.error is None:
            for result in pipeline.finish():
                _put(to_write, result, writer_thread)
                done += 1
                if progress is not None:
                    progress(done, total)
    finally:
        stop.set()
        # Drain so a blocked reader can see the stop flag and finish.
        while reader_thread.is_alive():
            with contextlib.suppress(queue.Empty):
                decoded.get(timeout=0.05)
        if writer_thread.is_alive():
            _put(to_write, _END, writer_thread)
        writer_thread.join()
    for worker in (reader_thread, writer_thread):
        if worker.error is not None:
            raise worker.error
