"""Camera messages read from their CDR bytes equal rclpy's own conversion of the same bytes."""

from __future__ import annotations

import numpy as np
import pytest

from togethernet_ros.bag.image_codec import (
    ImageDecodeError,
    decode_compressed_message,
    decode_image_message,
)
from togethernet_ros.ros.serialized_images import SerializedImageReader

pytestmark = pytest.mark.ros


def _image(pixels: np.ndarray, encoding: str):
    from sensor_msgs.msg import Image

    message = Image()
    message.header.stamp.sec, message.header.stamp.nanosec = 1_700_000_123, 456_789
    message.header.frame_id = "cam_front_optical"
    message.height, message.width = pixels.shape[:2]
    message.encoding = encoding
    message.step = pixels.strides[0]
    message.data = pixels.tobytes()
    return message


def test_an_image_reads_the_same_as_rclpys_conversion():
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import Image

    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 255, (72, 128, 3), dtype=np.uint8)
    serialized = serialize_message(_image(pixels, "rgb8"))
    message = SerializedImageReader().read(serialized, compressed=False)
    expected = deserialize_message(serialized, Image)
    assert (message.header.stamp.sec, message.header.stamp.nanosec) == (1_700_000_123, 456_789)
    assert message.header.frame_id == "cam_front_optical"
    assert (message.height, message.width, message.step) == (72, 128, 384)
    assert message.encoding == "rgb8" and not message.is_bigendian
    np.testing.assert_array_equal(decode_image_message(message), decode_image_message(expected))
    np.testing.assert_array_equal(decode_image_message(message), pixels[:, :, ::-1])


def test_a_sixteen_bit_big_endian_image_keeps_its_byte_order_flag():
    from rclpy.serialization import serialize_message

    samples = np.arange(24 * 32, dtype=">u2").reshape(24, 32) * 40
    original = _image(samples, "mono16")
    original.is_bigendian = 1
    message = SerializedImageReader().read(serialize_message(original), compressed=False)
    assert message.is_bigendian
    assert bytes(message.data) == samples.tobytes()


def test_a_compressed_image_reads_the_same_as_rclpys_conversion():
    import cv2
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import CompressedImage

    pixels = np.zeros((48, 64, 3), np.uint8)
    pixels[10:30, 20:50] = (30, 140, 220)
    original = CompressedImage()
    original.header.frame_id = "cam_rear"
    original.format = "jpeg"
    original.data = cv2.imencode(".jpg", pixels)[1].tobytes()
    message = SerializedImageReader().read(serialize_message(original), compressed=True)
    assert message.format == "jpeg" and message.header.frame_id == "cam_rear"
    np.testing.assert_array_equal(
        decode_compressed_message(message), decode_compressed_message(original)
    )


@pytest.mark.parametrize("cut", [3, 20, 200])
def test_truncated_bytes_are_an_image_decode_error_naming_the_type(cut):
    from rclpy.serialization import serialize_message

    serialized = serialize_message(_image(np.zeros((16, 16, 3), np.uint8), "bgr8"))
    with pytest.raises(ImageDecodeError, match=r"malformed serialized sensor_msgs/msg/Image"):
        SerializedImageReader().read(serialized[:cut], compressed=False)


def test_the_pixels_are_a_view_of_the_received_bytes_not_a_copy():
    # A copy of a 720p frame costs the executor thread 0.2 ms per camera, with the GIL held.
    from rclpy.serialization import serialize_message

    serialized = serialize_message(_image(np.zeros((72, 128, 3), np.uint8), "bgr8"))
    message = SerializedImageReader().read(serialized, compressed=False)
    assert np.shares_memory(message.data, np.frombuffer(serialized, np.uint8))
    assert not message.data.flags.writeable
