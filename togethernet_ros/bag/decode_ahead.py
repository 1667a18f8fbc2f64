"""Decode a bag's compressed camera frames on several threads, handing them out in bag order.

A 1280×720 JPEG takes 3–5 ms to decode; with four compressed cameras one reader thread spends
15–20 ms per set of frames, more than a GPU takes to run the model on them, so `bag run` would
wait on decoding. OpenCV releases the GIL while it decodes, so a few threads decode side by
side. Raw Image frames are decoded in order on the calling thread (a copy, and their 16-bit
scale follows the camera from frame to frame), and so are the per-camera checks that compare a
frame with the one before it (stamps going backwards), whatever thread decoded it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from togethernet_ros.bag.bag_reader import BagReader, BagRecord, DecodedPixels, ImageFrame
from togethernet_ros.bag.image_codec import COMPRESSED_IMAGE_TYPE
from togethernet_ros.pipeline.usable_cpus import usable_cpus

# Auto never starts more: past this a GPU's batches, not decoding, set the pace.
MAX_AUTO_THREADS = 8
# Nor may a user: each thread keeps up to two decoded frames ahead (a 4K frame is 25 MB).
MAX_THREADS = 32
# Records of other topics (an IMU at 1 kHz, tf) read past a frame still being decoded.
RECORDS_AHEAD = 256


def auto_decode_threads() -> int:
    """Threads for `--decode-threads -1`: one per usable CPU, at most 8.

    With the model on a GPU even two cores decode 1.5× the frames one thread does
    (docs/benchmarks.md); with the model on the CPU the decoding is the same work, done while
    the queue ahead of the model has room.
    """
    return max(1, min(MAX_AUTO_THREADS, usable_cpus() or 1))


def decode_in_order(
    reader: BagReader,
    records: Iterable[tuple[BagRecord, bool]],
    color_order: str,
    threads: int,
) -> Iterator[tuple[BagRecord, ImageFrame | None]]:
    """Each record with its decoded frame (None when not wanted or undecodable), in bag order.

    ``records`` pairs a record with whether to decode it. With ``threads`` above 1, up to
    ``2 × threads`` compressed frames are decoded ahead on threads named ``bag-decode_N``,
    reading up to 256 other records past the oldest; the problems a frame's decoding finds are
    still recorded in bag order (those of the bag's files, such as a torn end, as they are
    read, so up to that many records early). Closing the iterator early cancels the decodes
    not yet started and waits for those under way.
    """
    if not 1 <= threads <= MAX_THREADS:
        raise ValueError(f"decode threads must be 1 to {MAX_THREADS}, got {threads}")
    if threads == 1:
        for record, wanted in records:
            yield record, reader.decode_frame(record, color_order) if wanted else None
        return
    pending: deque[tuple[BagRecord, bool, Future[DecodedPixels] | None]] = deque()
    decoding_count = 0
    prepared_types: set[str] = set()
    with ThreadPoolExecutor(threads, thread_name_prefix="bag-decode") as pool:
        try:
            for record, wanted in records:
                decoding = None
                if wanted and record.topic.msgtype == COMPRESSED_IMAGE_TYPE:
                    if record.topic.msgtype not in prepared_types:
                        # rosbags builds a type's deserializer on first use, unlocked: build it
                        # here, once, rather than in several threads at the same moment.
                        reader.typestore.get_msgdef(record.topic.msgtype)
                        prepared_types.add(record.topic.msgtype)
                    decoding = pool.submit(reader.decode_pixels, record, color_order)
                    decoding_count += 1
                pending.append((record, wanted, decoding))
                # Hand out what needs no waiting; wait for the oldest frame only when too many
                # frames or records are ahead of it.
                while pending and (
                    pending[0][2] is None
                    or pending[0][2].done()
                    or decoding_count > 2 * threads
                    or len(pending) > RECORDS_AHEAD
                ):
                    head = pending.popleft()
                    if head[2] is not None:
                        decoding_count -= 1
                    yield _finish(reader, color_order, *head)
            while pending:
                head = pending.popleft()
                yield _finish(reader, color_order, *head)
        finally:
            for _record, _wanted, decoding in pending:
                if decoding is not None:
                    decoding.cancel()


def _finish(
    reader: BagReader,
    color_order: str,
    record: BagRecord,
    wanted: bool,
    decoding: Future[DecodedPixels] | None,
) -> tuple[BagRecord, ImageFrame | None]:
    if not wanted:
        return record, None
    return record, reader.decode_frame(record, color_order, decoding)
