"""OfflinePipeline: a camera whose stream changes under its tracker, as in a recorded bag."""

from __future__ import annotations

import threading

from support.stand_in_detectors import frame_with_block

from togethernet_ros.bag.bag_reader import ImageFrame
from togethernet_ros.bag.image_codec import IMAGE_TYPE
from togethernet_ros.bag.offline_pipeline import OfflinePipeline
from togethernet_ros.tracking.config import TrackerConfig

from .blob_detector import BlobDetector

START_NS = 1_700_000_000_000_000_000
TOPIC = "/cam/image_raw"


def _run(frames: list[tuple[int, str, object]]) -> list:
    pipeline = OfflinePipeline(
        BlobDetector(),
        max_batch_size=1,
        restore=False,
        tracker_config=TrackerConfig(min_hits=1, max_misses=5),
    )
    results = []
    for index, (stamp_ns, frame_id, image) in enumerate(frames):
        log_ns = START_NS + index * 50_000_000
        frame = ImageFrame(TOPIC, IMAGE_TYPE, log_ns, stamp_ns, frame_id, image)
        results.extend(pipeline.push(frame))
    results.extend(pipeline.finish())
    return results


def test_a_camera_that_changes_resolution_gets_no_boxes_of_the_old_size():
    large = [frame_with_block(192, 256, (128 + 4 * i, 48, 192 + 4 * i, 144)) for i in range(3)]
    small = [frame_with_block(96, 128, (64 + 2 * i, 24, 96 + 2 * i, 72)) for i in range(3)]
    frames = [(START_NS + i * 50_000_000, "cam", image) for i, image in enumerate(large + small)]
    results = _run(frames)
    for result in results[3:]:
        assert len(result.tracked.boxes) == 1, result.tracked.boxes
        x1, y1, x2, y2 = result.tracked.boxes[0]
        assert 0 <= x1 < x2 <= 128 and 0 <= y1 < y2 <= 96, result.tracked.boxes


def test_frames_of_another_frame_id_get_none_of_the_first_ones_tracks():
    left = frame_with_block(96, 128, (8, 20, 40, 70))
    right = frame_with_block(96, 128, (80, 20, 112, 70))
    frames = [
        (START_NS + i * 50_000_000, *(("left", left) if i % 2 == 0 else ("right", right)))
        for i in range(4)
    ]
    for index, result in enumerate(_run(frames)):
        assert len(result.tracked.boxes) == 1, (index, result.tracked.boxes)
        assert result.tracked.boxes[0][0] == (8 if index % 2 == 0 else 80)


def test_log_time_going_backwards_neither_hangs_nor_loses_a_frame():
    # A frame waits for a second camera (no rhythm yet) when the log time steps back by 95 s:
    # before, its batch deadline stayed in the "future" and finish() spun for ever.
    pipeline = OfflinePipeline(BlobDetector(), max_batch_size=4, restore=False)
    image = frame_with_block(96, 128, (8, 20, 40, 70))
    pushed = [("/a/image_raw", 100.0), ("/b/image_raw", 100.001), ("/a/image_raw", 100.034)]
    pushed.append(("/a/image_raw", 5.0))
    results = []

    def replay() -> None:
        for topic, log_s in pushed:
            log_ns = int(log_s * 1e9)
            frame = ImageFrame(topic, IMAGE_TYPE, log_ns, log_ns, "cam", image)
            results.extend(pipeline.push(frame))
        results.extend(pipeline.finish())

    worker = threading.Thread(target=replay, daemon=True)
    worker.start()
    worker.join(10.0)
    assert not worker.is_alive(), "finish() did not return"
    assert sorted(result.frame.log_time_ns for result in results) == sorted(
        int(log_s * 1e9) for _, log_s in pushed
    )
