"""The detector node over real DDS takes Bayer, YUV 4:2:2 / 4:2:0 and 16-bit big-endian cameras.

rclpy messages differ from the rosbags dataclasses the other codec tests use (``data`` is an
``array.array``, ``is_bigendian`` an int): the node must decode them, not count bad frames.
"""

from __future__ import annotations

import numpy as np
import pytest
from support.detector_nodes import active_detector_node
from support.wait import wait_for

from .bag_samples import scene
from .test_codec_camera_encodings import bayer_mosaic, yuv420_semi_planar, yuv422_packed

pytestmark = pytest.mark.ros

CAMERA = "/cam_a/image_raw"
DETECTIONS = "/cam_a/detections"


def _message(
    samples: np.ndarray,
    encoding: str,
    stamp_ns: int,
    big_endian: bool = False,
    height: int | None = None,
):
    """An rclpy Image of ``samples``; ``height`` when the image has fewer rows (nv12 / nv21)."""
    from sensor_msgs.msg import Image

    message = Image()
    message.header.frame_id = "cam_a"
    message.header.stamp.sec, message.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    message.height, message.width = samples.shape[:2]
    if height is not None:
        message.height = height
    message.encoding = encoding
    message.is_bigendian = int(big_endian)
    stored = (
        samples.astype(">u2" if big_endian else "<u2") if samples.dtype == np.uint16 else samples
    )
    rows = np.ascontiguousarray(stored).view(np.uint8).reshape(samples.shape[0], -1)
    message.step = rows.shape[1]
    message.data = rows.tobytes()
    return message


def _start_node(ros):
    """An active detector node on CAMERA, a reliable publisher to it, and its detections."""
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    parameters = {
        "image_topics": [CAMERA],
        "weights": "",
        "allow_untrained_weights": True,
        "input_size": [128, 128],
        "max_batch_wait_ms": 0.0,
    }
    node = active_detector_node(ros, parameters)
    tester = ros.add_node(rclpy.create_node("codec_node_test", context=ros.context))
    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    received: list = []
    tester.create_subscription(Detection2DArray, DETECTIONS, received.append, reliable)
    publisher = tester.create_publisher(Image, CAMERA, reliable)
    wait_for(lambda: publisher.get_subscription_count() >= 1, 60.0, "the node's subscription")
    wait_for(
        lambda: node.count_publishers(DETECTIONS) >= 1 and tester.count_subscribers(DETECTIONS),
        60.0,
        "the detections topic",
    )
    return node, publisher, received


def test_node_detects_on_bayer_yuv_and_16_bit_cameras(ros):
    """Each encoding's frame is decoded and detected on; none is counted as a bad frame."""
    node, publisher, received = _start_node(ros)
    frame = scene(1)
    frames = [
        _message(bayer_mosaic(frame, "grbg"), "bayer_grbg8", 1_000_000_001),
        _message(yuv422_packed(frame, "uyvy"), "yuv422", 1_000_000_002),
        _message(frame[:, :, ::-1].astype(np.uint16) * 257, "rgb16", 1_000_000_003, True),
        _message(yuv420_semi_planar(frame, "nv12"), "nv12", 1_000_000_004, height=frame.shape[0]),
    ]
    stamps = []
    for count, message in enumerate(frames, start=1):
        publisher.publish(message)
        stamps.append(message.header.stamp.nanosec)
        # One at a time: the sensor-data subscription keeps only the newest frame.
        wait_for(lambda n=count: len(received) >= n, 60.0, f"detections of {stamps[-1]}")
    assert [m.header.stamp.nanosec for m in received] == stamps
    stats = node._cameras[CAMERA].stats
    assert (stats.bad_frames, stats.last_problem) == (0, "")


def test_node_restarts_a_cameras_16_bit_scale_when_its_source_changes(ros):
    """A replaced or restarted camera (frame_id or size) is not kept at its predecessor's scale.

    The frames the model is given are recorded on their way in (the real detector still runs).
    """
    node, publisher, received = _start_node(ros)
    seen: list[np.ndarray] = []
    detector = node._detector
    real_detect = detector.detect

    def recording_detect(images, *arguments, **keywords):
        seen.extend(image.copy() for image in images)
        return real_detect(images, *arguments, **keywords)

    detector.detect = recording_detect
    sequence = [  # (frame_id, shape, one pixel in the 16-bit range)
        ("cam_a", (48, 64), True),
        ("cam_a", (48, 64), False),  # later stamp, same camera: stays at 16 bits
        ("cam_b", (48, 64), False),  # replaced camera: 12 bits
        ("cam_b", (48, 64), True),
        ("cam_b", (64, 48), False),  # restarted at another resolution: 12 bits
    ]
    for count, (frame_id, shape, hot) in enumerate(sequence, start=1):
        samples = np.full(shape, 3000, np.uint16)
        if hot:
            samples[0, 0] = 40000
        message = _message(samples, "mono16", 1_000_000_000 + count)
        message.header.frame_id = frame_id
        publisher.publish(message)
        wait_for(lambda n=count: len(received) >= n, 60.0, f"detections of frame {count}")
    assert [image.shape[:2] for image in seen] == [shape for _, shape, _ in sequence]
    # round(3000 * 255 / (2**bits - 1)): 12 at 16 bits, 187 at 12 bits.
    expected = [round(3000 * 255 / (2**bits - 1)) for bits in (16, 16, 12, 16, 12)]
    assert [int(image[1, 1, 0]) for image in seen] == expected
    stats = node._cameras[CAMERA].stats
    assert (stats.bad_frames, stats.last_problem) == (0, "")
