"""A small, valid-looking JPEG whose frame header claims a huge pixel size."""

from __future__ import annotations

import cv2
import numpy as np


def jpeg_claiming_size(width: int, height: int) -> bytes:
    """A 20x30 JPEG with its baseline frame header (SOF0) rewritten to `width` x `height`.

    Above 2^30 pixels OpenCV raises on it instead of returning None, which is what the
    image readers must survive.
    """
    encoded = bytearray(cv2.imencode(".jpg", np.full((20, 30, 3), 90, np.uint8))[1].tobytes())
    frame_header = encoded.index(b"\xff\xc0")
    encoded[frame_header + 5 : frame_header + 9] = height.to_bytes(2, "big") + width.to_bytes(
        2, "big"
    )
    return bytes(encoded)
