"""Separate process for the DDS transport test: publishes one known Detection2DArray and Image.

Run as `python dds_publisher_process.py`; waits until the test's subscriber is matched, then
publishes reliably and exits 0 once both messages are acknowledged (or 3 on timeout).
"""

from __future__ import annotations

import sys
import time

import numpy as np
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from vision_msgs.msg import BoundingBox2D, Detection2D, Detection2DArray, ObjectHypothesisWithPose

IMAGE_HEIGHT, IMAGE_WIDTH = 720, 1280


def known_image() -> np.ndarray:
    """A deterministic 1280x720 bgr8 pattern the receiver can recompute."""
    rows = np.arange(IMAGE_HEIGHT, dtype=np.uint32)[:, None, None]
    cols = np.arange(IMAGE_WIDTH, dtype=np.uint32)[None, :, None]
    channels = np.arange(3, dtype=np.uint32)[None, None, :]
    return ((rows * 7 + cols * 13 + channels * 101) % 251).astype(np.uint8)


def known_detections() -> Detection2DArray:
    array = Detection2DArray()
    array.header.frame_id = "cam_front"
    array.header.stamp.sec, array.header.stamp.nanosec = 1700000000, 123456789
    for index, (cx, cy, w, h, label, score) in enumerate(
        [(100.5, 200.25, 40.0, 80.0, "person", 0.91), (640.0, 360.0, 300.0, 150.0, "car", 0.42)]
    ):
        detection = Detection2D()
        detection.header = array.header
        detection.bbox = BoundingBox2D()
        detection.bbox.center.position.x, detection.bbox.center.position.y = cx, cy
        detection.bbox.size_x, detection.bbox.size_y = w, h
        hypothesis = ObjectHypothesisWithPose()
        hypothesis.hypothesis.class_id, hypothesis.hypothesis.score = label, score
        detection.results.append(hypothesis)
        detection.id = str(index + 7)
        array.detections.append(detection)
    return array


def main() -> int:
    rclpy.init()
    node = rclpy.create_node("dds_test_publisher")
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    detections_pub = node.create_publisher(Detection2DArray, "transport_test/detections", qos)
    image_pub = node.create_publisher(Image, "transport_test/image", qos)
    deadline = time.monotonic() + 20.0
    while time.monotonic() < deadline and (
        detections_pub.get_subscription_count() < 1 or image_pub.get_subscription_count() < 1
    ):
        time.sleep(0.02)
    if time.monotonic() >= deadline:
        return 3
    image = Image()
    image.header.frame_id = "cam_front"
    image.height, image.width, image.encoding = IMAGE_HEIGHT, IMAGE_WIDTH, "bgr8"
    image.step = IMAGE_WIDTH * 3
    image.data = known_image().tobytes()
    detections_pub.publish(known_detections())
    image_pub.publish(image)
    acknowledged = detections_pub.wait_for_all_acked(
        rclpy.duration.Duration(seconds=10)
    ) and image_pub.wait_for_all_acked(rclpy.duration.Duration(seconds=10))
    node.destroy_node()
    rclpy.shutdown()
    return 0 if acknowledged else 3


if __name__ == "__main__":
    sys.exit(main())
