"""The pixel size of a JPEG or PNG read from its header, without decoding it.

A compressed frame's size is otherwise known only after decoding, and decoding is where an
oversized frame costs: a 2 MB JPEG of 12000×12000 black pixels takes over a second and 430 MB
to decode. Reading the size first lets a limit such as the node's `max_image_pixels` refuse
such a frame for the price of a few header bytes.
"""

from __future__ import annotations

import numpy as np

from togethernet_ros.vision.jpeg_integrity import JPEG_START

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Start-of-frame markers carry the size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but
# are not frames.
JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
JPEG_START_OF_SCAN = 0xDA
# Markers that stand alone, without a length field: TEM, RST0-7, SOI, EOI.
JPEG_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xDA)})


def encoded_image_size(data: bytes | bytearray | memoryview | np.ndarray) -> tuple[int, int] | None:
    """Return (width, height) from a JPEG's or PNG's header, or None where it cannot be read.

    None means "unknown" (another format, or a header cut short); the decoder then decides.
    """
    raw = (data if isinstance(data, np.ndarray) else np.frombuffer(data, np.uint8)).reshape(-1)
    if raw[:8].tobytes() == PNG_SIGNATURE:
        return _png_size(raw)
    if raw[:2].tobytes() == JPEG_START:
        return _jpeg_size(raw)
    return None


def _png_size(raw: np.ndarray) -> tuple[int, int] | None:
    # The first chunk must be IHDR: 4 length bytes, the type, then width and height (big endian).
    header = raw[8:24].tobytes()
    if len(header) < 16 or header[4:8] != b"IHDR":
        return None
    return int.from_bytes(header[8:12], "big"), int.from_bytes(header[12:16], "big")


def _jpeg_size(raw: np.ndarray) -> tuple[int, int] | None:
    position = 2
    end = raw.size
    while position + 4 <= end:
        if raw[position] != 0xFF:
            return None  # not at a marker: a corrupt header
        marker = int(raw[position + 1])
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if marker in JPEG_STANDALONE_MARKERS:
            position += 2
            continue
        if marker == JPEG_START_OF_SCAN:
            return None  # image data began without a frame header
        length = int(raw[position + 2]) << 8 | int(raw[position + 3])
        if marker in JPEG_FRAME_MARKERS:
            if position + 9 > end:
                return None
            # After the length: sample precision (1 byte), height, width (2 bytes each).
            height = int(raw[position + 5]) << 8 | int(raw[position + 6])
            width = int(raw[position + 7]) << 8 | int(raw[position + 8])
            return width, height
        if length < 2:
            return None
        position += 2 + length
    return None
