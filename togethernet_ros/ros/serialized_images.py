"""Camera messages read straight from their serialized (CDR) bytes.

rclpy turns a received sensor_msgs/Image into a Python message by copying its pixels into an
``array.array``, holding the GIL all the while: 1.4 ms for a 1280×720 bgr8 frame on the
2-core development machine. With four cameras that is ~5.5 ms of every frame period in which
the inference thread cannot run, and the fourth camera's frame reaches the batcher ~5 ms after
the first's (docs/benchmarks.md, "GPU end to end over DDS"). The node therefore takes the
serialized bytes (``raw=True``) and reads them with rosbags' deserializer, whose pixel array is
a view of those bytes: 0.004 ms for the same frame, read through a ``memoryview`` (rosbags
slices off the CDR header, and a slice of ``bytes`` would copy all 2.7 MB: 0.23 ms on the 2-core
Xeon of the thirteenth session). The messages it returns have the same field names as rclpy's,
so the decoders in bag/image_codec.py take either.
"""

from __future__ import annotations

from typing import Any

from togethernet_ros.bag.image_codec import COMPRESSED_IMAGE_TYPE, IMAGE_TYPE, ImageDecodeError
from togethernet_ros.bag.vision_msgs_definitions import create_typestore


class SerializedImageReader:
    """Reads sensor_msgs/Image and CompressedImage messages from CDR bytes."""

    def __init__(self) -> None:
        self._typestore = create_typestore()

    def read(self, serialized: bytes, compressed: bool) -> Any:
        """The message in ``serialized``; ImageDecodeError naming the type if it is malformed.

        The returned message's ``data`` is a read-only numpy view of ``serialized``.
        """
        type_name = COMPRESSED_IMAGE_TYPE if compressed else IMAGE_TYPE
        try:
            return self._typestore.deserialize_cdr(memoryview(serialized), type_name)
        except Exception as error:  # rosbags raises struct, index and value errors alike
            raise ImageDecodeError(
                f"malformed serialized {type_name} ({len(serialized)} bytes): "
                f"{type(error).__name__}: {error}"
            ) from error
