"""Edge cases of the tracker: objects leaving the image, odd image sizes, very long runs."""

from __future__ import annotations

import numpy as np
import pytest
from bag.blob_detector import BlobDetector
from support.stand_in_detectors import frame_with_block

from togethernet_ros.bag.bag_reader import ImageFrame
from togethernet_ros.bag.image_codec import IMAGE_TYPE
from togethernet_ros.bag.offline_pipeline import OfflinePipeline
from togethernet_ros.tracking.config import TrackerConfig
from togethernet_ros.tracking.kalman import BoxKalmanFilter
from togethernet_ros.tracking.tracker import Tracker
from togethernet_ros.vision.detections import Detections

HEIGHT, WIDTH = 96, 128


def _car_leaving_right(frame: int) -> Detections:
    """A car driving right at 12 px a frame, clipped to the image as the detector clips it."""
    x1 = 40.0 + 12.0 * frame
    if x1 >= WIDTH - 1:
        return Detections.empty()
    box = [x1, 30.0, min(x1 + 40.0, WIDTH), 70.0]
    return Detections(np.float32([box]), np.float32([0.9]), np.int64([2]))


def test_tracks_of_an_object_leaving_the_image_stay_inside_it():
    # The coasting prediction carried the car on past the border: published boxes reached
    # x = 190 in a 128 px image, wholly outside it, for up to max_misses frames.
    tracker = Tracker(TrackerConfig(min_hits=1, max_misses=5))
    published_after_exit = 0
    for frame in range(16):
        detections = _car_leaving_right(frame)
        tracked = tracker.update(detections, frame / 10.0, image_size=(HEIGHT, WIDTH))
        boxes = tracked.boxes
        assert (boxes >= 0).all() and (boxes[:, [0, 2]] <= WIDTH).all(), (frame, boxes)
        assert (boxes[:, [1, 3]] <= HEIGHT).all(), (frame, boxes)
        assert ((boxes[:, 2:] - boxes[:, :2]) >= 1.0).all(), (frame, boxes)
        if len(detections) == 0:
            published_after_exit += len(tracked)
    # The car left with a known velocity: its prediction is gone from the image within a frame.
    assert published_after_exit <= 1
    assert tracker.num_tracks == 0


def test_a_track_at_the_border_keeps_its_id_while_its_object_is_detected():
    # Only coasting tracks end outside the image: a thin object at the right border goes on.
    tracker = Tracker(TrackerConfig(min_hits=1, max_misses=5))
    ids = set()
    for frame in range(10):
        box = [WIDTH - 1.0, 10.0, float(WIDTH), 60.0]
        found = Detections(np.float32([box]), np.float32([0.9]), np.int64([0]))
        tracked = tracker.update(found, frame / 10.0, image_size=(HEIGHT, WIDTH))
        assert len(tracked) == 1, frame
        ids.update(tracked.track_ids.tolist())
    assert ids == {1}


def test_without_an_image_size_boxes_are_published_unclipped():
    tracker = Tracker(TrackerConfig(min_hits=1))
    box = [-20.0, 10.0, 40.0, 60.0]
    tracked = tracker.update(Detections(np.float32([box]), [0.9], [0]), 0.0)
    np.testing.assert_allclose(tracked.boxes[0], box)
    clipped = Tracker(TrackerConfig(min_hits=1)).update(
        Detections(np.float32([box]), [0.9], [0]), 0.0, image_size=(HEIGHT, WIDTH)
    )
    np.testing.assert_allclose(clipped.boxes[0], [0.0, 10.0, 40.0, 60.0])


@pytest.mark.parametrize("size", [(0, 640), (480, -1), (480,), "480x640", (np.nan, 640)])
def test_a_bad_image_size_is_refused_by_name(size):
    with pytest.raises(ValueError, match="image_size"):
        Tracker().update(Detections.empty(), 0.0, image_size=size)


def test_bag_runs_publish_no_tracks_outside_the_frame():
    # The offline pipeline (bag run / bag eval) gives the tracker each frame's size, as the node.
    pipeline = OfflinePipeline(
        BlobDetector(),
        max_batch_size=1,
        restore=False,
        tracker_config=TrackerConfig(min_hits=1, max_misses=5),
    )
    start_ns = 1_700_000_000_000_000_000
    results = []
    for index in range(14):
        x1 = 40 + 12 * index
        if x1 < WIDTH - 4:
            image = frame_with_block(HEIGHT, WIDTH, (x1, 30, min(x1 + 40, WIDTH), 70))
        else:
            image = np.full((HEIGHT, WIDTH, 3), 40, dtype=np.uint8)
        stamp_ns = start_ns + index * 100_000_000
        frame = ImageFrame("/cam/image_raw", IMAGE_TYPE, stamp_ns, stamp_ns, "cam", image)
        results.extend(pipeline.push(frame))
    results.extend(pipeline.finish())
    assert len(results) == 14
    assert any(len(result.tracked) for result in results)
    for index, result in enumerate(results):
        boxes = result.tracked.boxes
        assert (boxes >= 0).all() and (boxes[:, [0, 2]] <= WIDTH).all(), (index, boxes)


def test_kalman_covariance_stays_valid_over_a_long_run():
    # 20 minutes at 30 fps of jittery measurements, plus steps of 1 ns and 10 s: the per-axis
    # covariance must stay finite and positive definite (no drift from the short-form update).
    kalman = BoxKalmanFilter(process_noise=0.5, measurement_noise=0.05)
    rng = np.random.default_rng(0)
    truth = np.array([[100.0, 80.0, 40.0, 60.0], [5000.0, 3000.0, 2.0, 1.0]])
    states = kalman.initiate(truth)
    index = np.arange(len(truth))
    steps = np.full(36_000, 1 / 30)
    steps[::1000] = 1e-9
    steps[500::1000] = 10.0
    for dt in steps:
        kalman.predict(states, float(dt))
        kalman.update(states, index, truth + rng.normal(0.0, 0.5, truth.shape))
    determinant = states.var_position * states.var_velocity - states.covariance**2
    for values in (states.position, states.velocity, states.var_position, determinant):
        assert np.isfinite(values).all()
    assert (states.var_position > 0).all() and (determinant > 0).all()
    np.testing.assert_allclose(states.position, truth, atol=2.0)
