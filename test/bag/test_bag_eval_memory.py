"""bag eval decodes each detections message as it reads it: memory follows the decoded boxes."""

from __future__ import annotations

import tracemalloc

import numpy as np

from togethernet_ros.bag.bag_eval import load_bag_detections
from togethernet_ros.bag.bag_writer import BagWriter
from togethernet_ros.bag.detection_cdr import encode_detection2d_array
from togethernet_ros.bag.detection_messages import label_info_message
from togethernet_ros.bag.image_codec import make_header
from togethernet_ros.bag.vision_msgs_definitions import (
    DETECTION2D_ARRAY,
    LABEL_INFO,
    create_typestore,
)

START_NS = 1_700_000_000_000_000_000
PERIOD_NS = 33_000_000


def _write_detections_bag(path, frames: int, labels: list[str], label_info_last: bool = False):
    typestore = create_typestore()
    boxes = np.tile(np.array([[10.0, 10.0, 50.0, 90.0]]), (10, 1))
    scores = np.full(10, 0.9)
    names = ("tree", "sign", "pole")
    with BagWriter(path, storage="mcap", typestore=typestore) as writer:

        def write_label_info(log_ns: int) -> None:
            header = make_header(typestore, START_NS, "cam")
            message = label_info_message(typestore, header, names, 0.3)
            writer.write("/cam/label_info", LABEL_INFO, log_ns, message)

        if not label_info_last:
            write_label_info(START_NS)
        for index in range(frames):
            stamp = START_NS + index * PERIOD_NS
            raw = encode_detection2d_array(
                divmod(stamp, 1_000_000_000), "cam", boxes, scores, labels
            )
            message = typestore.deserialize_cdr(raw, DETECTION2D_ARRAY)
            for topic in ("/cam/detections", "/cam/detections_raw"):
                writer.write(topic, DETECTION2D_ARRAY, stamp, message)
        if label_info_last:
            write_label_info(START_NS + frames * PERIOD_NS)
    return path


def test_reading_a_long_recording_does_not_hold_every_message(tmp_path):
    # 2,000 frames x 2 topics x 10 boxes. Holding every deserialized message until the end
    # peaked at ~96 MiB (~10 GB for an hour of two 30 Hz cameras); decoded at once, ~7 MiB.
    bag = _write_detections_bag(tmp_path / "long", 2000, ["sign"] * 10)
    tracemalloc.start()
    try:
        detections = load_bag_detections(bag, None)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(detections.cameras["/cam"].raw) == 2000
    assert peak < 30 * 2**20, f"peak {peak / 2**20:.1f} MiB"


def test_messages_before_a_late_label_info_are_decoded_with_its_names(tmp_path):
    bag = _write_detections_bag(tmp_path / "late", 5, ["pole"] * 10, label_info_last=True)
    detections = load_bag_detections(bag, None)
    assert detections.class_names == ("tree", "sign", "pole")
    camera = detections.cameras["/cam"]
    assert len(camera.raw) == len(camera.smoothed) == 5
    assert all(frame.class_ids.tolist() == [2] * 10 for frame in camera.raw.values())
