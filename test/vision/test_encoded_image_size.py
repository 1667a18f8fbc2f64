"""Reading a JPEG's or PNG's pixel size from its header."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from togethernet_ros.vision.encoded_image_size import encoded_image_size


def _picture(height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(height * 7 + width)
    return rng.integers(0, 255, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ("extension", "flags"),
    [
        (".jpg", []),
        (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
        (".jpg", [cv2.IMWRITE_JPEG_RST_INTERVAL, 4]),
        (".png", []),
    ],
)
def test_size_matches_what_the_decoder_gives(extension, flags):
    encoded = cv2.imencode(extension, _picture(37, 91), flags)[1]
    assert encoded_image_size(encoded) == (91, 37)
    assert encoded_image_size(encoded.tobytes()) == (91, 37)


def test_segments_before_the_frame_header_are_skipped():
    encoded = cv2.imencode(".jpg", _picture(20, 30))[1].tobytes()
    # An APP1 (Exif-like) segment whose payload holds FF bytes and a fake SOF-looking pair,
    # plus fill bytes before the next marker: only real segment boundaries may be read.
    payload = b"Exif\x00\x00\xff\xc0\x00\x11\x08\x99\x99\x99\x99" + b"\xff" * 7
    app1 = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    with_exif = encoded[:2] + app1 + b"\xff\xff" + encoded[2:]
    assert cv2.imdecode(np.frombuffer(with_exif, np.uint8), cv2.IMREAD_COLOR).shape == (20, 30, 3)
    assert encoded_image_size(with_exif) == (30, 20)


def test_a_large_frame_is_sized_without_decoding_it():
    encoded = cv2.imencode(".jpg", np.zeros((4000, 6000, 3), np.uint8))[1]
    head = encoded[:1000]  # the size is in the first segments; the image data is not needed
    assert encoded_image_size(head) == (6000, 4000)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"GIF89a\x10\x00\x10\x00",
        b"\xff\xd8",  # a JPEG start and nothing more
        b"\xff\xd8\xff\xe0\x00",  # cut inside a segment's length
        b"\xff\xd8\xff\xda\x00\x08",  # image data before any frame header
        b"\xff\xd8\x12\x34\x56\x78",  # no marker where one must be
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x00",  # PNG header cut short
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIDAT\x00\x00\x00\x10\x00\x00\x00\x10",  # no IHDR first
    ],
)
def test_unknown_or_cut_headers_give_none(data):
    assert encoded_image_size(data) is None
