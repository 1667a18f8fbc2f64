"""JPEG files carrying an EXIF Orientation tag, built from bytes (no imaging library needed)."""

from __future__ import annotations

import struct

import cv2
import numpy as np


def exif_app1(orientation: int) -> bytes:
    """An APP1 segment holding a little-endian TIFF header with one IFD entry: Orientation."""
    entry = struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0)  # tag, SHORT, count 1, value
    ifd = struct.pack("<H", 1) + entry + struct.pack("<I", 0)
    tiff = b"II*\x00" + struct.pack("<I", 8) + ifd
    payload = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def jpeg_with_orientation(pixels: np.ndarray, orientation: int, quality: int = 95) -> bytes:
    """``pixels`` (BGR, the stored grid) encoded as a JPEG tagged with EXIF ``orientation``."""
    ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    data = encoded.tobytes()
    assert data[:2] == b"\xff\xd8"
    return data[:2] + exif_app1(orientation) + data[2:]


# The stored grid of :func:`white_block_photo`: 40x80, white where x < 20, black elsewhere.
BLOCK_BOX = (0.0, 0.0, 20.0, 40.0)


def white_block_photo(orientation: int) -> tuple[bytes, np.ndarray]:
    """(JPEG bytes, stored BGR pixels) of a 40x80 photo with a white block at x < 20 whose EXIF
    tag says to turn it (6: 90° clockwise, 8: counter-clockwise, 3: 180°) for display."""
    stored = np.zeros((40, 80, 3), np.uint8)
    stored[:, :20] = 255
    return jpeg_with_orientation(stored, orientation), stored
