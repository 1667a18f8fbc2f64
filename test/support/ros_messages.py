"""sensor_msgs/Image messages for the ROS tests (imports rclpy's message types when called)."""

from __future__ import annotations

import threading

import numpy as np


def bgr8_image(pixels: np.ndarray, stamp_ns: int, frame_id: str):
    """A bgr8 ``sensor_msgs/Image`` of the H×W×3 uint8 ``pixels`` with this header."""
    from sensor_msgs.msg import Image

    message = Image()
    message.header.frame_id = frame_id
    message.header.stamp.sec, message.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    message.height, message.width = pixels.shape[:2]
    message.encoding = "bgr8"
    message.step = pixels.shape[1] * 3
    message.data = pixels.tobytes()
    return message


def jpeg_image(pixels: np.ndarray, stamp_ns: int, frame_id: str):
    """A ``sensor_msgs/CompressedImage`` holding ``pixels`` (BGR) as a JPEG, with this header."""
    import cv2
    from sensor_msgs.msg import CompressedImage

    message = CompressedImage()
    message.header.frame_id = frame_id
    message.header.stamp.sec, message.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    message.format = "jpeg"
    message.data = cv2.imencode(".jpg", pixels)[1].tobytes()
    return message


def noise_frame(stamp_ns: int, frame_id: str):
    """A 128×96 noise image, the same pixels for the same stamp."""
    rng = np.random.default_rng(stamp_ns % 1000)
    return bgr8_image(rng.integers(0, 255, (96, 128, 3), np.uint8), stamp_ns, frame_id)


class MessageRecorder:
    """Collects messages per topic from callbacks on the executor threads."""

    def __init__(self) -> None:
        self.messages: dict[str, list] = {}
        self._lock = threading.Lock()

    def callback(self, topic: str):
        """A subscription callback that stores what arrives on ``topic``."""

        def store(message) -> None:
            with self._lock:
                self.messages.setdefault(topic, []).append(message)

        return store

    def get(self, topic: str) -> list:
        """The messages received on ``topic`` so far."""
        with self._lock:
            return list(self.messages.get(topic, []))
