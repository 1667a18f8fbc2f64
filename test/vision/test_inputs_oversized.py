"""An image too large for OpenCV is reported as such, not as a corrupt file."""

from __future__ import annotations

import zlib

import cv2
import numpy as np
from support.oversized_jpeg import jpeg_claiming_size

from togethernet_ros.vision.image_file import read_whole_image_file


def _png_claiming_size(width: int, height: int) -> bytes:
    """A small PNG whose IHDR (with a valid CRC) claims ``width`` x ``height``."""
    encoded = bytearray(cv2.imencode(".png", np.full((20, 30, 3), 90, np.uint8))[1].tobytes())
    encoded[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    encoded[29:33] = zlib.crc32(bytes(encoded[12:29])).to_bytes(4, "big")
    return bytes(encoded)


def test_a_drone_orthophoto_too_large_to_decode_says_so(tmp_path):
    for name, data in {
        "ortho.jpg": jpeg_claiming_size(40000, 30000),
        "pano.png": _png_claiming_size(70000, 20000),
    }.items():
        path = tmp_path / name
        path.write_bytes(data)
        image, problem = read_whole_image_file(path)
        assert image is None
        width, height = (40000, 30000) if name == "ortho.jpg" else (70000, 20000)
        assert problem.startswith(f"{width}x{height} pixels, more than OpenCV decodes")


def test_a_corrupt_file_of_a_plausible_size_is_still_called_corrupt(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(_png_claiming_size(640, 480)[:60])
    assert read_whole_image_file(path) == (
        None,
        "not a decodable image (corrupt or another format)",
    )
