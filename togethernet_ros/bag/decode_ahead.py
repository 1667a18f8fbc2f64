"""Decode a bag's compressed camera frames on several threads, handing them out in bag order.

A 1280×720 JPEG takes about 5 ms to decode; with four compressed cameras one reader thread
spends 20 ms per set of frames, more than a GPU takes to run the model on them, so `bag run`
would wait on decoding. OpenCV releases the GIL while it decodes, so a few threads decode
side by side. Raw Image frames are decoded in order on the calling thread (a copy, and their
16-bit scale follows the camera from frame to frame), and so are the per-camera checks that
compare a frame with the one before it (stamps going backwards), whatever thread decoded it.
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


def auto_decode_threads() -> int:
    """Threads for `--decode-threads -1`: one per usable CPU, at most 8.

    With the model on a GPU even two cores decode 1.5× the frames one thread does
    (docs/benchmarks.md); with the model on the CPU the decoding is the same work, done while
    the queue ahead of the model has room, so the extra threads cost it next to nothing.
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
    ``2 × threads`` compressed frames are decoded ahead on threads named ``bag-decode_N``;
    problems are still recorded in bag order. Closing the iterator early waits for the
    decodes under way and drops their frames.
    """
    if threads < 1:
        raise ValueError(f"decode threads must be >= 1, got {threads}")
    if threads == 1:
        for record, wanted in records:
            yield record, reader.decode_frame(record, color_order) if wanted else None
        return
    pending: deque[tuple[BagRecord, bool, Future[DecodedPixels] | None]] = deque()
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
                pending.append((record, wanted, decoding))
                while len(pending) > 2 * threads:
                    yield _finish(reader, color_order, *pending.popleft())
            while pending:
                yield _finish(reader, color_order, *pending.popleft())
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
