"""Dehazed image recovery and detection drawing."""

from __future__ import annotations

import numpy as np
import pytest

from togethernet_ros.vision import dehazed as dehazed_module
from togethernet_ros.vision.dehazed import dehazed_to_images
from togethernet_ros.vision.detections import Detections
from togethernet_ros.vision.draw import class_color, draw_detections
from togethernet_ros.vision.preprocess import preprocess_batch

from .synthetic_images import scene


@pytest.mark.parametrize("color_order", ["bgr", "rgb"])
def test_normalised_input_round_trips_to_the_source_image(color_order):
    # The restoration output lives in the normalised input space, so feeding the network input
    # itself through the recovery must give back the source image.
    same_size = scene(256, 384, seed=1)
    wide = scene(270, 480, seed=2)
    batch, infos = preprocess_batch([same_size, wide], (256, 384), color_order=color_order)
    images = dehazed_to_images(batch, infos, color_order=color_order)
    np.testing.assert_array_equal(images[0], same_size)
    assert images[1].shape == wide.shape and images[1].dtype == np.uint8
    error = np.abs(images[1].astype(int) - wide.astype(int))
    assert error.mean() < 3.0


def test_torch_resize_fallback_agrees_with_opencv(monkeypatch):
    source = scene(300, 500, seed=3)
    batch, infos = preprocess_batch([source], 256)
    with_cv2 = dehazed_to_images(batch, infos)[0]
    monkeypatch.setattr(dehazed_module, "cv2", None)
    with_torch = dehazed_to_images(batch, infos)[0]
    assert np.abs(with_cv2.astype(int) - with_torch.astype(int)).max() <= 2


def test_values_beyond_the_valid_range_are_clipped():
    batch, infos = preprocess_batch([scene(64, 64)], 128)
    batch[:, :, :10] = 50.0
    batch[:, :, 10:20] = -50.0
    (image,) = dehazed_to_images(batch, infos)
    assert (image[:5] == 255).all() and (image[5:10] == 0).all()


def test_dehazed_shape_errors():
    batch, infos = preprocess_batch([scene(64, 64)], 128)
    with pytest.raises(ValueError, match="N x 3 x H x W"):
        dehazed_to_images(batch[:, :2], infos)
    with pytest.raises(ValueError, match="letterbox infos"):
        dehazed_to_images(batch, infos * 2)


def test_draw_marks_the_box_and_leaves_the_input_alone():
    image = np.zeros((120, 160, 3), dtype=np.uint8)
    detections = Detections(np.array([[20, 40, 100, 110]]), np.array([0.9]), np.array([2]))
    drawn = draw_detections(
        image, detections, ("person", "bicycle", "car"), track_ids=np.array([7])
    )
    assert image.max() == 0
    assert tuple(drawn[80, 20]) == class_color(2)  # left edge of the box
    assert drawn[60:100, 40:90].max() == 0  # the inside stays untouched
    assert drawn[:40].any()  # a label was written above the box
    assert class_color(0) != class_color(1)


def test_draw_skips_non_finite_boxes_and_survives_absurd_ones():
    # int(round(nan)) raised ValueError, inf OverflowError, and corners beyond int32 made
    # cv2.rectangle raise: one bad box lost the node's whole debug image.
    image = np.zeros((120, 160, 3), dtype=np.uint8)
    boxes = np.array(
        [
            [np.nan, 10, 50, 50],
            [0, 0, np.inf, 50],
            [-1e30, 60, 1e30, 100],  # a horizontal band through the image
            [20, 40, 100, 110],
        ]
    )
    detections = Detections(boxes, np.array([0.9, 0.9, 0.9, np.nan]), np.array([0, 0, 1, 2]))
    names = ("person", "bicycle", "car")
    drawn = draw_detections(image, detections, names)
    assert tuple(drawn[60, 80]) == class_color(1)  # the band's top edge crosses the image
    assert tuple(drawn[80, 20]) == class_color(2)
    # The non-finite boxes drew nothing.
    only_finite = draw_detections(image, detections.select(np.array([2, 3])), names)
    np.testing.assert_array_equal(drawn, only_finite)


def test_draw_rejects_mismatched_track_ids():
    detections = Detections(np.array([[0, 0, 5, 5]]), np.array([0.5]), np.array([0]))
    with pytest.raises(ValueError, match="track ids"):
        draw_detections(
            np.zeros((8, 8, 3), np.uint8), detections, ("a",), track_ids=np.array([1, 2])
        )


def test_detections_container():
    empty = Detections.empty()
    assert len(empty) == 0 and empty.boxes.shape == (0, 4) and empty.class_ids.dtype == np.int64
    detections = Detections([[1, 2, 3, 4], [5, 6, 7, 8]], [0.9, 0.4], [0, 9])
    assert len(detections.select(detections.scores > 0.5)) == 1
    records = detections.to_records(("person",))
    assert records[0] == {
        "box_xyxy": [1.0, 2.0, 3.0, 4.0],
        "score": 0.9,
        "class_id": 0,
        "class_name": "person",
    }
    assert records[1]["class_name"] == "9"
    with pytest.raises(ValueError, match="disagree"):
        Detections([[1, 2, 3, 4]], [0.5, 0.6], [0])
